"""Attacks and threat models of the paper's §6 and appendices A.3-A.4.

>>> attack = irad.attacks.build_attack("pgd", classifier, eps=8 / 255, steps=20)
>>> x_adv = attack(images, labels)                         # checked: in the eps-ball and in [0, 1]
>>> tm = irad.attacks.THREAT_MODELS.build("bpda")
>>> model = tm.attacked_model(classifier, defense)         # classifier(BPDA(defense)(x)), EOT if randomized
>>> correct = tm.robust_correct(classifier, defense, images, labels, "pgd")  # victim = classifier(defense(x_adv))

Attacks: AutoAttack ("autoattack", "autoattack-rand"; pyautoattack), the torchattacks family ("fgsm", "bim", "pgd",
"rfgsm", "tpgd", "apgd", "eotpgd", "ffgsm", "mifgsm", "jitter", "vmifgsm", "vnifgsm") and "admix". Register your
own with ``@ATTACKS.register("name")`` on a factory ``(model, eps, seed, **params) -> Attack``.
"""

from .base import ATTACKS, Attack, build_attack
from .checks import AttackError, check_adversarial, gradient_health
from .bpda import BPDAWrapper, EOTWrapper
from . import library as _library  # noqa: F401  (registers the torchattacks attacks)
from . import autoattack as _autoattack  # noqa: F401  (registers AutoAttack)
from . import admix as _admix  # noqa: F401  (registers Admix)
from .threat import THREAT_MODELS, ThreatModel

__all__ = ["ATTACKS", "Attack", "AttackError", "BPDAWrapper", "EOTWrapper", "THREAT_MODELS",
           "ThreatModel", "build_attack", "check_adversarial", "gradient_health"]
