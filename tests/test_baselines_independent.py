"""Baselines against independent references: DiffPure's reverse VP-SDE step and a whole seeded run against a
hand-written Euler-Maruyama loop, Admix's partners and one/two steps against the paper's formula, STL's adjoint,
lasso optimality (KKT) and Lipschitz refresh, and the median filter's borders against an independently padded image.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import irad.attacks.admix as admix_module
from irad.attacks import build_attack
from irad.attacks.admix import pick_partners
from irad.defenses.classic import MedianFilter
from irad.defenses.diffpure import DiffPure
from irad.defenses.stl import SparseTransformationLayer, analyze, synthesize
from irad.diffusion import VPSDE

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

# DiffPure's VP-SDE constants (Nie et al. 2022, following Song et al. 2021): beta(t) = 0.1 + t (20 - 0.1)
BETA_MIN, BETA_MAX = 0.1, 20.0


def vp_beta(t: float) -> float:
    return BETA_MIN + t * (BETA_MAX - BETA_MIN)


def vp_alpha_sigma(t: float) -> tuple[float, float]:
    """Marginal of dx = -1/2 beta x dt + sqrt(beta) dw: mean coefficient alpha = exp(-1/2 int_0^t beta) with
    int_0^t beta = beta_min t + 1/2 t^2 (beta_max - beta_min); variance sigma^2 = 1 - alpha^2."""
    integral = BETA_MIN * t + 0.5 * t * t * (BETA_MAX - BETA_MIN)
    alpha = math.exp(-0.5 * integral)
    return alpha, math.sqrt(1 - alpha * alpha)


def reverse_em(x: torch.Tensor, t: float, dt: float, eps_hat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Reverse-time SDE (Anderson 1982 / Song et al. 2021): dx = [f - g^2 score] dt + g dw_bar, f = -1/2 beta x,
    g = sqrt(beta), score = -eps_hat / sigma(t). Stepping *backwards* from t to t - dt with Euler-Maruyama:
    x - [f - g^2 score] dt + g sqrt(dt) z = x + [1/2 beta x + beta score] dt + sqrt(beta dt) z."""
    beta = vp_beta(t)
    _, sigma = vp_alpha_sigma(t)
    score = -eps_hat / sigma
    return x - (-0.5 * beta * x - beta * score) * dt + math.sqrt(beta * dt) * z


class StubScore(nn.Module):
    """A stand-in for the score U-Net: eps_hat(y, t) = w * tanh(y) + c * t (or a constant when w = 0), recording
    the times it is called at. Only what DiffPure uses: in_channels, check_input, parameters (for the dtype)."""

    in_channels = 3

    def __init__(self, w: float = 0.7, c: float = 1.5, const: float | None = None) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float64), requires_grad=False)
        self.c, self.const, self.times = c, const, []

    def check_input(self, x: torch.Tensor) -> None:
        pass

    def forward(self, y: torch.Tensor, t: float) -> torch.Tensor:
        self.times.append(t)
        if self.const is not None:
            return torch.full_like(y, self.const)
        return self.w * torch.tanh(y) + self.c * t


# ------------------------------------------------------------------------------------------ DiffPure


def test_reverse_vp_sde_step_against_a_hand_computed_value():
    """x = 1, t = 0.1, dt = 0.01, eps_hat = 0.5, z = 0.3:
    beta(0.1) = 0.1 + 0.1 * 19.9 = 2.09; log alpha = -(0.1 * 0.1 + 0.5 * 0.01 * 19.9) / 2 = -0.05475,
    sigma = sqrt(1 - exp(-0.1095)) = 0.3220525355; score = -0.5 / sigma = -1.5525390;
    x' = 1 + (0.5 * 2.09 - 2.09 * 1.5525390) * 0.01 + sqrt(0.0209) * 0.3 = 1.0213723748 (bc -l)."""
    assert vp_beta(0.1) == pytest.approx(2.09) and vp_alpha_sigma(0.1)[1] == pytest.approx(0.3220525355, abs=1e-9)
    x, eps, z = (torch.tensor([v], dtype=torch.float64) for v in (1.0, 0.5, 0.3))
    expected = 1.0213723748
    assert float(reverse_em(x, 0.1, 0.01, eps, z)) == pytest.approx(expected, abs=1e-9)
    assert float(VPSDE().reverse_step(x, 0.1, 0.01, eps, z)) == pytest.approx(expected, abs=1e-9)
    # the same step through the defense, with a constant eps-predictor
    stub = StubScore(const=0.5)
    defense = DiffPure(stub, t_star=0.1, steps=10)
    y = torch.ones(1, 3, 2, 2, dtype=torch.float64)
    out = defense._step(y, 0.1, 0.01, torch.full_like(y, 0.3))
    torch.testing.assert_close(out, torch.full_like(y, expected), atol=1e-9, rtol=0)
    assert stub.times == [0.1]
    # a noise draw of the opposite sign moves the other way by 2 sqrt(beta dt) z
    other = float(VPSDE().reverse_step(x, 0.1, 0.01, eps, -z))
    assert expected - other == pytest.approx(2 * math.sqrt(0.0209) * 0.3)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_seeded_diffpure_run_equals_a_hand_written_loop(requires_grad):
    """DiffPure's documented procedure, written out: y = 2x - 1; y = alpha(t*) y + sigma(t*) eps; then for
    t = t*, t* - dt, ..., dt one reverse Euler-Maruyama step with fresh noise; out = clamp((y + 1) / 2, 0, 1).
    The generator seeded with ``seed`` draws the forward noise first, then one N(0, I) draw per step."""
    seed, t_star, steps = 7, 0.06, 6
    x = 0.1 + 0.8 * torch.rand(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    stub = StubScore()
    defense = DiffPure(stub, t_star=t_star, steps=steps, seed=seed)
    out = defense(x.clone().requires_grad_(requires_grad))

    gen = torch.Generator().manual_seed(seed)
    alpha, sigma = vp_alpha_sigma(t_star)
    y = alpha * (2 * x - 1) + sigma * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    dt = t_star / steps
    times = []
    for i in range(steps):
        t = t_star - i * dt
        times.append(t)
        z = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        y = reverse_em(y, t, dt, 0.7 * torch.tanh(y) + 1.5 * t, z)
    expected = ((y + 1) / 2).clamp(0, 1)

    torch.testing.assert_close(out.detach(), expected, atol=1e-12, rtol=0)
    assert ((expected > 0) & (expected < 1)).float().mean() > 0.5  # mostly unclamped: the comparison has teeth
    assert stub.times[-steps:] == pytest.approx(times) and times[-1] == pytest.approx(dt)
    assert not torch.allclose(out.detach(), x, atol=1e-2)


# ------------------------------------------------------------------------------------------ Admix


def test_pick_partners_prefers_other_classes_and_never_picks_itself_when_it_can_avoid_it():
    torch.manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1])
    idx = pick_partners(labels, 200)
    assert idx.shape == (200, 4)
    assert torch.equal(labels[idx] != labels[None, :], torch.ones(200, 4, dtype=torch.bool))
    for i, others in enumerate([{2, 3}, {2, 3}, {0, 1}, {0, 1}]):
        assert set(idx[:, i].tolist()) == others  # both images of the other class are drawn
    assert torch.equal(pick_partners(torch.tensor([5]), 7), torch.zeros(7, 1, dtype=torch.long))
    same = pick_partners(torch.tensor([2, 2, 2]), 200)
    assert not (same == torch.arange(3)[None, :]).any()
    assert set(same[:, 0].tolist()) == {1, 2}


def admix_reference(model: nn.Module, x: torch.Tensor, y: torch.Tensor, partners: list[torch.Tensor], eps: float,
                    alpha: float, steps: int, decay: float, m1: int, eta: float) -> torch.Tensor:
    """Admix (Wang et al. 2021, Alg. 1) on MI-FGSM, per image:
    g_bar = 1/(m1 m2) sum_{x'} sum_i grad_x J(gamma_i (x_adv + eta x'), y), gamma_i = 1/2^i;
    g = decay g + g_bar / ||g_bar||_1; x_adv = Clip_{x, eps}(x_adv + alpha sign(g)) in [0, 1].
    Each copy's gradient is taken per image (its own forward pass) w.r.t. the mixed input, and the chain rule
    d(mixed)/d(x_adv) = gamma_i applied by hand."""
    x_adv, g = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        g_bar = torch.zeros_like(x)
        for perm in partners:
            for i in range(m1):
                gamma = 1 / 2**i
                for n in range(len(x)):
                    mixed = (gamma * (x_adv[n] + eta * x[perm[n]]))[None].detach().requires_grad_(True)
                    loss = F.cross_entropy(model(mixed), y[n:n + 1])
                    g_bar[n] += gamma * torch.autograd.grad(loss, mixed)[0][0]
        g_bar /= m1 * len(partners)
        g = decay * g + g_bar / g_bar.abs().sum(dim=(1, 2, 3), keepdim=True)
        x_adv = torch.min(torch.max(x_adv + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("clamp_mix", [True, False])
def test_admix_steps_equal_the_papers_formula_with_known_partners(monkeypatch, steps, clamp_mix):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()
    with torch.no_grad():
        model[1].weight.mul_(8)  # a strongly non-linear tanh layer
    x = 0.1 + 0.3 * torch.rand(4, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 0, 1, 1])
    partners = [torch.tensor([2, 3, 0, 1]), torch.tensor([3, 2, 1, 0])]
    monkeypatch.setattr(admix_module, "pick_partners", lambda labels, k: torch.stack(partners[:k]))
    eps, alpha, m1, eta = 8 / 255, 4 / 255, 3, 0.5  # every mixed copy stays in [0, 0.65]: clamp_mix is inert
    attack = build_attack("admix", model, eps=eps, seed=0, steps=steps, alpha=alpha, m1=m1, m2=2, eta=eta,
                          decay=1.0, clamp_mix=clamp_mix)
    out = attack(x, y)
    expected = admix_reference(model, x, y, partners, eps, alpha, steps, 1.0, m1, eta)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    # the comparison has teeth: other partners (the images themselves), or no scale copies, give other steps
    assert not torch.allclose(expected, admix_reference(model, x, y, [torch.arange(4)] * 2, eps, alpha, steps, 1.0,
                                                        m1, eta))
    assert not torch.allclose(expected, admix_reference(model, x, y, partners, eps, alpha, steps, 1.0, 1, eta))


# ------------------------------------------------------------------------------------------ STL


def test_synthesize_is_a_true_convolution_and_analyze_its_adjoint():
    gen = torch.Generator().manual_seed(0)
    k, c, s, h, w = 4, 3, 3, 5, 6
    atoms = torch.randn(k, c, s, s, dtype=torch.float64, generator=gen)
    z = torch.randn(2, k, h + s - 1, w + s - 1, dtype=torch.float64, generator=gen)
    x = torch.randn(2, c, h, w, dtype=torch.float64, generator=gen)
    # "valid" 2-D convolution summed over atoms: out[i, j] = sum_{k, a, b} z_k[i + s-1-a, j + s-1-b] d_k[a, b]
    ref = torch.zeros(2, c, h, w, dtype=torch.float64)
    for a in range(s):
        for b in range(s):
            window = z[:, :, s - 1 - a:s - 1 - a + h, s - 1 - b:s - 1 - b + w]
            ref += torch.einsum("nkhw,kc->nchw", window, atoms[:, :, a, b])
    torch.testing.assert_close(synthesize(z, atoms), ref, atol=1e-12, rtol=0)
    lhs = float((synthesize(z, atoms) * x).sum())
    rhs = float((z * analyze(x, atoms)).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_fista_codes_satisfy_the_lasso_kkt_conditions():
    """z* = argmin 1/2 ||h - D z||^2 + lam ||z||_1 iff g = D^T (D z - h) = analyze(synthesize(z) - h) satisfies
    |g| <= lam where z = 0 and g = -lam sign(z) where z != 0."""
    lam = 0.05
    gen = torch.Generator().manual_seed(0)
    atoms = torch.randn(4, 3, 3, 3, generator=gen)
    atoms = atoms / atoms.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # unit-norm atoms, as STL's dictionaries
    stl = SparseTransformationLayer(atoms, lam=lam, iterations=3000, lowpass=0.0)
    high = 0.3 * torch.randn(1, 3, 5, 5, dtype=torch.float64, generator=gen)
    z = stl.codes(high)
    d = stl.atoms.double()
    g = analyze(synthesize(z, d) - high, d)
    on, off = z != 0, z == 0
    assert 0.1 < float(on.double().mean()) < 0.9  # both conditions are exercised
    tol = 1e-6
    assert float(g[off].abs().max()) <= lam + tol
    torch.testing.assert_close(g[on], -lam * z[on].sign(), atol=tol, rtol=0)


def test_loading_scaled_atoms_refreshes_the_lipschitz_constant():
    """||3 D||^2 = 9 ||D||^2, and the step stays safe: L >= ||D||^2 computed from the explicit matrix of D."""
    atoms = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    stl = SparseTransformationLayer(atoms, lam=0.05, iterations=5)
    before = stl.lipschitz
    stl.load_state_dict({"atoms": 3 * atoms})
    assert torch.equal(stl.atoms, 3 * atoms)
    assert stl.lipschitz == pytest.approx(9 * before, rel=1e-6)
    h = w = 5
    basis = torch.eye(4 * (h + 2) * (w + 2), dtype=torch.float64).view(-1, 4, h + 2, w + 2)
    matrix = synthesize(basis, stl.atoms.double()).flatten(1)  # rows: codes, columns: pixels
    assert stl.lipschitz >= float(torch.linalg.matrix_norm(matrix, ord=2)) ** 2


# ------------------------------------------------------------------------------------------ median filter


def median_image() -> torch.Tensor:
    """A 1 x 1 x 4 x 5 image whose corner and last-row 3x3 medians differ between reflect, replicate and zero
    padding (worked out in the test)."""
    x = torch.rand(1, 1, 4, 5, generator=torch.Generator().manual_seed(0))
    x[0, 0, :2, :2] = torch.tensor([[0.9, 0.6], [0.7, 0.1]])
    x[0, 0, 2, 1:4] = torch.tensor([0.2, 0.3, 0.4])
    x[0, 0, 3, 1:4] = torch.tensor([0.8, 0.9, 0.95])
    return x.expand(1, 3, 4, 5).contiguous()


@pytest.mark.parametrize("requires_grad", [False, True])
def test_median_filter_borders_use_the_documented_reflect_padding(requires_grad):
    """Docstring: 3x3 median with reflect padding. Corner (0, 0): reflect window rows/cols (1, 0, 1) holds
    0.1 x4, 0.6 x2, 0.7 x2, 0.9 -> median 0.6 (replicate: 0.7, zeros: 0). Pixel (3, 2): rows (2, 3, 2) hold
    0.2, 0.3, 0.4 twice and 0.8, 0.9, 0.95 -> median 0.4 (replicate: 0.8, zeros: 0.3)."""
    x = median_image()
    out = MedianFilter(3)(x.clone().requires_grad_(requires_grad)).detach()

    def reference(mode: str, i: int, j: int) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode=mode) if mode != "zeros" else F.pad(x, (1, 1, 1, 1))
        window = padded[:, :, i:i + 3, j:j + 3].reshape(1, 3, 9)
        return window.sort(dim=-1).values[..., 4]  # the 5th of 9 sorted values

    for (i, j), hand in (((0, 0), 0.6), ((3, 2), 0.4)):
        torch.testing.assert_close(reference("reflect", i, j), torch.full((1, 3), hand))
        torch.testing.assert_close(out[:, :, i, j], reference("reflect", i, j))
        for other in ("replicate", "zeros"):
            assert not torch.allclose(reference(other, i, j), reference("reflect", i, j))
    # interior pixels are plain 3x3 medians
    torch.testing.assert_close(out[:, :, 1:3, 1:4], reference_interior(x))


def reference_interior(x: torch.Tensor) -> torch.Tensor:
    rows = []
    for i in range(1, 3):
        rows.append(torch.stack([x[:, :, i - 1:i + 2, j - 1:j + 2].reshape(1, 3, 9).sort(-1).values[..., 4]
                                 for j in range(1, 4)], -1))
    return torch.stack(rows, -2)
