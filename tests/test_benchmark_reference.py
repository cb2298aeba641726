"""irad's optimised IRAD / DISCO against the plain reference implementation of ``irad.reference``
(written from Eq. 9-10 the way the authors' code computes them), with shared random weights of a small
architecture. Also a smoke run of the benchmark script's logic and of ``irad bench --reference``."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import irad
from irad.cli.bench_reference import main
from irad.reference import ReferenceIRAD, liif_centres, make_random_weights
from irad.reconstruction.implicit import LocalEnsembleMLP

SMALL = {"n_resblocks": 2, "n_feats": 16, "hidden": (32, 32)}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "irad_small.safetensors"
    return make_random_weights(path, samplenet_std=0.5, seed=3, **SMALL)


def _disable_irad_query(patch):
    """Make irad's own query code unusable, so the reference provably does not rely on it."""

    def boom(*_, **__):
        raise AssertionError("the reference called irad's LocalEnsembleMLP")

    for name in ("forward", "at_grid", "prepare", "_query", "_rest"):
        patch.setattr(LocalEnsembleMLP, name, boom)


def _pair(weights, dtype):
    ours = irad.load_defense("irad", weights=str(weights)).to(dtype)
    disco = irad.load_defense("disco", weights=str(weights)).to(dtype)
    return ours, disco, ReferenceIRAD(ours).eval(), ReferenceIRAD(disco, use_samplenet=False).eval()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-5), (torch.float32, 1e-4)])
def test_irad_and_disco_match_the_reference(weights, dtype, tol, monkeypatch):
    ours, disco, ref, ref_recon = _pair(weights, dtype)
    x = torch.rand(2, 3, 12, 9, generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.no_grad():
        out, out_disco = ours(x), disco(x)
        # computed with irad's query code switched off
        with monkeypatch.context() as m:
            _disable_irad_query(m)
            expected, expected_recon = ref(x), ref_recon(x)
            shift = ref.shift(x)
    assert out.dtype == expected.dtype == dtype and out.shape == expected.shape == x.shape
    # the SampleNet shift is non-trivial: it moves queries across half-pixel boundaries, and changes the output
    assert float(shift.abs().mean()) > 0.1 and float(shift.abs().max()) > 0.5
    assert float((out - out_disco).abs().max()) > 1e-3
    assert float((out - expected).abs().max()) <= tol
    assert float((out_disco - expected_recon).abs().max()) <= tol


def test_reference_shares_weights_with_irad(weights):
    ours, _, ref, _ = _pair(weights, torch.float32)
    ref_params = {id(p) for p in ref.parameters()}
    assert ref_params and ref_params <= {id(p) for p in ours.parameters()}
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        before = ref(x)
        ours.sampler.net.mlp[-1].bias.add_(0.7)  # a change in irad's module is seen by the reference
        assert not torch.allclose(ref(x), before)
        assert float((ours(x) - ref(x)).abs().max()) <= 1e-4


def test_liif_centres_convention():
    c = liif_centres(4, 2, dtype=torch.float64)
    torch.testing.assert_close(c[:, 0, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=torch.float64))
    torch.testing.assert_close(c[0, :, 1], torch.tensor([-0.5, 0.5], dtype=torch.float64))


def test_benchmark_script_logic_small_run(tmp_path, capsys):
    out = tmp_path / "bench.json"
    status = main(["--device", "cpu", "--batch-sizes", "1,2", "--repeats", "1", "--image-size", "8",
                   "--n-resblocks", "1", "--n-feats", "8", "--hidden", "16,16", "--image-sizes", "8,12",
                   "--size-batch", "2", "--json", str(out)])
    text = capsys.readouterr().out
    assert status == 0
    assert "| fp32 | 2 | IRAD |" in text and "| fp32 | 1 | DISCO / reconstruction |" in text
    assert "max |irad - reference|" in text and "cost against image size" in text
    result = json.loads(out.read_text())
    assert result["check"]["ok"] and result["check"]["irad_max_abs_diff"] <= 1e-4
    assert len(result["rows"]) == 4 and len(result["image_size_rows"]) == 2
    for row in result["rows"]:
        assert row["speedup"] > 0 and row["irad"]["images_per_s"] > 0 and row["reference"]["ms_per_image"] > 0


def test_cli_bench_reference(weights, tmp_path):
    from irad.cli.main import cli

    out = tmp_path / "cli.json"
    res = CliRunner().invoke(cli, ["bench", "--reference", "--weights", str(weights), "--device", "cpu",
                                   "--batch-sizes", "1", "--repeats", "1", "--image-size", "6",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "speed-up" in res.output and "OK" in res.output
    assert json.loads(out.read_text())["info"]["model"]["weights"] == str(weights)


def _small_pair(weights):
    from irad.reference import load_pair

    return load_pair(weights, torch.device("cpu"))


def test_training_benchmark_agrees_with_the_reference_and_reports_throughput(weights):
    from irad.bench.training import GRAD_RTOL, format_training_markdown, run_training_benchmark

    pair = _small_pair(weights)
    before = {n: p.detach().clone() for n, p in pair["irad"].named_parameters()}
    rows = run_training_benchmark(pair, torch.device("cpu"), batch=2, image_size=7, queries=20, repeats=1, seed=0,
                                  log=lambda *_: None)
    assert [r["stage"].split()[0] for r in rows] == ["implicit", "SampleNet"]
    for r in rows:
        c = r["check"]
        assert c["ok"] and c["loss_rel_diff"] <= GRAD_RTOL and c["grad_rel_diff"] <= GRAD_RTOL
        assert c["loss_ours"] > 0 and r["irad"]["images_per_s"] > 0 and r["reference"]["images_per_s"] > 0
    # the timed Adam steps trained the module the loss was computed from (each stage its own parameters)
    after = dict(pair["irad"].named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert any(n.startswith("reconstruction.encoder") for n in changed)
    assert any(n.startswith("sampler.net") for n in changed)
    assert "| SampleNet (CE, ResNet-20) | 2 |" in format_training_markdown(rows, "cpu", 7)


def test_training_agreement_check_detects_a_different_reference(weights, monkeypatch):
    import irad.bench.training as bt

    real = bt.liif_query
    monkeypatch.setattr(bt, "liif_query", lambda *a, **k: real(*a, **k) * 1.001)
    rows = bt.run_training_benchmark(_small_pair(weights), torch.device("cpu"), batch=2, image_size=6, queries=10,
                                     repeats=1, seed=0, log=lambda *_: None)
    assert not rows[0]["check"]["ok"]
    assert rows[1]["check"]["ok"]  # SampleNet's reference does not go through the patched name


def test_cli_bench_defense_specs_with_parameters():
    """`irad bench --defense NAME:key=value` builds the defense with those parameters (a bad one is an error)."""
    from irad.cli.main import cli

    res = CliRunner().invoke(cli, ["bench", "--defense", "bilinear-si:d=1.0", "--defense", "none", "--device", "cpu",
                                   "--batch-sizes", "2", "--repeats", "1", "--image-size", "8"])
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.output.splitlines() if line.startswith(("bilinear-si", "none"))]
    assert [r[:2] for r in rows] == [["bilinear-si:d=1.0", "2"], ["none", "2"]]
    assert all(float(r[2]) > 0 for r in rows)
    bad = CliRunner().invoke(cli, ["bench", "--defense", "bilinear-si:gamma=1.0", "--device", "cpu",
                                   "--batch-sizes", "1", "--repeats", "1", "--image-size", "8"])
    assert bad.exit_code != 0 and "gamma" in bad.output


def test_side_by_side_timing_interleaves_the_modules():
    """Each module warms up once, then the timed calls alternate in turns whose order flips, A B B A A B (fair
    ratios on a shared machine, and neither module always runs right after the other)."""
    from irad.bench.timing import time_side_by_side

    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(self.name)
            return x

    result = time_side_by_side({"a": Recorder("a"), "b": Recorder("b")}, torch.zeros(2, 3, 4, 4),
                               torch.device("cpu"), repeats=3)
    assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b"]
    assert set(result) == {"a", "b"} and all(r["images_per_s"] > 0 and r["peak_mib"] > 0 for r in result.values())


def test_every_compared_output_is_computed_without_tf32(weights, monkeypatch):
    """On CUDA PyTorch's default lets cuDNN convolutions use TF32, which irad's first layer (a convolution) would
    feel and the reference's (a matmul) would not: every output the agreement check compares against its fp32
    tolerance, SampleNet's shift included, must come from inside ``strict_fp32``."""
    import contextlib

    import irad.bench.reference as br

    pair = _small_pair(weights)
    state = {"strict": False}
    seen = []

    @contextlib.contextmanager
    def recording_strict_fp32():
        state["strict"] = True
        try:
            yield
        finally:
            state["strict"] = False

    def record(fn, name):
        def wrapped(*args, **kwargs):
            seen.append((name, state["strict"]))
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(br, "strict_fp32", recording_strict_fp32)
    for key in ("irad", "disco", "ref_irad", "ref_recon"):
        monkeypatch.setattr(pair[key], "forward", record(pair[key].forward, key))
    monkeypatch.setattr(pair["ref_irad"], "shift", record(pair["ref_irad"].shift, "ref shift"))
    sampler = pair["irad"].sampler
    monkeypatch.setattr(sampler, "shift", record(sampler.shift, "irad shift"))
    result = br.check_agreement(pair, image_size=6, device=torch.device("cpu"), batch=2)
    assert result["ok"]
    names = {name for name, _ in seen}
    assert {"irad", "disco", "ref_irad", "ref_recon", "ref shift", "irad shift"} <= names
    assert all(strict for _, strict in seen), [name for name, strict in seen if not strict]


def test_training_step_timing_interleaves_the_sides_and_steps_each_optimizer():
    """Training steps are timed like inference: one warm-up step per side, then turns whose order flips; every
    step runs a forward, a backward and an Adam update of the shared parameters."""
    from irad.bench.training import time_steps

    weight = torch.nn.Parameter(torch.ones(3))
    calls = []

    def loss(name):
        def fn():
            calls.append(name)
            return (weight * 2.0).sum()
        return fn

    result = time_steps({"ours": loss("ours"), "reference": loss("reference")}, [weight], batch=4,
                        device=torch.device("cpu"), repeats=3, lr=0.1)
    assert calls == ["ours", "reference"] + ["ours", "reference", "reference", "ours", "ours", "reference"]
    # 8 Adam steps along a constant gradient of +2: each moves the weight down by about lr (beta1 = 0)
    assert torch.allclose(weight.detach(), torch.full((3,), 1.0 - 8 * 0.1), atol=1e-3)
    assert set(result) == {"ours", "reference"}
    assert all(r["images_per_s"] > 0 and r["ms_per_step"] > 0 for r in result.values())


def test_peak_memory_is_measured_per_module_on_linux():
    """A module that allocates ~200 MiB reports a peak ~200 MiB above one that allocates nothing, whichever runs
    first (the high-water mark is reset before each module's warm-up call)."""
    import sys

    from irad.bench.timing import time_side_by_side

    import os

    if not (sys.platform.startswith("linux") and os.access("/proc/self/clear_refs", os.W_OK)):
        pytest.skip("the per-module peak needs a writable /proc/self/clear_refs (Linux)")

    class Hog(torch.nn.Module):
        def forward(self, x):
            block = torch.ones(200 * 2**20 // 4)  # 200 MiB, touched
            return x + block[:1].sum() * 0

    class Idle(torch.nn.Module):
        def forward(self, x):
            return x

    x = torch.zeros(1, 3, 4, 4)
    result = time_side_by_side({"hog": Hog(), "idle": Idle()}, x, torch.device("cpu"), repeats=1)
    assert result["hog"]["peak_mib"] - result["idle"]["peak_mib"] > 150
