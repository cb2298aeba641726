"""`--download`: every train command offers it, `irad train --download` fetches CIFAR-10 into --data and trains,
the hint printed for other commands is a runnable command, and download_dataset refuses what it cannot fetch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from irad.data import download_dataset, load_dataset
from irad.errors import DataError, InputError

from helpers import coded_images as _coded, invoke as _invoke

pytestmark = pytest.mark.usefixtures("clean_env")

TRAIN_COMMANDS = ["classifier", "pairs", "implicit", "samplenet", "stl", "nrp", "diffusion"]




class _FakeCIFAR10:
    """Stands in for torchvision's CIFAR10: ``download=True`` "fetches" the data, which is then found later."""

    calls: list[tuple[str, bool, bool]] = []

    def __init__(self, root, train=True, download=False):
        type(self).calls.append((str(root), train, download))
        folder = Path(root) / "cifar-10-batches-py"
        if download:
            folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        rng = np.random.default_rng(0 if train else 1)
        n = 120 if train else 10
        self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, n).tolist()


@pytest.fixture
def fake_cifar10(monkeypatch):
    import torchvision

    monkeypatch.setattr(_FakeCIFAR10, "calls", [])
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _FakeCIFAR10)
    return _FakeCIFAR10


@pytest.mark.parametrize("command", TRAIN_COMMANDS)
def test_every_train_command_has_download(command):
    res = _invoke("train", command, "--help")
    assert res.exit_code == 0 and "--download" in res.output


def test_train_download_fetches_into_data_then_trains(fake_cifar10, tmp_path):
    def train(data, out, *extra):
        return _invoke("train", "classifier", "--data", data, "--out", out, "--epochs", "1", "--val-size", "20",
                       "--batch-size", "50", "--device", "cpu", *extra)

    (tmp_path / "empty").mkdir()
    res = train(tmp_path / "empty", tmp_path / "run0")  # no data: one clear line naming a flag that exists
    assert res.exit_code == 1 and "--download" in res.output and "Traceback" not in res.output
    assert not any(call[2] for call in fake_cifar10.calls)
    res = train(tmp_path / "data", tmp_path / "run", "--download")
    assert res.exit_code == 0, res.output
    assert (str(tmp_path / "data"), True, True) in fake_cifar10.calls  # fetched into --data (created for it)
    assert (tmp_path / "run" / "fastnet-cifar10.safetensors").is_file()


def test_download_hint_for_other_commands_is_runnable(fake_cifar10, tmp_path):
    with pytest.raises(DataError, match="--download") as info:
        load_dataset("cifar10", "test", root=tmp_path)
    code = re.search(r'python -c "([^"]+)"', str(info.value)).group(1)
    exec(code, {})  # the command the message suggests really downloads into the folder
    assert fake_cifar10.calls[-1] == (str(tmp_path), True, True)
    assert len(load_dataset("cifar10", "test", root=tmp_path)) == 10


def test_download_dataset_refuses_what_it_cannot_fetch(fake_cifar10, tmp_path, write_npz):
    with pytest.raises(InputError, match="cifar10"):
        download_dataset("imagenet", tmp_path)
    with pytest.raises(InputError, match="--data"):
        download_dataset("cifar10", None)
    write_npz(tmp_path / "cifar10" / "train.npz", _coded(range(4)), np.zeros(4))
    assert download_dataset("cifar10", tmp_path) == tmp_path and fake_cifar10.calls == []  # already there
