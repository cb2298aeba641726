"""Classifier zoo: every architecture builds and has the right output shape; the third-party ResNets match their
published accuracies within sampling error; option-A shortcuts and the normalising wrapper compute what the papers say."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from irad.classifiers import CLASSIFIERS, ImageClassifier, build_classifier, load_classifier, pretrained_names
from irad.classifiers.resnet_cifar import CifarResNet, OptionAShortcut
from irad.errors import UnknownNameError, WeightsError
from irad.weights import load_state_dict_file

pytestmark = pytest.mark.usefixtures("clean_env")

EXPECTED_ARCHS = {"resnet20", "resnet32", "resnet44", "resnet56", "resnet18", "resnet34", "wrn-28-10", "wrn-70-16",
                  "vgg16-bn", "fastnet"}

# Parameter counts for 10 classes, as published for these standard architectures (Idelbayev's README: ResNet-20
# 0.27M = 269,722, ResNet-32 0.46M = 464,154; the CIFAR ResNet-18 / -34 of many codebases: 11,173,962 /
# 21,282,122; WRN-28-10: 36,479,194).
KNOWN_PARAMS = {"resnet20": 269_722, "resnet32": 464_154, "resnet18": 11_173_962, "resnet34": 21_282_122,
                "wrn-28-10": 36_479_194}
# Rounded figures (Idelbayev's README: ResNet-44 0.66M, ResNet-56 0.85M; RobustBench: WRN-70-16 267M).
ROUGH_PARAMS = {"resnet44": 0.66e6, "resnet56": 0.85e6, "wrn-70-16": 267e6}


def _batches(images: np.ndarray):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
    return x


@torch.inference_mode()
def _accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, bs: int = 250) -> float:
    x, correct = _batches(images), 0
    for i in range(0, len(x), bs):
        correct += int((model(x[i:i + bs]).argmax(1) == torch.from_numpy(labels[i:i + bs])).sum())
    return correct / len(x)


# ------------------------------------------------------------------------------------------------ shapes


def test_registry_holds_the_expected_architectures():
    assert EXPECTED_ARCHS <= set(CLASSIFIERS.names())


@pytest.mark.parametrize("arch", sorted(EXPECTED_ARCHS))
@pytest.mark.parametrize("num_classes", [10, 100])
def test_every_architecture_maps_a_batch_to_logits(arch, num_classes):
    # Shape propagation on the meta device runs every module's forward without allocating ~1 GB for WRN-70-16.
    with torch.device("meta"):
        net = CLASSIFIERS.build(arch, num_classes=num_classes)
        out = net(torch.empty(2, 3, 32, 32))
    assert tuple(out.shape) == (2, num_classes)
    n_params = sum(p.numel() for p in net.parameters())
    extra_head = (num_classes - 10) * (net_head_in(net) + has_head_bias(net))
    if arch in KNOWN_PARAMS:
        assert n_params == KNOWN_PARAMS[arch] + extra_head
    if arch in ROUGH_PARAMS:
        assert n_params - extra_head == pytest.approx(ROUGH_PARAMS[arch], rel=0.01)


def net_head_in(net: nn.Module) -> int:
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    return last.in_features


def has_head_bias(net: nn.Module) -> int:
    last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    return int(last.bias is not None)


@pytest.mark.parametrize("arch", ["resnet20", "resnet18", "fastnet", "vgg16-bn"])
@pytest.mark.parametrize("num_classes", [10, 100])
def test_small_architectures_compute_finite_logits(arch, num_classes):
    torch.manual_seed(0)
    model = build_classifier(arch, "cifar10" if num_classes == 10 else "cifar100").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert tuple(out.shape) == (2, num_classes)
    assert torch.isfinite(out).all()
    assert not torch.equal(out[0], out[1])  # the logits depend on the input


def test_build_classifier_uses_the_dataset_class_count_and_statistics():
    m = build_classifier("resnet20", "cifar100")
    assert m.net.linear.out_features == 100
    # The usual CIFAR-100 channel statistics.
    assert m.mean.flatten().tolist() == pytest.approx([0.5071, 0.4865, 0.4409], abs=1e-4)
    assert m.std.flatten().tolist() == pytest.approx([0.2673, 0.2564, 0.2762], abs=1e-4)


# ------------------------------------------------------------------------------------ third-party accuracy


# Idelbayev's README (pytorch_resnet_cifar10): test error on the full 10,000-image CIFAR-10 test set.
PUBLISHED_ACCURACY = {"resnet20": 0.9173, "resnet32": 0.9263}


@pytest.mark.parametrize("arch", sorted(PUBLISHED_ACCURACY))
def test_idelbayev_resnets_match_their_published_accuracy(arch, test1000):
    """On 1000 test images the accuracy is a binomial estimate of the published full-test-set figure p: it must
    lie in the two-sided 99.9 % interval p +- 3.29 sqrt(p (1 - p) / n) (about +-0.03 at n = 1000), which a wrongly
    converted or wrongly normalised checkpoint (or a mismatched architecture) would leave."""
    model = load_classifier(arch, weights="default")
    assert not model.training
    p, n = PUBLISHED_ACCURACY[arch], len(test1000[1])
    half_width = 3.29 * (p * (1 - p) / n) ** 0.5
    assert abs(_accuracy(model, *test1000) - p) <= half_width


def test_shipped_fastnet_reaches_ninety_percent(test1000):
    """The project's own fast network (trained by `irad train classifier --arch fastnet`) on the test images."""
    model = load_classifier("fastnet", weights="default")
    assert _accuracy(model, *test1000) >= 0.90


def test_autoattack_resnet18_matches_its_authors_model_definition(test1000):
    """irad's ResNet-18 with the checkpoint shipped in pyautoattack computes the same logits as the ResNet18 class
    that pyautoattack's own examples define for that checkpoint (an independent implementation), and is a working
    CIFAR-10 classifier (no published accuracy exists for this checkpoint to compare with)."""
    import importlib.util
    from pathlib import Path

    import pyautoattack

    examples = Path(pyautoattack.__file__).parent / "examples"
    spec = importlib.util.spec_from_file_location("pyautoattack_examples_resnet", examples / "resnet.py")
    their_resnet = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(their_resnet)
    theirs = their_resnet.ResNet18()
    theirs.load_state_dict(torch.load(examples / "model_test.pt", map_location="cpu", weights_only=True))
    theirs.eval()
    model = load_classifier("resnet18", weights="default")
    assert not model.normalized  # this checkpoint takes raw [0, 1] inputs
    images, labels = test1000
    x = _batches(images[:200])
    with torch.no_grad():
        ours_logits, their_logits = model(x), theirs(x)
    assert torch.allclose(ours_logits, their_logits, atol=1e-4, rtol=1e-4)
    assert float((ours_logits.argmax(1) == torch.from_numpy(labels[:200])).float().mean()) > 0.85


def test_pretrained_names():
    assert set(pretrained_names("resnet20")) == {"resnet20-idelbayev"}
    assert {"resnet20-idelbayev", "resnet32-idelbayev", "resnet18-autoattack"} <= set(
        pretrained_names(dataset="cifar10"))
    assert "resnet20-idelbayev" not in pretrained_names(dataset="cifar100")


def test_original_th_file_holds_the_same_tensors_as_the_shipped_conversion(shared_file):
    original = load_state_dict_file(shared_file("weights/resnet20-12fca82f.th"))
    raw = torch.load(shared_file("weights/resnet20-12fca82f.th"), map_location="cpu", weights_only=False)
    assert all(k.startswith("module.") for k in raw["state_dict"])  # DataParallel prefix is stripped on load
    shipped = load_classifier("resnet20", weights="default").net.state_dict()
    for k, v in original.items():
        assert torch.equal(v, shipped[k]), k


def test_original_th_file_by_path_gives_the_same_logits(shared_file, test1000):
    x = _batches(test1000[0][:64])
    a = load_classifier("resnet20", weights="default")
    b = load_classifier("resnet20", weights=str(shared_file("weights/resnet20-12fca82f.th")))
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-5)


def test_safetensors_copy_by_path_gives_the_same_logits(tmp_path, test1000):
    from irad.weights import resolve_weights

    _, src = resolve_weights("resnet20-idelbayev")
    shutil.copy(src, tmp_path / "r20.safetensors")  # one self-describing file: it carries the normalisation
    x = _batches(test1000[0][:64])
    a = load_classifier("resnet20", weights="default")
    b = load_classifier("resnet20", weights=tmp_path / "r20.safetensors")
    assert b.normalized and b.mean.flatten().tolist() == pytest.approx([0.485, 0.456, 0.406])
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_load_classifier_refuses_mismatched_weights(tmp_path):
    with pytest.raises(WeightsError, match="resnet32"):
        load_classifier("resnet20", weights="resnet32-idelbayev")
    with pytest.raises(UnknownNameError, match="no pretrained weights"):
        load_classifier("resnet56", weights="default")
    with pytest.raises(UnknownNameError):
        load_classifier("resnet21")


# ------------------------------------------------------------------------------------------ building blocks


def test_option_a_shortcut_subsamples_and_zero_pads():
    sc = OptionAShortcut(8)
    assert list(sc.parameters()) == [] and len(sc.state_dict()) == 0
    x = torch.randn(2, 16, 8, 8)
    expected = torch.zeros(2, 32, 4, 4)
    for n in range(2):
        for c in range(16):
            for i in range(4):
                for j in range(4):
                    expected[n, c + 8, i, j] = x[n, c, 2 * i, 2 * j]
    assert torch.equal(sc(x), expected)


def test_cifar_resnet_uses_option_a_where_the_shape_changes():
    net = CifarResNet(3)
    shortcuts = {name: m for name, m in net.named_modules() if isinstance(m, OptionAShortcut)}
    assert set(shortcuts) == {"layer2.0.shortcut", "layer3.0.shortcut"}
    assert shortcuts["layer2.0.shortcut"].pad == 8 and shortcuts["layer3.0.shortcut"].pad == 16
    assert not any("shortcut" in k for k in net.state_dict())
    # The README's key layout of the third-party checkpoints.
    keys = set(net.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer3.2.bn2.weight", "linear.weight", "linear.bias"} <= keys


def test_image_classifier_normalises_inside():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5))
    x = torch.rand(3, 3, 6, 6)
    net(x)  # materialise the lazy layer
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.125)
    model = ImageClassifier(net, mean, std).eval()
    manual = torch.empty_like(x)
    for c in range(3):
        manual[:, c] = (x[:, c] - mean[c]) / std[c]
    with torch.no_grad():
        assert torch.allclose(model(x), net(manual), atol=1e-6)
        assert not torch.allclose(model(x), net(x))
        raw = ImageClassifier(net, None, None)
        assert torch.equal(raw(x), net(x))
    # The statistics are buffers (follow .to(device)) but not saved: the weights file holds only net's tensors.
    assert set(model.state_dict()) == {"net." + k for k in net.state_dict()}
    assert list(model.parameters()) == list(net.parameters())


def test_load_classifier_loads_pretrained_weights_unless_told_otherwise():
    """A practitioner's `load_classifier("resnet32")` gets the published weights (the same tensors as asking for
    them by name), not a silently random network; random initialisation is asked for with weights=None; an
    architecture without pretrained weights is a clear error, not a random network."""
    implicit, named = load_classifier("resnet32"), load_classifier("resnet32", weights="resnet32-idelbayev")
    assert all(torch.equal(a, b) for a, b in zip(implicit.state_dict().values(), named.state_dict().values()))
    random_net = load_classifier("resnet32", weights=None)
    assert not all(torch.equal(a, b) for a, b in zip(random_net.state_dict().values(),
                                                     named.state_dict().values()))
    with pytest.raises(UnknownNameError, match="weights=None"):
        load_classifier("resnet56")
