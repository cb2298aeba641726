"""scripts/gpu_data.py: the lossless WebP packs that carry training images to a GPU call (64 MiB a call)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_data.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


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
    assert _run("pack", str(src), str(tmp_path / "b.npz"), "--images", "12:25").returncode == 0
    assert _run("pack", str(src), str(tmp_path / "a.npz"), "--images", "0:12").returncode == 0
    assert _run("pack", str(src), str(tmp_path / "v.npz"), "--images", "25:30", "--role", "val").returncode == 0
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
    assert _run("pack", str(src), str(pack), "--images", "0:10").returncode == 0
    with np.load(pack) as f:
        fields = dict(f)
    fields["sha256"] = np.array("0" * 64)  # as if an image had decoded differently
    np.savez(pack, **fields)
    r = _run("unpack", str(tmp_path / "out.npz"), str(pack))
    assert r.returncode != 0 and "sha256 mismatch" in r.stderr
    assert not (tmp_path / "out.npz").exists()
