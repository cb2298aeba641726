"""``irad analyze`` and its metrics, each checked against an independent fact: PSNR of a known MSE, SSIM of
identical images, FFT losses of pure low- and high-frequency differences worked out by hand, penultimate features
and decision paths of tiny networks computed by hand, a PCA of points on a line, Grad-CAM of a network whose
activations vanish on half the image, and an end-to-end run whose table is recomputed from its saved examples."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from irad import metrics
from irad.analysis import (AnalysisConfig, analyze, cosine_similarity, decision_paths, distances_to_centre, grad_cam,
                           pca_2d, penultimate_features)
from irad.cli.main import cli
from irad.errors import DataError, InputError

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")


# ---------------------------------------------------------------------------------------------------- metrics


def test_psnr_of_a_known_mse_and_of_identical_images():
    a = torch.zeros(2, 3, 4, 4)
    b = torch.full_like(a, 0.1)  # MSE 0.01 -> 20 dB
    assert metrics.psnr(a, b).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert metrics.psnr(a, a).tolist() == pytest.approx([100.0, 100.0])  # capped by eps = 1e-10
    with pytest.raises(ValueError, match="one shape"):
        metrics.psnr(a, b[:1])


def test_ssim_is_one_for_identical_images_and_lower_otherwise():
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert metrics.ssim(x, x).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (metrics.ssim(noisy, x) < 0.99).all()


def test_fft_losses_split_a_constant_offset_from_a_checkerboard():
    h = w = 8
    a = torch.zeros(1, 3, h, w)
    offset = torch.full_like(a, 0.2)  # only the DC coefficient differs: 0.2 * sqrt(64) = 1.6 (orthonormal DFT)
    f = np.fft.fftfreq(h)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    n_low = int((radius <= 0.25).sum())  # coefficients of the low band, counted independently
    low, high = metrics.fft_band_losses(offset, a)
    assert float(low) == pytest.approx(1.6 / n_low, rel=1e-6) and float(high) == pytest.approx(0.0, abs=1e-9)
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    checker = torch.from_numpy(((ii + jj) % 2).astype(np.float32)).expand(1, 3, h, w) * 0.2  # Nyquist: |f| = 0.71
    low, high = metrics.fft_band_losses(checker, a)
    # the checkerboard is 0.1 (its mean, DC) + 0.1 * (-1)^(i+j): DC 0.8 in the low band, 0.8 at (0.5, 0.5)
    assert float(low) == pytest.approx(0.8 / n_low, rel=1e-5)
    assert float(high) == pytest.approx(0.8 / (h * w - n_low), rel=1e-5)


def test_lpips_without_its_package_or_weights_is_a_clear_unavailable_error():
    x = torch.rand(1, 3, 32, 32)
    try:
        value = metrics.lpips_distance(x, x)
    except metrics.MetricUnavailable as exc:
        assert "LPIPS" in str(exc) and ("pip install lpips" in str(exc) or "TORCH_HOME" in str(exc))
    else:  # where LPIPS and its weights are installed, identical images are at distance 0
        assert float(value) == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------------ features and paths


def test_penultimate_features_are_the_input_of_the_last_linear_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.rand(7, 3, 2, 2)
    expected = torch.relu(x.flatten(1) @ net[1].weight.T + net[1].bias)
    torch.testing.assert_close(penultimate_features(net, x, batch_size=3), expected)
    with pytest.raises(InputError, match="linear"):
        penultimate_features(nn.Sequential(nn.Flatten()), x)


def test_distances_to_centre_and_identical_inputs():
    f = torch.tensor([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])
    assert distances_to_centre(f, torch.zeros(2)).tolist() == [5.0, 0.0, 10.0]
    assert distances_to_centre(f[:1], f[0]).tolist() == [0.0]


def test_pca_of_points_on_a_line_puts_them_on_the_first_axis():
    t = torch.linspace(-2, 3, 11, dtype=torch.float64)
    direction = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64) / 3  # unit length
    points = t[:, None] * direction + torch.tensor([5.0, -1.0, 0.5], dtype=torch.float64)
    (proj,) = pca_2d(points)
    assert torch.allclose(proj[:, 1].double(), torch.zeros(11, dtype=torch.float64), atol=1e-5)
    centred = (t - t.mean()).float()
    assert torch.allclose(proj[:, 0].abs(), centred.abs(), atol=1e-5)  # distances along the line are kept
    other = points[:2] + 10 * direction  # another set is projected on the same axes
    assert torch.allclose(pca_2d(points, other)[1][:, 0].abs(), (centred[:2] + 10).abs(), atol=1e-4)


def test_decision_path_of_a_one_conv_network_matches_the_hand_computation():
    conv = nn.Conv2d(3, 2, 1, bias=False)
    head = nn.Linear(2, 4)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]]).view(2, 3, 1, 1))
    net = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    x = torch.rand(5, 3, 4, 4)
    y = torch.tensor([0, 1, 2, 3, 1])
    paths = decision_paths(net, x, y, batch_size=2)
    # z_y = sum_c v_yc * mean(A_c): d z_y / d A_c = v_yc / 16, so mean(A_c * grad) = v_yc * mean(A_c) / 16
    acts = conv(x).mean(dim=(2, 3))
    expected = head.weight[y] * acts / 16
    torch.testing.assert_close(paths, expected.detach())
    assert cosine_similarity(paths, paths).tolist() == pytest.approx([1.0] * 5)


def test_grad_cam_vanishes_where_the_activations_do():
    conv = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        net[-1].weight.fill_(1.0)
    x = torch.zeros(2, 3, 8, 8)
    x[:, :, :, :4] = torch.rand(2, 3, 8, 4) + 0.1  # the right half is black: no activation there
    maps = grad_cam(net, x, torch.tensor([0, 2]))
    assert maps.shape == (2, 8, 8)
    assert float(maps[:, :, 4:].max()) == 0.0 and float(maps[:, :, :4].min()) > 0.0
    assert maps.amax(dim=(1, 2)).tolist() == pytest.approx([1.0, 1.0])


# ------------------------------------------------------------------------------------------------- end to end


def test_analyze_tables_match_an_independent_recomputation(tmp_path):
    from irad.classifiers import load_classifier
    from irad.data import load_dataset
    from irad.defenses import load_defense

    cfg = AnalysisConfig(victim="resnet20", defenses=["median"], attack="fgsm", n_images=8, cases=2,
                         feature_class=3, batch_size=4)
    result = analyze(cfg, tmp_path / "an", progress=False)
    x, y = load_dataset("cifar10", "test").tensors(8)
    with np.load(result["adversarial_files"]["main"]) as f:
        main = torch.from_numpy(f["adv"])
    assert float((main - x).abs().max()) <= 8 / 255 + 1e-6 and 0 <= float(main.min()) and float(main.max()) <= 1
    rows = {r["image"]: r for r in result["quality"]}
    mse = ((main.double() - x.double()) ** 2).mean(dim=(1, 2, 3))
    assert rows["Adv"]["psnr"] == pytest.approx(float((-10 * torch.log10(mse)).mean()), abs=1e-3)
    victim = load_classifier("resnet20")
    with torch.no_grad():
        assert rows["Adv"]["victim_accuracy"] == pytest.approx(float((victim(main).argmax(1) == y).float().mean()))
        purified = load_defense("median")(main)
        mse = ((purified.double() - x.double()) ** 2).mean(dim=(1, 2, 3))
    assert rows["median(Adv)"]["psnr"] == pytest.approx(float((-10 * torch.log10(mse)).mean()), abs=1e-3)
    assert set(rows) == {"Adv", "median(Adv)", "median(Clean)"}
    features = {r["image"]: r for r in result["features"]}
    assert features["Clean"]["images"] == 8  # class 3 (cat): its first 8 test images
    paths = {r["image"]: r for r in result["paths"]}
    assert set(paths) == {"Adv", "median(Adv)"} and all(-1 <= r["path_cosine_mean"] <= 1 for r in paths.values())
    for name in ("fig2_sampling", "cases", "saliency", "fig5_pca"):
        assert (tmp_path / "an" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert saved["threat_model"] == "oblivious" and saved["quality"] == result["quality"]
    assert "| Adv |" in (tmp_path / "an" / "analysis.md").read_text()


def test_analyze_refuses_unknown_parts_and_classes_without_images(tmp_path):
    with pytest.raises(InputError, match="unknown analysis part"):
        analyze(AnalysisConfig(parts=["quality", "colour"]), tmp_path / "a", progress=False)
    with pytest.raises(DataError, match="no image of class 42"):
        analyze(AnalysisConfig(victim="resnet20", defenses=[], attack="fgsm", n_images=2, feature_class=42,
                               parts=["features"]), tmp_path / "b", progress=False)


def test_cli_analyze_runs_one_part(tmp_path):
    result = CliRunner().invoke(cli, ["analyze", "--victim", "resnet20", "--defense", "jpeg", "--attack", "fgsm",
                                      "-n", "4", "--part", "quality", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "Table 17" in result.output and "jpeg(Adv)" in result.output and "## Table 18" not in result.output
