"""Indicators of attack failure (Pintor et al. 2022; AutoAttack's checks, Croce & Hein 2020; the binarization test
of Zimmermann et al. 2022): small tests that fire when an evaluation's robust accuracy is probably an artefact of a
failed attack (masked gradients, randomness, an incomplete optimisation) rather than robustness.

Each function returns an :class:`Indicator`; ``fired`` is True when the evaluation should not be trusted as it is,
False when the test passed, None when it does not apply. Pipeline indicators take the attacked module (e.g.
``classifier(defense(.))`` for the full-gradient threat model) and a few images; row indicators compare robust
accuracies of finished evaluation rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.runtime import eval_mode
from ..utils.validation import check_images, check_labels
from .checks import gradient_health


@dataclass
class Indicator:
    name: str
    fired: bool | None
    value: float | None
    threshold: float | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ pipelines


def masked_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, zero_threshold: float = 0.5) -> Indicator:
    """Fires when the input gradient of the loss is non-finite or mostly exactly zero (shattered or obfuscated
    gradients, Athalye et al. 2018): gradient attacks then stall."""
    health = gradient_health(model, x, y, zero_threshold=zero_threshold, warn=False)
    fired = (not health["finite"]) or health["zero_fraction"] >= zero_threshold
    what = ("non-finite" if not health["finite"] else f"zero for {health['zero_fraction']:.0%} of the entries")
    return Indicator("masked gradients", fired, health["zero_fraction"], zero_threshold,
                     f"input gradient {what}" + ("; attack through BPDA" if fired else ""), health)


@torch.no_grad()
def randomness(model: nn.Module, x: torch.Tensor, passes: int = 5) -> Indicator:
    """Fires when the predicted class of the same input changes across ``passes`` forward passes: a randomized
    pipeline, which a single-pass attack (and a single-pass evaluation) misjudges; use EOT and worst-case RA."""
    check_images(x, "x")
    with eval_mode(model):
        preds = torch.stack([model(x).argmax(1) for _ in range(passes)])
    changed = float((preds != preds[0]).any(0).float().mean())
    return Indicator("randomness", changed > 0, changed, 0.0,
                     f"{changed:.0%} of the images change class across {passes} passes of the same input"
                     + ("; attack with EOT and report the worst case over repeats" if changed > 0 else ""))


def _pgd_trace(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
               alpha: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """L-inf PGD on the cross-entropy from the clean image (no random start), recording the per-image loss after
    each step: a diagnostic loop, so the losses of every iteration can be read."""
    x_adv, losses = x.detach().clone(), []
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(x_adv), y, reduction="none")
            grad = torch.autograd.grad(loss.sum(), x_adv, allow_unused=True)[0]
        grad = torch.zeros_like(x_adv) if grad is None else torch.nan_to_num(grad)
        x_adv = (x + (x_adv.detach() + alpha * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
        losses.append(loss.detach())
    with torch.no_grad():
        losses.append(F.cross_entropy(model(x_adv), y, reduction="none"))
    return x_adv.detach(), losses


def unbounded_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 1.0, steps: int = 20,
                     max_accuracy: float = 0.05) -> Indicator:
    """Fires when PGD with a budget so large (default ε = 1: any image is allowed) that every classifier can be
    fooled still leaves more than ``max_accuracy`` correct: the attack cannot follow the gradients at all."""
    check_labels(y, x.shape[0])
    with eval_mode(model):
        x_adv, _ = _pgd_trace(model, x, y.to(x.device), eps, steps, alpha=2.5 * eps / steps)
        with torch.no_grad():
            acc = float((model(x_adv).argmax(1) == y.to(x.device)).float().mean())
    return Indicator("unbounded attack", acc > max_accuracy, acc, max_accuracy,
                     f"PGD with eps = {eps:g} leaves {acc:.0%} of the images correct"
                     + (" (it should reach ~0 %: the attack is broken by the pipeline)" if acc > max_accuracy else ""))


def loss_not_increasing(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 10,
                        alpha: float | None = None, min_fraction: float = 0.9) -> Indicator:
    """Fires when the attack's loss does not rise over its iterations (incomplete optimisation): for fewer than
    ``min_fraction`` of the images still correctly classified, the final loss exceeds the initial one."""
    check_labels(y, x.shape[0])
    y = y.to(x.device)
    with eval_mode(model):
        with torch.no_grad():
            correct = model(x).argmax(1) == y
        if not bool(correct.any()):
            return Indicator("loss not increasing", None, None, min_fraction, "no image is correct to begin with")
        _, losses = _pgd_trace(model, x[correct], y[correct], eps, steps, alpha or 2.5 * eps / steps)
    rose = float((losses[-1] > losses[0] + 1e-6).float().mean())
    return Indicator("loss not increasing", rose < min_fraction, rose, min_fraction,
                     f"the loss rose over {steps} PGD steps for {rose:.0%} of the correctly classified images",
                     {"initial_loss": float(losses[0].mean()), "final_loss": float(losses[-1].mean())})


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the binarization test reads the input of the model's last linear layer; it has none")
    return linears[-1]


def binarization_test(model: nn.Module, x: torch.Tensor, eps: float, steps: int = 20, inner: int = 8,
                      readout_steps: int = 200, min_success: float = 0.9, seed: int = 0) -> Indicator:
    """The binarization test of Zimmermann et al. (2022), for each image: features φ(.) = the input of the model's
    last linear layer; ``inner`` random points of the ε/4-ball around x are labelled 0, one point of the ε-ball's
    surface (a random sign perturbation) 1; a linear readout on φ is fitted to separate them. An adversarial
    example of this binary task (class 1 within ε of x) exists by construction, so a working attack finds it.
    Fires when PGD on readout(φ(.)) succeeds for fewer than ``min_success`` of the images whose readout separated
    its points."""
    check_images(x, "x")
    head, captured = _last_linear(model), []
    hook = head.register_forward_hook(lambda m, inputs, out: captured.append(inputs[0].flatten(1)))
    gen = torch.Generator().manual_seed(seed)
    succeeded, tried = 0, 0
    try:
        with eval_mode(model):
            for img in x:
                pts = [img + eps / 4 * (2 * torch.rand(img.shape, generator=gen) - 1).to(img.device)
                       for _ in range(inner)]
                pts.append(img + eps * torch.sign(torch.randn(img.shape, generator=gen)).to(img.device))
                batch = torch.stack(pts).clamp(0, 1)
                labels = torch.tensor([0] * inner + [1], device=x.device)
                captured.clear()
                with torch.no_grad():
                    model(batch)
                feats = captured[-1].detach()
                readout = nn.Linear(feats.shape[1], 2).to(feats.device)
                opt = torch.optim.Adam(readout.parameters(), lr=0.05)
                weights = torch.tensor([1.0, float(inner)], device=feats.device)  # balance the one boundary point
                for _ in range(readout_steps):
                    opt.zero_grad()
                    F.cross_entropy(readout(feats), labels, weight=weights).backward()
                    opt.step()
                with torch.no_grad():
                    if not bool((readout(feats).argmax(1) == labels).all()):
                        continue  # this image's binary task was not separated: not a valid test case
                tried += 1
                readout.requires_grad_(False)

                def binary(z: torch.Tensor) -> torch.Tensor:
                    captured.clear()
                    model(z)
                    return readout(captured[-1])

                # maximising the loss of class 0 pushes the readout towards class 1
                x_adv, _ = _pgd_trace(binary, img[None], torch.zeros(1, dtype=torch.long, device=x.device), eps,
                                      steps, 2.5 * eps / steps)
                with torch.no_grad():
                    succeeded += int(binary(x_adv).argmax(1).item() == 1)
    finally:
        hook.remove()
    if tried == 0:
        return Indicator("binarization test", None, None, min_success, "no image's binary task could be separated")
    rate = succeeded / tried
    return Indicator("binarization test", rate < min_success, rate, min_success,
                     f"the attack solved {succeeded} of {tried} binary tasks that have a solution within eps"
                     + (" (it fails where it must succeed)" if rate < min_success else ""), {"tested": tried})


# ------------------------------------------------------------------------------------------------------ rows


def non_monotone_in_eps(ra_by_eps: dict[float, float], slack: float = 0.0) -> Indicator:
    """Fires when robust accuracy rises with ε by more than ``slack`` points (a larger budget can only help an
    attack that works)."""
    pts = sorted(ra_by_eps.items())
    if len(pts) < 2:
        return Indicator("RA monotone in eps", None, None, slack, "one eps only")
    rise = max(b[1] - a[1] for a, b in zip(pts, pts[1:]))
    return Indicator("RA monotone in eps", rise > slack, rise, slack,
                     f"the largest rise of RA between consecutive eps is {rise:.2f} points")


def black_box_beats_white_box(ra_black_box: float, ra_white_box: float, slack: float = 0.0) -> Indicator:
    """Fires when a black-box attack (e.g. Square) leaves lower robust accuracy than the white-box one: the
    white-box attack's gradients are misleading."""
    gap = ra_white_box - ra_black_box
    return Indicator("black-box beats white-box", gap > slack, gap, slack,
                     f"black-box RA {ra_black_box:.2f} vs white-box RA {ra_white_box:.2f}")


def full_gradient_weaker_than_bpda(ra_full_gradient: float, ra_bpda: float, slack: float = 0.0) -> Indicator:
    """Fires when true gradients through the defense leave higher RA than BPDA's identity approximation of them:
    the true gradients are masked."""
    gap = ra_full_gradient - ra_bpda
    return Indicator("full-gradient weaker than BPDA", gap > slack, gap, slack,
                     f"full-gradient RA {ra_full_gradient:.2f} vs BPDA RA {ra_bpda:.2f}")


def pipeline_indicators(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                        binarization: bool = True) -> list[Indicator]:
    """The pipeline indicators on (a few) images ``x``: masked gradients, randomness, the unbounded attack, loss
    increase and, if ``binarization``, the binarization test."""
    out = [masked_gradients(model, x, y), randomness(model, x), unbounded_attack(model, x, y),
           loss_not_increasing(model, x, y, eps)]
    if binarization:
        out.append(binarization_test(model, x[:4], eps))
    return out
