"""The ``irad`` command: help, ``train classifier`` end to end on a tiny fake dataset (weights + sidecar, resume),
and one-line errors instead of tracebacks."""

from __future__ import annotations

import json
import shlex
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from irad.classifiers import load_classifier
from irad.cli.main import cli

from helpers import header_meta, tensors_sha256

pytestmark = pytest.mark.usefixtures("clean_env")


def test_help_lists_the_subcommands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    commands = result.output.split("Commands:")[1]
    assert "train" in commands.split()
    for name in cli.commands:  # whatever else is registered (purify, evaluate, bench, ...) is listed too
        assert name in commands.split()
    short = CliRunner().invoke(cli, ["-h"])
    assert short.exit_code == 0 and short.output == result.output


def test_train_help_lists_classifier():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    assert "classifier" in result.output.split("Commands:")[1].split()
    sub = CliRunner().invoke(cli, ["train", "classifier", "--help"])
    assert sub.exit_code == 0
    for opt in ("--arch", "--epochs", "--out", "--data", "--device", "--seed", "--batch-size", "--val-size"):
        assert opt in sub.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "0.1.0" in result.output


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["trian"])
    assert result.exit_code == 2 and "No such command" in result.output


@pytest.fixture
def tiny_cifar(tmp_path, write_npz):
    rng = np.random.default_rng(0)
    write_npz(tmp_path / "data" / "cifar10" / "train.npz",
              rng.integers(0, 256, size=(300, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, size=300))
    return tmp_path / "data"


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_classifier_writes_weights_and_resumes(tiny_cifar, tmp_path, monkeypatch):
    out = tmp_path / "run"
    args = ["train", "classifier", "--data", str(tiny_cifar), "--out", str(out), "--epochs", "1",
            "--train-limit", "200", "--val-size", "100", "--batch-size", "50", "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/irad", *args])  # what the console script would see
    runner = CliRunner()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    weights = out / "fastnet-cifar10.safetensors"
    assert weights.is_file() and f"weights: {weights}" in result.output
    side = header_meta(weights)
    assert side["arch"] == "fastnet" and side["dataset"] == "cifar10" and side["num_classes"] == 10
    assert side["spec"] == {"name": "fastnet", "args": {"num_classes": 10}}
    assert side["mean"] == pytest.approx([0.4914, 0.4822, 0.4465], abs=1e-4)
    assert side["std"] == pytest.approx([0.2471, 0.2435, 0.2616], abs=1e-4)
    assert side["command"] == shlex.join(["irad", *args])
    assert side["sha256"] == tensors_sha256(weights)
    # the reported validation accuracy is that of the saved weights on the held-out images (the file's last 100)
    with np.load(tiny_cifar / "cifar10" / "train.npz") as f:
        xv = torch.from_numpy(f["images"][-100:]).permute(0, 3, 1, 2).float().div(255.0)
        yv = torch.from_numpy(f["labels"][-100:])
    with torch.no_grad():
        held_out = float((load_classifier("fastnet", weights=weights)(xv).argmax(1) == yv).float().mean())
    assert side["val_accuracy"] == pytest.approx(held_out)
    log = _lines(out / "log.jsonl")
    assert log[0]["event"] == "start" and log[0]["train_images"] == 200
    epochs = [r for r in log if "epoch" in r and "event" not in r]
    assert [r["epoch"] for r in epochs] == [1]
    assert log[-1]["event"] == "done"
    assert (out / "checkpoint.pt").is_file()

    # The result loads as a classifier.
    model = load_classifier("fastnet", weights=weights)
    with torch.no_grad():
        assert tuple(model(torch.rand(2, 3, 32, 32)).shape) == (2, 10)

    # Same command again: resumes from the finished checkpoint instead of training another epoch.
    again = runner.invoke(cli, args)
    assert again.exit_code == 0, again.output
    log2 = _lines(out / "log.jsonl")
    new = log2[len(log):]
    assert [r.get("event") for r in new] == ["resume", "done"]
    assert new[0]["epoch"] == 1
    assert len((out / "command.txt").read_text().splitlines()) == 2
    side2 = header_meta(weights)
    assert side2["sha256"] == tensors_sha256(weights)

    # A different recipe in the same folder is refused with one line.
    other = runner.invoke(cli, [*args[:-2], "--lr", "0.05", "--device", "cpu"])
    assert other.exit_code != 0
    assert "another recipe" in other.output and "Traceback" not in other.output


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_bad_data_dir_is_a_one_line_error(tmp_path, case):
    data = tmp_path / "nowhere"
    if case == "empty":
        data.mkdir()
    result = CliRunner().invoke(cli, ["train", "classifier", "--data", str(data), "--out", str(tmp_path / "run"),
                                      "--epochs", "1", "--device", "cpu"])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)  # handled, not an uncaught exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error:") and str(data) in lines[0]
    assert "Traceback" not in result.output


def test_training_budgets_accept_fractions_like_evaluate():
    """`--eps 8/255` means 8/255 in `train pairs` and `train nrp` as in `evaluate`; a malformed one names the option."""
    from irad.cli.common import PIXEL_BUDGET
    from irad.cli.main import cli

    assert PIXEL_BUDGET.convert("8/255", None, None) == 8 / 255
    assert PIXEL_BUDGET.convert("0.5", None, None) == 0.5
    for command in (["train", "pairs"], ["train", "nrp"]):
        res = CliRunner().invoke(cli, [*command, "--eps", "8/25x", "--out", "unused"])
        assert res.exit_code == 2 and "'--eps'" in res.output and "8/25x" in res.output
    helps = CliRunner().invoke(cli, ["train", "pairs", "--help"]).output
    assert "[default: 8/255]" in helps and "[default: 2/255]" in helps


def test_a_plugin_registers_a_defense_for_every_command(tmp_path, monkeypatch):
    """`irad --plugin FILE.py` imports the file first, so a defense it registers is listed and usable by name."""
    from PIL import Image

    from irad.cli.main import cli

    plugin = tmp_path / "my_defenses.py"
    plugin.write_text(
        "import torch\n"
        "from irad.defenses import DEFENSES\n\n"
        "class Invert(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return 1 - x\n\n"
        "@DEFENSES.register('test-plugin-invert')\n"
        "def invert():\n"
        "    '''Inverts the image (a test plugin).'''\n"
        "    return Invert()\n")
    res = CliRunner().invoke(cli, ["--plugin", str(plugin), "list", "defenses"])
    assert res.exit_code == 0 and "test-plugin-invert" in res.output and "Inverts the image" in res.output
    arr = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    res = CliRunner().invoke(cli, ["--plugin", str(plugin), "purify", str(tmp_path / "a.png"), str(tmp_path / "out"),
                                   "--defense", "test-plugin-invert"])
    assert res.exit_code == 0, res.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), 255 - arr)
    # $IRAD_PLUGINS and --plugin together; a module name is found in the working directory
    (tmp_path / "other_plugin_mod.py").write_text(
        "import torch\n"
        "from irad.defenses import DEFENSES\n\n"
        "@DEFENSES.register('test-plugin-other')\n"
        "def other():\n"
        "    return torch.nn.Identity()\n")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["--plugin", "other_plugin_mod", "list", "defenses"],
                             env={"IRAD_PLUGINS": str(plugin)})
    assert res.exit_code == 0, res.output
    assert "test-plugin-invert" in res.output and "test-plugin-other" in res.output
    missing = CliRunner().invoke(cli, ["--plugin", str(tmp_path / "nope.py"), "list", "defenses"])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    (tmp_path / "broken.py").write_text("raise ValueError('boom')\n")
    broken = CliRunner().invoke(cli, ["--plugin", str(tmp_path / "broken.py"), "list", "defenses"])
    assert broken.exit_code == 1 and "ValueError: boom" in broken.output and "Traceback" not in broken.output
