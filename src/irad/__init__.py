"""irad: adversarial purification by implicit-representation-driven image resampling (Cao et al., ICLR 2024).

>>> import irad
>>> model = irad.load_classifier("resnet20", weights="default")     # [0, 1] in, logits out
>>> defense = irad.load_defense("irad")                              # [0, 1] in, purified [0, 1] out
>>> robust = irad.defend(model, defense)                             # one nn.Module
"""

from .classifiers import load_classifier
from .data import load_dataset
from .defenses import defend, load_defense

__version__ = "0.1.0"

__all__ = ["load_classifier", "load_dataset", "load_defense", "defend", "__version__"]
