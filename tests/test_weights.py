"""Weight files: save/load round trip, checksums, strict loading, locating named weights, the cache directory and
the conversion of third-party checkpoints."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import irad.weights.store as store
from irad.classifiers import load_classifier
from irad.classifiers.resnet_cifar import CifarResNet
from irad.errors import UnknownNameError, WeightsError
from helpers import header_meta, tensors_sha256, write_legacy_pair
from irad.weights import (
    PretrainedWeights,
    cache_dir,
    import_weights,
    load_state_dict_file,
    load_strict,
    read_meta,
    resolve_weights,
    save_weights,
)

pytestmark = pytest.mark.usefixtures("clean_env")

# sha256 of the files, recorded independently: the shipped conversions (equal to what converting the originals
# gives, see test_import_weights_converts_the_original), the originals (Idelbayev's file names carry their
# first 8 hex digits), pyautoattack 0.2.0's model_test.pt.
SHA_R20 = "02926273efb1deadb6dc654c7087baea932ef2026d9f854680d6858146d85838"
SHA_R20_ORIGINAL = "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"
SHA_AA_R18 = "399f52da9f914c323fa5a6096d60f460a3449a59b64a6405200c1e629f8425a7"


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def r20_copy(tmp_path):
    """A copy of the shipped ResNet-20 weight file (one self-describing file) in tmp_path."""
    _, src = resolve_weights("resnet20-idelbayev")
    dst = tmp_path / "copy" / "r20.safetensors"
    dst.parent.mkdir()
    shutil.copy(src, dst)
    return dst


@pytest.fixture
def r20_legacy(tmp_path):
    """The shipped ResNet-20 weights as a pair of the older two-file format (no header metadata + .json)."""
    _, src = resolve_weights("resnet20-idelbayev")
    dst = tmp_path / "legacy" / "r20.safetensors"
    dst.parent.mkdir()
    meta = {k: v for k, v in read_meta(src).items() if k != "sha256"}
    assert write_legacy_pair(dst, load_state_dict_file(src), meta) == SHA_R20  # the same tensors
    return dst


# ------------------------------------------------------------------------------------------- save / load


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    sd = {"conv.weight": torch.randn(4, 3, 3, 3), "bn.num_batches_tracked": torch.tensor(7),
          "head.weight": torch.randn(5, 4).t(),  # non-contiguous
          "half": torch.randn(3).to(torch.bfloat16)}
    path = tmp_path / "out" / "m.safetensors"
    digest = save_weights(sd, path, {"arch": "toy", "note": "hello"})
    assert digest == tensors_sha256(sd)  # the tensors' sha256, whatever the metadata
    assert header_meta(path) == {"arch": "toy", "note": "hello", "sha256": digest}  # in the file itself
    assert read_meta(path) == header_meta(path)
    back = load_state_dict_file(path)
    assert set(back) == set(sd)
    for k, v in sd.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    # One file, nothing else left behind; saving other metadata keeps the tensors' sha256.
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.safetensors"]
    assert save_weights(sd, path, {"arch": "toy", "note": "changed"}) == digest != sha(path)


def test_save_weights_needs_the_safetensors_suffix(tmp_path):
    with pytest.raises(WeightsError, match=".safetensors"):
        save_weights({"a": torch.zeros(1)}, tmp_path / "m.pt", {})


def test_load_strips_dataparallel_prefix_and_unwraps_state_dict(tmp_path):
    sd = {"module.w": torch.ones(2), "module.b": torch.zeros(3)}
    torch.save({"state_dict": sd, "epoch": 3, "best_prec1": 91.2}, tmp_path / "ckpt.th")
    back = load_state_dict_file(tmp_path / "ckpt.th")
    assert set(back) == {"w", "b"} and torch.equal(back["w"], torch.ones(2))



def test_interrupted_save_leaves_the_old_files(tmp_path, monkeypatch):
    """A save that fails while writing (disk full, ...) leaves the previous file as it was."""
    fail_at = 1
    path = tmp_path / "m.safetensors"
    save_weights({"w": torch.zeros(3)}, path, {"version": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] == fail_at:  # while writing the file
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        save_weights({"w": torch.ones(3)}, path, {"version": 2})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary files either
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert torch.equal(load_state_dict_file(path)["w"], torch.zeros(3))


class _Payload:
    """Unpickling this creates a folder: a stand-in for the arbitrary code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def test_pickles_with_python_objects_are_not_unpickled(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"w": torch.ones(2), "extra": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="pickled Python objects") as info:
        load_state_dict_file(tmp_path / "evil.pt")
    assert "irad weights import" in str(info.value)
    assert not marker.exists()


def test_pickled_objects_are_allowed_only_for_catalogued_checksums(tmp_path, monkeypatch):
    """An old-style checkpoint with a numpy scalar loads only once its sha256 is in the catalogue."""
    ckpt = tmp_path / "old.th"
    torch.save({"state_dict": {"module.w": torch.arange(3.0)}, "best_prec1": np.float64(91.2)}, ckpt)
    with pytest.raises(WeightsError, match="pickled Python objects.*numpy"):
        load_state_dict_file(ckpt)
    spec = PretrainedWeights("test-old", "test-old.safetensors", "0" * 64, "classifier", "cifar10", "resnet20",
                             {"original_sha256": sha(ckpt)})
    monkeypatch.setitem(store.WEIGHTS._specs, "test-old", spec)
    assert torch.equal(load_state_dict_file(ckpt)["w"], torch.arange(3.0))
    ckpt.write_bytes(ckpt.read_bytes() + b"\0")  # one byte more: no longer the catalogued file
    with pytest.raises(WeightsError, match="pickled Python objects"):
        load_state_dict_file(ckpt)

@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.parametrize("layout", ["one file", "legacy pair"])
def test_checksum_mismatch(r20_copy, r20_legacy, damage, layout):
    path = r20_copy if layout == "one file" else r20_legacy
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) - 1000] ^= 0xFF  # inside the tensors (the header, with the metadata, comes first)
    else:
        data = data[: len(data) - 100]
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256|cannot read"):
        load_state_dict_file(path)
    with pytest.raises(WeightsError, match="sha256|cannot read"):
        load_classifier("resnet20", weights=path)


def test_missing_file():
    with pytest.raises(WeightsError, match="does not exist"):
        load_state_dict_file("/nonexistent/dir/weights.safetensors")
    with pytest.raises(WeightsError):
        load_classifier("resnet20", weights="/nonexistent/dir/weights.safetensors")


def test_not_a_weight_file(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01 not a pickle or a zip")
    with pytest.raises(WeightsError, match="cannot read"):
        load_state_dict_file(tmp_path / "junk.pt")
    torch.save({"a": 1, "b": "text"}, tmp_path / "notsd.pt")
    with pytest.raises(WeightsError, match="state dict"):
        load_state_dict_file(tmp_path / "notsd.pt")


def test_broken_metadata_json(r20_legacy, tmp_path):
    r20_legacy.with_suffix(".json").write_text("{ not json")  # an older sidecar
    with pytest.raises(WeightsError, match="JSON"):
        load_state_dict_file(r20_legacy)
    from safetensors.torch import save

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(save({"w": torch.zeros(2)}, metadata={"irad": "{ not json"}))  # the header's metadata
    with pytest.raises(WeightsError, match="JSON"):
        load_state_dict_file(bad)


def test_reading_never_writes(r20_copy, r20_legacy):
    for path in (r20_copy, r20_legacy):
        before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
        load_classifier("resnet20", weights=path)
        read_meta(path)
        assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before


def test_a_legacy_pair_converts_once_to_one_file_with_the_same_tensors(r20_legacy):
    from click.testing import CliRunner

    from irad.cli.main import cli

    before = load_state_dict_file(r20_legacy)
    result = CliRunner().invoke(cli, ["weights", "import", str(r20_legacy)])
    assert result.exit_code == 0 and "converted" in result.output, result.output
    assert not r20_legacy.with_suffix(".json").exists()  # one file now
    meta = header_meta(r20_legacy)
    assert meta["sha256"] == SHA_R20 == tensors_sha256(r20_legacy) and meta["arch"] == "resnet20"
    after = load_state_dict_file(r20_legacy)
    assert all(torch.equal(after[k], before[k]) for k in before)
    again = CliRunner().invoke(cli, ["weights", "import", str(r20_legacy)])  # already one file: left as it is
    assert again.exit_code == 0 and header_meta(r20_legacy) == meta


# ---------------------------------------------------------------------------------------- strict loading


def test_wrong_architecture_lists_unexpected_and_missing_keys():
    _, p32 = resolve_weights("resnet32-idelbayev")
    sd32 = load_state_dict_file(p32)
    with pytest.raises(WeightsError, match="unexpected keys") as info:
        load_strict(CifarResNet(3), sd32, "resnet20")  # ResNet-32 has blocks 3, 4 in each stage
    assert "layer1.3." in str(info.value) and "missing" not in str(info.value)
    _, p20 = resolve_weights("resnet20-idelbayev")
    with pytest.raises(WeightsError, match="missing keys") as info:
        load_strict(CifarResNet(5), load_state_dict_file(p20), "resnet32")
    assert "layer1.3." in str(info.value)


def test_wrong_class_count_reports_shape_mismatch():
    _, p20 = resolve_weights("resnet20-idelbayev")
    with pytest.raises(WeightsError, match="shape mismatch") as info:
        load_strict(CifarResNet(3, num_classes=100), load_state_dict_file(p20), "resnet20/100")
    assert "linear.weight" in str(info.value)


def test_catalogued_file_without_sidecar_is_recognised_by_checksum(tmp_path):
    _, p32 = resolve_weights("resnet32-idelbayev")
    shutil.copy(p32, tmp_path / "anon.safetensors")  # no sidecar, but its sha256 is in the catalog
    with pytest.raises(WeightsError, match="holds a resnet32.*load_classifier\\('resnet32'"):
        load_classifier("resnet20", weights=tmp_path / "anon.safetensors")


def test_unknown_file_without_sidecar_reports_unexpected_keys(tmp_path):
    _, p32 = resolve_weights("resnet32-idelbayev")
    state = load_state_dict_file(p32)
    state["linear.bias"] = state["linear.bias"] + 1.0  # a different file: not in the catalog any more
    torch.save(state, tmp_path / "anon.pt")
    with pytest.raises(WeightsError, match="unexpected keys"):
        load_classifier("resnet20", weights=tmp_path / "anon.pt")


def test_load_classifier_reads_arch_from_the_metadata(r20_copy, r20_legacy):
    for path in (r20_copy, r20_legacy):
        with pytest.raises(WeightsError, match="resnet20"):
            load_classifier("resnet32", weights=path)


def test_old_checkpoints_without_num_batches_tracked_load():
    net = CifarResNet(3)
    sd = {k: v for k, v in CifarResNet(3).state_dict().items() if not k.endswith("num_batches_tracked")}
    load_strict(net, sd, "old")
    assert torch.equal(net.linear.weight, sd["linear.weight"])


# ------------------------------------------------------------------------------------------ named weights


def test_resolve_finds_the_shipped_file_and_checks_it():
    spec, path = resolve_weights("resnet20-idelbayev")
    assert path.is_file() and path.parent.name == "weights" and "assets" in path.parts
    assert spec.arch == "resnet20" and spec.dataset == "cifar10" and spec.kind == "classifier"
    assert tensors_sha256(path) == SHA_R20 and header_meta(path)["sha256"] == SHA_R20
    assert read_meta(path)["sha256"] == SHA_R20


def test_resolve_rejects_a_damaged_shipped_file(tmp_path, monkeypatch):
    _, src = resolve_weights("resnet20-idelbayev")
    data = bytearray(src.read_bytes())
    data[1000] ^= 0x01
    (tmp_path / src.name).write_bytes(bytes(data))
    monkeypatch.setattr(store, "shipped_dir", lambda: tmp_path)
    with pytest.raises(WeightsError, match="sha256"):
        resolve_weights("resnet20-idelbayev")


def test_resolve_finds_autoattack_resnet18_in_its_package():
    spec, path = resolve_weights("resnet18-autoattack")
    assert path.name == "model_test.pt" and "pyautoattack" in str(path)
    assert sha(path) == SHA_AA_R18
    assert spec.meta["mean"] is None


def test_resolve_unknown_name():
    with pytest.raises(UnknownNameError, match="resnet20-idelbayev"):
        resolve_weights("resnet20-idelbayv")


def test_cache_dir_honours_irad_home(tmp_path, monkeypatch):
    monkeypatch.setenv("IRAD_HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / "weights"
    monkeypatch.delenv("IRAD_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cache_dir() == tmp_path / "user" / ".cache" / "irad" / "weights"


def test_resolve_looks_in_the_cache_after_the_package(tmp_path, monkeypatch):
    _, src = resolve_weights("resnet20-idelbayev")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(store, "shipped_dir", lambda: empty)
    monkeypatch.setenv("IRAD_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsError, match="IRAD_HOME"):
        resolve_weights("resnet20-idelbayev")
    (tmp_path / "home" / "weights").mkdir(parents=True)
    shutil.copy(src, tmp_path / "home" / "weights" / src.name)
    _, found = resolve_weights("resnet20-idelbayev")
    assert found == tmp_path / "home" / "weights" / src.name


# ------------------------------------------------------------------------------------------------ import


def test_import_weights_refuses_a_different_file(shared_file, tmp_path):
    original = shared_file("weights/resnet20-12fca82f.th")
    assert sha(original) == SHA_R20_ORIGINAL
    tampered = tmp_path / "resnet20-12fca82f.th"
    tampered.write_bytes(original.read_bytes() + b"\x00")
    with pytest.raises(WeightsError, match="sha256"):
        import_weights("resnet20-idelbayev", tampered, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_import_weights_converts_the_original(shared_file, tmp_path):
    target = import_weights("resnet20-idelbayev", shared_file("weights/resnet20-12fca82f.th"),
                            out_dir=tmp_path / "out")
    assert target == tmp_path / "out" / "resnet20-idelbayev-cifar10.safetensors"
    assert tensors_sha256(target) == SHA_R20  # the conversion is deterministic: the shipped file's tensors
    side = read_meta(target)
    assert side["sha256"] == SHA_R20 and side["arch"] == "resnet20"
    assert side["converted_from_sha256"] == SHA_R20_ORIGINAL
    assert side["mean"] == [0.485, 0.456, 0.406] and side["std"] == [0.229, 0.224, 0.225]


def test_import_weights_defaults_to_the_cache(shared_file, tmp_path, monkeypatch):
    monkeypatch.setenv("IRAD_HOME", str(tmp_path / "home"))
    target = import_weights("resnet20-idelbayev", shared_file("weights/resnet20-12fca82f.th"))
    assert target == tmp_path / "home" / "weights" / "resnet20-idelbayev-cifar10.safetensors"


def test_irad_weights_without_their_metadata_say_so(tmp_path):
    import irad
    from irad.weights import resolve_weights

    from safetensors.torch import save_file

    _, path = resolve_weights("irad-cifar10-cpu")
    save_file(load_state_dict_file(path), tmp_path / "irad.safetensors")  # the tensors alone, no metadata
    with pytest.raises(WeightsError, match=r"records no architecture"):
        irad.load_defense("irad", weights=tmp_path / "irad.safetensors")


def test_the_catalogue_is_a_mapping_of_names_to_files_and_takes_a_users_own(tmp_path, monkeypatch):
    from irad.weights.store import WEIGHTS

    spec = WEIGHTS["resnet20-idelbayev"]
    assert isinstance(spec, PretrainedWeights) and spec.sha256 == SHA_R20 and "resnet20-idelbayev" in WEIGHTS
    with pytest.raises(UnknownNameError, match="resnet20-idelbayev"):
        WEIGHTS["resnet20-idelbayv"]  # a typo: the close match is named
    with pytest.raises(WeightsError, match="catalogued already"):
        WEIGHTS.add(spec)
    # a file of one's own, under a name: found in the cache directory and verified like the shipped ones
    monkeypatch.setenv("IRAD_HOME", str(tmp_path))
    own = tmp_path / "weights" / "mine.safetensors"
    own.parent.mkdir()
    digest = save_weights({"w": torch.ones(2)}, own, {"arch": "toy"})
    monkeypatch.setitem(WEIGHTS._specs, "mine", PretrainedWeights("mine", "mine.safetensors", digest, "classifier"))
    assert "mine" in WEIGHTS.names() and resolve_weights("mine")[1] == own


# ------------------------------------------------------------------------------ model specs ({name, args})


def test_each_defense_kind_is_rebuilt_from_the_spec_alone(tmp_path):
    """A file whose metadata holds only the spec (no older keys) rebuilds the architecture the spec names."""
    import irad
    from irad.defenses.nrp import NeuralRepresentationPurifier
    from irad.diffusion import ScoreUNet

    nrp = NeuralRepresentationPurifier(width=6, blocks=3)
    save_weights(nrp.state_dict(), tmp_path / "nrp.safetensors", {
        "kind": "defense", "arch": "nrp", "spec": {"name": "nrp", "args": {"width": 6, "blocks": 3}}})
    loaded = irad.load_defense("nrp", weights=tmp_path / "nrp.safetensors")
    assert (loaded.width, loaded.blocks) == (6, 3)

    atoms = torch.nn.functional.normalize(torch.randn(5, 3 * 3 * 3), dim=1).reshape(5, 3, 3, 3)
    save_weights({"atoms": atoms}, tmp_path / "stl.safetensors", {
        "kind": "defense", "arch": "stl", "spec": {"name": "stl", "args": {"lam": 0.03, "iterations": 7,
                                                                           "lowpass": 2.0}}})
    stl = irad.load_defense("stl", weights=tmp_path / "stl.safetensors")
    assert (stl.lam, stl.iterations, stl.lowpass) == (0.03, 7, 2.0)

    arch = {"channels": 8, "mults": [1, 2], "blocks": 1, "dropout": 0.0, "in_channels": 3}
    save_weights(ScoreUNet(**arch).state_dict(), tmp_path / "score.safetensors", {
        "kind": "defense", "arch": "diffpure", "spec": {"name": "score-unet", "args": arch}})
    diffpure = irad.load_defense("diffpure", weights=tmp_path / "score.safetensors", steps=1, seed=0)
    assert diffpure.score.architecture() == arch


def test_a_classifiers_spec_sets_its_head_and_a_spec_of_another_model_is_refused(tmp_path):
    import irad
    from irad.classifiers import build_classifier

    net = build_classifier("resnet20", "cifar10", num_classes=7).net
    path = tmp_path / "r20-7.safetensors"
    save_weights(net.state_dict(), path, {"kind": "classifier", "arch": "resnet20", "mean": [0.5] * 3,
                                          "std": [0.25] * 3, "spec": {"name": "resnet20", "args": {"num_classes": 7}}})
    assert irad.load_classifier("resnet20", weights=str(path))(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    wrong = tmp_path / "wrong.safetensors"
    save_weights(net.state_dict(), wrong, {"kind": "classifier", "mean": [0.5] * 3, "std": [0.25] * 3,
                                           "spec": {"name": "resnet32", "args": {"num_classes": 7}}})
    with pytest.raises(WeightsError, match="holds a 'resnet32' model, not 'resnet20'"):
        irad.load_classifier("resnet20", weights=str(wrong))


def test_convert_writes_the_spec_an_older_file_implies_and_keeps_its_sha256(tmp_path):
    """Files written before specs were recorded (here: copies of the shipped NRP / STL / DiffPure / FastNet files
    with their spec taken out, as they were first written): converting adds the spec their older keys imply, the
    tensors' digest stays the catalogue's, and the converted file loads the same network."""
    import irad
    from irad.weights import WEIGHTS, convert_weights, resolve_weights

    expected = {"nrp-cifar10-cpu": ("nrp", {"width": 32, "blocks": 4}),
                "stl-cifar10-cpu": ("stl", {"lam": 0.1, "iterations": 60, "lowpass": 5.0}),
                "fastnet-irad-cifar10": ("fastnet", {"num_classes": 10})}
    for name, (spec_name, args) in expected.items():
        _, path = resolve_weights(name)
        copy = tmp_path / path.name
        _without_spec(path, copy)
        before = read_meta(copy)
        assert "spec" not in before
        convert_weights(copy)
        after = read_meta(copy)
        assert after["spec"] == {"name": spec_name, "args": args}, name
        assert after["sha256"] == WEIGHTS[name].sha256 == tensors_sha256(copy), name
        assert {k: v for k, v in after.items() if k != "spec"} == {k: v for k, v in before.items() if k != "spec"}
        before_mtime = copy.stat().st_mtime_ns
        convert_weights(copy)  # a file that needs nothing is left as it is
        assert copy.stat().st_mtime_ns == before_mtime
    _, score = resolve_weights("diffpure-cifar10-cpu")
    _without_spec(score, tmp_path / "score.safetensors")
    convert_weights(tmp_path / "score.safetensors")
    spec = read_meta(tmp_path / "score.safetensors")["spec"]
    assert spec["name"] == "score-unet"
    assert irad.load_defense("diffpure", weights=tmp_path / "score.safetensors").score.architecture() == spec["args"]


def _without_spec(source: Path, target: Path) -> None:
    meta = {k: v for k, v in read_meta(source).items() if k not in ("spec", "sha256")}
    save_weights(load_state_dict_file(source), target, meta)


def test_a_classifier_file_saying_num_classes_without_a_spec_still_sets_its_head(tmp_path):
    """Older and third-party files state the head size as a bare ``num_classes`` (no kind, no spec) and may spell
    the architecture as a user typed it: both load as they did before specs were recorded."""
    import irad
    from irad.classifiers import build_classifier

    net = build_classifier("resnet20", "cifar10", num_classes=7).net
    path = tmp_path / "r20-7.safetensors"
    save_weights(net.state_dict(), path, {"arch": "ResNet20", "num_classes": 7, "mean": [0.5] * 3, "std": [0.25] * 3})
    assert irad.load_classifier("resnet20", weights=str(path))(torch.rand(1, 3, 32, 32)).shape == (1, 7)
    named = tmp_path / "named.safetensors"
    save_weights(net.state_dict(), named, {"mean": [0.5] * 3, "std": [0.25] * 3,
                                           "spec": {"name": "ResNet20", "args": {"num_classes": 7}}})
    assert irad.load_classifier("RESNET20", weights=str(named))(torch.rand(1, 3, 32, 32)).shape == (1, 7)
    other = tmp_path / "other.safetensors"
    save_weights(net.state_dict(), other, {"mean": [0.5] * 3, "std": [0.25] * 3,
                                           "spec": {"name": "resnet32", "args": {"num_classes": 7}}})
    with pytest.raises(WeightsError, match=r"load it with load_classifier\('resnet32', weights=\.\.\.\)"):
        irad.load_classifier("resnet20", weights=str(other))
