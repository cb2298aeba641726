"""`irad bench` options: those that need --reference are refused without it, options it never uses are refused,
and size lists must be positive integers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from irad.cli.main import cli

pytestmark = pytest.mark.usefixtures("one_thread", "clean_env")  # see conftest.py


@pytest.mark.parametrize("args, named", [(["--weights", "w.safetensors"], "--weights"),
                                         (["--json", "out.json", "--training"], "--json, --training"),
                                         (["--batch-size", "4"], "--batch-size"),
                                         (["--precisions", "fp32"], "--precisions")])
def test_bench_refuses_reference_options_without_reference(args, named):
    res = CliRunner().invoke(cli, ["bench", "--defense", "none", "--device", "cpu", "--batch-sizes", "1",
                                   "--repeats", "1", "--image-size", "8", *args])
    assert res.exit_code == 2 and named in res.output and "--reference" in res.output


def test_bench_refuses_options_it_never_uses():
    res = CliRunner().invoke(cli, ["bench", "--defense", "none", "--device", "cpu", "--batch-sizes", "1",
                                   "--repeats", "1", "--image-size", "8", "--data", "somewhere"])
    assert res.exit_code == 2 and "--data" in res.output
    res = CliRunner().invoke(cli, ["bench", "--reference", "--defense", "irad", "--device", "cpu"])
    assert res.exit_code == 2 and "--defense" in res.output
    res = CliRunner().invoke(cli, ["bench", "--reference", "--train-batch", "4", "--device", "cpu"])
    assert res.exit_code == 2 and "--train-batch" in res.output and "--training" in res.output


@pytest.mark.parametrize("option", ["--batch-sizes", "--image-sizes"])
@pytest.mark.parametrize("value", ["1,x", "0", ",", "-4"])
def test_bench_size_lists_must_be_positive_integers(option, value):
    res = CliRunner().invoke(cli, ["bench", "--reference", "--device", "cpu", option, value])
    assert res.exit_code == 2 and option in res.output and "positive integers" in res.output
