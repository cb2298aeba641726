"""The catalogue of named weights irad knows. Shipped files live in ``irad/assets/weights``."""

from __future__ import annotations

from importlib import util
from pathlib import Path

from .store import WEIGHTS, PretrainedWeights

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IDELBAYEV = {
    "source": "Yerlan Idelbayev, pytorch_resnet_cifar10 (BSD-2-Clause); converted to safetensors by "
              "`irad weights import`",
    "license": "BSD-2-Clause, Copyright (c) 2018, Yerlan Idelbayev",
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "num_classes": 10,
}


def _pyautoattack_resnet18() -> Path | None:
    spec = util.find_spec("pyautoattack")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "examples" / "model_test.pt"


WEIGHTS.add(PretrainedWeights(
    "resnet20-idelbayev", "resnet20-idelbayev-cifar10.safetensors",
    "02926273efb1deadb6dc654c7087baea932ef2026d9f854680d6858146d85838", "classifier", "cifar10", "resnet20",
    {**IDELBAYEV, "accuracy_test1000": 0.915, "original_file": "resnet20-12fca82f.th",
     "original_sha256": "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"},
))
WEIGHTS.add(PretrainedWeights(
    "resnet32-idelbayev", "resnet32-idelbayev-cifar10.safetensors",
    "897ca9a2e3e0f83d51ba9f0b65434c9242c2d4c896ded18d40f5bab4254875da", "classifier", "cifar10", "resnet32",
    {**IDELBAYEV, "accuracy_test1000": 0.928, "original_file": "resnet32-d509ac18.th",
     "original_sha256": "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850"},
))
WEIGHTS.add(PretrainedWeights(
    "resnet18-autoattack", "model_test.pt",
    "399f52da9f914c323fa5a6096d60f460a3449a59b64a6405200c1e629f8425a7", "classifier", "cifar10", "resnet18",
    {"mean": None, "std": None, "accuracy_test1000": 0.937,
     "source": "pyautoattack==0.2.0 examples/model_test.pt (MIT), read in place from the installed package"},
    locate=_pyautoattack_resnet18,
))
WEIGHTS.add(PretrainedWeights(
    "fastnet-irad-cifar10", "fastnet-irad-cifar10.safetensors",
    "f8bdea52235bdc20bd7a99e5d341449e32fedf243db9500a6de595e33fa86556", "classifier", "cifar10", "fastnet",
    {"mean": (0.4914, 0.4822, 0.4465), "std": (0.2471, 0.2435, 0.2616), "accuracy_test1000": 0.901,
     "val_accuracy": 0.9068, "source": "this project: `irad train classifier --arch fastnet --epochs 8` on 45,000 "
     "CIFAR-10 training images, 2 CPU cores (log: docs/training/fastnet-irad-cifar10)", "license": "MIT"},
))
WEIGHTS.add(PretrainedWeights(
    "stl-cifar10-cpu", "stl-cifar10-cpu.safetensors",
    "a3b486e6454c919a04cab7d840212d9cc50262a23bd244ba9c207ef371899977", "defense", "cifar10", "stl",
    {"settings": {"lam": 0.1, "iterations": 60, "lowpass": 5.0, "atoms": 64, "size": 7}, "val_psnr": 32.557,
     "source": "this project: `irad train stl --data ../shared/data --out runs/stl-cifar10 --device cpu` (64 atoms "
     "3x7x7, 500 Adam steps of 32 random 16x16 crops of the first 4,000 CIFAR-10 training images, 1 CPU thread, "
     "8.5 min; log: docs/training/stl-cifar10-cpu)", "license": "MIT"},
))
WEIGHTS.add(PretrainedWeights(
    "irad-cifar10-cpu", "irad-cifar10-cpu.safetensors",
    "1538b9491fafe25d0c0521e855bece4dce00957ede26c937f2728d73b1c17947", "defense", "cifar10", "irad",
    {"source": "this project: scripts/recipe_cpu.sh (REDUCED scale: PGD-10 pairs on 3,000 CIFAR-10 training images "
               "crafted on ResNet-20, implicit 3+4 epochs with 256 queries/image, SampleNet 0.8 epoch), 2 CPU cores; "
               "logs in docs/training/irad-cifar10-cpu", "license": "MIT", "val_psnr": 32.73,
     "val_clean_acc_resnet20": 0.86, "val_adv_acc_resnet20": 0.48},
))
WEIGHTS.add(PretrainedWeights(
    "nrp-cifar10-cpu", "nrp-cifar10-cpu.safetensors",
    "57b7225cada9559551db243e358c00c123f9fe21bc046f0a67d92e67962b6e8d", "defense", "cifar10", "nrp",
    {"settings": {"width": 32, "blocks": 4}, "val_psnr": 33.538, "val_psnr_clean": 38.253,
     "trained_against": ["fastnet"],
     "source": "this project: `irad train nrp --data ../shared/data --out runs/nrp-cifar10 --device cpu --train-limit "
     "2000 --epochs 5` (REDUCED scale: 32x4 residual purifier, SSP eps 16/255 on the features of layers.1 of the "
     "shipped FastNet, 10,000 image presentations, 1 CPU thread, 16 min; log: docs/training/nrp-cifar10-cpu)",
     "license": "MIT"},
))
WEIGHTS.add(PretrainedWeights(
    "diffpure-cifar10-cpu", "diffpure-cifar10-cpu.safetensors",
    "92235d546400d27ab0594a1113988b83454bebdb412b1d7c83496045c11c5c47", "defense", "cifar10", "diffpure",
    {"architecture": {"channels": 32, "mults": [1, 2], "blocks": 1, "dropout": 0.0, "in_channels": 3},
     "settings": {"t_min": 0.0001, "t_max": 0.2}, "val_loss": 0.15911,
     "source": "this project: `irad train diffusion --data ../shared/data --out runs/diffusion-cifar10 --device cpu "
     "--steps 500 --eval-every 125` (REDUCED scale: a 0.64 M-parameter U-Net, times t in [1e-4, 0.2] only, 500 "
     "Adam steps of 64 images, 1 CPU thread, 26 min; DiffPure's own score model has 36 M parameters and far longer "
     "training; log: docs/training/diffpure-cifar10-cpu)", "license": "MIT"},
))
