"""Scoring images through a (defended) classifier: per-image correctness, with the per-batch seeds that make a
randomized defense's draws independent of which run or process scores a batch; the defense's own cost."""

from __future__ import annotations

import numpy as np
import torch

from ..utils import seed_everything


@torch.no_grad()
def is_correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int, dev,
                seed: int | None = None, first: int = 0) -> np.ndarray:
    """Per image: does ``model`` classify it correctly (in batches of ``bs``). With ``seed``, torch's generators
    are seeded before each batch from (seed, the batch's first image ``first + i``): a randomized model's draws
    then depend on the batch, not on the images evaluated before it (so shares of the images scored by separate
    processes give the numbers of one pass)."""
    out = [np.zeros(0, dtype=bool)]
    for i in range(0, len(x), bs):
        if seed is not None:
            seed_everything(batch_seed(seed, first + i))
        out.append((model(x[i:i + bs].to(dev)).argmax(1).cpu() == y[i:i + bs]).numpy())
    return np.concatenate(out)


def defended_correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int, dev,
             seed: int | None = None, first: int = 0) -> np.ndarray:
    """:func:`is_correct` of a defended model (the function evaluation rows are scored with)."""
    return is_correct(model, x, y, bs, dev, seed, first)


def batch_seed(seed: int, first_image: int) -> int:
    """The seed of the batch starting at image ``first_image`` of a run seeded ``seed``."""
    return int(np.random.SeedSequence([seed % 2**63, first_image]).generate_state(1, np.uint32)[0])


def time_defense(defense: torch.nn.Module, x: torch.Tensor, dev: torch.device, repeats: int = 5) -> float:
    """Milliseconds per image of the defense alone (median of ``repeats`` runs after a warm-up), separate from
    any attack."""
    from ..bench.timing import time_batch

    return time_batch(defense, x.to(dev), dev, repeats)["ms_per_image"]


def repeated_correct(victim: torch.nn.Module, defense: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     repeats: int, seed: int, bs: int, dev, first: int = 0) -> np.ndarray:
    """Per-repeat, per-image correctness of ``victim(defense(.))`` (repeats x images, bool): a randomized defense is
    evaluated ``repeats`` times, repeat r under seed ``seed + 1000 r``, drawn per batch from that seed and the
    batch's first image in the dataset (``first`` + position; :func:`batch_seed`), so clean and adversarial images
    of one repeat can be paired, and runs over image ranges that start on batch boundaries merge to one run's
    numbers. A deterministic defense is evaluated once."""
    from ..defenses import defend, is_randomized

    reps = repeats if is_randomized(defense) else 1
    return np.stack([defended_correct(defend(victim, defense), images, labels, bs, dev, seed=seed + 1000 * r,
                                      first=first) for r in range(reps)])


def row_counts(clean_ok: np.ndarray, adv_ok: np.ndarray, group) -> dict[str, int]:
    """The counts a result row keeps, summed over the processes' shares (one process: its own): correct clean and
    adversarial evaluations, evaluations, images correct in every repeat (clean / adversarial), and the attack
    success rate's numerator and denominator (of the evaluations correct when clean, those the attack flips)."""
    counts = group.all_sum([clean_ok.sum(), adv_ok.sum(), clean_ok.size, adv_ok.all(axis=0).sum(),
                            clean_ok.all(axis=0).sum(), (clean_ok & ~adv_ok).sum()])
    clean, adv, n_eval, adv_all, clean_all, asr_num = (int(c) for c in counts)
    return {"clean_correct": clean, "adv_correct": adv, "evaluations": n_eval,
            # worst case over the repeats (AutoAttack's advice for randomized defenses): an image counts as robust
            # only if every evaluation of it is correct
            "adv_correct_all": adv_all, "clean_correct_all": clean_all, "asr_num": asr_num, "asr_den": clean}
