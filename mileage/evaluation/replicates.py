"""The aggregate of an experiment's replicate seeds: one summary.json from each seed's own.

Each replicate's summary holds its final evaluation and the base evaluation they share (one model, one base
run). The aggregate keeps a single summary's shape (`experiment`, `dataset`, `k`, `base`, `final`, so the report
and the comparison read it as any summary) where `final.metrics` is the across-seed mean with a 95% two-level
bootstrap interval (seeds drawn with replacement, then problems within them: `seed_metrics`), and adds `seeds`,
`per_seed` (each seed's final scores) and `paired`: final minus base over problems x seeds (paired_tests), per headline metric (stats.headline_metrics).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mileage.evaluation.paired import PairingError, check_paired, paired_tests, resampled_means, two_level_draws
from mileage.evaluation.stats import StatsError, headline_metrics, per_problem_scores


INTERVAL = "95% two-level bootstrap (seeds, then problems within them)"
FEW_SEEDS = 3  # up to this many seeds a resample of them takes at most 10 distinct values


def few_seeds_note(n_seeds: int) -> str | None:
    """With few seeds, plainly: the interval cannot measure seed-to-seed variation (None with more seeds)."""
    if 1 < n_seeds <= FEW_SEEDS:
        return (f"With {n_seeds} seeds the across-seed part of these intervals is not informative: resampling "
                f"{n_seeds} runs cannot measure how much whole training runs vary; read them as over problems, and "
                f"run more seeds (`mileage power`) to measure it.")
    return None

class ReplicateError(ValueError):
    """Replicate summaries that cannot be aggregated (different datasets, k or problems)."""


def _problem_ids(side: dict[str, Any]) -> list[str]:
    return [str(r["problem_id"]) for r in side["per_problem"]]


def aggregate_summaries(experiment: str, seeds: Sequence[int], summaries: Sequence[dict[str, Any]],
                        **paired_kw: Any) -> dict[str, Any]:
    """The aggregate summary of `experiment` from its replicates' summaries (one per seed, in `seeds` order)."""
    if len(seeds) != len(summaries) or not summaries:
        raise ReplicateError(f"{experiment}: {len(seeds)} seeds but {len(summaries)} replicate summaries")
    first = summaries[0]
    for seed, summary in zip(seeds, summaries):
        for key in ("dataset", "k"):
            if summary[key] != first[key]:
                raise ReplicateError(f"{experiment}: seed {seed} has {key} {summary[key]!r}, seed {seeds[0]} "
                                     f"{first[key]!r}: replicates must evaluate alike")
        try:
            check_paired(_problem_ids(first["final"]), _problem_ids(summary["final"]),
                         f"seed {seeds[0]} and seed {seed}")
            check_paired(_problem_ids(first["base"]), _problem_ids(summary["final"]), f"base and seed {seed}")
        except PairingError as err:
            raise ReplicateError(f"{experiment}: {err}") from None
    rows = [s["final"]["per_problem"] for s in summaries]
    metrics = seed_metrics(first["final"]["metrics"], [s["final"]["metrics"] for s in summaries], rows,
                           n_resamples=paired_kw.get("n_resamples", 1000), seed=paired_kw.get("seed", 0))
    by_seed = np.array([per_problem_scores(r, f"avg@{first['k']}") for r in rows])
    per_problem = []  # counts summed over the seeds, the mean reward averaged, each seed's kept
    for i, pid in enumerate(_problem_ids(first["final"])):
        row = {"problem_id": pid, "label": rows[0][i].get("label"), "mean_reward": float(by_seed[:, i].mean()),
               "by_seed": [float(v) for v in by_seed[:, i]]}
        for count in ("n", "n_correct", "n_answer_correct", "n_formatted"):
            if all(count in r[i] for r in rows):
                row[count] = sum(int(r[i][count]) for r in rows)
        per_problem.append(row)
    names, pairs = [], []
    for name in headline_metrics(int(first["k"])):
        try:
            final = np.array([per_problem_scores(r, name) for r in rows])
            base = per_problem_scores(first["base"]["per_problem"], name)  # one base model: one run
        except StatsError:
            continue  # a metric older summaries lack
        names.append(name)
        pairs.append((base, final))
    paired = dict(zip(names, paired_tests(pairs, **paired_kw)))
    provenance = {}
    if "provenance" in first:  # what ran: the replicates share code, config and data; each seed's stage times
        provenance = {"provenance": {**first["provenance"], "seeds": list(seeds),
                                     "per_seed_wall_seconds": {str(seed): s.get("provenance", {}).get("wall_seconds")
                                                               for seed, s in zip(seeds, summaries)}}}
    return {
        **provenance,
        "experiment": experiment,
        "dataset": first["dataset"],
        "k": first["k"],
        "seeds": list(seeds),
        "base": first["base"],
        "final": {
            "n_problems": first["final"]["n_problems"],
            "n_samples": sum(int(s["final"].get("n_samples", 0)) for s in summaries),
            "k": first["final"]["k"],
            "n_seeds": len(seeds),
            "metrics": metrics,
            "per_problem": per_problem,
        },
        "per_seed": {str(seed): {"final": {n: m["value"] for n, m in s["final"]["metrics"].items()}}
                     for seed, s in zip(seeds, summaries)},
        "paired": paired,
    }


def seed_metrics(names: Any, per_seed: Sequence[dict[str, Any]], rows: Sequence[list[dict[str, Any]]], *,
                 n_resamples: int, seed: int) -> dict[str, Any]:
    """Each metric's across-seed mean with a 95% two-level bootstrap interval: the seeds drawn with replacement,
    then the problems within them. The interval is one of means of scores, so it never leaves [0, 1], and with
    two or three seeds it says how little the seeds pin down rather than a Student-t's [1.8, 160.7]%. A metric
    whose per-problem values the rows lack (an older summary) keeps its per-seed values and no interval."""
    out: dict[str, Any] = {}
    tables: dict[str, np.ndarray] = {}
    for name in names:
        values = [float(m[name]["value"]) for m in per_seed]
        out[name] = {"value": float(np.mean(values)), "ci95": None,
                     "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                     "per_seed": values, "interval": None}
        try:
            tables[name] = np.array([per_problem_scores(r, name) for r in rows])
        except StatsError:
            continue
    if tables:
        stack = np.stack(list(tables.values()))
        (seed_weights,), problem_weights = two_level_draws((stack.shape[1],), stack.shape[2], n_resamples, seed)
        bounds = np.percentile(resampled_means(stack, seed_weights, problem_weights), [2.5, 97.5], axis=1)
        for name, low, high in zip(tables, bounds[0], bounds[1]):
            out[name]["ci95"] = [float(low), float(high)]
            out[name]["interval"] = INTERVAL
    return out


def mean_tables(tables: Sequence[Any]) -> Any:
    """Metric tables (pandas, first column the step) of the replicates -> the across-seed mean at every step, and
    the number of seeds that logged it (`<column>/n_seeds` is left out: the figures read the replicates' own)."""
    import pandas as pd

    present = [t for t in tables if len(t.columns)]
    if not present:
        return tables[0]
    step = present[0].columns[0]
    stacked = pd.concat([t.set_index(step) for t in present], axis=0)
    return stacked.groupby(level=0, sort=True).mean().reset_index()
