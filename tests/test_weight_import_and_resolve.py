"""Weight files: `irad weights import` verifies the catalogued checksum, resolve goes past a corrupt copy to a
valid one, and a save killed before its rename leaves the old file, one killed after it the new one."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import irad.weights.store as store
from irad.cli.main import cli
from irad.errors import WeightsError
from helpers import tensors_sha256
from irad.weights import import_weights, load_state_dict_file, read_meta, resolve_weights, save_weights

pytestmark = pytest.mark.usefixtures("one_thread", "clean_env")  # see conftest.py

# pyautoattack 0.2.0's examples/model_test.pt, recorded independently of the catalogue (as in test_weights.py)
SHA_AA_R18 = "399f52da9f914c323fa5a6096d60f460a3449a59b64a6405200c1e629f8425a7"


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------ `irad weights import` verifies


def test_import_refuses_a_file_that_is_not_the_catalogued_one(tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_weights({"w": torch.zeros(2)}, wrong, {})
    with pytest.raises(WeightsError, match="sha256"):
        import_weights("fastnet-irad-cifar10", wrong, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "fastnet-irad-cifar10.safetensors").exists()
    res = CliRunner().invoke(cli, ["weights", "import", "fastnet-irad-cifar10", str(wrong), "--out",
                                   str(tmp_path / "out")])
    assert res.exit_code == 1 and "sha256" in res.output and "wrote" not in res.output


def test_import_of_the_catalogued_file_is_verified_and_lands_where_resolve_finds_it(tmp_path):
    _, shipped = resolve_weights("fastnet-irad-cifar10")
    target = import_weights("fastnet-irad-cifar10", shipped, out_dir=tmp_path / "out")
    assert tensors_sha256(target) == tensors_sha256(shipped) == read_meta(target)["sha256"]
    old, new = read_meta(shipped), read_meta(target)  # the source's metadata is carried over
    assert set(old) <= set(new) and new["recipe"] == old["recipe"]


def test_import_of_autoattack_resnet18_copies_the_verified_file(tmp_path, monkeypatch):
    _, original = resolve_weights("resnet18-autoattack")
    assert sha(original) == SHA_AA_R18
    home = tmp_path / "home"
    monkeypatch.setenv("IRAD_HOME", str(home))
    target = import_weights("resnet18-autoattack", original)
    assert target == home / "weights" / "model_test.pt" and sha(target) == SHA_AA_R18
    spec = store.WEIGHTS["resnet18-autoattack"]  # as if pyautoattack were not installed
    monkeypatch.setitem(store.WEIGHTS._specs, "resnet18-autoattack", dataclasses.replace(spec, locate=None))
    assert resolve_weights("resnet18-autoattack")[1] == target
    tampered = tmp_path / "model_test.pt"
    tampered.write_bytes(original.read_bytes() + b"\0")
    with pytest.raises(WeightsError, match="sha256.*pyautoattack"):
        import_weights("resnet18-autoattack", tampered, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "model_test.pt").exists()


# ----------------------------------------------------------------------------- resolve goes past a corrupt candidate


def test_resolve_uses_a_valid_cache_copy_after_a_corrupt_shipped_file(tmp_path, monkeypatch):
    _, src = resolve_weights("resnet20-idelbayev")
    data = bytearray(src.read_bytes())
    data[1000] ^= 0x01
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / src.name).write_bytes(bytes(data))
    monkeypatch.setattr(store, "shipped_dir", lambda: tmp_path / "pkg")
    monkeypatch.setenv("IRAD_HOME", str(tmp_path / "home"))
    cached = tmp_path / "home" / "weights" / src.name
    cached.parent.mkdir(parents=True)
    shutil.copy(src, cached)
    with pytest.warns(UserWarning, match="pkg"):
        assert resolve_weights("resnet20-idelbayev")[1] == cached
    cached.write_bytes(bytes(data[:-10]))  # both copies corrupt: the error names both
    with pytest.raises(WeightsError, match=r"(?s)pkg.*home") as info:
        resolve_weights("resnet20-idelbayev")
    assert str(tmp_path / "pkg" / src.name) in str(info.value) and str(cached) in str(info.value)


# ------------------------------------------------------------------------- a killed save leaves a usable file


@pytest.mark.parametrize("kill_at", [1, 2])
def test_a_killed_save_leaves_the_old_file_or_the_new_one(tmp_path, monkeypatch, kill_at):
    """kill_at 1: killed at the one rename (the old file stands); 2: after it, while removing an older sidecar."""
    path = tmp_path / "m.safetensors"
    save_weights({"w": torch.zeros(3)}, path, {"version": 1})
    path.with_suffix(".json").write_text("{}")  # an older sidecar left beside the file, removed by the save
    calls = {"n": 0}
    real_replace, real_unlink = os.replace, Path.unlink

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise KeyboardInterrupt  # the process dies before this rename
        return real_replace(src, dst)

    def dying_unlink(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise KeyboardInterrupt  # the process dies after the rename, before the clean-up
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(os, "replace", dying_replace)
    monkeypatch.setattr(Path, "unlink", dying_unlink)
    with pytest.raises(KeyboardInterrupt):
        save_weights({"w": torch.ones(3)}, path, {"version": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    w, meta = load_state_dict_file(path)["w"], read_meta(path)
    assert (meta["version"], w.tolist()) == ((1, [0.0] * 3) if kill_at == 1 else (2, [1.0] * 3))  # never mixed
    assert meta["sha256"] == tensors_sha256(path)
    save_weights({"w": torch.full((3,), 2.0)}, path, {"version": 3})  # the next save is unaffected
    assert read_meta(path)["version"] == 3 and load_state_dict_file(path)["w"].tolist() == [2.0] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
