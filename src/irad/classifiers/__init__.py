"""Classifier zoo. Every model takes raw [0, 1] images; its normalisation lives inside (:class:`ImageClassifier`).

>>> import irad
>>> model = irad.load_classifier("resnet20", weights="default")   # third-party CIFAR-10 ResNet-20, 91.5 %
"""

from .zoo import CLASSIFIERS, ImageClassifier, build_classifier, load_classifier, pretrained_names

__all__ = ["CLASSIFIERS", "ImageClassifier", "build_classifier", "load_classifier", "pretrained_names"]
