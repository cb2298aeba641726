"""The command line offers what the registries hold (a plugin's parts included) and starts every training command
with its configuration dataclass's defaults (an option's default and the dataclass field cannot drift apart)."""

from __future__ import annotations

import uuid
from dataclasses import asdict

import pytest
from click.testing import CliRunner

from irad.cli.main import cli
from irad.training.tasks import TASKS, Task

pytestmark = pytest.mark.usefixtures("clean_env")


class _Recorded(Exception):
    """Raised by a stand-in trainer once it has seen the configuration the command built."""


def _configuration(monkeypatch, module: str, function: str, args: list[str]):
    """The configuration object ``irad ARGS`` passes to ``module.function`` (the trainer is not run)."""
    import importlib

    seen = {}

    def record(cfg, *a, **k):
        seen["cfg"] = cfg
        raise _Recorded

    monkeypatch.setattr(importlib.import_module(module), function, record)
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, _Recorded), result.output
    return seen["cfg"]


# command, trainer module and function, config class (module, name), arguments a run needs, fields they set
COMMANDS = [
    ("implicit", "irad.training.implicit", "train_implicit", ("irad.training.implicit", "ImplicitConfig"), [], {}),
    ("samplenet", "irad.training.samplenet", "train_samplenet", ("irad.training.samplenet", "SampleNetConfig"),
     ["--implicit", "w.safetensors", "--pairs", "p", "--val-pairs", "v"],
     {"implicit": "w.safetensors", "pairs": "p", "val_pairs": "v"}),
    ("classifier", "irad.training.classifier", "train_classifier", ("irad.training.classifier", "ClassifierRecipe"),
     [], {}),
    ("pairs", "irad.training.pairs", "craft_pairs", ("irad.training.pairs", "PairsConfig"), [], {}),
    ("stl", "irad.training.stl", "train_stl", ("irad.training.stl", "STLConfig"), [], {}),
    ("nrp", "irad.training.nrp", "train_nrp", ("irad.training.nrp", "NRPConfig"), [], {}),
    ("diffusion", "irad.training.diffusion", "train_diffusion", ("irad.training.diffusion", "DiffusionConfig"), [], {}),
]


@pytest.mark.parametrize("command,module,function,config,args,given", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_training_command_starts_from_its_dataclass_defaults(monkeypatch, tmp_path, command, module, function,
                                                                   config, args, given):
    import importlib

    cfg = _configuration(monkeypatch, module, function, ["train", command, "--out", str(tmp_path / "run"), *args])
    defaults = asdict(getattr(importlib.import_module(config[0]), config[1])())
    built = asdict(cfg)
    for field, value in given.items():
        assert built.pop(field) == value
        defaults.pop(field)
    drift = {k: (built[k], defaults[k]) for k in defaults if built[k] != defaults[k]}
    assert not drift, f"`irad train {command}` defaults differ from its dataclass (CLI, dataclass): {drift}"


def test_a_task_registered_by_a_plugin_is_a_valid_choice(monkeypatch, tmp_path):
    name = f"test-task-{uuid.uuid4().hex[:8]}"
    TASKS.register(name)(Task)
    try:
        cfg = _configuration(monkeypatch, "irad.training.implicit", "train_implicit",
                             ["train", "implicit", "--task", name, "--out", str(tmp_path / "run")])
        assert cfg.task == name
    finally:
        TASKS._entries.pop(name, None)
    result = CliRunner().invoke(cli, ["train", "implicit", "--task", name, "--out", str(tmp_path / "run")])
    assert result.exit_code != 0 and "Invalid value for '--task'" in result.output  # gone with its registration


def test_threat_model_and_list_choices_come_from_the_registries():
    from irad.attacks import THREAT_MODELS

    result = CliRunner().invoke(cli, ["list", "threat-models"])
    assert result.exit_code == 0 and [line.split()[0] for line in result.output.splitlines()] == THREAT_MODELS.names()
    result = CliRunner().invoke(cli, ["evaluate", "--threat-model", "nope", "-n", "1"])
    assert result.exit_code != 0 and all(name in result.output for name in THREAT_MODELS.names())
