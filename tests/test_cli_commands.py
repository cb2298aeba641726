"""The purify / list / weights / bench commands, end to end through click."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from irad.cli.main import cli


@pytest.fixture()
def runner():
    return CliRunner()


def test_purify_image_files_and_folder(runner, tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate([(8, 8), (12, 6)]):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(src / f"img{i}.png")
    res = runner.invoke(cli, ["purify", str(src), str(tmp_path / "out"), "--defense", "bilinear-si", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    for i, size in enumerate([(8, 8), (12, 6)]):
        original = np.asarray(Image.open(src / f"img{i}.png"))
        out = np.asarray(Image.open(tmp_path / "out" / f"img{i}.png"))
        assert out.shape == original.shape
        # bilinear-si with d = 1.5: interior pixel (i, j) is the mean of the 2x2 block at (i+1, j+1) .. (i+2, j+2)
        expected = original[1:3, 1:3].astype(float).mean(axis=(0, 1))
        assert np.abs(out[0, 0] - expected).max() <= 1


def test_purify_npz_round_trip_with_identity(runner, tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=images, labels=np.arange(5))
    res = runner.invoke(cli, ["purify", str(tmp_path / "x.npz"), str(tmp_path / "y.npz"), "--defense", "none"])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "y.npz") as f:
        assert np.array_equal(f["images"], images) and np.array_equal(f["labels"], np.arange(5))


def test_purify_rejects_unreadable_images_and_writes_nothing(runner, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(src / "good.png")
    (src / "bad.png").write_bytes(b"not a png")
    res = runner.invoke(cli, ["purify", str(src), str(tmp_path / "out"), "--defense", "none"])
    assert res.exit_code != 0 and "bad.png" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()
    res = runner.invoke(cli, ["purify", str(src / "good.png"), str(tmp_path / "o2"), "--defense", "no-such"])
    assert res.exit_code != 0 and "unknown defense" in res.output


def test_list_and_weights_verify(runner):
    res = runner.invoke(cli, ["list", "defenses"])
    assert res.exit_code == 0 and "irad" in res.output and "bilinear-sv" in res.output
    res = runner.invoke(cli, ["list", "attacks"])
    assert res.exit_code == 0 and "autoattack" in res.output and "admix" in res.output
    res = runner.invoke(cli, ["weights", "verify"])
    assert res.exit_code == 0 and "resnet20-idelbayev" in res.output and "missing" not in res.output


def test_bench_prints_timings(runner):
    res = runner.invoke(cli, ["bench", "--defense", "bilinear-si", "--batch-sizes", "1,4", "--repeats", "1",
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.output.splitlines() if line.startswith("bilinear-si")]
    assert [r[1] for r in rows] == ["1", "4"] and all(float(r[2]) > 0 for r in rows)
