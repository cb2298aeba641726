"""Datasets and image files: the shipped sample, where data is looked up, the train/val split, torchvision and
ImageNet-style folders, single-image I/O, and the errors a user gets for bad input."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from irad.data import dataset_info, load_dataset, read_image, shipped_sample_path, write_image
from irad.data import DATASETS, ImageDataset
from irad.errors import DataError, InputError, UnknownNameError

pytestmark = pytest.mark.usefixtures("clean_env")

# From ../shared/README.md (an independent record of the file's content).
TEST1000_SHA256 = "81fec84598a6a5c9399471bf19c0f707a295712e83457804f000dc6719a20565"


def _indexed(n: int, size: int = 2, classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` tiny images whose label is their index (mod ``classes`` if given) and whose pixels spell the index
    (channels 0 and 2: index mod 256, channel 1: index // 256)."""
    index = np.arange(n, dtype=np.int64)
    images = np.broadcast_to((index % 256).astype(np.uint8)[:, None, None, None], (n, size, size, 3)).copy()
    images[..., 1] = (index // 256).astype(np.uint8)[:, None, None]
    return images, index if classes is None else index % classes


def _ids(ds) -> list[int]:
    """The indices spelled by the pixels of an ``_indexed`` dataset."""
    return (ds.images[:, 0, 0, 0].astype(int) + 256 * ds.images[:, 0, 0, 1].astype(int)).tolist()


# --------------------------------------------------------------------------------------------- shipped sample


def test_shipped_sample_is_1000_float_nchw_images_in_unit_range():
    ds = load_dataset("cifar10", "test")
    assert len(ds) == 1000
    x, y = ds[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 32, 32)
    assert isinstance(y, int) and 0 <= y < 10
    xb, yb = ds.tensors()
    assert tuple(xb.shape) == (1000, 3, 32, 32) and xb.dtype == torch.float32
    assert float(xb.min()) >= 0.0 and float(xb.max()) <= 1.0
    assert float(xb.max()) == 1.0 and float(xb.min()) == 0.0  # real photos use the full 8-bit range
    assert set(yb.tolist()) == set(range(10))


def test_shipped_sample_equals_shared_test1000_exactly(shared_file, test1000):
    path = shared_file("data/cifar10/test1000.npz")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == TEST1000_SHA256
    images, labels = test1000
    ds = load_dataset("cifar10", "test")
    xb, yb = ds.tensors()
    # uint8 HWC -> float CHW / 255 computed here, independently of the loader.
    expected = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    assert torch.equal(xb, expected)
    assert torch.equal(yb, torch.from_numpy(labels.astype(np.int64)))
    # Single items agree with the batch (pixel (c, h, w) of image i is images[i, h, w, c] / 255).
    x7, y7 = ds[7]
    assert torch.equal(x7, expected[7]) and y7 == int(labels[7])
    assert float(x7[2, 5, 9]) == float(np.float32(images[7, 5, 9, 2]) / np.float32(255.0))
    # The first CIFAR-10 test labels are well known: cat, ship, ship, airplane, frog.
    assert yb[:5].tolist() == [3, 8, 8, 0, 6]


def test_shipped_sample_path_is_inside_the_package():
    path = shipped_sample_path()
    assert path.is_file() and path.name == "cifar10_test1000.npz"
    assert "irad" in path.parts


# ------------------------------------------------------------------------------------------ root resolution


def test_root_beats_env_beats_shipped(tmp_path, monkeypatch, write_npz):
    write_npz(tmp_path / "root" / "cifar10" / "test.npz", *_indexed(5))
    write_npz(tmp_path / "env" / "cifar10" / "test.npz", *_indexed(7))
    monkeypatch.setenv("IRAD_DATA", str(tmp_path / "env"))
    assert len(load_dataset("cifar10", "test", root=tmp_path / "root")) == 5
    assert len(load_dataset("cifar10", "test")) == 7
    monkeypatch.delenv("IRAD_DATA")
    assert len(load_dataset("cifar10", "test")) == 1000


def test_npz_may_sit_directly_in_root(tmp_path, write_npz):
    write_npz(tmp_path / "test.npz", *_indexed(4))
    ds = load_dataset("cifar10", "test", root=tmp_path)
    assert len(ds) == 4 and [ds[i][1] for i in range(4)] == [0, 1, 2, 3]


def test_env_pointing_nowhere_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("IRAD_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="IRAD_DATA"):
        load_dataset("cifar10", "test")


def test_train_split_without_data_dir_is_a_data_error():
    with pytest.raises(DataError, match="--data"):
        load_dataset("cifar10", "train")


# ---------------------------------------------------------------------------------------------- train / val


def test_default_split_holds_out_the_last_5000_training_images(tmp_path, write_npz):
    write_npz(tmp_path / "cifar10" / "train.npz", *_indexed(6000, classes=10))
    train = load_dataset("cifar10", "train", root=tmp_path)
    val = load_dataset("cifar10", "val", root=tmp_path)
    assert len(train) == 1000 and len(val) == 5000
    assert _ids(train) == list(range(1000))
    assert _ids(val) == list(range(1000, 6000))
    # Labels travel with their pixels.
    assert val.tensors()[1].tolist() == [i % 10 for i in range(1000, 6000)]
    assert float(val[0][0][0, 0, 0]) == pytest.approx((1000 % 256) / 255.0)
    # Deterministic: a second load gives the same split.
    assert _ids(load_dataset("cifar10", "val", root=tmp_path)) == list(range(1000, 6000))


def test_custom_val_size(tmp_path, write_npz):
    write_npz(tmp_path / "cifar10" / "train.npz", *_indexed(300, classes=10))
    train = load_dataset("cifar10", "train", root=tmp_path, val_size=40)
    val = load_dataset("cifar10", "val", root=tmp_path, val_size=40)
    assert _ids(train) == list(range(260))
    assert _ids(val) == list(range(260, 300))


@pytest.mark.parametrize("val_size", [0, 300, 1000])
def test_impossible_val_size_is_an_input_error(tmp_path, write_npz, val_size):
    write_npz(tmp_path / "cifar10" / "train.npz", *_indexed(300, classes=10))
    with pytest.raises(InputError, match="val_size"):
        load_dataset("cifar10", "val", root=tmp_path, val_size=val_size)


# ------------------------------------------------------------------------------------ torchvision's folders


def _write_torchvision_cifar10(root, monkeypatch, train_sizes=(2, 2, 2, 2, 2), test_size=3, seed=0):
    """A fake ``cifar-10-batches-py`` in torchvision's format: pickled dicts (the official files are Python 2
    pickles whose keys unpickle as ``str`` under ``encoding="latin1"``), ``data`` rows = R, G, B planes of 32x32."""
    import torchvision

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    md5 = {}

    def dump(name, obj):
        with open(folder / name, "wb") as fh:
            pickle.dump(obj, fh)
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()

    def batch(name, n):
        hwc = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        rows = hwc.transpose(0, 3, 1, 2).reshape(n, 3072)  # the official layout: 1024 R, 1024 G, 1024 B
        dump(name, {"batch_label": name, "labels": labels, "data": rows,
                    "filenames": [f"{i}.png" for i in range(n)]})
        return hwc, labels

    train = [batch(f"data_batch_{i + 1}", n) for i, n in enumerate(train_sizes)]
    test = batch("test_batch", test_size)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    dump("batches.meta", {"label_names": names, "num_cases_per_batch": 2, "num_vis": 3072})
    cls = torchvision.datasets.CIFAR10
    # torchvision checks the md5 of the official files; point it at our fakes' md5 instead.
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i + 1}", md5[f"data_batch_{i + 1}"]] for i in range(5)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    train_hwc = np.concatenate([h for h, _ in train])
    train_labels = [lab for _, labels in train for lab in labels]
    return (train_hwc, train_labels), test


def test_torchvision_folder_fallback(tmp_path, monkeypatch):
    (train_hwc, train_labels), (test_hwc, test_labels) = _write_torchvision_cifar10(tmp_path, monkeypatch)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert len(test) == 3
    xb, yb = test.tensors()
    assert torch.equal(xb, torch.from_numpy(test_hwc).permute(0, 3, 1, 2).float() / 255.0)
    assert yb.tolist() == test_labels
    val = load_dataset("cifar10", "val", root=tmp_path, val_size=4)
    train = load_dataset("cifar10", "train", root=tmp_path, val_size=4)
    assert len(train) == 6 and len(val) == 4
    assert torch.equal(val.tensors()[0], torch.from_numpy(train_hwc[6:]).permute(0, 3, 1, 2).float() / 255.0)
    assert train.tensors()[1].tolist() == train_labels[:6]


def test_empty_folder_is_a_data_error_that_suggests_download(tmp_path):
    with pytest.raises(DataError, match="--download") as err:
        load_dataset("cifar10", "test", root=tmp_path)
    assert "--dataset folder" not in str(err.value)


def test_class_folders_under_a_cifar_data_dir_suggest_the_folder_dataset(tmp_path):
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / "a.png")
    with pytest.raises(DataError, match="add --dataset folder"):
        load_dataset("cifar10", "train", root=tmp_path)


# ------------------------------------------------------------------------------------ ImageNet-style folders


def _class_folders(root):
    """cat/: a 300x400 constant image and a 256x512 random one; dog/: a 500x260 constant image (H x W)."""
    rng = np.random.default_rng(1)
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir(parents=True)
    Image.new("RGB", (400, 300), (10, 120, 250)).save(root / "cat" / "a.png")
    wide = rng.integers(0, 256, size=(256, 512, 3), dtype=np.uint8)
    Image.fromarray(wide).save(root / "cat" / "b.png")
    Image.new("RGB", (260, 500), (200, 30, 0)).save(root / "dog" / "c.png")
    return wide


def _check_folder_dataset(ds, wide):
    assert len(ds) == 3
    items = [ds[i] for i in range(3)]
    for x, _ in items:
        assert tuple(x.shape) == (3, 224, 224) and x.dtype == torch.float32
    assert [y for _, y in items] == [0, 0, 1]  # classes in sorted folder order: cat, dog
    # A constant image stays constant through resize + crop.
    assert torch.allclose(items[0][0], torch.tensor([10, 120, 250]).view(3, 1, 1) / 255.0, atol=1e-6)
    assert torch.allclose(items[2][0], torch.tensor([200, 30, 0]).view(3, 1, 1) / 255.0, atol=1e-6)
    # 256 x 512 already has short side 256: no resampling, the centre crop is rows 16..239, cols 144..367.
    expected = torch.from_numpy(wide[16:240, 144:368]).permute(2, 0, 1).float() / 255.0
    assert torch.equal(items[1][0], expected)


def test_folder_dataset_resizes_and_centre_crops(tmp_path):
    wide = _class_folders(tmp_path / "mine")
    _check_folder_dataset(load_dataset("folder", "test", root=tmp_path / "mine"), wide)


def test_imagenet_dataset_reads_class_folders(tmp_path):
    wide = _class_folders(tmp_path / "imagenet" / "val")  # the official validation set is the test split
    _check_folder_dataset(load_dataset("imagenet", "test", root=tmp_path), wide)


def test_imagenet_npz(tmp_path, write_npz):
    images, labels = _indexed(3, size=224)
    write_npz(tmp_path / "imagenet" / "val20_224.npz", images, labels * 100)
    ds = load_dataset("imagenet", "test", root=tmp_path)
    assert len(ds) == 3 and tuple(ds[0][0].shape) == (3, 224, 224) and ds[2][1] == 200


def test_imagenet_is_not_shipped():
    with pytest.raises(DataError, match="--data"):
        load_dataset("imagenet", "val")


# ------------------------------------------------------------------------------------------- image files


def test_write_then_read_png_is_exact(tmp_path):
    arr = np.random.default_rng(2).integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    x = torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0
    path = tmp_path / "sub" / "img.png"
    write_image(x, path)
    with Image.open(path) as img:  # an independent reader sees the same pixels
        assert img.size == (23, 17)
        assert np.array_equal(np.asarray(img.convert("RGB")), arr)
    y = read_image(path)
    assert tuple(y.shape) == (3, 17, 23) and y.dtype == torch.float32
    assert torch.equal(y, x)


def test_read_image_of_png_written_by_pil(tmp_path):
    arr = np.random.default_rng(3).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    y = read_image(tmp_path / "a.png")
    assert torch.equal((y * 255).round().to(torch.uint8), torch.from_numpy(arr).permute(2, 0, 1))
    # Greyscale files come back as 3 identical channels.
    Image.fromarray(arr[:, :, 0]).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert tuple(g.shape) == (3, 5, 6)
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    assert torch.equal(g[0], torch.from_numpy(arr[:, :, 0]).float() / 255.0)


def test_write_image_rounds_to_nearest_8_bit_value(tmp_path):
    x = torch.full((3, 2, 2), 100.4 / 255.0)
    x[:, 0, 0] = 100.6 / 255.0
    write_image(x, tmp_path / "r.png")
    with Image.open(tmp_path / "r.png") as img:
        arr = np.asarray(img)
    assert arr[0, 0].tolist() == [101, 101, 101] and arr[1, 1].tolist() == [100, 100, 100]


# --------------------------------------------------------------------------------------------------- errors


def test_unknown_dataset_name():
    with pytest.raises(UnknownNameError, match="cifar10"):
        load_dataset("cifar1O", "test")


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", "test", root=tmp_path / "missing")


def test_corrupt_npz_garbage(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "test.npz").write_bytes(b"this is not an npz file at all\n" * 10)
    with pytest.raises(DataError, match="test.npz"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_truncated_npz(tmp_path, write_npz):
    good = write_npz(tmp_path / "full.npz", *_indexed(50, size=8))
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "test.npz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="test.npz"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_npz_without_the_expected_arrays(tmp_path):
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "test.npz", x=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(2))
    with pytest.raises(DataError, match="'images' and 'labels'"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_npz_with_float_images_or_wrong_label_count(tmp_path, write_npz):
    (tmp_path / "a" / "cifar10").mkdir(parents=True)
    np.savez(tmp_path / "a" / "cifar10" / "test.npz", images=np.zeros((2, 32, 32, 3), np.float32),
             labels=np.zeros(2, np.int64))
    with pytest.raises(DataError, match="uint8"):
        load_dataset("cifar10", "test", root=tmp_path / "a")
    (tmp_path / "b" / "cifar10").mkdir(parents=True)
    np.savez(tmp_path / "b" / "cifar10" / "test.npz", images=np.zeros((2, 32, 32, 3), np.uint8),
             labels=np.zeros(3, np.int64))
    with pytest.raises(DataError, match="labels"):
        load_dataset("cifar10", "test", root=tmp_path / "b")


def test_read_image_rejects_a_non_image_file(tmp_path):
    (tmp_path / "notes.png").write_text("definitely not a PNG\n")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "absent.png")


def test_write_image_needs_a_known_suffix(tmp_path):
    with pytest.raises(InputError, match="suffix"):
        write_image(torch.zeros(3, 2, 2), tmp_path / "out.unknownext")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("split", ["validation", "TEST", "dev"])
def test_unknown_split(split):
    with pytest.raises(InputError, match="split"):
        load_dataset("cifar10", split)


def test_registry_and_info_facts():
    assert {"cifar10", "cifar100", "imagenet", "folder"} <= set(DATASETS.names())
    assert dataset_info("cifar10").num_classes == 10 and dataset_info("cifar100").num_classes == 100
    assert dataset_info("imagenet").num_classes == 1000 and dataset_info("imagenet").image_size == 224
    # The paper's L-inf budgets: 8/255 on CIFAR, 4/255 on ImageNet.
    assert dataset_info("cifar10").default_eps == pytest.approx(8 / 255)
    assert dataset_info("imagenet").default_eps == pytest.approx(4 / 255)
    with pytest.raises(UnknownNameError):
        dataset_info("mnist")


def test_image_dataset_rejects_wrong_layout():
    with pytest.raises(DataError):
        ImageDataset(np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2), "x", "mem")
