"""Fixes in data loading and the purify / train commands: --download, the train/val split of folder and ImageNet
data, 16-bit images, purify's .npz labels, colliding output names and --data, label checks, and data that belongs
to another dataset."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import irad
from irad.cli.main import cli
from irad.data import load_dataset, read_image
from irad.data import ImageDataset, download_dataset, read_npz
from irad.errors import DataError, InputError

pytestmark = pytest.mark.usefixtures("clean_env")

TRAIN_COMMANDS = ["classifier", "pairs", "implicit", "samplenet", "stl", "nrp", "diffusion"]


def _invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _coded(ids, size: int = 2) -> np.ndarray:
    """Images whose pixels spell their id: channel 0 = id % 256, channel 1 = id // 256 (so a split can be traced)."""
    ids = np.asarray(ids)
    images = np.zeros((len(ids), size, size, 3), np.uint8)
    images[..., 0] = (ids % 256)[:, None, None]
    images[..., 1] = (ids // 256)[:, None, None]
    return images


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


# ----------------------------------------------------------------------------------------- 1. --download


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


# ------------------------------------------------------------------------------- 2. training on 'folder'


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


# ----------------------------------------------------------------------------- 3. ImageNet train/val/test


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


# ------------------------------------------------------------------------------------------ 4. 16-bit images


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    gradient = np.linspace(0, 65535, 5 * 64).round().astype(np.uint16).reshape(5, 64)
    Image.fromarray(gradient).save(tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode.startswith("I;16")  # PIL really wrote a 16-bit file
    x = read_image(tmp_path / "g.png")
    assert tuple(x.shape) == (3, 5, 64)
    expected = torch.from_numpy(gradient.astype(np.float64) / 65535.0)
    for c in range(3):
        assert (x[c].double() - expected).abs().max() <= 1 / 65535


def test_32_bit_and_float_images(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], np.int32)).save(tmp_path / "i.tif")
    assert read_image(tmp_path / "i.tif")[0, 0].tolist() == pytest.approx([0.0, 32768 / 65535, 1.0], abs=1e-6)
    Image.fromarray(np.array([[0.0, 0.25, 1.0]], np.float32)).save(tmp_path / "f.tif")
    assert read_image(tmp_path / "f.tif")[1, 0].tolist() == [0.0, 0.25, 1.0]
    Image.fromarray(np.array([[0.0, 2.0]], np.float32)).save(tmp_path / "f2.tif")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        read_image(tmp_path / "f2.tif")
    Image.fromarray(np.array([[70000]], np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(InputError, match="65535"):
        read_image(tmp_path / "big.tif")


def test_folder_dataset_scales_16_bit_images(tmp_path):
    (tmp_path / "mine" / "a").mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 32896, np.uint16)).save(tmp_path / "mine" / "a" / "x.png")  # 32896 = 128 * 257
    x, _ = load_dataset("folder", "test", root=tmp_path / "mine")[0]
    assert torch.allclose(x, torch.full_like(x, 128 / 255))


# --------------------------------------------------------------------------------- 5.-7. irad purify


def test_purify_npz_without_labels(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=images)
    res = _invoke("purify", tmp_path / "x.npz", tmp_path / "y.npz", "--defense", "none")
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "y.npz") as f:
        assert sorted(f.files) == ["images"] and np.array_equal(f["images"], images)


@pytest.mark.parametrize("layout", ["same-folder", "two-folders", "case"])
def test_purify_refuses_colliding_output_names_and_writes_nothing(tmp_path, layout):
    pixel = np.zeros((4, 4, 3), np.uint8)
    if layout == "same-folder":
        (tmp_path / "in").mkdir()
        files = [tmp_path / "in" / "a.png", tmp_path / "in" / "a.bmp"]
        inputs = [tmp_path / "in"]
    elif layout == "two-folders":
        files = [tmp_path / "d1" / "x.png", tmp_path / "d2" / "x.png"]
        inputs = files
    else:
        (tmp_path / "in").mkdir()
        files = [tmp_path / "in" / "A.png", tmp_path / "in" / "a.png"]
        inputs = [tmp_path / "in"]
    for f in files:
        f.parent.mkdir(exist_ok=True)
        Image.fromarray(pixel).save(f)
    res = _invoke("purify", *inputs, tmp_path / "out", "--defense", "none")
    assert res.exit_code == 1 and "overwrite each other" in res.output
    assert all(str(f) in res.output for f in files)
    assert not (tmp_path / "out").exists()


def test_purify_refuses_to_overwrite_its_inputs_but_accepts_a_file_named_twice(tmp_path):
    (tmp_path / "in").mkdir()
    arr = np.full((4, 4, 3), 7, np.uint8)
    Image.fromarray(arr).save(tmp_path / "in" / "a.png")
    res = _invoke("purify", tmp_path / "in", tmp_path / "in", "--defense", "none")
    assert res.exit_code == 1 and "overwrite the input" in res.output
    res = _invoke("purify", tmp_path / "in", tmp_path / "in" / "a.png", tmp_path / "out", "--defense", "none")
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), arr)


def test_purify_and_bench_refuse_data_and_do_not_offer_it(tmp_path):
    """They read no dataset: --data is refused with a reason before anything is written, and not in their help."""
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    res = _invoke("purify", tmp_path / "a.png", tmp_path / "out", "--defense", "none", "--data", tmp_path)
    assert res.exit_code == 1 and "ignores --data" in res.output
    assert not (tmp_path / "out").exists()
    res = _invoke("bench", "--defense", "none", "--data", tmp_path)
    assert res.exit_code == 2 and "--data is not used" in res.output
    for command in ("purify", "bench"):
        assert "--data " not in _invoke(command, "--help").output  # (purify has --dataset)
    assert "--data " in _invoke("evaluate", "--help").output


def test_purify_takes_defense_parameters(tmp_path):
    """`--defense bilinear-si:d=1.0` really shifts by one whole pixel: the output is the input translated by one
    row and one column, the last row / column repeated (border clamping)."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    res = _invoke("purify", tmp_path / "a.png", tmp_path / "out", "--defense", "bilinear-si:d=1.0")
    assert res.exit_code == 0, res.output
    out = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    expected = arr[np.minimum(np.arange(6) + 1, 5)][:, np.minimum(np.arange(7) + 1, 6)]
    assert np.array_equal(out, expected)
    bad = _invoke("purify", tmp_path / "a.png", tmp_path / "out2", "--defense", "bilinear-si:gamma=1.0")
    assert bad.exit_code == 1 and "gamma" in bad.output and not (tmp_path / "out2").exists()


def test_purify_notes_the_files_it_skips(tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "readme.txt").write_text("not an image")
    res = _invoke("purify", tmp_path / "in", tmp_path / "out", "--defense", "none")
    assert res.exit_code == 0, res.output
    assert "skipped 1 file(s)" in res.output and "readme.txt" in res.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]


def test_purify_says_subfolders_are_not_searched(tmp_path):
    (tmp_path / "in" / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "in" / "cat" / "a.png")
    res = _invoke("purify", tmp_path / "in", tmp_path / "out", "--defense", "none")
    assert res.exit_code == 1 and "subfolders are not searched" in res.output


# -------------------------------------------------------------------------------------------- 8. labels


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
