"""The training recipe of the implicit representation (issue 14): aligned random patches, several pair folders,
the residual variant, the logged amount of training, and a short run that beats the identity map. Checked against
facts computed here: windows enumerated by hand, bilinear values worked out by hand, counts of presented images,
and PSNRs recomputed from the saved weights."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from irad.cli.main import cli
from irad.errors import InputError
from irad.reconstruction import ImplicitReconstruction
from irad.reconstruction.base import pixel_grid
from irad.training.augment import random_crops
from irad.training.implicit import ImplicitConfig, train_implicit
from irad.training.loop import images_seen
from irad.training.pairs import PairsConfig

pytestmark = pytest.mark.usefixtures("clean_env", "one_thread")


# ------------------------------------------------------------------------------------------- random patches


def test_random_crops_are_aligned_windows_covering_every_position():
    clean = torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).reshape(2, 3, 5, 4)
    adv = clean + 1000.0
    seen = set()
    for seed in range(300):
        c, a, none = random_crops([clean, adv, None], 2, torch.Generator().manual_seed(seed))
        assert none is None and c.shape == (2, 3, 2, 2)
        assert torch.equal(a - c, torch.full_like(c, 1000.0))  # the same window in both tensors
        for i in range(2):
            top, left = divmod(int(c[i, 0, 0, 0] - clean[i, 0, 0, 0]), 4)  # row-major values locate the window
            assert torch.equal(c[i], clean[i, :, top:top + 2, left:left + 2])
            seen.add((top, left))
    assert seen == {(t, l) for t in range(4) for l in range(3)}  # all (5-2+1) x (4-2+1) windows occur


def test_random_crops_larger_than_the_image_is_a_clear_error():
    with pytest.raises(InputError, match="--crop <= 4"):
        random_crops([torch.zeros(1, 3, 4, 6)], 5)


def test_images_seen_counts_the_short_last_batch_of_each_epoch():
    # 10 items in batches of 4: steps of 4, 4, 2 per epoch
    assert [images_seen(s, 3, 10, 4) for s in range(7)] == [0, 4, 8, 10, 14, 18, 20]


# ------------------------------------------------------------------------------------------ residual output


def _zero_last_layer(recon: ImplicitReconstruction) -> ImplicitReconstruction:
    last = [m for m in recon.decoder.mlp if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return recon.eval()


def test_residual_output_with_a_zero_correction_is_bilinear_interpolation_of_the_input():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 5, 6)
    recon = _zero_last_layer(ImplicitReconstruction(1, 8, (16,), residual=True))
    plain = _zero_last_layer(ImplicitReconstruction(1, 8, (16,)))
    with torch.no_grad():
        assert torch.equal(recon(x).query_grid(), x)
        coords = torch.tensor([[1.5, 2.5], [0.0, 0.25]]).reshape(1, 1, 2, 2).expand(2, 1, 2, 2)
        out = recon(x).query(coords)
        assert torch.allclose(plain(x).query(coords), torch.full_like(out, 0.5))  # plain LIIF: mid-grey
    centre = (x[:, :, 1, 2] + x[:, :, 1, 3] + x[:, :, 2, 2] + x[:, :, 2, 3]) / 4  # the mean of the 4 neighbours
    quarter = 0.75 * x[:, :, 0, 0] + 0.25 * x[:, :, 0, 1]
    assert torch.allclose(out[:, :, 0, 0], centre, atol=1e-6)
    assert torch.allclose(out[:, :, 0, 1], quarter, atol=1e-6)
    assert recon.config["residual"] is True and "residual" not in plain.config


# ----------------------------------------------------------------------------- pairs, several folders, recipe


@pytest.fixture(scope="module")
def noisy_pairs(tmp_path_factory):
    """Smooth 8 x 8 images (a random linear ramp per channel) and "adversarial" versions with ±8/255 per pixel, in
    two pair folders (two draws of the perturbation) and one validation folder, written in `irad train pairs`'
    format. The perturbation is removable (a local mean keeps a ramp and divides the noise's variance), so a
    denoiser can beat the identity."""
    root = tmp_path_factory.mktemp("noisy")
    rng = np.random.default_rng(3)
    n, val_size = 120, 20
    ii, jj = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    base, slope_i, slope_j = rng.uniform(60, 190, (n, 1, 1, 3)), rng.uniform(-6, 6, (n, 1, 1, 3)), rng.uniform(
        -6, 6, (n, 1, 1, 3))
    images = np.rint(base + slope_i * (ii - 3.5)[None, :, :, None] + slope_j * (jj - 3.5)[None, :, :, None])
    images = images.clip(0, 255).astype(np.uint8)
    labels = rng.integers(0, 10, n)
    (root / "cifar10").mkdir()
    np.savez(root / "cifar10" / "train.npz", images=images, labels=labels)
    folders = {}
    for name, split, part, seed in (("a", "train", slice(0, n - val_size), 0), ("b", "train", slice(0, n - val_size), 1),
                                    ("val", "val", slice(n - val_size, n), 2)):
        clean = images[part]
        sign = np.random.default_rng(seed).choice([-8, 8], clean.shape)
        adv = np.clip(clean.astype(int) + sign, 0, 255).astype(np.uint8)
        folder = root / f"pairs-{name}"
        folder.mkdir()
        np.savez(folder / "shard_00000.npz", index=np.arange(len(clean)), adv=adv, labels=labels[part],
                 fooled=np.ones(len(clean), bool))
        cfg = asdict(PairsConfig(surrogate="resnet20", split=split, val_size=val_size))
        (folder / "meta.json").write_text(json.dumps({"config": cfg, "complete": True, "images": len(clean)}))
        folders[name] = folder
    return root, folders


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((-10 * torch.log10(((a - b) ** 2).mean(dim=(1, 2, 3)))).mean())


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_a_few_hundred_patch_steps_of_the_default_recipe_beat_the_identity(noisy_pairs, tmp_path):
    from irad.defenses.resampling import load_irad_parts
    from irad.training.pairs import AdversarialPairs

    root, folders = noisy_pairs
    defaults = ImplicitConfig()
    # the default recipe (patches, learning rate, betas, batch), on a small network and 4 x 4 patches of 8 x 8 images
    cfg = ImplicitConfig(pairs=[str(folders["a"]), str(folders["b"])], val_pairs=str(folders["val"]), epochs=48.0,
                         crop=4, n_resblocks=2, n_feats=16, hidden=[32, 32], val_size=20, val_images=20,
                         checkpoint_every=10_000)
    assert (cfg.lr, cfg.betas, cfg.batch_size) == (defaults.lr, defaults.betas, defaults.batch_size)
    path = train_implicit(cfg, tmp_path / "run", data_root=root, progress=False)
    log = _log(tmp_path / "run")
    start = next(r for r in log if r.get("event") == "start")
    assert start["train_images"] == 200  # both folders: 2 x 100 pairs
    steps = max(r.get("step", 0) for r in log)
    assert 200 <= steps <= 400, steps  # "a few hundred steps"
    last = [r for r in log if "val_psnr" in r][-1]
    assert last["images_seen"] == 48 * 200

    val = AdversarialPairs(folders["val"], root)
    clean, adv, _ = val.batch(np.arange(len(val)))
    recon = load_irad_parts(path)[0].eval()
    with torch.no_grad():
        out = recon(adv).query(pixel_grid(len(adv), 8, 8)).clamp(0, 1)
    identity = _psnr(adv, clean)  # 8/255 everywhere: 30.1 dB
    assert identity == pytest.approx(-20 * np.log10(8 / 255), abs=0.2)
    assert _psnr(out, clean) > identity + 1.0, (_psnr(out, clean), identity)
    assert last["val_psnr"] == pytest.approx(_psnr(out, clean), abs=0.05)  # the logged figure is this PSNR


def test_several_validation_folders_are_logged_by_name_and_train_s_excludes_validation(noisy_pairs, tmp_path):
    root, folders = noisy_pairs
    cfg = ImplicitConfig(pairs=str(folders["a"]), val_pairs=[str(folders["val"]), str(folders["val"])], epochs=1.0,
                         batch_size=25, crop=4, n_resblocks=1, n_feats=8, hidden=[16], val_size=20, val_images=20,
                         val_every=2, checkpoint_every=10_000)
    train_implicit(cfg, tmp_path / "run", data_root=root, progress=False)
    records = [r for r in _log(tmp_path / "run") if "val_psnr" in r]
    assert [r["step"] for r in records] == [2, 4]  # every 2 steps; the epoch ends at step 4
    assert all(r["val_psnr@pairs-val"] == r["val_psnr"] for r in records)  # the same folder twice, same figure
    assert [r["images_seen"] for r in records] == [50, 100]
    assert 0 < records[0]["train_s"] < records[1]["train_s"]


def test_cli_takes_repeated_pairs_betas_and_crop_and_refuses_bad_betas(noisy_pairs, tmp_path):
    root, folders = noisy_pairs
    out = tmp_path / "cli"
    args = ["train", "implicit", "--pairs", str(folders["a"]), "--pairs", str(folders["b"]), "--val-pairs",
            str(folders["val"]), "--epochs", "0.1", "--crop", "4", "--betas", "0.5,0.99", "--encoder-blocks", "1",
            "--features", "8", "--val-size", "20", "--val-images", "5", "--batch-size", "10", "--data", str(root),
            "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    start = next(r for r in _log(out) if r.get("event") == "start")
    assert start["pairs"] == [str(folders["a"]), str(folders["b"])]
    assert start["betas"] == [0.5, 0.99] and start["crop"] == 4
    bad_args = [*args[:-1], str(tmp_path / "bad")]
    bad_args[bad_args.index("--betas") + 1] = "0.9"
    bad = CliRunner().invoke(cli, bad_args)
    assert bad.exit_code != 0 and "B1,B2" in bad.output
