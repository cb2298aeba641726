"""The resampling framework (Eq. 2-10) against closed-form facts and an independent LIIF reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import irad
from irad.errors import InputError
from irad.reconstruction import (
    BilinearReconstruction,
    ImplicitReconstruction,
    NearestReconstruction,
    pixel_grid,
)
from irad.reconstruction.implicit import LocalEnsembleMLP
from irad.resampling import ImageResampler
from irad.sampling import IdentitySampler, SampleNet, SpatiallyInvariantSampler, SpatiallyVariantSampler
from irad.training.implicit import save_resampler_weights

torch.manual_seed(0)
SHAPES = [(1, 3, 8, 8), (3, 3, 7, 11), (2, 3, 1, 5)]


@pytest.mark.parametrize("recon", [NearestReconstruction(), BilinearReconstruction()])
@pytest.mark.parametrize("shape", SHAPES)
def test_zero_shift_is_identity(recon, shape):
    x = torch.rand(shape)
    assert torch.equal(ImageResampler(recon, IdentitySampler())(x), x)
    assert torch.equal(ImageResampler(recon, SpatiallyInvariantSampler(0.0))(x), x)


@pytest.mark.parametrize("recon", [NearestReconstruction(), BilinearReconstruction()])
@pytest.mark.parametrize("d", [1.0, 2.0])
def test_whole_pixel_shift_is_translation(recon, d):
    x = torch.rand(2, 3, 9, 6)
    k = int(d)
    y = ImageResampler(recon, SpatiallyInvariantSampler(d))(x)
    assert torch.equal(y[:, :, :-k, :-k], x[:, :, k:, k:])
    # past the border the last row / column repeats (border clamping): the last k output rows all read input row
    # H-1, the last k output columns input column W-1, and the k x k corner the corner pixel
    assert torch.equal(y[:, :, -k:, :-k], x[:, :, -1:, k:].expand(-1, -1, k, -1))
    assert torch.equal(y[:, :, :-k, -k:], x[:, :, k:, -1:].expand(-1, -1, -1, k))
    assert torch.equal(y[:, :, -k:, -k:], x[:, :, -1:, -1:].expand(-1, -1, k, k))


def test_nearest_ties_round_up_so_d_1_5_translates_by_2():
    x = torch.rand(1, 3, 8, 8)
    y = ImageResampler(NearestReconstruction(), SpatiallyInvariantSampler(1.5))(x)
    assert torch.equal(y[:, :, :-2, :-2], x[:, :, 2:, 2:])


def test_bilinear_half_pixel_is_mean_of_four_neighbours():
    x = torch.rand(2, 3, 6, 9, dtype=torch.float64)
    y = ImageResampler(BilinearReconstruction(), SpatiallyInvariantSampler(0.5))(x)
    ref = (x[:, :, :-1, :-1] + x[:, :, 1:, :-1] + x[:, :, :-1, 1:] + x[:, :, 1:, 1:]) / 4
    torch.testing.assert_close(y[:, :, :-1, :-1], ref)


def test_bilinear_is_exact_on_linear_ramps():
    h, w = 7, 9
    rows, cols = torch.meshgrid(torch.arange(h.__float__()), torch.arange(float(w)), indexing="ij")
    img = (0.05 * rows + 0.03 * cols + 0.1).expand(1, 3, h, w).double()
    phi = BilinearReconstruction()(img)
    coords = torch.rand(1, 5, 4, 2, dtype=torch.float64) * torch.tensor([h - 1.0, w - 1.0], dtype=torch.float64)
    expected = 0.05 * coords[..., 0] + 0.03 * coords[..., 1] + 0.1
    torch.testing.assert_close(phi.query(coords)[:, 0], expected)


def test_spatially_variant_shifts_are_in_range_and_seeded():
    x = torch.rand(2, 3, 10, 10)
    # with gamma < 0.5 every shifted coordinate rounds back to its own pixel: nearest SV is the identity
    assert torch.equal(ImageResampler(NearestReconstruction(), SpatiallyVariantSampler(0.49))(x), x)
    sampler = SpatiallyVariantSampler(1.5, seed=3)
    grid = pixel_grid(2, 10, 10)
    u = sampler(None, grid) - grid
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.5 and float(u.std()) > 0.2
    a = irad.load_defense("bilinear-sv", seed=7)(x)
    b = irad.load_defense("bilinear-sv", seed=7)(x)
    c = irad.load_defense("bilinear-sv", seed=8)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert irad.load_defense("bilinear-sv").randomized and not irad.load_defense("bilinear-si").randomized



def test_seeded_sv_shift_does_not_depend_on_earlier_batches():
    """A resumed evaluation must reproduce a full one: batch B after batch A equals batch B on its own."""
    torch.manual_seed(0)
    a, b = torch.rand(3, 3, 10, 10), torch.rand(3, 3, 10, 10)
    defense = irad.load_defense("bilinear-sv", seed=7)
    defense(a)
    after_a = defense(b)
    alone = irad.load_defense("bilinear-sv", seed=7)(b)
    assert torch.equal(after_a, alone)
    torch.manual_seed(123)  # the global generator plays no part either
    assert torch.equal(defense(b), alone)
    # images within one batch still get their own shifts
    twins = defense(b[:1].expand(2, -1, -1, -1).contiguous())
    assert not torch.equal(twins[0], twins[1])

def _liif_reference(feat, coord_norm, cell_norm, mlp):
    """LIIF's query_rgb written from the LIIF paper in its own normalised coordinates (independent reference)."""
    n, c, h, w = feat.shape
    feat = F.unfold(feat, 3, padding=1).view(n, c * 9, h, w)
    rx, ry = 1 / h, 1 / w
    ys = -1 + (2 * torch.arange(h, dtype=feat.dtype) + 1) / h
    xs = -1 + (2 * torch.arange(w, dtype=feat.dtype) + 1) / w
    feat_coord = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), 0).unsqueeze(0).expand(n, 2, h, w)
    preds, areas = [], []
    for vx in (-1, 1):
        for vy in (-1, 1):
            c_ = coord_norm.clone()
            c_[..., 0] += vx * rx + 1e-6
            c_[..., 1] += vy * ry + 1e-6
            c_.clamp_(-1 + 1e-6, 1 - 1e-6)
            grid = c_.flip(-1).unsqueeze(1)
            q_feat = F.grid_sample(feat, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
            q_coord = F.grid_sample(feat_coord, grid, mode="nearest", align_corners=False)[:, :, 0].permute(0, 2, 1)
            rel = (coord_norm - q_coord) * torch.tensor([h, w], dtype=feat.dtype)
            rel_cell = cell_norm * torch.tensor([h, w], dtype=feat.dtype)
            preds.append(mlp(torch.cat([q_feat, rel, rel_cell], -1)))
            areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
    tot = sum(areas)
    areas[0], areas[3] = areas[3], areas[0]
    areas[1], areas[2] = areas[2], areas[1]
    return sum(p * (a / tot).unsqueeze(-1) for p, a in zip(preds, areas))


@pytest.mark.parametrize("chunk_rows", [None, 5, 8])
@pytest.mark.parametrize("cell_px", [None, 0.5])
def test_local_ensemble_matches_liif_reference(chunk_rows, cell_px, monkeypatch):
    """Values and gradients (to features, coordinates and weights) against LIIF's query, also when the queries are
    cut into chunks that straddle images (``CPU_CHUNK_ROWS``) and with a per-query cell (super-resolution)."""
    import irad.reconstruction.implicit as implicit

    if chunk_rows:
        monkeypatch.setattr(implicit, "CPU_CHUNK_ROWS", chunk_rows)
    torch.manual_seed(1)
    h, w, c = 5, 6, 4
    net = LocalEnsembleMLP(c, 3, (16, 16)).double()
    for p in net.parameters():
        p.data.normal_(0, 0.5)
    feat = torch.randn(2, c, h, w, dtype=torch.float64, requires_grad=True)
    coords = torch.rand(2, 13, 1, 2, dtype=torch.float64) * torch.tensor([h + 1.0, w + 1.0]) - 1  # incl. outside
    coords.requires_grad_(True)
    cell = None if cell_px is None else torch.full((2, 13, 1, 2), cell_px, dtype=torch.float64)
    ours = net(feat, coords, cell).squeeze(-1).transpose(1, 2)  # N x Q x 3
    coord_norm = torch.stack([-1 + (2 * coords[..., 0] + 1) / h, -1 + (2 * coords[..., 1] + 1) / w], -1)[:, :, 0]
    cell_norm = torch.tensor([2 / h, 2 / w], dtype=torch.float64).expand(2, 13, 2) * (cell_px or 1.0)
    ref = _liif_reference(feat, coord_norm, cell_norm, net.mlp)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    weights = torch.randn_like(ref)
    inputs = (feat, coords, *net.parameters())
    grads = torch.autograd.grad((ours * weights).sum(), inputs)
    grads_ref = torch.autograd.grad((ref * weights).sum(), inputs)
    for g, g_ref in zip(grads, grads_ref):
        assert float(g_ref.abs().max()) > 0
        torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-9)
    # SampleNet's one-pass evaluation at the pixel grid equals the general query there
    grid = pixel_grid(2, h, w, dtype=torch.float64)
    torch.testing.assert_close(net.at_grid(feat), net(feat, grid), rtol=0, atol=1e-7)



@pytest.mark.parametrize("h, w", [(64, 64), (48, 72)])
def test_local_ensemble_in_fp32_on_large_images(h, w):
    """Past 32 pixels fp32 cannot hold u - 0.5 + 1e-6: the code selection must still follow LIIF's rule there."""
    torch.manual_seed(2)
    c = 4
    net = LocalEnsembleMLP(c, 3, (16, 16))
    for p in net.parameters():
        p.data.normal_(0, 0.5)
    feat = torch.randn(1, c, h, w)
    grid = pixel_grid(1, h, w)
    # the general query at the pixel grid equals the one-pass evaluation there
    torch.testing.assert_close(net(feat, grid), net.at_grid(feat), rtol=0, atol=1e-5)
    # and, at whole-pixel shifts (integer coordinates), LIIF's own query computed in float64
    coords = (grid[:, ::5, ::7] + 1.0).contiguous()
    ours = net(feat, coords).flatten(2).transpose(1, 2)
    q = coords.reshape(1, -1, 2).double()
    coord_norm = torch.stack([-1 + (2 * q[..., 0] + 1) / h, -1 + (2 * q[..., 1] + 1) / w], -1)
    cell_norm = torch.tensor([2 / h, 2 / w], dtype=torch.float64).expand(1, q.shape[1], 2)
    ref = _liif_reference(feat.double(), coord_norm, cell_norm, net.double().mlp)
    torch.testing.assert_close(ours.double(), ref, rtol=0, atol=1e-4)

def _tiny_irad(tmp_path):
    recon = ImplicitReconstruction(n_resblocks=1, n_feats=8, hidden=(16, 16))
    samplenet = SampleNet(8, (16, 16))
    for p in samplenet.net.mlp[-1].parameters():
        p.data.normal_(0, 0.05)  # a non-trivial shift
    path = tmp_path / "irad.safetensors"
    save_resampler_weights(recon, samplenet, path, {"dataset": "cifar10"})
    return recon, samplenet, path


def test_irad_weights_round_trip_and_shapes(tmp_path):
    recon, samplenet, path = _tiny_irad(tmp_path)
    defense = irad.load_defense("irad", weights=str(path))
    x = torch.rand(3, 3, 12, 7)
    out = defense(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    torch.testing.assert_close(out, ImageResampler(recon, samplenet)(x))
    assert defense(x.double()).dtype == torch.float64
    disco = irad.load_defense("disco", weights=str(path))
    assert not torch.allclose(disco(x), out)  # SampleNet moved the sampling points


@pytest.mark.parametrize("name", ["none", "nearest-si", "bilinear-si", "bilinear-sv", "irad", "disco"])
def test_gradients_reach_the_input(name, tmp_path):
    kwargs = {"weights": str(_tiny_irad(tmp_path)[2])} if name in ("irad", "disco") else {}
    defense = irad.load_defense(name, **kwargs)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    loss = F.cross_entropy(irad.defend(clf, defense)(x), torch.tensor([1, 2]))
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert float(x.grad.abs().sum()) > 0  # nearest-si: exact gradient in test_nearest_si_gradient_counts_reads


def test_nearest_si_gradient_counts_reads():
    """nearest-si copies pixels, so d(out.sum())/dx[r, c] is the number of output pixels that read pixel (r, c).

    Derivation (interpolation.py, _Nearest): output pixel i queries u = i + d = i + 1.5 and reads input index
    clamp(floor(u + 0.5), 0, H - 1) = min(i + 2, 7) on an 8 x 8 image. Output rows 0..7 thus read input rows
    2, 3, 4, 5, 6, 7, 7, 7: rows 0 and 1 are never read, rows 2..6 once, row 7 three times (by outputs 5, 6, 7).
    Columns follow the same rule, independently, so pixel (r, c) is read a[r] * a[c] times with
    a = [0, 0, 1, 1, 1, 1, 1, 3] (sum 8 = one read per output pixel along each axis). Inputs are in [0, 1), so the
    output clamp to [0, 1] passes the gradient unchanged."""
    a = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0])
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    out = irad.load_defense("nearest-si", d=1.5)(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(grad, torch.outer(a, a).expand(2, 3, 8, 8))


@pytest.mark.parametrize("bad, msg", [
    (torch.rand(3, 8, 8), "batch"),
    (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), "dtype"),
    (torch.full((1, 3, 4, 4), float("nan")), "NaN"),
    (torch.rand(1, 3, 4, 4) * 255, "255"),
    (torch.rand(0, 3, 4, 4), "empty"),
    (torch.rand(1, 8, 8, 3), "channels"),
])
def test_bad_input_is_a_clear_error(bad, msg):
    with pytest.raises(InputError, match=msg):
        irad.load_defense("bilinear-si")(bad)


def test_clean2clean_training_reconstructs_the_input():
    """A small implicit model trained briefly with L1 on clean->clean reproduces its inputs (PSNR > 28 dB)."""
    torch.manual_seed(0)
    from irad.training.tasks import TASKS

    x = F.interpolate(torch.rand(2, 3, 3, 3), size=(8, 8), mode="bilinear", align_corners=False)
    model = ImplicitReconstruction(n_resblocks=1, n_feats=8, hidden=(32, 32))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    task = TASKS.build("clean2clean")
    for _ in range(150):
        b = task(x, None, torch.Generator().manual_seed(0))
        loss = F.l1_loss(model(b.inputs).query(b.coords, b.cell), b.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = ImageResampler(model, IdentitySampler())(x)
    psnr = -10 * math.log10(float(((out - x) ** 2).mean()))
    assert psnr > 28, psnr


def test_images_and_weights_on_different_devices_is_a_clear_error():
    defense = irad.load_defense("disco").to("meta")  # a second device that exists on every machine
    with pytest.raises(InputError, match="weights are on meta"):
        defense(torch.rand(1, 3, 8, 8))
