"""What a classifier sees (App. A.8): penultimate features, their distance to the clean centre (Table 18), a PCA
of them (Fig. 5), and decision paths (Table 19).

Decision path. The paper follows decision-rationale work (Wang et al. 2018, CDRP; Khakzar et al. 2021, critical
pathways; Li et al. 2023, decision rationale alignment) without stating a formula. irad implements the
gradient x activation form used by Khakzar et al. and Li et al.: for every convolution of the classifier, the
contribution of channel c to the logit of class y is ``mean_{h,w}(A_c ⊙ ∂z_y/∂A_c)`` (a first-order estimate of the
logit's change when the channel is switched off, the role of CDRP's control gates); the path is the concatenation
of these contributions over all convolutions, and paths are compared by cosine similarity. y is the true label,
so the clean image and its perturbed versions are explained for the same decision.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError


def _head(classifier: nn.Module) -> nn.Linear:
    linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputError("the classifier has no nn.Linear layer: penultimate features are the input of its last "
                         "linear layer (the classification head)")
    return linears[-1]


@torch.no_grad()
def penultimate_features(classifier: nn.Module, images: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """N x D: the input of the classifier's last linear layer (its penultimate features) for ``images``."""
    head, captured = _head(classifier), []
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].flatten(1).cpu()))
    was_training = classifier.training
    classifier.eval()
    try:
        for i in range(0, len(images), batch_size):
            classifier(images[i:i + batch_size])
    finally:
        hook.remove()
        classifier.train(was_training)
    return torch.cat(captured)


def distances_to_centre(features: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each row of ``features`` (N x D) to ``centre`` (D)."""
    return (features - centre).norm(dim=1)


def pca_2d(reference: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Project ``reference`` (N x D) and ``others`` onto the first two principal axes of ``reference`` (centred on
    its mean). Returns the projections in the same order; the sign of each axis is fixed so that the largest
    coefficient of its direction is positive."""
    mean = reference.double().mean(0)
    _, _, vt = torch.linalg.svd(reference.double() - mean, full_matrices=False)
    axes = vt[:2]
    axes = axes * torch.sign(axes.gather(1, axes.abs().argmax(1, keepdim=True)))
    return tuple(((x.double() - mean) @ axes.T).float() for x in (reference, *others))


def decision_paths(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: int = 100) -> torch.Tensor:
    """N x P decision paths: per-channel gradient x activation of the true-class logit at every Conv2d output."""
    convs = [m for m in classifier.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InputError("decision paths are read at the classifier's convolutions, and it has none")
    was_training = classifier.training
    classifier.eval()
    paths = []
    try:
        for i in range(0, len(images), batch_size):
            acts: list[torch.Tensor] = []
            hooks = [m.register_forward_hook(lambda module, inputs, output: acts.append(output)) for m in convs]
            try:
                with torch.enable_grad():
                    x = images[i:i + batch_size].detach()
                    logits = classifier(x)
                    y = labels[i:i + batch_size].to(logits.device)
                    chosen = logits.gather(1, y.view(-1, 1)).sum()
                    grads = torch.autograd.grad(chosen, acts)
            finally:
                for h in hooks:
                    h.remove()
            paths.append(torch.cat([(a * g).mean(dim=(2, 3)).detach().cpu() for a, g in zip(acts, grads)], dim=1))
    finally:
        classifier.train(was_training)
    return torch.cat(paths)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two N x P tensors (0 where a row is all zeros)."""
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12).float()
