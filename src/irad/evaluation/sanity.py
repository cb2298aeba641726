"""Checks reported with every evaluation (ε-ball, AutoAttack on the bare model, RA against SA and ε, gradients
through each defense, partial weights) and the attack-failure indicators of adaptive pipelines."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

from ..defenses import defend, defense_info
from ..errors import InputError
from .config import EvalConfig, load_classifier_spec



def adaptive_threat_models() -> list[str]:
    """The registered threat models whose attacks differentiate through the defense (bpda, full-gradient, ...)."""
    from ..attacks import THREAT_MODELS

    return [name for name in THREAT_MODELS.names() if THREAT_MODELS.build(name).adaptive]

#: the check whose failure warns on its own (with a hint to BPDA) rather than through the generic warning
GRADIENT_CHECK = "gradients through the defense are finite and non-zero"


def sanity_checks(rows, cfg: EvalConfig, get_defense, x, y, dev, get_victim=None) -> list[dict[str, Any]]:
    """Checks reported with every run: adversarial examples lie in the ε-ball, undefended models fall under
    AutoAttack, RA does not rise with ε, gradients through each defense are finite and mostly non-zero (else:
    gradient masking, use BPDA)."""
    from ..attacks import gradient_health
    from ..attacks.checks import check_adversarial

    checks: list[dict[str, Any]] = []
    measured = [r for r in rows if "max_linf" in r]
    if measured:  # every attack is checked (finite, in [0, 1], in the ball) when crafted and when reused from cache
        tol = inspect.signature(check_adversarial).parameters["tol"].default
        excess = max(r["max_linf"] - r["eps"] for r in measured)
        checks.append({"check": f"adversarial examples within the ε-ball (L-inf, up to {tol:g} of float rounding) and "
                                f"in [0, 1]", "rows": len(measured), "max_excess_over_eps": float(excess),
                       "ok": excess <= tol})
    for r in rows:
        if r["defense"] == "none" and r["attack"].startswith("autoattack") and r["threat_model"] == "oblivious":
            ok = r["RA"] <= 2.0
            checks.append({"check": "undefended model falls under AutoAttack", "victim": r["victim"],
                           "eps": r["eps"], "RA": r["RA"], "ok": ok})
    for r in rows:
        if r["defense"] != "none" and r["RA"] > r["SA"] + 100.0 / r["evaluations"]:  # more than one image
            checks.append({"check": "RA not above SA (else the attack is weaker than the defense's own error)",
                           "victim": r["victim"], "defense": r["defense"], "threat_model": r["threat_model"],
                           "SA": r["SA"], "RA": r["RA"], "ok": False,
                           "hint": "the attack's gradients miss the defense (e.g. BPDA's identity backward for a "
                                   "shift); attack it with the full-gradient threat model if it is differentiable"})
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["victim"], r["defense"], r["threat_model"], r["attack"]), []).append(r)
    for key, rs in groups.items():
        if len(rs) > 1:
            rs = sorted(rs, key=lambda r: r["eps"])
            slack = 100.0 / rs[0]["evaluations"]  # one image
            ok = all(b["RA"] <= a["RA"] + slack for a, b in zip(rs, rs[1:]))
            checks.append({"check": "RA does not rise with eps", "group": list(key), "ok": ok})
    probed = [spec for spec in cfg.defenses if spec != "none"]
    if probed:
        victim = (get_victim or (lambda spec: load_classifier_spec(spec, cfg.dataset, dev)))(cfg.victims[0])
    for spec in probed:
        info = defense_info(get_defense(spec))
        done, planned = info.steps_done, info.steps_planned
        if info.partial:
            checks.append({"check": "the defense's weights come from a finished training run", "defense": spec,
                           "note": f"its training stopped at step {done} of {planned} (a --time-limit): partial "
                                   f"weights; re-run the training command to finish them", "ok": False})
        model = defend(victim, get_defense(spec))
        try:
            health = gradient_health(model, x[:8].to(dev), y[:8].to(dev), warn=False)
        except InputError as err:
            # a defense that refuses gradients (e.g. the real JPEG codec) is a fact, not a failure ("n/a"); any
            # other refusal is a failed check
            refuses_gradients = "not differentiable" in str(err)
            checks.append({"check": GRADIENT_CHECK, "defense": spec,
                           "note": (f"not differentiable (only full-gradient attacks need its gradients; "
                                    f"oblivious, transfer and BPDA rows do not): {err}" if refuses_gradients
                                    else f"the gradient probe failed: {err}"),
                           "ok": None if refuses_gradients else False})
            continue
        ok = health["finite"] and health["zero_fraction"] < 0.5
        checks.append({"check": GRADIENT_CHECK, "defense": spec, **health,
                       "ok": ok})
        if not ok:
            warnings.warn(f"defense {spec!r}: gradients are {'non-finite' if not health['finite'] else 'mostly zero'}"
                          f" (gradient masking?): full-gradient numbers are not trustworthy; evaluate it with the "
                          f"'bpda' threat model", stacklevel=2)
    if cfg.indicators:
        checks += attack_failure_indicators(rows, cfg, get_defense, get_victim, x, y, dev)
    for c in checks:
        if c["ok"] is False and c["check"] != GRADIENT_CHECK:
            warnings.warn(f"sanity check failed: {c}", stacklevel=2)
    return checks


def attack_failure_indicators(rows, cfg: EvalConfig, get_defense, get_victim, x, y, dev) -> list[dict[str, Any]]:
    """:mod:`irad.attacks.indicators` for every (victim, defense, adaptive threat model) of ``rows`` (on
    ``cfg.indicator_images`` images), and the row comparisons: a black-box attack (Square) beating a white-box one,
    full-gradient weaker than BPDA. Each fired indicator also marks its rows (``attack_failure``)."""
    from ..attacks import THREAT_MODELS
    from ..attacks import indicators as ind

    out: list[dict[str, Any]] = []
    fired_for: dict[tuple, list[str]] = {}
    adaptive = adaptive_threat_models()
    pipelines = sorted({(r["victim"], r["defense"], r["threat_model"], r["eps"]) for r in rows
                        if r["threat_model"] in adaptive and r["defense"] != "none" and r["defense"] in cfg.defenses
                        and r["victim"] in cfg.victims}) if x is not None else []
    if pipelines:
        xs, ys = x[:cfg.indicator_images].to(dev), y[:cfg.indicator_images].to(dev)
    for victim_spec, defense_spec, tm, eps in pipelines:
        threat = THREAT_MODELS.get(tm).factory()
        attacked = threat.attacked_model(get_victim(victim_spec), get_defense(defense_spec), None,
                                         eot_samples=cfg.eot_samples)
        try:
            found = ind.pipeline_indicators(attacked, xs, ys, eps)
        except InputError as err:  # e.g. a defense without gradients under full-gradient
            out.append({"check": "attack-failure indicators", "victim": victim_spec, "defense": defense_spec,
                        "threat_model": tm, "note": str(err), "ok": None})
            continue
        for i in found:
            out.append({"check": f"attack-failure indicator: {i.name}", "victim": victim_spec,
                        "defense": defense_spec, "threat_model": tm, "eps": eps, "value": i.value,
                        "note": i.message, "ok": None if i.fired is None else not i.fired})
            if i.fired:
                fired_for.setdefault((victim_spec, defense_spec, tm, eps), []).append(i.name)
    by_setting: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_setting.setdefault((r["victim"], r["defense"], r["eps"]), {})[f"{r['threat_model']}|{r['attack']}"] = r
    for (victim_spec, defense_spec, eps), found_rows in by_setting.items():
        for tm in adaptive:
            white = [r for k, r in found_rows.items() if k.startswith(tm + "|") and "square" not in r["attack"]]
            black = [r for k, r in found_rows.items() if k.startswith(tm + "|") and "square" in r["attack"]]
            if white and black:
                i = ind.black_box_beats_white_box(min(r["RA"] for r in black), min(r["RA"] for r in white),
                                                  slack=100.0 / black[0]["evaluations"])
                out.append({"check": f"attack-failure indicator: {i.name}", "victim": victim_spec,
                            "defense": defense_spec, "threat_model": tm, "note": i.message, "ok": not i.fired})
                if i.fired:
                    fired_for.setdefault((victim_spec, defense_spec, tm, eps), []).append(i.name)
        for attack in {k.split("|", 1)[1] for k in found_rows}:
            full, bp = found_rows.get(f"full-gradient|{attack}"), found_rows.get(f"bpda|{attack}")
            if full and bp:
                i = ind.full_gradient_weaker_than_bpda(full["RA"], bp["RA"], slack=100.0 / full["evaluations"])
                out.append({"check": f"attack-failure indicator: {i.name}", "victim": victim_spec,
                            "defense": defense_spec, "attack": attack, "note": i.message, "ok": not i.fired})
                if i.fired:
                    fired_for.setdefault((victim_spec, defense_spec, "full-gradient", eps), []).append(i.name)
    for r in rows:
        fired = fired_for.get((r["victim"], r["defense"], r["threat_model"], r["eps"]), [])
        if r.get("eot_samples") or "rand" in str(r.get("attack_used", "")):
            # randomness is what EOT answers: a row whose attack averaged over the defense's draws addressed it
            fired = [name for name in fired if name != "randomness"]
        r["attack_failure"] = fired
    return out
