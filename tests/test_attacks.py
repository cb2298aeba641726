"""Attacks, threat models, BPDA/EOT and the adversarial sanity checks, on tiny models (no datasets)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from irad.attacks import (ATTACKS, THREAT_MODELS, AttackError, BPDAWrapper, build_attack, check_adversarial,
                          gradient_health)
from irad.errors import InputError, UnknownNameError

EPS = 8 / 255
# fewer iterations / samples than the defaults for the multi-pass attacks (the defaults cost 60-150 passes a call)
FAST = {"autoattack": {"n_iter": 3, "n_queries": 20}, "autoattack-rand": {"n_iter": 3, "eot_iter": 2},
        "admix": {"steps": 3, "m1": 2, "m2": 2}, "vmifgsm": {"steps": 4, "N": 2}, "vnifgsm": {"steps": 4, "N": 2},
        "eotpgd": {"steps": 4}, "jitter": {"steps": 4}, "apgd": {"steps": 4}, "pgd-strong": {"steps": 4}}
EXPECTED_NAMES = {"autoattack", "autoattack-rand", "fgsm", "bim", "pgd", "rfgsm", "tpgd", "apgd", "eotpgd", "ffgsm",
                  "mifgsm", "jitter", "vmifgsm", "vnifgsm", "admix", "pgd-paper", "pgd-strong"}


def fast(name: str) -> dict:
    """Small iteration counts so that a test finishes in well under a second on a busy CPU."""
    return dict(FAST.get(name, {}))


class Constant(nn.Module):
    """Ignores its input: constant logits (class 3 wins). ``0 * x`` keeps x in the graph with an all-zero gradient,
    because torchattacks differentiates with autograd.grad, which rejects inputs that are not used at all."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.linspace(0, 1, classes).roll(4))  # argmax at index 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0 * x.flatten(1).sum(1, keepdim=True)


class MeanThreshold(nn.Module):
    """Two classes decided by the mean pixel value: class 1 iff mean(x) > 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = 10 * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([-m, m], 1)


class Round(nn.Module):
    """A non-differentiable purifier: rounds every pixel to 0 or 1 (its gradient is 0 almost everywhere)."""

    randomized = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x)


def linear(classes: int, seed: int = 0, scale: float = 0.1) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, classes))
    with torch.no_grad():
        model[1].weight.normal_(0, scale)
        model[1].bias.zero_()
    return model.eval()


def images(n: int = 8, seed: int = 1) -> torch.Tensor:
    x = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    x[:, 0, 0, :4] = 0.0  # pixels on the range boundary, where clipping to [0, 1] matters
    x[:, 0, 1, :4] = 1.0
    return x


def separable(n: int = 16, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: pixels in [0.3, 0.45]; class 1: pixels in [0.55, 0.7]."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.3 + 0.15 * torch.rand(n, 3, 8, 8, generator=gen) + 0.25 * y.view(-1, 1, 1, 1)
    return x, y


def test_registry_holds_the_papers_attacks():
    assert set(ATTACKS.names()) == EXPECTED_NAMES
    assert set(THREAT_MODELS.names()) == {"oblivious", "transfer", "bpda", "full-gradient"}


@pytest.mark.filterwarnings("ignore:AutoAttack")
@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_input_ignoring_classifier_stays_fully_accurate(name):
    model = Constant().train()  # the attack must switch to eval mode and restore train mode afterwards
    x, y = images(8), torch.full((8,), 3)
    x_adv = build_attack(name, model, eps=EPS, **fast(name))(x, y)
    assert (model(x_adv).argmax(1) == y).all()
    assert model.training and model.logits.requires_grad


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_every_attack_stays_in_the_eps_ball_and_image_range(name):
    model = linear(10)
    x = images(8)
    y = model(x).argmax(1)
    rng_before = torch.get_rng_state()
    attack = build_attack(name, model, eps=EPS, seed=5, **fast(name))
    x_adv = attack(x, y)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's random stream is untouched
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert (x_adv != x).any()  # it did attack (the gradient of a linear model is never zero)


@pytest.mark.parametrize("name", ["pgd", "admix"])
def test_attacks_are_reproducible_from_their_seed(name):
    model, x = linear(10), images(6)
    y = model(x).argmax(1)
    first = build_attack(name, model, seed=1, **fast(name))(x, y)
    assert torch.equal(build_attack(name, model, seed=1, **fast(name))(x, y), first)
    assert not torch.equal(build_attack(name, model, seed=2, **fast(name))(x, y), first)  # random start / partners


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "mifgsm", "admix"])
def test_two_class_linear_model_is_pushed_to_the_closed_form_corner(name):
    # For logits W x + b with two classes, d CE / dx = p_other * (w_other - w_y): the loss-increasing direction is
    # sign(w_other - w_y) everywhere, so FGSM and every sign-gradient iteration reaching the ball's boundary end
    # at clip(x + eps * sign(w_other - w_y), 0, 1).
    model = linear(2, seed=3)
    x = images(10, seed=4)
    y = torch.tensor([0, 1] * 5)
    w = model[1].weight.detach()
    direction = torch.sign(w[1 - y] - w[y]).view_as(x)
    expected = (x + EPS * direction).clamp(0, 1)
    params = {"steps": 4, "m1": 2, "m2": 2} if name == "admix" else {}  # alpha = eps / 4: 4 steps reach the corner
    x_adv = build_attack(name, model, eps=EPS, **params)(x, y)
    torch.testing.assert_close(x_adv, expected, atol=1e-6, rtol=0)


def test_pgd_breaks_an_undefended_trained_model_on_separable_data():
    x, y = separable(16)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(30):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == y).all()
    x_adv = build_attack("pgd", model, eps=0.3, alpha=0.1, steps=5)(x, y)
    assert (model(x_adv).argmax(1) == y).float().mean() <= 1 / 16
    correct = THREAT_MODELS.build("oblivious").robust_correct(model, None, x, y, "pgd", eps=0.3, alpha=0.1, steps=5)
    assert correct.float().mean() <= 1 / 16


def test_bpda_backward_is_the_identity():
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    g = torch.randn(4, 3, 8, 8)
    out = BPDAWrapper(Round())(x)
    assert torch.equal(out, torch.round(x.detach()))
    (out * g).sum().backward()
    assert torch.equal(x.grad, g)
    # without BPDA the rounding defense passes no gradient at all (gradient masking)
    x2 = x.detach().clone().requires_grad_(True)
    (torch.round(x2) * g).sum().backward()
    assert (x2.grad == 0).all()


def test_bpda_breaks_a_gradient_masking_defense_that_full_gradients_cannot():
    x, y = separable(16)
    classifier = MeanThreshold()
    assert (classifier(Round()(x)).argmax(1) == y).all()
    kwargs = dict(attack="pgd", eps=0.2, alpha=0.05, steps=6)
    full = THREAT_MODELS.build("full-gradient").robust_correct(classifier, Round(), x, y, **kwargs)
    bpda = THREAT_MODELS.build("bpda").robust_correct(classifier, Round(), x, y, **kwargs)
    assert full.all()  # zero gradients: PGD only has its random start, which does not move the mean across 0.5
    assert not bpda.any()


class Cycling(nn.Module):
    """A 'randomized' defense whose k-th call multiplies by scales[k mod 4]; it counts its calls."""

    randomized = True
    scales = (1.0, 0.5, 0.25, 0.0)

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scales[self.calls % 4]
        self.calls += 1
        return x * s


def test_bpda_averages_logits_over_eot_samples_for_a_randomized_defense():
    classifier = linear(3, seed=6)
    w = classifier[1].weight.detach()
    defense = Cycling()
    attacked = THREAT_MODELS.build("bpda").attacked_model(classifier, defense, eot_samples=4)
    x = torch.rand(5, 3, 8, 8, requires_grad=True)
    out = attacked(x)
    assert defense.calls == 4
    mean_scale = sum(Cycling.scales) / 4  # 0.4375
    torch.testing.assert_close(out, x.detach().flatten(1) @ w.T * mean_scale, atol=1e-6, rtol=1e-5)
    g = torch.randn(5, 3)
    (out * g).sum().backward()  # identity backward through the defense: d/dx sum(g * W x) = g W
    torch.testing.assert_close(x.grad, (g @ w).view_as(x), atol=1e-6, rtol=1e-5)


def test_bpda_samples_a_deterministic_defense_once():
    defense = Cycling()
    defense.randomized = False
    attacked = THREAT_MODELS.build("bpda").attacked_model(linear(3), defense, eot_samples=4)
    attacked(torch.rand(2, 3, 8, 8))
    assert defense.calls == 1


def test_full_gradient_averages_a_randomized_defense_for_non_eot_attacks():
    full = THREAT_MODELS.build("full-gradient")
    defense = Cycling()
    attacked = full.build_attack(linear(3, seed=2), defense, "pgd", eot_samples=4).model
    attacked(torch.rand(2, 3, 8, 8))
    assert defense.calls == 4  # PGD sees the mean over 4 draws of the randomized defense (EOT)
    defense.calls = 0
    aa = full.build_attack(linear(3, seed=2), defense, "autoattack", eot_samples=4)
    assert aa.name == "autoattack-rand"  # which averages 20 draws itself: no second EOT layer around the model
    aa.model(torch.rand(2, 3, 8, 8))
    assert defense.calls == 1


def test_threat_models_wire_the_attacked_module_and_the_victim():
    classifier, surrogate, defense = linear(3, seed=0), linear(3, seed=1), Round()
    x = torch.rand(3, 3, 8, 8)
    obl, tr, bp, full = (THREAT_MODELS.build(n) for n in ("oblivious", "transfer", "bpda", "full-gradient"))
    assert obl.attacked_model(classifier, defense) is classifier and obl.defense_after_crafting
    for tm in (obl, tr, bp, full):  # the victim always classifies defense(x_adv)
        torch.testing.assert_close(tm.victim(classifier, defense)(x), classifier(torch.round(x)))
    assert tr.attacked_model(classifier, defense, surrogate) is surrogate and tr.defense_after_crafting
    assert tr.build_attack(classifier, defense, "fgsm", surrogate=surrogate).model is surrogate
    for tm in (bp, full):  # the attacked module runs the defense in its forward pass
        assert not tm.defense_after_crafting
        torch.testing.assert_close(tm.attacked_model(classifier, defense)(x), classifier(torch.round(x)))
    assert full.build_attack(classifier, defense).name == "autoattack"
    rand = full.build_attack(classifier, Cycling())
    assert rand.name == "autoattack-rand" and rand.params["version"] == "rand"
    with pytest.raises(InputError, match="surrogate"):
        tr.attacked_model(classifier, defense)
    with pytest.raises(InputError, match="oblivious"):
        tr.attacked_model(classifier, defense, classifier)
    with pytest.raises(InputError, match="transfer"):
        bp.attacked_model(classifier, defense, surrogate)


def test_check_adversarial_measures_and_rejects():
    x = torch.full((2, 3, 4, 4), 0.5)
    x_adv = x.clone()
    x_adv[1, 2, 3, 3] += 0.01
    assert check_adversarial(x, x_adv, eps=0.02) == pytest.approx(0.01, abs=1e-7)
    with pytest.raises(AttackError, match="ball"):
        check_adversarial(x, x_adv, eps=0.005)
    with pytest.raises(AttackError, match=r"\[0, 1\]"):
        check_adversarial(torch.ones(1, 3, 2, 2), torch.full((1, 3, 2, 2), 1.01), eps=0.1)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(AttackError, match="NaN"):
        check_adversarial(x, bad, eps=0.1)
    with pytest.raises(InputError, match="shape"):
        check_adversarial(x, x[:1], eps=0.1)


def test_gradient_health_flags_masking_and_passes_a_plain_model():
    x, y = separable(4)
    healthy = gradient_health(linear(2), x, y)
    assert healthy == {"zero_fraction": 0.0, "finite": True}
    masked = nn.Sequential(Round(), MeanThreshold())
    with pytest.warns(RuntimeWarning, match="bpda"):
        health = gradient_health(masked, x, y)
    assert health == {"zero_fraction": 1.0, "finite": True}


class SqrtScore(nn.Module):
    """Logits [sum(sqrt(x)), 0]: the gradient 1 / (2 sqrt(x)) is infinite at a zero pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).sqrt().sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_gradient_health_flags_non_finite_gradients():
    x = torch.rand(2, 3, 4, 4)
    x[0, 0, 0, 0] = 0.0
    with pytest.warns(RuntimeWarning, match="non-finite"):
        health = gradient_health(SqrtScore(), x, torch.tensor([1, 1]))
    assert health["finite"] is False


def test_unknown_attack_name_lists_the_available_ones():
    with pytest.raises(UnknownNameError, match="Available: .*autoattack.*pgd") as info:
        build_attack("pdg", linear(3))
    assert "'pgd'" in str(info.value)  # the close-match suggestion


@pytest.mark.parametrize("eps", [-0.1, float("nan"), 8.0, "8/255"])
def test_bad_eps_is_rejected(eps):
    with pytest.raises(InputError, match="eps"):
        build_attack("pgd", linear(3), eps=eps)


def test_bad_inputs_are_rejected():
    model = linear(3)
    attack = build_attack("fgsm", model)
    x, y = torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(InputError, match="batch"):
        attack(x[0], y[:1])  # missing batch dimension
    with pytest.raises(InputError, match="channels"):
        attack(x.permute(0, 2, 3, 1), y)  # channels-last
    with pytest.raises(InputError, match="length 4"):
        attack(x, y[:3])
    with pytest.raises(InputError, match=r"\[0, 2\]"):
        attack(x, torch.full((4,), 7))  # the model has 3 classes
    with pytest.raises(InputError, match="accepted: alpha, random_start, steps"):
        build_attack("pgd", model, step=3)


@pytest.mark.filterwarnings("ignore:AutoAttack")
def test_autoattack_adapts_to_few_classes():
    model = linear(2)
    x = images(6)
    y = model(x).argmax(1)
    with pytest.warns(RuntimeWarning, match="skipping apgd-t"):
        x_adv = build_attack("autoattack", model, attacks=None, **fast("autoattack"))(x, y)
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    with pytest.raises(InputError, match="apgd-t"):
        build_attack("autoattack", model, attacks=["apgd-t"], n_iter=2)(x, y)
