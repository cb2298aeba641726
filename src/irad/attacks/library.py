"""The ten torchattacks attacks of the paper's §6 / Fig. 4 / Tables 10-12, plus VMI-/VNI-FGSM (Tables 13-14).

Defaults are torchattacks 3.5.1's own (``eps`` aside, which :func:`build_attack` sets):

========  ==========================================================================  ==============================
name      attack                                                                      defaults
========  ==========================================================================  ==============================
fgsm      FGSM (Goodfellow et al. 2014), one step of size eps                         (none)
bim       BIM / I-FGSM (Kurakin et al. 2018)                                          alpha=2/255, steps=10
pgd       PGD (Madry et al. 2017), uniform random start                               alpha=2/255, steps=10,
                                                                                      random_start=True
rfgsm     R+FGSM (Tramèr et al. 2018), random sign step first                         alpha=2/255, steps=10
tpgd      TPGD, PGD on the TRADES KL loss (Zhang et al. 2019)                         alpha=2/255, steps=10
apgd      APGD (Croce & Hein 2020), L-inf                                             steps=10, n_restarts=1,
                                                                                      loss='ce', eot_iter=1, rho=0.75
eotpgd    EOT-PGD (Liu et al. 2018), gradients averaged over eot_iter passes          alpha=2/255, steps=10,
                                                                                      eot_iter=2, random_start=True
ffgsm     Fast FGSM from a random start (Wong et al. 2020)                            alpha=10/255
mifgsm    MI-FGSM (Dong et al. 2018)                                                  alpha=2/255, steps=10, decay=1.0
jitter    Jitter (Schwinn et al. 2021)                                                alpha=2/255, steps=10, scale=10,
                                                                                      std=0.1, random_start=True
vmifgsm   VMI-FGSM, variance-tuned MI-FGSM (Wang & He 2021)                           alpha=2/255, steps=10, decay=1.0,
                                                                                      N=5, beta=1.5
vnifgsm   VNI-FGSM, variance-tuned NI-FGSM (Wang & He 2021)                           as vmifgsm
========  ==========================================================================  ==============================

Two named PGD protocols for adaptive (BPDA) evaluations, side by side in ``--preset table3``:

* ``pgd-paper``: the paper's adaptive attack as its Table 3 describes it: 10 steps of 1/255, no random start, and
  no EOT even against randomized defenses (a weak attack; shown so readers see how much it inflates RA);
* ``pgd-strong``: 50 steps of 2/255 from a random start, with EOT over ``--eot-samples`` passes for randomized
  defenses (the threat model adds EOT; this is the default kind of BPDA evaluation to trust).
"""

from __future__ import annotations

import contextlib
import inspect
import io
from typing import Any

import torch
import torchattacks
from torch import nn

from .base import ATTACKS, Attack, resolve_params

# settings fixed by irad (L-inf, seeded, quiet); users cannot override them through params
_FIXED: dict[str, dict[str, Any]] = {"apgd": {"norm": "Linf", "verbose": False}}

_TABLE: dict[str, tuple[str, str]] = {
    "fgsm": ("FGSM", "FGSM (Goodfellow et al. 2014); §6 oblivious scenario, Table 10"),
    "bim": ("BIM", "BIM / iterative FGSM (Kurakin et al. 2018); Table 10"),
    "pgd": ("PGD", "PGD with random start (Madry et al. 2017); Table 10, and the BPDA attack of Table 3"),
    "rfgsm": ("RFGSM", "R+FGSM (Tramèr et al. 2018); Table 10"),
    "tpgd": ("TPGD", "TPGD: PGD on the TRADES KL loss (Zhang et al. 2019); Table 10"),
    "apgd": ("APGD", "APGD-CE, L-inf (Croce & Hein 2020), torchattacks version; Table 10"),
    "eotpgd": ("EOTPGD", "EOT-PGD (Liu et al. 2018), for randomized defenses; Table 10"),
    "ffgsm": ("FFGSM", "Fast FGSM from a random start (Wong et al. 2020); Table 10"),
    "mifgsm": ("MIFGSM", "MI-FGSM, momentum iterative FGSM (Dong et al. 2018); Table 10"),
    "jitter": ("Jitter", "Jitter attack (Schwinn et al. 2021); Table 10"),
    "vmifgsm": ("VMIFGSM", "VMI-FGSM, variance-tuned MI-FGSM (Wang & He 2021); transfer attack of Tables 13-14"),
    "vnifgsm": ("VNIFGSM", "VNI-FGSM, variance-tuned NI-FGSM (Wang & He 2021); transfer attack of Tables 13-14"),
}


#: named protocols: name -> (torchattacks class, its settings, summary); settings stay overridable in a spec
_PROTOCOLS: dict[str, tuple[str, dict[str, Any], str]] = {
    "pgd-paper": ("PGD", {"alpha": 1 / 255, "steps": 10, "random_start": False},
                  "the paper's BPDA attack (Table 3): PGD, 10 steps of 1/255, no random start, never EOT"),
    "pgd-strong": ("PGD", {"alpha": 2 / 255, "steps": 50, "random_start": True},
                   "strong BPDA attack: PGD, 50 steps of 2/255, random start; EOT for randomized defenses"),
}
#: attacks run without EOT even on randomized defenses (the protocol they reproduce had none)
NO_EOT_ATTACKS = frozenset({"pgd-paper"})


def _defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of a torchattacks class, minus ``model``/``eps`` and what irad fixes."""
    sig = inspect.signature(cls.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if k not in ("self", "model", "eps", "seed") and p.default is not inspect.Parameter.empty}


class TorchAttack(Attack):
    """A torchattacks attack behind the :class:`Attack` interface."""

    def __init__(self, name: str, cls: type, model: nn.Module, eps: float, seed: int, params: dict[str, Any],
                 protocol: dict[str, Any] | None = None) -> None:
        fixed = _FIXED.get(name, {})
        defaults = {k: v for k, v in {**_defaults(cls), **(protocol or {})}.items() if k not in fixed}
        params = resolve_params(name, defaults, params)
        super().__init__(name, model, eps, seed, params)
        extra = {"seed": seed} if "seed" in inspect.signature(cls.__init__).parameters else {}
        # torchattacks prints when the model has no parameters; the device is set per call instead
        with contextlib.redirect_stdout(io.StringIO()):
            self.impl = cls(model, eps=eps, **params, **fixed, **extra)

    def _perturb(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        self.impl.set_device(images.device)
        return self.impl(images, labels)


def _register(name: str, cls_name: str, summary: str, protocol: dict[str, Any] | None = None) -> None:
    cls = getattr(torchattacks, cls_name)

    def factory(model: nn.Module, eps: float, seed: int, **params: Any) -> Attack:
        return TorchAttack(name, cls, model, eps, seed, params, protocol)

    factory.__doc__ = summary
    defaults = {k: v for k, v in {**_defaults(cls), **(protocol or {})}.items() if k not in _FIXED.get(name, {})}
    ATTACKS.register(name, defaults=defaults, source="torchattacks")(factory)


for _name, (_cls, _summary) in _TABLE.items():
    _register(_name, _cls, _summary)
for _name, (_cls, _protocol, _summary) in _PROTOCOLS.items():
    _register(_name, _cls, _summary, _protocol)
