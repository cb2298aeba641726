"""Diffusion models for DiffPure (Nie et al., ICML 2022): the VP-SDE of Song et al. (ICLR 2021) and a small
time-conditioned U-Net that predicts the noise ε of a diffused image (its score is -ε / σ(t))."""

from .sde import VPSDE, denoising_loss, from_model_range, to_model_range
from .unet import ScoreUNet

__all__ = ["VPSDE", "ScoreUNet", "denoising_loss", "from_model_range", "to_model_range"]
