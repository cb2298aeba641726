"""``irad evaluate``: defenses x victims x attacks x threat models on N images; Markdown/CSV/JSON + plots."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click

from .common import (PIXEL_BUDGET, NamesChoice, common_options, friendly_errors, on_main_process,
                     refuse_under_torchrun, registry_names)


@click.group("evaluate", invoke_without_command=True)
@click.option("--preset", type=NamesChoice(registry_names("irad.evaluation.presets", "PRESETS")),
              default=None, help="Regenerate a table of the paper (its figures shown beside ours).")
@click.option("--victim", "victims", multiple=True,
              help="Classifier(s) attacked, e.g. resnet20, or a checkpoint of yours: "
                   "resnet44:weights=PATH,mean=[0.485,0.456,0.406],std=[0.229,0.224,0.225] [default: resnet32].")
@click.option("--defense", "defenses", multiple=True,
              help="Defense spec(s), e.g. irad, bilinear-sv:gamma=1.5 [default: none, irad].")
@click.option("--attack", "attacks", multiple=True,
              help="Attack spec(s), e.g. autoattack, pgd:steps=20 (see `irad list attacks`) [default: autoattack].")
@click.option("--threat-model", "threat_models", multiple=True,
              type=NamesChoice(registry_names("irad.attacks", "THREAT_MODELS")),
              help="Who the attack sees: the bare victim (oblivious), a surrogate (transfer), the defended model "
                   "with an identity backward through the defense (bpda), or with its true gradients "
                   "(full-gradient) [default: oblivious].")
@click.option("--eps", "eps", multiple=True, type=PIXEL_BUDGET,
              help="L-inf budget(s), e.g. 8/255 [default: dataset's].")
@click.option("--surrogate", default=None, help="Transfer threat model: classifier the attack is crafted on.")
@click.option("-n", "--n-images", type=click.IntRange(min=1), default=100)
@click.option("--start", type=click.IntRange(min=0), default=0, help="First image (split runs across processes).")
@click.option("--dataset", default="cifar10")
@click.option("--split", default="test")
@click.option("--repeats", type=click.IntRange(min=1), default=3, help="Evaluations of randomized defenses.")
@click.option("--eot-samples", type=click.IntRange(min=1), default=8, help="EOT samples for BPDA.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [results/<preset>].")
@click.option("--cache", type=click.Path(file_okay=False), default=None,
              help="Adversarial-example cache [OUT/cache]; share one between runs to reuse attacks.")
@common_options
@click.pass_context
@friendly_errors
def evaluate_cmd(ctx, preset, victims, defenses, attacks, threat_models, eps, surrogate, n_images, start, dataset,
                 split, repeats, eot_samples, out, cache, device, seed, batch_size, data_root) -> None:
    """Evaluate defenses under attack (default: the shipped IRAD in front of the third-party ResNet-32, AutoAttack,
    oblivious, on 100 shipped CIFAR-10 test images)."""
    if ctx.invoked_subcommand is not None:
        refuse_under_torchrun(ctx, "evaluate ")
        return
    from ..evaluation import EvalConfig, evaluate
    from ..evaluation.presets import PRESETS
    from ..evaluation.report import markdown_table

    base = dict(PRESETS[preset]) if preset else {}
    for key, given in (("victims", victims), ("defenses", defenses), ("attacks", attacks),
                       ("threat_models", threat_models)):
        if given:
            base[key] = list(given)
    cfg = EvalConfig(dataset=dataset, split=split, n_images=n_images, start=start, seed=seed,
                     eps=list(eps), surrogate=surrogate, repeats=repeats, eot_samples=eot_samples,
                     batch_size=batch_size or 100, paper=preset,
                     **{k: v for k, v in base.items() if k in {f.name for f in fields(EvalConfig)}})
    out_dir = Path(out or f"results/{preset or 'evaluate'}")
    rows = evaluate(cfg, out_dir, data_root=data_root, device=device, cache_dir=cache)
    if not on_main_process():
        return
    click.echo(markdown_table(rows, preset))
    written = ["results.md", "results.csv", "results.json"] + [p.name for p in (out_dir / "ra_vs_eps.png",
                                                                             out_dir / "per_attack.png") if p.is_file()]
    click.echo(f"(n={cfg.n_images} images from {dataset}/{split} starting at {start}, seed {seed}; "
               f"SA/RA in %; written to {out_dir}: {', '.join(written)})")


@evaluate_cmd.command("merge")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True)
@friendly_errors
def merge_cmd(folders, out) -> None:
    """Merge evaluation folders that covered disjoint image ranges (e.g. one per GPU)."""
    from ..evaluation import merge_results
    from ..evaluation.report import markdown_table

    click.echo(markdown_table(merge_results(list(folders), out)))
