"""torchrun: two CPU processes (gloo) give what one process gives, for pairs, training and evaluation.

Each distributed run is a real ``torchrun --standalone --nproc-per-node 2 -m irad ...`` (the command users type);
the reference is the same command in one process. Weights must agree to float rounding (the all-reduce sums in
another order), evaluation reports exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from irad import distributed
from irad.cli.main import cli
from irad.training.pairs import PairsConfig, craft_pairs
from irad.weights import load_state_dict_file

pytestmark = pytest.mark.usefixtures("clean_env")

TINY = ["--encoder-blocks", "1", "--features", "8"]


def irad(*args: str, processes: int = 1, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``irad ARGS`` in one process, or under ``torchrun --nproc-per-node PROCESSES`` (gloo on CPU)."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
                if processes > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, "-m", "irad", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)
    assert done.returncode == 0, f"irad {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A tiny CIFAR-10-format training file: 40 images of 8x8 (the last 10 are the validation split)."""
    root = tmp_path_factory.mktemp("data")
    (root / "cifar10").mkdir()
    rng = np.random.default_rng(1)
    np.savez(root / "cifar10" / "train.npz", images=rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8),
             labels=rng.integers(0, 10, 40))
    return root


@pytest.fixture(scope="module")
def pairs(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("pairs")
    for split in ("train", "val"):
        craft_pairs(PairsConfig(split=split, surrogate="resnet20", steps=2, shard_size=7, val_size=10), out / split,
                    data_root=data_root, progress=False)
    return out


@pytest.fixture(scope="module")
def implicit_runs(pairs, data_root, tmp_path_factory):
    """The same implicit training (batch 9 of 30 images: shares of 5 and 4; each epoch ends with a batch of 3) in 1 and 2 processes."""
    base = tmp_path_factory.mktemp("implicit")
    args = ["train", "implicit", "--pairs", str(pairs / "train"), "--val-pairs", str(pairs / "val"), "--epochs", "2",
            "--batch-size", "9", "--crop", "4", "--queries", "12", "--val-size", "10", "--val-images", "10",
            "--checkpoint-every", "2", "--lr-schedule", "cosine", "--device", "cpu", "--data", str(data_root), *TINY]
    runs = {}
    for n in (1, 2):
        irad(*args, "--out", str(base / f"p{n}"), processes=n)
        runs[n] = base / f"p{n}"
    return runs


def test_shares_cover_the_items_once_on_batch_boundaries():
    for n, block, world in [(12, 4, 2), (10, 4, 3), (3, 4, 2), (7, 1, 3), (100, 10, 4), (1, 1, 2)]:
        shares = [distributed.Context(r, world).share(n, block) for r in range(world)]
        covered = [i for s in shares for i in range(s.start, s.stop)]
        assert covered == list(range(n))  # contiguous, in rank order, each item once
        assert all(s.start % block == 0 for s in shares)  # whole batches: per-batch random draws are kept
        sizes = [-(-(s.stop - s.start) // block) for s in shares]
        assert max(sizes) - min(sizes) <= 1  # balanced to one block
    assert distributed.SINGLE.share(5, 2) == slice(0, 5) and not distributed.SINGLE.active


def test_two_processes_craft_the_same_pairs(pairs, data_root, tmp_path):
    irad("train", "pairs", "--surrogate", "resnet20", "--steps", "2", "--shard-size", "7", "--val-size", "10",
         "--split", "train", "--out", str(tmp_path / "p2"), "--device", "cpu", "--data", str(data_root), processes=2)
    one, two = sorted((pairs / "train").glob("shard_*.npz")), sorted((tmp_path / "p2").glob("shard_*.npz"))
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 5  # 30 images in shards of 7
    for a, b in zip(one, two):
        assert np.array_equal(np.load(a)["adv"], np.load(b)["adv"])
    meta = json.loads((tmp_path / "p2" / "meta.json").read_text())
    ref = json.loads((pairs / "train" / "meta.json").read_text())
    assert meta["complete"] and meta["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert meta["attack_success_rate"] == ref["attack_success_rate"]


def test_two_processes_train_the_implicit_representation_one_process_trains(implicit_runs):
    one = load_state_dict_file(implicit_runs[1] / "implicit-adversarial-denoising.safetensors")
    two = load_state_dict_file(implicit_runs[2] / "implicit-adversarial-denoising.safetensors")
    assert one.keys() == two.keys()
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=2e-6, msg=k)
    logs = {n: [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
            for n, run in implicit_runs.items()}
    first = logs[2][0]
    assert first["event"] == "start" and first["distributed"] == {"world_size": 2, "backend": "gloo",
                                                                  "global_batch": 9, "per_process_batch": 5}
    # one writer: one start record, one command line, and the same steps with the same (whole-batch) losses
    assert sum(r.get("event") == "start" for r in logs[2]) == 1
    assert len((implicit_runs[2] / "command.txt").read_text().splitlines()) == 1
    steps = {n: [(r["step"], r["train_l1"]) for r in log if "train_l1" in r] for n, log in logs.items()}
    assert [s for s, _ in steps[2]] == [s for s, _ in steps[1]] == [2, 4, 6, 8]  # 4 steps an epoch (9 + 9 + 9 + 3)
    np.testing.assert_allclose([v for _, v in steps[2]], [v for _, v in steps[1]], rtol=1e-4)
    assert "val_psnr" in logs[2][-2] and logs[2][-1]["event"] == "done"


def test_two_processes_train_samplenet_as_one_does(implicit_runs, pairs, data_root, tmp_path):
    implicit = implicit_runs[1] / "implicit-adversarial-denoising.safetensors"
    args = ["train", "samplenet", "--implicit", str(implicit), "--pairs", str(pairs / "train"), "--val-pairs",
            str(pairs / "val"), "--surrogate", "resnet20", "--epochs", "1", "--batch-size", "7", "--val-images",
            "10", "--device", "cpu", "--data", str(data_root)]
    for n in (1, 2):
        irad(*args, "--out", str(tmp_path / f"s{n}"), processes=n)
    one = load_state_dict_file(tmp_path / "s1" / "irad.safetensors")
    two = load_state_dict_file(tmp_path / "s2" / "irad.safetensors")
    moved = [k for k in one if k.startswith("sampler.") and not torch.equal(one[k], torch.zeros_like(one[k]))]
    assert moved  # SampleNet's zero-initialised last layer left zero: the comparison would prove nothing
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=2e-6, msg=k)


def test_two_processes_evaluate_to_the_report_of_one(tmp_path):
    # 12 images in batches of 4: rank 0 attacks images 0-7, rank 1 images 8-11; a randomized defense checks that
    # its per-batch seeds do not depend on which process scores the batch
    args = ["evaluate", "--victim", "resnet20", "--defense", "none", "--defense", "randomization",
            "--attack", "pgd:steps=2", "--repeats", "2", "-n", "12", "--batch-size", "4", "--device", "cpu"]
    for n in (1, 2):
        done = irad(*args, "--out", str(tmp_path / f"e{n}"), processes=n)
    assert done.stdout.count("| resnet20") == 2  # rank 0 alone printed the table (one line per defense)
    res = {n: json.loads((tmp_path / f"e{n}" / "results.json").read_text()) for n in (1, 2)}
    assert (res[1]["world_size"], res[2]["world_size"], res[2]["backend"]) == (1, 2, "gloo")
    assert res[1]["victims"] == res[2]["victims"]
    fields = ("key", "clean_correct", "adv_correct", "evaluations", "adv_correct_all", "asr_num", "asr_den",
              "max_linf", "SA", "RA")
    rows = {n: [{f: r[f] for f in fields} for r in res[n]["rows"]] for n in (1, 2)}
    assert rows[1] == rows[2] and len(rows[1]) == 2
    assert [c["ok"] for c in res[1]["sanity"]] == [c["ok"] for c in res[2]["sanity"]]
    # the Markdown table too, but for the measured time of the defense (its own column)
    md = {n: re.sub(r"\| \d+\.\d+ \| cpu \|", "| (ms) | cpu |", (tmp_path / f"e{n}" / "results.md").read_text())
          for n in (1, 2)}
    assert md[1].count("| (ms) | cpu |") == 2 and md[1] == md[2]
    # the processes' shares were gathered into the cache file one process writes, and nothing else is left
    cached = {n: sorted(p.name for p in (tmp_path / f"e{n}" / "cache").iterdir()) for n in (1, 2)}
    assert cached[1] == cached[2]
    for name in cached[1]:
        assert np.array_equal(np.load(tmp_path / "e1" / "cache" / name)["adv"],
                              np.load(tmp_path / "e2" / "cache" / name)["adv"])


def test_a_command_without_a_distributed_version_refuses_to_run_under_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for args in (["train", "stl", "--out", str(tmp_path / "stl")], ["purify", "x.png"],
                 ["evaluate", "merge", str(tmp_path), "--out", str(tmp_path / "m")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and "runs in one process" in result.output, (args, result.output)
        assert "torchrun" in result.output
    assert not (tmp_path / "stl").exists()


PLAIN_NET = '''
"""A classifier without batch norm (whose per-process statistics would differ from one process's)."""
from torch import nn
from irad.classifiers import CLASSIFIERS


@CLASSIFIERS.register("plain-cnn")
def plain_cnn(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, num_classes))
'''


def test_two_processes_train_a_classifier_as_one_does(data_root, tmp_path):
    (tmp_path / "plain_net.py").write_text(PLAIN_NET)
    args = ["--plugin", "plain_net.py", "train", "classifier", "--arch", "plain-cnn", "--epochs", "2",
            "--batch-size", "7", "--val-size", "10", "--device", "cpu", "--data", str(data_root)]
    for n in (1, 2):
        irad(*args, "--out", str(tmp_path / f"c{n}"), processes=n, cwd=tmp_path)
    one = load_state_dict_file(tmp_path / "c1" / "plain-cnn-cifar10.safetensors")
    two = load_state_dict_file(tmp_path / "c2" / "plain-cnn-cifar10.safetensors")
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=2e-6, msg=k)
    logs = [json.loads(line) for line in (tmp_path / "c2" / "log.jsonl").read_text().splitlines()]
    assert logs[0]["distributed"]["world_size"] == 2 and logs[0]["distributed"]["global_batch"] == 7
    assert "per process" in logs[0]["distributed"]["batch_norm"]  # said, though this network has none
    ref = [json.loads(line) for line in (tmp_path / "c1" / "log.jsonl").read_text().splitlines()]
    assert [r["val_acc"] for r in logs if "val_acc" in r] == [r["val_acc"] for r in ref if "val_acc" in r]
