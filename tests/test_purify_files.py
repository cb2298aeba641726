"""`irad purify` on files: .npz input without labels, refusing output names that collide or overwrite the input,
refusing --data (as bench does), defense parameters, and notes about skipped files and unsearched subfolders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


from helpers import invoke as _invoke

pytestmark = pytest.mark.usefixtures("clean_env")



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
