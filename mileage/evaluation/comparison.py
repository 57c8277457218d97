"""The comparison of experiments: each against the baseline (or every pair), per compared metric, on the same
problems and each side's seeds, with Holm-adjusted p-values over the whole family and the smallest difference
each comparison's design detects. Its rows are `paired.tsv` and what the comparison's tables and figures draw.

A row (`comparison_rows`), all differences **b minus a** as fractions (the tables show percentage points):
  a, b              the two experiments (a is the baseline unless `compare.pairs: all`)
  change            what b changes relative to the baseline (mileage.report.changes), "" when unknown
  dataset, metric   the evaluation set and the metric (`avg@16`, ...: the registry's compared metrics)
  estimate          b - a, each side averaged over its seeds and then over problems
  ci95_low/high     95% percentile bootstrap interval (`interval` says which procedure)
  interval          over problems (one run a side) or two-level (seeds of each side, then problems)
  se, mde80         the bootstrap's standard error; the difference detected with 80% power at alpha 0.05
  p_value           two-sided sign-flip test over problems of the seed-averaged differences
  p_exact, p_floor  whether every sign pattern was enumerated; the smallest p it can give
  p_holm            Holm's adjustment over every row of the comparison (never below p_value)
  significant       p_holm < 0.05
  prob_improvement  rliable's P(b > a) over problems and pairs of seeds
  n_problems, seeds_a, seeds_b
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from mileage.evaluation.metrics import MetricError, compared_metrics, per_problem_scores
from mileage.evaluation.paired import ALPHA, PairingError, check_paired, holm, paired_scores, paired_tests

log = logging.getLogger(__name__)

PAIRS = ("baseline", "all")
COLUMNS = ("a", "b", "change", "dataset", "metric", "estimate", "ci95_low", "ci95_high", "interval", "se", "mde80",
           "p_value", "p_exact", "p_floor", "p_holm", "significant", "prob_improvement", "n_problems", "seeds_a",
           "seeds_b")


class ComparisonError(ValueError):
    """A comparison that cannot be set up: an unknown baseline or pairing mode."""


def comparison_pairs(names: Sequence[str], baseline: str, pairs: str = "baseline") -> list[tuple[str, str]]:
    """(a, b) of every comparison: the baseline against each other experiment, or every pair (the baseline's
    first, then the others in order)."""
    if pairs not in PAIRS:
        raise ComparisonError(f"compare.pairs must be one of {', '.join(PAIRS)}, got {pairs!r}")
    if baseline not in names:
        raise ComparisonError(f"compare.baseline: no experiment {baseline!r} (experiments: {', '.join(names)})")
    ordered = [baseline] + [n for n in names if n != baseline]
    if pairs == "baseline":
        return [(baseline, b) for b in ordered[1:]]
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]]


def _scores(sides: list[dict[str, Any]], metric: str) -> tuple[list[str], np.ndarray]:
    """(problem ids, (seeds, problems) scores) of one experiment's seeds."""
    ids = [str(r["problem_id"]) for r in sides[0]["per_problem"]]
    for side in sides[1:]:
        check_paired(ids, [str(r["problem_id"]) for r in side["per_problem"]], "two seeds of one experiment")
    return ids, np.array([per_problem_scores(side["per_problem"], metric) for side in sides])


def comparison_rows(names: Sequence[str], summaries: dict[str, dict[str, Any]],
                    sides: dict[str, list[dict[str, Any]]], *, baseline: str | None = None, pairs: str = "baseline",
                    changes: dict[str, str] | None = None,
                    **test_kw: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The comparison's rows (module docstring) and the refusals (pairs not compared, and why).

    `summaries`: each experiment's summary.json (dataset, k); `sides`: each experiment's final evaluation per seed
    (one entry without seeds); `baseline`: default the first name."""
    names = list(names)
    baseline = baseline or names[0]
    jobs: list[tuple[str, str, str, np.ndarray, np.ndarray]] = []
    refusals: list[str] = []
    for a, b in comparison_pairs(names, baseline, pairs):
        if summaries[a]["dataset"] != summaries[b]["dataset"]:
            refusals.append(f"`{a}` and `{b}`: evaluated on different datasets "
                            f"({summaries[a]['dataset']!r} vs {summaries[b]['dataset']!r}), so no paired test")
            continue
        metrics = [m for m in compared_metrics(int(summaries[a]["k"])) if m in compared_metrics(int(summaries[b]["k"]))]
        if not metrics:
            refusals.append(f"`{a}` and `{b}`: no metric in common (k = {summaries[a]['k']} and {summaries[b]['k']})")
            continue
        pair_jobs = []
        try:
            for metric in metrics:
                try:
                    ids_a, scores_a = _scores(sides[a], metric)
                    ids_b, scores_b = _scores(sides[b], metric)
                except MetricError as exc:  # an older summary without this metric's per-problem counts
                    log.info("compare: %s and %s: %s; left out", a, b, exc)
                    continue
                check_paired(ids_a, ids_b, f"`{a}` and `{b}`")
                paired_scores(scores_a, scores_b)  # scores that do not pair refuse this pair only
                pair_jobs.append((a, b, metric, scores_a, scores_b))
        except PairingError as exc:
            refusals.append(str(exc))
            continue
        jobs += pair_jobs
    # All tests in one batch: the same numbers as one paired_test each, without the per-call overhead.
    tests = paired_tests([(scores_a, scores_b) for *_, scores_a, scores_b in jobs], **test_kw)
    adjusted = holm([t["p_value"] for t in tests])
    rows = []
    for (a, b, metric, _, _), test, p_holm in zip(jobs, tests, adjusted):
        rows.append({
            "a": a, "b": b, "change": (changes or {}).get(b, ""), "dataset": summaries[a]["dataset"],
            "metric": metric, "estimate": test["estimate"], "ci95_low": test["ci95"][0],
            "ci95_high": test["ci95"][1], "interval": test["interval"], "se": test["se"], "mde80": test["mde80"],
            "p_value": test["p_value"], "p_exact": test["p_exact"], "p_floor": test["p_floor"], "p_holm": p_holm,
            "significant": p_holm < ALPHA, "prob_improvement": test["prob_improvement"],
            "n_problems": test["n_problems"], "seeds_a": test["n_seeds_a"], "seeds_b": test["n_seeds_b"],
        })
    return rows, refusals


def significantly_best(rows: list[dict[str, Any]], baseline: str, metric: str) -> str | None:
    """The experiment that is best on `metric` with every comparison it needs significant after adjustment:
    an experiment beats the baseline significantly and has the highest estimate, or the baseline beats every other
    significantly. None when no experiment is clearly best (with baseline-only pairs, two experiments that both
    beat the baseline are not compared with each other, so neither is called best unless all pairs were tested)."""
    mine = [r for r in rows if r["metric"] == metric]
    if not mine:
        return None
    names = {r["a"] for r in mine} | {r["b"] for r in mine}

    def beats(x: str, y: str) -> bool:
        for r in mine:
            if (r["a"], r["b"]) == (y, x):
                return r["significant"] and r["estimate"] > 0
            if (r["a"], r["b"]) == (x, y):
                return r["significant"] and r["estimate"] < 0
        return False

    winners = [x for x in names if all(beats(x, y) for y in names if y != x)]
    return winners[0] if len(winners) == 1 else None
