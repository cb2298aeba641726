"""Shared fixtures: the read-only ``../shared`` folder (skip when absent) and an environment free of irad's
variables (so that a developer's ``IRAD_DATA`` / ``IRAD_HOME`` cannot change what a test sees)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the repository root; tests that need it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent (it sits beside the repo in CI)")
    return SHARED


@pytest.fixture(scope="session")
def shared_file(shared_dir: Path):
    """``shared_file("data/cifar10/test1000.npz")``: a path inside ``../shared``, skipping if that file is missing."""

    def get(rel: str) -> Path:
        path = shared_dir / rel
        if not path.is_file():
            pytest.skip(f"{path} is absent from the shared folder")
        return path

    return get


@pytest.fixture(scope="session")
def test1000(shared_file):
    """CIFAR-10 test images 0..999 from ``../shared`` as (uint8 N x H x W x 3, int64 labels)."""
    with np.load(shared_file("data/cifar10/test1000.npz")) as f:
        return f["images"], f["labels"]


@pytest.fixture
def clean_env(monkeypatch, tmp_path_factory):
    """No ``IRAD_DATA``; ``IRAD_HOME`` points to an empty temporary folder."""
    monkeypatch.delenv("IRAD_DATA", raising=False)
    monkeypatch.setenv("IRAD_HOME", str(tmp_path_factory.mktemp("irad_home")))


@pytest.fixture(scope="session")
def write_npz():
    """``write_npz(path, images, labels)``: a dataset file in the shared format (uint8 N x H x W x 3, int64)."""

    def write(path: Path, images: np.ndarray, labels: np.ndarray) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, images=np.asarray(images, dtype=np.uint8), labels=np.asarray(labels, dtype=np.int64))
        return path

    return write


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module (``pytestmark = pytest.mark.usefixtures("one_thread")``): its networks
    are small, so a thread pool only adds overhead, and stalls on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
