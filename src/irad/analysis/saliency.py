"""Grad-CAM saliency maps (Selvaraju et al. 2017) through captum, for the case panels of App. A.9."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError


def last_conv(classifier: nn.Module) -> nn.Conv2d:
    """The classifier's last convolution: Grad-CAM's usual layer (the finest spatial map with class semantics)."""
    convs = [m for m in classifier.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InputError("Grad-CAM needs a convolutional classifier; this one has no nn.Conv2d")
    return convs[-1]


def grad_cam(classifier: nn.Module, images: torch.Tensor, target: torch.Tensor,
             layer: nn.Module | None = None) -> torch.Tensor:
    """N x H x W Grad-CAM maps of class ``target`` at ``layer`` (default: the last convolution), ReLU'd, upsampled
    bilinearly to the image size and scaled to [0, 1] per image (all-zero maps stay zero)."""
    from captum.attr import LayerAttribution, LayerGradCam

    was_training = classifier.training
    classifier.eval()
    try:
        cam = LayerGradCam(classifier, layer or last_conv(classifier))
        maps = cam.attribute(images.detach(), target=target.to(images.device).tolist(), relu_attributions=True)
        maps = LayerAttribution.interpolate(maps, tuple(images.shape[-2:]), interpolate_mode="bilinear")
    finally:
        classifier.train(was_training)
    maps = maps.detach()[:, 0].clamp_min(0)
    peak = maps.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (maps / peak).cpu()
