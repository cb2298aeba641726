"""``irad analyze``: image quality, feature distances, decision paths and figures (App. A.7-A.9)."""

from __future__ import annotations

import click

from .common import PIXEL_BUDGET, common_options, friendly_errors


@click.command("analyze")
@click.option("--victim", default="resnet32", help="Classifier attacked and analysed (NAME or NAME:weights=PATH).")
@click.option("--defense", "defenses", multiple=True,
              help="Defense spec(s) applied to the adversarial images [default: disco, irad — with the shipped IRAD "
                   "weights, disco is RECONS(Adv) of Table 17 and irad is IRAD(Adv)].")
@click.option("--attack", default="autoattack", help="Attack spec, e.g. autoattack, pgd:steps=20.")
@click.option("--eps", type=PIXEL_BUDGET, default="8/255", help="L-inf budget.")
@click.option("-n", "--n-images", type=click.IntRange(min=1), default=100,
              help="Images for Tables 17/19 (from --start) and, of one class, for Table 18 / Fig. 5.")
@click.option("--start", type=click.IntRange(min=0), default=0)
@click.option("--feature-class", type=click.IntRange(min=0), default=0, help="Class of Table 18 and Fig. 5.")
@click.option("--cases", type=click.IntRange(min=1), default=4, help="Images in the case and saliency panels.")
@click.option("--part", "parts", multiple=True, type=click.Choice(["quality", "features", "paths", "figures"]),
              help="Only these parts [default: all].")
@click.option("--dataset", default="cifar10")
@click.option("--split", default="test")
@click.option("--out", type=click.Path(file_okay=False), default="results/analyze", show_default=True)
@common_options
@friendly_errors
def analyze_cmd(victim, defenses, attack, eps, n_images, start, feature_class, cases, parts, dataset, split, out,
                device, seed, batch_size, data_root) -> None:
    """Tables 17-19 and Figs. 2, 5-8 of the paper for any defenses x victim x attack (oblivious threat model).

    Example: irad analyze --defense disco --defense irad --attack pgd:steps=20 -n 100
    """
    from ..analysis import PARTS, AnalysisConfig, analyze
    from ..analysis.run import markdown

    cfg = AnalysisConfig(victim=victim, defenses=list(defenses) or ["disco", "irad"], attack=attack, eps=eps,
                         dataset=dataset, split=split, n_images=n_images, start=start, feature_class=feature_class,
                         cases=cases, seed=seed, batch_size=batch_size or 100, parts=list(parts) or list(PARTS))
    result = analyze(cfg, out, data_root=data_root, device=device)
    click.echo(markdown(result))
    click.echo(f"(tables: {out}/analysis.md, .csv, .json; figures: {out}/*.png)")
