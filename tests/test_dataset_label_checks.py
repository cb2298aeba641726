"""Checks on dataset files: malformed labels are a clear DataError, labels must fit the dataset, and a CIFAR-10 or
ImageNet-sized file is not taken for another dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from irad.data import load_dataset, read_npz
from irad.errors import DataError

from helpers import coded_images as _coded

pytestmark = pytest.mark.usefixtures("clean_env")



def _npz(path: Path, labels, n: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=_coded(range(n)), labels=labels)
    return path


@pytest.mark.parametrize("labels, message", [
    (np.arange(5).reshape(5, 1), r"shape \(5, 1\)"),
    (np.int64(3), r"shape \(\)"),
    (np.array([0.0, 1.0, 2.5, 3.0, 4.0]), "integer"),
    (np.array([0, 1, -1, 2, 3]), ">= 0"),
])
def test_bad_labels_are_a_clear_data_error(tmp_path, labels, message):
    with pytest.raises(DataError, match=message):
        read_npz(_npz(tmp_path / "x.npz", labels), "x")


def test_labels_must_fit_the_dataset(tmp_path):
    _npz(tmp_path / "cifar10" / "test.npz", np.array([0, 1, 2, 9, 12]))
    with pytest.raises(DataError, match="out of range for cifar10"):
        load_dataset("cifar10", "test", root=tmp_path)
    ds = read_npz(_npz(tmp_path / "u.npz", np.array([0, 1, 2, 3, 4], np.uint8)), "x")  # any integer dtype is fine
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 1, 2, 3, 4]


# -------------------------------------------------------------------------------- 9. another dataset's file


def test_cifar10_file_is_not_taken_for_cifar100(tmp_path, write_npz):
    labels = np.arange(2000) % 10
    write_npz(tmp_path / "c10" / "train.npz", _coded(range(2000)), labels)  # --data pointing at a CIFAR-10 folder
    assert len(load_dataset("cifar10", "train", root=tmp_path / "c10", val_size=100)) == 1900
    with pytest.raises(DataError, match="only 10 of the 100"):
        load_dataset("cifar100", "train", root=tmp_path / "c10", val_size=100)
    write_npz(tmp_path / "c100" / "cifar100" / "train.npz", _coded(range(2000)), labels)  # named: the user says so
    assert len(load_dataset("cifar100", "train", root=tmp_path / "c100", val_size=100)) == 1900


def test_imagenet_sized_file_is_not_taken_for_cifar(tmp_path, write_npz):
    write_npz(tmp_path / "test.npz", _coded(range(3), size=64), np.arange(3))
    with pytest.raises(DataError, match="64x64"):
        load_dataset("cifar10", "test", root=tmp_path)
