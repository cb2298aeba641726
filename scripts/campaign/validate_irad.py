"""Training campaign (issue 14): compare IRAD weight files on the validation pairs (never on test images).

For each weight file and each (pairs folder, classifier) given, prints the classifier's accuracy on the clean and
adversarial validation images after IRAD (SampleNet's shifts) and after the representation alone at the pixel grid
(``disco``), and PSNR(IR(X), X), PSNR(IR(X'), X). Pairs crafted on a classifier are scored by that classifier: the
purifier's input is what an oblivious attacker made for it.

    python scripts/campaign/validate_irad.py --pairs PAIRS/val-resnet20-pgd20:resnet20 \
        --pairs PAIRS/val-resnet32-pgd20:resnet32 -n 500 irad-cifar10-cpu RUN/irad.safetensors
"""

from __future__ import annotations

import argparse
import json

import torch

from irad.classifiers import load_classifier
from irad.defenses.resampling import load_irad_parts
from irad.sampling import IdentitySampler
from irad.training.pairs import AdversarialPairs
from irad.training.samplenet import resampler_for_training, validation_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="IRAD weight files or registered names")
    parser.add_argument("--pairs", action="append", required=True, help="FOLDER:CLASSIFIER (repeatable)")
    parser.add_argument("-n", type=int, default=500, help="validation pairs per folder")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    for weights in args.weights:
        recon, samplenet, meta = load_irad_parts(weights)
        resampler = resampler_for_training(recon.eval(), samplenet or IdentitySampler()).eval()
        for spec in args.pairs:
            folder, name = spec.rsplit(":", 1)
            classifier = load_classifier(name, weights="default").requires_grad_(False)
            scores = validation_accuracy(resampler, classifier, AdversarialPairs(folder, args.data), args.n, "cpu")
            print(json.dumps({"weights": str(weights), "sha256": meta.get("sha256", "")[:12], "pairs": folder,
                              "classifier": name, "n": args.n, **{k: round(v, 4) for k, v in scores.items()}}))


if __name__ == "__main__":
    main()
