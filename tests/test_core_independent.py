"""Core paths checked against facts that do not come from the code under test: the evaluation presets build and
run, Table 15's SampleNet on nearest/bilinear reconstructions (identity when untrained, otherwise the shift of
the independent reference resampled with ``grid_sample``), input gradients of IRAD / DISCO against the plain
reference of ``irad.reference`` in float64, and ``LocalEnsembleMLP`` on single rows / columns and
without local ensemble against LIIF's query written out by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import irad
from irad.reference import ReferenceIRAD, liif_centres, liif_query, make_random_weights
from irad.errors import InputError
from irad.evaluation.config import parse_spec
from irad.evaluation.presets import FIG4_DISCO, FIG4_IRAD, PAPER, PRESETS
from irad.reconstruction import BilinearReconstruction, ImplicitReconstruction, NearestReconstruction, pixel_grid
from irad.reconstruction.implicit import LocalEnsembleMLP
from irad.resampling import ImageResampler
from irad.sampling import SampleNet
from irad.training.implicit import save_resampler_weights

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"n_resblocks": 1, "n_feats": 8, "hidden": (16, 16)}
F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """Random IRAD weights of a small architecture, SampleNet's last layer N(0, 2): non-trivial shifts."""
    path = tmp_path_factory.mktemp("core") / "irad_small.safetensors"
    return make_random_weights(path, samplenet_std=2.0, seed=5, **SMALL)


@pytest.fixture(scope="module")
def untrained_samplenet_weights(tmp_path_factory):
    """Random implicit reconstruction, SampleNet as constructed (last layer zero)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        recon = ImplicitReconstruction(**SMALL)
        samplenet = SampleNet(SMALL["n_feats"], SMALL["hidden"])
    assert not any(p.abs().sum() for p in samplenet.net.mlp[-1].parameters())
    path = tmp_path_factory.mktemp("core0") / "irad_zero.safetensors"
    save_resampler_weights(recon, samplenet, path, {"dataset": "cifar10"})
    return path


# ----------------------------------------------------------------------------------------------------------------
# 1. Presets
# ----------------------------------------------------------------------------------------------------------------

DEFENSE_SPECS = sorted({spec for preset in PRESETS.values() for spec in preset["defenses"]})
ATTACK_SPECS = sorted({spec for preset in PRESETS.values() for spec in preset["attacks"]})


@pytest.mark.parametrize("spec", DEFENSE_SPECS)
def test_every_preset_defense_parses_builds_and_purifies(spec):
    """Each defense of every preset builds from its spec (shipped weights, as an evaluation run would) and maps a
    [0, 1] batch to a [0, 1] batch of the same shape."""
    name, params = parse_spec(spec)
    assert name and ":" not in name and "=" not in name
    # the spec's text round-trips: every "key=value" of the spec is in params
    assert len(params) == (spec.count("=")), (spec, params)
    defense = irad.load_defense(name, **params)
    assert isinstance(defense, nn.Module) and not defense.training
    x = torch.rand(2, 3, 8, 8, generator=_gen(0))
    with torch.no_grad():
        out = defense(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize("table", sorted(PAPER))
def test_every_paper_row_is_a_defense_of_its_preset(table):
    assert table in PRESETS
    missing = [d for d in PAPER[table] if d not in PRESETS[table]["defenses"]]
    assert not missing, missing


def test_fig4_figures_cover_the_same_attacks_for_both_defenses():
    assert set(FIG4_IRAD) == set(FIG4_DISCO) == set(PRESETS["fig4"]["attacks"])


@pytest.mark.parametrize("spec", ATTACK_SPECS)
def test_every_preset_attack_builds(spec):
    from irad.attacks import ATTACKS, build_attack

    name, params = parse_spec(spec)
    assert name in ATTACKS
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    attack = build_attack(name, model, eps=8 / 255, seed=0, **params)
    assert attack.name == name and attack.eps == pytest.approx(8 / 255)
    for key, value in params.items():  # the spec's settings reach the attack
        assert attack.params[key] == value


def test_every_preset_threat_model_and_victim_is_registered():
    from irad.attacks import THREAT_MODELS
    from irad.classifiers import CLASSIFIERS

    for preset in PRESETS.values():
        assert preset["threat_models"] and preset["victims"]
        for tm in preset["threat_models"]:
            assert tm in THREAT_MODELS
        for victim in preset["victims"]:
            assert parse_spec(victim)[0] in CLASSIFIERS


# ----------------------------------------------------------------------------------------------------------------
# 2. Table 15: SampleNet on nearest / bilinear reconstructions, with the implicit encoder's features
# ----------------------------------------------------------------------------------------------------------------

def _table15(recon: str, weights) -> nn.Module:
    name, params = parse_spec(f"resample:reconstruction={recon},sampler=samplenet")
    return irad.load_defense(name, weights=str(weights), **params)


def _grid_sample_pixels(x: torch.Tensor, coords: torch.Tensor, mode: str) -> torch.Tensor:
    """x sampled at pixel-unit (row, col) ``coords`` with torch's grid_sample: align_corners=True maps pixel k to
    -1 + 2k / (size - 1); padding 'border' clamps outside coordinates to the border (irad's convention)."""
    h, w = x.shape[-2:]
    gx = 2 * coords[..., 1] / (w - 1) - 1
    gy = 2 * coords[..., 0] / (h - 1) - 1
    return F.grid_sample(x, torch.stack((gx, gy), -1), mode=mode, padding_mode="border", align_corners=True)


@pytest.mark.parametrize("recon", ["bilinear", "nearest"])
def test_table15_untrained_samplenet_is_exactly_the_identity(recon, untrained_samplenet_weights):
    """SampleNet's last layer is zero: the shift is 0, U = G, and nearest / bilinear are exact at integer points."""
    defense = _table15(recon, untrained_samplenet_weights)
    assert isinstance(defense.sampler, SampleNet) and defense.sampler.encoder is not None
    x = torch.rand(2, 3, 7, 9, generator=_gen(1))
    assert torch.equal(defense(x), x)


@pytest.mark.parametrize("recon", ["bilinear", "nearest"])
def test_table15_resamples_at_the_shift_of_the_implicit_encoder(recon, small_weights):
    """Output = the image resampled (torch's grid_sample, border-clamped) at G + shift, where the shift is the
    independent reference's SampleNet on the features of the weight file's implicit encoder."""
    defense = _table15(recon, small_weights).to(F64)
    ref = ReferenceIRAD(irad.load_defense("irad", weights=str(small_weights)).to(F64)).eval()
    x = torch.rand(2, 3, 6, 7, generator=_gen(2), dtype=F64)
    with torch.no_grad():
        out = defense(x)
        shift = ref.shift(x)
    assert float(shift.abs().max()) > 0.5  # the shift moves samples by more than half a pixel somewhere
    coords = pixel_grid(2, 6, 7, dtype=F64) + shift
    expected = _grid_sample_pixels(x, coords, recon).clamp(0, 1)
    # at_grid reproduces LIIF's interior ensemble to ~1e-9 relative; nearest rounding is unaffected by that
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    assert float((out - x).abs().max()) > 0.05


@pytest.mark.parametrize("recon", [NearestReconstruction(), BilinearReconstruction()])
def test_samplenet_without_features_or_encoder_is_a_clear_error(recon):
    module = ImageResampler(recon, SampleNet(8, (16, 16)))
    with pytest.raises(InputError, match="per-pixel features"):
        module(torch.rand(1, 3, 5, 5))


# ----------------------------------------------------------------------------------------------------------------
# 3. Input gradients of IRAD and DISCO against the independent reference (float64)
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("h, w", [(5, 6), (6, 6), (7, 4)])
@pytest.mark.parametrize("which", ["irad", "disco"])
def test_input_gradients_match_the_reference(which, h, w, small_weights):
    """d/dx of <out, v> for a fixed random v: irad's optimised module against the reference (LIIF query, encoder run
    twice), sharing the same tensors. The last row / column take at_grid's tie branch."""
    ours = irad.load_defense(which, weights=str(small_weights)).to(F64)
    ref = ReferenceIRAD(ours, use_samplenet=(which == "irad")).eval()
    x = torch.rand(2, 3, h, w, generator=_gen(3), dtype=F64).requires_grad_(True)
    out, out_ref = ours(x), ref(x)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-8)
    v = torch.randn(out.shape, generator=_gen(4), dtype=F64)
    (g,) = torch.autograd.grad((out * v).sum(), x)
    (g_ref,) = torch.autograd.grad((out_ref * v).sum(), x)
    # most outputs are not clamped, so gradients flow; they reach every pixel of the last row and column
    assert float(((out_ref > 0) & (out_ref < 1)).double().mean()) > 0.5
    assert float(g_ref[..., -1, :].abs().sum()) > 0 and float(g_ref[..., :, -1].abs().sum()) > 0
    rel = float((g - g_ref).norm() / g_ref.norm())
    assert rel <= 1e-8, rel
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------------------------------
# 4. LocalEnsembleMLP: single row / column, and without local ensemble
# ----------------------------------------------------------------------------------------------------------------

def _net(local_ensemble: bool = True, c: int = 4, seed: int = 7) -> LocalEnsembleMLP:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = LocalEnsembleMLP(c, 3, (16, 16), local_ensemble=local_ensemble).double()
        for p in net.parameters():
            p.data.normal_(0, 0.5)
    return net


def _linears(net: LocalEnsembleMLP) -> list[nn.Linear]:
    return [m for m in net.mlp if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("h, w", [(1, 6), (5, 1), (1, 1)])
def test_at_grid_on_a_single_row_or_column_matches_liif(h, w):
    """On one row LIIF's 4 neighbours tie along the fixed axis (all areas 1e-9), so every pixel averages its own
    code with the next one: not the interior shortcut. Values and feature gradients against liif_query."""
    net, c, n = _net(), 4, 2
    feat = torch.randn(n, c, h, w, generator=_gen(5), dtype=F64, requires_grad=True)
    got = net.at_grid(feat)
    assert got.shape == (n, 3, h, w)
    torch.testing.assert_close(got, net(feat, pixel_grid(n, h, w, dtype=F64)), rtol=0, atol=1e-12)
    coord = liif_centres(h, w, dtype=F64).reshape(1, h * w, 2).expand(n, -1, -1)
    cell = torch.tensor([2.0 / h, 2.0 / w], dtype=F64).expand(n, h * w, 2)
    ref = liif_query(feat, coord, cell, _linears(net)).permute(0, 2, 1).reshape(n, 3, h, w)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    if h * w > 1:  # not the own code alone: the 50/50 mix with the next code along the free axis
        own = net.mlp(torch.cat([F.unfold(feat, 3, padding=1).view(n, c * 9, h * w).transpose(1, 2),
                                 torch.zeros(n, h * w, 2, dtype=F64), torch.full((n, h * w, 2), 2.0, dtype=F64)],
                                -1)).transpose(1, 2).reshape(n, 3, h, w)
        assert float((own - ref).detach().abs().max()) > 1e-3
    v = torch.randn(ref.shape, generator=_gen(6), dtype=F64)
    (g,) = torch.autograd.grad((got * v).sum(), feat)
    (g_ref,) = torch.autograd.grad((ref * v).sum(), feat)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


def _no_ensemble_reference(net: LocalEnsembleMLP, feat: torch.Tensor, coords: torch.Tensor,
                           cell_px: torch.Tensor | None) -> torch.Tensor:
    """LIIF without local ensemble: the latent code whose cell [k - 0.5, k + 0.5) holds the (clamped) query, i.e.
    k = clamp(floor(u + 0.5)); the MLP on [3x3-unfolded feature of k, (u - k) * 2, cell * 2] (one pixel = 2 units).
    coords N x H' x W' x 2 in pixel units; returns N x out x H' x W'."""
    n, c, h, w = feat.shape
    unfolded = F.unfold(feat, 3, padding=1).view(n, c * 9, h, w).permute(0, 2, 3, 1)  # N x h x w x 9C
    kr = torch.floor(coords[..., 0] + 0.5).clamp(0, h - 1).long()
    kc = torch.floor(coords[..., 1] + 0.5).clamp(0, w - 1).long()
    b = torch.arange(n).view(n, 1, 1).expand_as(kr)
    q_feat = unfolded[b, kr, kc]
    rel = torch.stack((coords[..., 0] - kr, coords[..., 1] - kc), -1) * 2
    cell = torch.ones_like(rel) if cell_px is None else cell_px.expand_as(rel)
    return net.mlp(torch.cat([q_feat, rel, cell * 2], -1)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("cell_px", [None, 0.5])
def test_no_local_ensemble_uses_the_code_of_the_cell_holding_the_query(cell_px):
    h, w, c, n = 5, 6, 4, 2
    net = _net(local_ensemble=False)
    feat = torch.randn(n, c, h, w, generator=_gen(8), dtype=F64, requires_grad=True)
    # random queries, some outside the image (clamped to the border code, relative coordinate unclamped)
    coords = torch.rand(n, 9, 4, 2, generator=_gen(9), dtype=F64) * torch.tensor([h + 2.0, w + 2.0], dtype=F64) - 1
    coords.requires_grad_(True)
    cell = None if cell_px is None else torch.full((n, 9, 4, 2), cell_px, dtype=F64)
    got = net(feat, coords, cell)
    ref = _no_ensemble_reference(net, feat, coords, cell)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    v = torch.randn(ref.shape, generator=_gen(10), dtype=F64)
    grads = torch.autograd.grad((got * v).sum(), (feat, coords))
    grads_ref = torch.autograd.grad((ref * v).sum(), (feat, coords))
    for g, g_ref in zip(grads, grads_ref):
        assert float(g_ref.abs().max()) > 0
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)
    # at the pixel grid: each pixel's own code, relative coordinate 0, cell 1 pixel
    grid = pixel_grid(n, h, w, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(net.at_grid(feat), _no_ensemble_reference(net, feat, grid, None),
                                   rtol=1e-12, atol=1e-12)
