"""The figures of ``irad analyze`` (matplotlib, PNG): Fig. 2 (sampling strategies and SampleNet's shift field),
Fig. 5 (PCA of penultimate features), Figs. 6-8 (case panels with the classifier's probabilities) and Grad-CAM
saliency of clean, adversarial and purified images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import dataset_info
from ..utils import seed_everything
from ..utils.io import atomic_write
from . import features as feat
from .saliency import grad_cam

#: class names shown in the case panels (other datasets show class indices)
CLASS_NAMES = {"cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")}
#: the naive resamplings of Fig. 2 (§3.2), shown beside the defenses being analysed
NAIVE = ("nearest-si", "nearest-sv", "bilinear-si", "bilinear-sv")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return str(path)


def _show(ax, img: torch.Tensor, title: str) -> None:
    ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _samplenet_shift(defense: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """SampleNet's shift field (N x H x W x 2, pixels) of an IRAD-style defense, None for any other defense."""
    from ..sampling import SampleNet

    sampler, recon = getattr(defense, "sampler", None), getattr(defense, "reconstruction", None)
    if not isinstance(sampler, SampleNet):
        return None
    with torch.no_grad():
        feats = recon.encoder(x) if getattr(recon, "encoder", None) is not None else sampler.encoder(x)
        return sampler.shift(feats).cpu()


def sampling_strategies(x: torch.Tensor, defenses: dict[str, nn.Module], seed: int, path: Path, dev) -> str:
    """Fig. 2: one image resampled by nearest/bilinear x SI/SV and by each defense, with SampleNet's shift field."""
    from ..defenses import load_defense

    plt = _plt()
    x = x[:1].to(dev)
    shown: dict[str, torch.Tensor] = {"input": x[0].cpu()}
    for name in NAIVE:
        seed_everything(seed)
        with torch.no_grad():
            shown[name] = load_defense(name).to(dev)(x)[0].cpu()
    shift = None
    for spec, defense in defenses.items():
        seed_everything(seed)
        with torch.no_grad():
            shown[spec] = defense(x)[0].cpu()
        shift = shift if shift is not None else _samplenet_shift(defense, x)
    cols = len(shown) + (shift is not None)
    fig, axes = plt.subplots(1, cols, figsize=(2.1 * cols, 2.4))
    for ax, (title, img) in zip(axes, shown.items()):
        _show(ax, img, title)
    if shift is not None:
        ax = axes[-1]
        s = shift[0]
        mag = s.norm(dim=-1)
        im = ax.imshow(mag.numpy(), cmap="viridis")
        h, w = mag.shape
        step = max(1, h // 12)
        rows, cols_ = torch.meshgrid(torch.arange(0, h, step), torch.arange(0, w, step), indexing="ij")
        ax.quiver(cols_.numpy(), rows.numpy(), s[::step, ::step, 1].numpy(), -s[::step, ::step, 0].numpy(),
                  color="white", scale_units="xy", angles="xy", scale=1.0, width=0.006)
        ax.set_title(f"SampleNet shift (px), max {float(mag.max()):.2f}", fontsize=8)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle("Fig. 2: sampling strategies (SI: shift d = 1.5 px; SV: per-pixel U(0, 1.5))", fontsize=9)
    return _save(fig, path)


def pca_scatter(class_features: dict[str, torch.Tensor], cls_name: str, path: Path) -> str:
    """Fig. 5: penultimate features of one class on the first two principal axes of the clean features."""
    plt = _plt()
    names = list(class_features)
    projected = feat.pca_2d(*(class_features[n] for n in names))
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, p in zip(names, projected):
        ax.scatter(p[:, 0].numpy(), p[:, 1].numpy(), s=10, alpha=0.7, label=name)
    ax.set_xlabel("PC 1 (of the clean features)")
    ax.set_ylabel("PC 2")
    ax.set_title(f"Fig. 5: PCA of penultimate features, class '{cls_name}'", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def case_panels(s, victim: nn.Module, images: dict[str, torch.Tensor], classes: list[str], n: int, path: Path,
                dev) -> str:
    """Figs. 6-8: for ``n`` images, each version (clean, adversarial, resampled ...) with the victim's softmax."""
    plt = _plt()
    n = min(n, len(s.x))
    cols = len(images)
    fig, axes = plt.subplots(2 * n, cols, figsize=(2.0 * cols, 3.3 * n), layout="constrained",
                             gridspec_kw={"height_ratios": [2, 1] * n})
    axes = axes.reshape(2 * n, cols)
    for c, (title, batch) in enumerate(images.items()):
        with torch.no_grad():
            probs = torch.softmax(victim(batch[:n].to(dev)), dim=1).cpu()
        for i in range(n):
            pred = int(probs[i].argmax())
            _show(axes[2 * i, c], batch[i], f"{title}\npred: {classes[pred]}")
            bar = axes[2 * i + 1, c]
            top = probs[i].argsort(descending=True)[:10].sort().values  # all classes of CIFAR-10, else the top 10
            colours = ["tab:green" if int(k) == int(s.y[i]) else "tab:grey" for k in top]
            bar.bar(range(len(top)), probs[i, top].numpy(), color=colours)
            bar.set_ylim(0, 1)
            bar.set_xticks(range(len(top)))
            bar.set_xticklabels([classes[int(k)] for k in top], rotation=90, fontsize=5)
            bar.tick_params(axis="y", labelsize=6)
    fig.suptitle("Figs. 6-8: cases (green bar: the true class)", fontsize=9)
    return _save(fig, path)


def saliency_panels(s, victim: nn.Module, images: dict[str, torch.Tensor], n: int, path: Path, dev) -> str:
    """Grad-CAM of the true class for clean, adversarial and purified versions of ``n`` images."""
    plt = _plt()
    n = min(n, len(s.x))
    cols = len(images)
    fig, axes = plt.subplots(n, cols, figsize=(2.1 * cols, 2.2 * n), squeeze=False)
    for c, (title, batch) in enumerate(images.items()):
        maps = grad_cam(victim, batch[:n].to(dev), s.y[:n])
        for i in range(n):
            ax = axes[i, c]
            _show(ax, batch[i], title if i == 0 else "")
            ax.imshow(maps[i].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    fig.suptitle("Grad-CAM (captum LayerGradCam, last convolution, true class)", fontsize=9)
    return _save(fig, path)


def write_all(s, victim: nn.Module, defenses: dict[str, nn.Module], class_features: dict[str, Any] | None, cfg,
              out: Path, dev) -> dict[str, str]:
    """All figures of the analysis; returns {figure name: path}."""
    from ..defenses import load_defense

    info = dataset_info(cfg.dataset)
    classes = list(CLASS_NAMES.get(info.name, [str(k) for k in range(max(info.num_classes, 1 + int(s.y.max())))]))
    seed_everything(cfg.seed)
    with torch.no_grad():
        random = load_defense("bilinear-sv").to(dev)(s.adv[:cfg.cases].to(dev)).cpu()
    versions = {"clean": s.x, "adversarial": s.adv, "random resampling(adv)": random,
                **{f"{d}(adv)": outs["adv"] for d, outs in s.purified.items()}}
    paths = {"fig2_sampling": sampling_strategies(s.x, defenses, cfg.seed, out / "fig2_sampling.png", dev),
             "cases": case_panels(s, victim, versions, classes, cfg.cases, out / "cases.png", dev),
             "saliency": saliency_panels(s, victim, {k: v for k, v in versions.items() if "random" not in k},
                                         cfg.cases, out / "saliency.png", dev)}
    if class_features is not None:
        paths["fig5_pca"] = pca_scatter(class_features, classes[cfg.feature_class], out / "fig5_pca.png")
    return paths
