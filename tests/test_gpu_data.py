"""scripts/gpu_data.py: the lossless WebP packs that carry training images to a GPU call (64 MiB a call)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import features

pytestmark = pytest.mark.skipif(not features.check("webp"), reason="this Pillow cannot write WebP")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_data.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def _ok(*args: str) -> subprocess.CompletedProcess:
    r = _run(*args)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture()
def source(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)  # noise: the hardest case for a codec
    images[:10] = images[:10] // 64 * 64  # and some flat, posterised ones
    labels = rng.integers(0, 10, 30)
    path = tmp_path / "train.npz"
    np.savez(path, images=images, labels=labels)
    return path, images, labels


def test_packs_unpack_bit_exact_in_canonical_order_with_validation_last(source, tmp_path):
    src, images, labels = source
    _ok("pack", str(src), str(tmp_path / "b.npz"), "--images", "12:25")
    _ok("pack", str(src), str(tmp_path / "a.npz"), "--images", "0:12")
    _ok("pack", str(src), str(tmp_path / "v.npz"), "--images", "25:30", "--role", "val")
    out = tmp_path / "data" / "cifar10" / "train.npz"
    # given in any order: validation first, the training packs swapped
    r = _run("unpack", str(out), str(tmp_path / "v.npz"), str(tmp_path / "b.npz"), str(tmp_path / "a.npz"))
    assert r.returncode == 0, r.stderr
    assert "--val-size 5" in r.stdout
    with np.load(out) as f:
        assert np.array_equal(f["images"], images) and np.array_equal(f["labels"], labels)
        assert np.array_equal(f["canonical_index"], np.arange(30))


def test_a_damaged_pack_is_refused(source, tmp_path):
    src, _, _ = source
    pack = tmp_path / "a.npz"
    _ok("pack", str(src), str(pack), "--images", "0:10")
    with np.load(pack) as f:
        fields = dict(f)
    wrong_sum = dict(fields, sha256=np.array("0" * 64))  # as if an image had decoded differently
    np.savez(tmp_path / "sum.npz", **wrong_sum)
    blob = fields["webp"].copy()
    blob[fields["offsets"][3] + 12:fields["offsets"][4]] = 0  # image 3's WebP payload wiped
    np.savez(tmp_path / "blob.npz", **dict(fields, webp=blob))
    for name, message in (("sum.npz", "sha256 mismatch"), ("blob.npz", "not a readable pack|sha256 mismatch")):
        r = _run("unpack", str(tmp_path / "out.npz"), str(tmp_path / name))
        assert r.returncode != 0 and re.search(message, r.stderr), (name, r.stderr)
        assert not (tmp_path / "out.npz").exists()


def test_bad_ranges_and_overlapping_packs_are_refused(source, tmp_path):
    src, _, _ = source
    for bad in ("20:40", "5:5", "a:b"):
        r = _run("pack", str(src), str(tmp_path / "x.npz"), "--images", bad)
        assert r.returncode != 0 and "--images" in r.stderr and not (tmp_path / "x.npz").exists()
    _ok("pack", str(src), str(tmp_path / "a.npz"), "--images", "0:12")
    _ok("pack", str(src), str(tmp_path / "b.npz"), "--images", "10:20")
    _ok("pack", str(src), str(tmp_path / "v.npz"), "--images", "5:8", "--role", "val")
    out = str(tmp_path / "out.npz")
    assert "overlap" in _run("unpack", out, str(tmp_path / "a.npz"), str(tmp_path / "b.npz")).stderr
    assert "shares images" in _run("unpack", out, str(tmp_path / "a.npz"), str(tmp_path / "v.npz")).stderr
    assert "at most one validation pack" in _run("unpack", out, str(tmp_path / "a.npz"), str(tmp_path / "v.npz"),
                                                 str(tmp_path / "v.npz")).stderr
