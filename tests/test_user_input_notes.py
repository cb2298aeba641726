"""What a new user is told about unusual input (issue 18): NaN images given to a bare classifier, images too small
to purify, and grayscale or transparent images converted to RGB."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from irad.classifiers import load_classifier
from irad.cli.main import cli
from irad.errors import InputError

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_bare_classifier_refuses_non_finite_images(bad):
    x = torch.rand(2, 3, 32, 32)
    x[1, 0, 3, 3] = bad
    with pytest.raises(InputError, match="NaN or Inf"):
        load_classifier("resnet20")(x)


def test_purify_refuses_a_tiny_image_and_writes_nothing(tmp_path):
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    result = CliRunner().invoke(cli, ["purify", str(tmp_path / "dot.png"), str(tmp_path / "out"),
                                      "--defense", "jpeg"])
    assert result.exit_code != 0 and "too small to purify" in result.output and "1 x 1" in result.output
    assert not (tmp_path / "out").exists()


def test_purify_says_what_it_did_with_grayscale_and_transparent_images(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), mode="L").save(src / "grey.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8), mode="RGBA").save(src / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(src / "colour.png")
    result = CliRunner().invoke(cli, ["purify", str(src), str(tmp_path / "out"), "--defense", "jpeg"])
    assert result.exit_code == 0, result.output
    assert "grey.png is grayscale (mode L): purified and written as RGB" in result.output
    assert "alpha.png has mode RGBA: converted to RGB" in result.output
    assert "colour.png" not in result.output.replace("purified 3 images", "")
    with Image.open(tmp_path / "out" / "grey.png") as im:
        assert im.mode == "RGB"
