"""Random IRAD weights of the paper's architecture, and irad's modules paired with references sharing their tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..resampling import ImageResampler
from .liif import ReferenceIRAD



def make_random_weights(path: str | Path, n_resblocks: int = 16, n_feats: int = 64,
                        hidden: Sequence[int] = (256, 256, 256, 256), samplenet_std: float = 0.5,
                        seed: int = 0) -> Path:
    """An IRAD weight file with random weights (PyTorch's default initialisation; SampleNet's last layer, which
    irad initialises to zero, drawn from N(0, samplenet_std) so that the shifts are non-trivial)."""
    from ..reconstruction import ImplicitReconstruction
    from ..sampling import SampleNet
    from ..training.implicit import save_resampler_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        recon = ImplicitReconstruction(n_resblocks, n_feats, tuple(hidden))
        samplenet = SampleNet(n_feats, tuple(hidden))
        for p in samplenet.net.mlp[-1].parameters():
            p.data.normal_(0.0, samplenet_std)
    path = Path(path)
    save_resampler_weights(recon, samplenet, path, {"dataset": "cifar10", "note": "random, for benchmarking"})
    return path


def load_pair(weights: str | Path, device: torch.device, max_queries: int | None = None) -> dict[str, nn.Module]:
    """irad's IRAD and DISCO from ``weights``, and the references sharing their tensors."""
    from ..defenses import load_defense

    irad_module = load_defense("irad", weights=str(weights), device=device)
    disco_module = load_defense("disco", weights=str(weights), device=device)
    for module in (irad_module, disco_module):
        if not isinstance(module, ImageResampler):
            raise TypeError(f"load_defense returned a {type(module).__name__}, not an ImageResampler")
        module.validate = False  # the reference checks no input: time the same work
    return {
        "irad": irad_module,
        "disco": disco_module,
        "ref_irad": ReferenceIRAD(irad_module, use_samplenet=True, max_queries=max_queries).eval(),
        "ref_recon": ReferenceIRAD(disco_module, use_samplenet=False, max_queries=max_queries).eval(),
    }
