"""Third-party classifier checkpoints as a new user brings them (issue 18): common layouts, explicit normalisation
and input range, a warning when the normalisation is assumed, clear errors, and the victim's clean accuracy in
every evaluation. Outputs are compared with the network applied by hand to normalised inputs."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from irad.classifiers import load_classifier
from irad.errors import InputError, WeightsError
from irad.evaluation.config import load_classifier_spec

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def net_state():
    torch.manual_seed(0)
    return load_classifier("resnet20", weights=None).net.state_dict()


def _by_hand(state, x, mean, std, scale=1.0):
    net = load_classifier("resnet20", weights=None).net
    net.load_state_dict(state)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        return net.eval()((x * scale - m) / s)


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model", "net", "nested", "module-prefix", "compiled"])
def test_common_checkpoint_layouts_load_the_same_network(net_state, tmp_path, layout):
    sd = dict(net_state)
    wrapped = {"plain": sd, "state_dict": {"state_dict": sd, "epoch": 3, "best_prec1": 91.0}, "model": {"model": sd},
               "net": {"net": sd, "acc": 0.9}, "nested": {"model": {"state_dict": sd}},
               "module-prefix": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
               "compiled": {f"_orig_mod.{k}": v for k, v in sd.items()}}[layout]
    path = tmp_path / f"{layout}.pt"
    torch.save(wrapped, path)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_classifier("resnet20", weights=str(path), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _by_hand(net_state, x, IMAGENET_MEAN, IMAGENET_STD))


def test_an_assumed_normalisation_warns_once_per_file_and_explicit_values_do_not(net_state, tmp_path):
    path = tmp_path / "third_party.pt"
    torch.save({"state_dict": net_state}, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_classifier("resnet20", weights=str(path))
        load_classifier("resnet20", weights=str(path))
    messages = [str(w.message) for w in caught if "normalises" in str(w.message)]
    assert len(messages) == 1 and "assuming cifar10's mean" in messages[0] and "mean=[...]" in messages[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when the user says what the network expects
        load_classifier("resnet20", weights=str(path), mean=IMAGENET_MEAN, std=IMAGENET_STD)


def test_input_range_maps_images_before_the_normalisation(net_state, tmp_path):
    path = tmp_path / "r255.pt"
    torch.save(net_state, path)
    mean255, std255 = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)
    model = load_classifier("resnet20", weights=str(path), mean=mean255, std=std255, input_range=(0, 255))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), _by_hand(net_state, x, mean255, std255, scale=255.0))


def test_bad_settings_and_files_are_clear_errors(net_state, tmp_path):
    path = tmp_path / "ok.pt"
    torch.save(net_state, path)
    with pytest.raises(InputError, match="3 numbers"):
        load_classifier("resnet20", weights=str(path), mean=(0.5, 0.5), std=IMAGENET_STD)
    with pytest.raises(InputError, match="std must be positive"):
        load_classifier("resnet20", weights=str(path), mean=IMAGENET_MEAN, std=(0.2, 0.0, 0.2))
    with pytest.raises(InputError, match="input_range"):
        load_classifier("resnet20", weights=str(path), mean=IMAGENET_MEAN, std=IMAGENET_STD, input_range=(1, 0))
    extra = tmp_path / "extra.pt"
    torch.save({**net_state, "fc.extra": torch.zeros(1)}, extra)
    with pytest.raises(WeightsError, match=r"1 unexpected keys \(e\.g\. \['fc\.extra'\]\)"):
        load_classifier("resnet20", weights=str(extra), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    no_tensors = tmp_path / "meta_only.pt"
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, no_tensors)
    with pytest.raises(WeightsError, match="top-level keys: \\['epoch', 'optimizer'\\]"):
        load_classifier("resnet20", weights=str(no_tensors), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    with pytest.raises(WeightsError, match="do not fit this architecture: 2 shape mismatches"):
        load_classifier("resnet20", weights=str(path), mean=IMAGENET_MEAN, std=IMAGENET_STD, num_classes=100)


def test_command_line_victim_spec_takes_normalisation_and_refuses_unknown_keys(net_state, tmp_path):
    path = tmp_path / "spec.pt"
    torch.save(net_state, path)
    model = load_classifier_spec(f"resnet20:weights={path},mean=[0.485,0.456,0.406],std=[0.229,0.224,0.225]",
                                 "cifar10", "cpu")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), _by_hand(net_state, x, IMAGENET_MEAN, IMAGENET_STD))
    with pytest.raises(InputError, match="unknown key\\(s\\) norm"):
        load_classifier_spec(f"resnet20:weights={path},norm=1", "cifar10", "cpu")


def test_evaluate_records_and_prints_the_victims_clean_accuracy(tmp_path, capsys):
    from irad.data import load_dataset
    from irad.evaluation import EvalConfig, evaluate

    evaluate(EvalConfig(victims=["resnet20"], defenses=["none"], attacks=["fgsm"], n_images=20, repeats=1),
             tmp_path / "ev", progress=True)
    victims = json.loads((tmp_path / "ev" / "results.json").read_text())["victims"]
    x, y = load_dataset("cifar10", "test").tensors(20)
    with torch.no_grad():
        expected = float((load_classifier("resnet20")(x).argmax(1) == y).float().mean())
    assert victims["resnet20"] == {"clean_accuracy": pytest.approx(expected), "images": 20}
    assert f"victim resnet20: clean accuracy {100 * expected:.1f} % on 20 images" in capsys.readouterr().out
