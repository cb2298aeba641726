"""Image bit depths: 16-bit PNGs are scaled to [0, 1], not clipped (also in folder datasets); 32-bit integer and
float images are read, and values outside their range are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from irad.data import load_dataset, read_image
from irad.errors import InputError

pytestmark = pytest.mark.usefixtures("clean_env")


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
