"""Class-folder and ImageNet datasets: the in-memory train/val split of a folder, training on a folder, ImageNet's
train/val/test splits (shards, official val, class folders), and the image size a folder of images is read at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import irad
from irad.data import ImageDataset, load_dataset
from irad.errors import DataError

from helpers import coded_images as _coded, invoke as _invoke

pytestmark = pytest.mark.usefixtures("clean_env")




def _ids(ds: ImageDataset) -> list[int]:
    return (ds.images[:, 0, 0, 0].astype(int) + 256 * ds.images[:, 0, 0, 1].astype(int)).tolist()


def _class_folders(root: Path, per_class: int = 4, classes=("a", "b", "c"), size: int = 8) -> None:
    """``root/<class>/<i>.png``: constant images whose red value is 10 * class + i (distinct, so items can be told apart)."""
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (size, size), (10 * c + i, 100, 200)).save(root / name / f"{i}.png")


def _items(ds) -> list[tuple[tuple[float, ...], int]]:
    """(pixel (0, 0) of each item, label) for any dataset of (3 x H x W, label) items."""
    return [(tuple(x[:, 0, 0].tolist()), int(y)) for x, y in (ds[i] for i in range(len(ds)))]


# ------------------------------------------------------------------------------- folder datasets: split and training


def test_folder_dataset_train_and_val_split_the_folder_in_memory(tmp_path):
    _class_folders(tmp_path / "mine")
    whole = _items(load_dataset("folder", "test", root=tmp_path / "mine"))
    train = load_dataset("folder", "train", root=tmp_path / "mine", val_size=3)
    val = load_dataset("folder", "val", root=tmp_path / "mine", val_size=3)
    assert isinstance(train, ImageDataset) and isinstance(val, ImageDataset)  # what the training code needs
    assert len(train) == 9 and len(val) == 3
    assert not set(_items(train)) & set(_items(val))
    assert sorted(_items(train) + _items(val)) == sorted(whole)  # the same pixels as the lazy loader
    assert sorted(y for _, y in _items(val)) == [0, 1, 2]  # the folders come in class order; val spans them


def test_train_command_on_a_folder_dataset(tmp_path):
    _class_folders(tmp_path / "mine", per_class=3, classes=("a", "b"))
    res = _invoke("train", "stl", "--dataset", "folder", "--data", tmp_path / "mine", "--out", tmp_path / "run",
                  "--atoms", "4", "--size", "3", "--steps", "1", "--crop", "8", "--batch-size", "2",
                  "--iterations", "2", "--train-iterations", "2", "--val-images", "2", "--val-size", "2",
                  "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "stl.safetensors").is_file()


def test_classifier_trained_on_a_folder_has_one_output_per_class_folder(tmp_path):
    _class_folders(tmp_path / "mine", per_class=4, classes=("a", "b", "c"))
    res = _invoke("train", "classifier", "--dataset", "folder", "--data", tmp_path / "mine", "--arch", "resnet20",
                  "--epochs", "1", "--val-size", "3", "--batch-size", "8", "--out", tmp_path / "run",
                  "--device", "cpu")
    assert res.exit_code == 0, res.output
    weights = tmp_path / "run" / "resnet20-folder.safetensors"
    model = irad.load_classifier("resnet20", dataset="folder", weights=str(weights))
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


# ------------------------------------------------------------------------------------------- ImageNet train/val/test


def test_imagenet_val_is_held_out_of_all_train_shards(tmp_path, write_npz):
    for shard, ids in (("train_1", range(0, 4)), ("train_2", range(4, 8)), ("train_10", range(8, 12))):
        write_npz(tmp_path / "imagenet" / f"{shard}.npz", _coded(ids), np.asarray(ids) * 10)
    train = load_dataset("imagenet", "train", root=tmp_path, val_size=3)
    val = load_dataset("imagenet", "val", root=tmp_path, val_size=3)
    # all three shards, in the order 1, 2, 10; val is the tail, disjoint from train
    assert _ids(train) == list(range(9)) and _ids(val) == [9, 10, 11]
    assert val.labels.tolist() == [90, 100, 110]
    assert len(load_dataset("imagenet", "val", root=tmp_path, val_size=5)) == 5  # val_size is honoured


def test_imagenet_official_val_is_the_test_split(tmp_path, write_npz):
    write_npz(tmp_path / "imagenet" / "val20_224.npz", _coded(range(3)), np.array([0, 100, 200]))
    test = load_dataset("imagenet", "test", root=tmp_path)
    assert _ids(test) == [0, 1, 2] and test.labels.tolist() == [0, 100, 200]
    with pytest.raises(DataError, match="'test'"):  # 'val' no longer silently means the official validation set
        load_dataset("imagenet", "val", root=tmp_path)
    write_npz(tmp_path / "imagenet" / "test.npz", _coded([7]), np.array([7]))
    assert _ids(load_dataset("imagenet", "test", root=tmp_path)) == [7]  # an explicit test set still wins


def test_imagenet_train_folders_hold_out_every_kth_image(tmp_path):
    _class_folders(tmp_path / "imagenet" / "train")
    train = load_dataset("imagenet", "train", root=tmp_path, val_size=3)
    val = load_dataset("imagenet", "val", root=tmp_path, val_size=3)
    assert len(train) == 9 and len(val) == 3
    assert not set(_items(train)) & set(_items(val))
    assert sorted(y for _, y in _items(val)) == [0, 1, 2]


# ---------------------------------------------------------------------------- the size a folder's images are read at


def test_folder_of_one_image_size_keeps_it(tmp_path):
    """A user's folder of 16 x 16 images (or of 224 x 224 ones) is read at that size, pixel for pixel, not enlarged
    to ImageNet's 224 x 224; a non-square common size is centre-cropped to its short side; an explicit image_size
    still wins. (Mixed sizes keep the ImageNet-style 224 crop: test_folder_dataset_resizes_and_centre_crops.)"""
    rng = np.random.default_rng(0)
    for size in (16, 224):
        root = tmp_path / f"s{size}"
        arrays = {}
        for c in ("a", "b"):
            (root / c).mkdir(parents=True)
            arrays[c] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arrays[c]).save(root / c / "0.png")
        for split in ("test", "train"):
            ds = load_dataset("folder", split, root=root, val_size=1)
            x, y = ds[0]
            assert tuple(x.shape) == (3, size, size)
            expected = torch.from_numpy(arrays["ab"[int(y)]]).permute(2, 0, 1).float() / 255.0
            assert torch.equal(x, expected)
    wide = tmp_path / "wide" / "a"
    wide.mkdir(parents=True)
    arr = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)  # H 12, W 20: the centre 12 x 12 is columns 4..15
    Image.fromarray(arr).save(wide / "0.png")
    x, _ = load_dataset("folder", "test", root=tmp_path / "wide")[0]
    assert torch.equal(x, torch.from_numpy(arr[:, 4:16]).permute(2, 0, 1).float() / 255.0)
    x, _ = load_dataset("folder", "test", root=tmp_path / "s16", image_size=8)[0]
    assert tuple(x.shape) == (3, 8, 8)
    # only resize given: the crop takes what the resize leaves (12 x 20 -> 8 x 13 -> centre 8 x 8), no black padding
    x, _ = load_dataset("folder", "test", root=tmp_path / "wide", resize=8)[0]
    assert tuple(x.shape) == (3, 8, 8) and float(x.amax(dim=0).eq(0).float().mean()) < 0.05  # padding: black


def test_folder_of_large_photos_of_one_size_gets_the_imagenet_crop(tmp_path):
    """Photos (short side > 256) of one size are not kept at full resolution: resize 256, centre crop 224."""
    (tmp_path / "a").mkdir()
    Image.new("RGB", (400, 300), (10, 20, 30)).save(tmp_path / "a" / "0.png")
    x, _ = load_dataset("folder", "test", root=tmp_path)[0]
    assert tuple(x.shape) == (3, 224, 224)
