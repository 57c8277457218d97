"""Evaluation statistics from per-sample records: avg@k, unbiased pass@j, maj@k, bootstrap intervals, and the
paired difference final minus base.

Every metric is a mean over problems of a per-problem value, so one bootstrap (resampling problems with
replacement) gives all the intervals at once. Each problem contributes exactly k samples (its k lowest
sample indices), so "@k" means the same thing for every problem.

Beside the reward's own metrics, two tell format learning from real gains: `answer_avg@k`, the share of samples
whose last answer anywhere (a box anywhere, else the last number) is right by the reward's equivalence whatever
the format, and `format@k`, the share of samples in which the reward found an answer at all.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import warnings

import numpy as np
import scipy.stats

from mileage.evaluation import metrics
from mileage.evaluation.answers import free_answer_correct, group_equivalent
from mileage.evaluation.metrics import pass_at_j  # noqa: F401  (re-exported: callers import it from here)
from mileage.evaluation.paired import PairingError, check_paired, paired_tests

DEFAULT_REWARD = "deepscaler"  # the schema's default rollout.reward

# Rewards are binary (1.0 = correct); the tolerance absorbs float noise from averaging engines.
CORRECT_AT = 1.0 - 1e-9


class StatsError(ValueError):
    """Records that cannot be summarised (too few samples, inconsistent labels, duplicates)."""


def _natural_key(text: str) -> list:
    """Sort `aime-2024-2` before `aime-2024-10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _group_by_problem(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for position, record in enumerate(records):
        for key in ("problem_id", "sample_index", "label", "reward"):
            if key not in record:
                raise StatsError(f"record {position} lacks key {key!r}")
        groups[str(record["problem_id"])].append(record)
    for problem_id, samples in groups.items():
        samples.sort(key=lambda r: r["sample_index"])
        indices = [r["sample_index"] for r in samples]
        if len(set(indices)) != len(indices):
            raise StatsError(f"problem {problem_id!r} has duplicate sample_index values")
        labels = {str(r["label"]) for r in samples}
        if len(labels) != 1:
            raise StatsError(f"problem {problem_id!r} has inconsistent labels {sorted(labels)}")
    return {pid: groups[pid] for pid in sorted(groups, key=_natural_key)}


def default_k(records: list[dict]) -> int:
    """The smallest number of samples any problem has."""
    groups = _group_by_problem(records)
    if not groups:
        raise StatsError("no records to summarise")
    return min(len(samples) for samples in groups.values())


def majority_vote(samples: list[dict], reward: str = DEFAULT_REWARD) -> tuple[str | None, bool]:
    """Most common answer, answers pooled by the reward's own equivalence, and whether it is correct.

    Samples without an answer do not vote. `1/2` and `0.5` count as one answer exactly when reward `reward`
    deems them equal (mileage.evaluation.answers). Ties go to the answer that appeared first (lowest
    sample_index), so the result does not depend on dict or set order. The winner is shown as its first
    spelling and is correct when that sample was graded correct.
    """
    voting = [s for s in samples if s.get("extracted_answer") is not None]  # already in sample_index order
    if not voting:
        return None, False
    groups = group_equivalent([str(s["extracted_answer"]) for s in voting], reward)
    best = max(groups, key=len)  # max keeps the first of equal counts: earliest answer wins
    first = voting[best[0]]
    return str(first["extracted_answer"]), float(first["reward"]) >= CORRECT_AT


def _per_problem(groups: dict[str, list[dict]], k: int, reward: str) -> tuple[list[dict], np.ndarray]:
    rows = []
    for problem_id, samples in groups.items():
        used = samples[:k]
        rewards = [float(s["reward"]) for s in used]
        answer, majority_correct = majority_vote(used, reward)
        rows.append({
            "problem_id": problem_id,
            "label": str(used[0]["label"]),
            "n": k,
            "n_correct": int(sum(r >= CORRECT_AT for r in rewards)),
            "mean_reward": sum(rewards) / k,
            "majority_answer": answer,
            "majority_correct": majority_correct,
            "n_answer_correct": int(sum(free_answer_correct(reward, str(s["response"]), str(s["label"]))
                                        for s in used)),
            "n_formatted": int(sum(s.get("extracted_answer") is not None for s in used)),
        })
    return rows, metric_table(rows, metric_names(k))


def metric_names(k: int) -> list[str]:
    """Every metric of a side, in summary order (mileage.evaluation.metrics' registry)."""
    return metrics.metric_names(k)


def headline_metrics(k: int) -> list[str]:
    """The metrics tables show and summary.json's final-vs-base tests compare (the registry's headline entries):
    avg@k, pass@k, maj@k, then the format-free accuracy and the format rate. pass@1 is not among them: on a
    binary reward it is avg@k."""
    return metrics.headline_metrics(k)


def per_problem_scores(rows: list[dict], metric: str) -> np.ndarray:
    """One metric's value for every per-problem row of a summary side (in row order), by the registry's entry."""
    try:
        return metrics.per_problem_scores(rows, metric)
    except metrics.MetricError as exc:
        raise StatsError(str(exc)) from None


def metric_table(rows: list[dict], names: list[str]) -> np.ndarray:
    """(problems, metrics) table of per-problem values."""
    return np.column_stack([per_problem_scores(rows, name) for name in names]) if rows else np.zeros((0, len(names)))


def bootstrap_ci(per_problem: np.ndarray, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """95% percentile intervals of column means, resampling rows (problems) with replacement (scipy.stats.bootstrap).

    `per_problem` is (problems, metrics); returns (metrics, 2). Intervals are reported as computed: a percentile
    interval of a mean almost always holds the mean, but nothing forces it to (with few resamples, or when
    float rounding of the resampled means differs from the mean's last bit), and it is not widened to.
    """
    values = np.asarray(per_problem, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if values.shape[0] == 1:  # every resample of one problem is that problem (scipy wants two)
        return np.stack([values[0], values[0]], axis=1)
    rng = np.random.Generator(np.random.PCG64(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on constant columns; their interval is the constant
        result = scipy.stats.bootstrap((values,), np.mean, axis=0, n_resamples=n_boot, vectorized=True,
                                       method="percentile", rng=rng)
    low, high = np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)
    return np.stack([low, high], axis=1)


def paired_block(base: dict[str, Any], final: dict[str, Any], *, n_resamples: int, seed: int) -> dict[str, Any]:
    """summary.json's `paired`: final minus base per headline metric over the same problems (paired_test)."""
    check_paired([r["problem_id"] for r in base["per_problem"]], [r["problem_id"] for r in final["per_problem"]],
                 "the base and final evaluations")
    names = headline_metrics(int(final["k"]))
    pairs = [(per_problem_scores(base["per_problem"], n), per_problem_scores(final["per_problem"], n)) for n in names]
    tests = paired_tests(pairs, n_resamples=n_resamples, seed=seed)
    return dict(zip(names, tests))


def summarize(records: list[dict], k: int | None = None, n_boot: int = 1000, seed: int = 0,
              reward: str = DEFAULT_REWARD) -> dict[str, Any]:
    """One side (`base` or `final`) of summary.json: metrics with 95% CIs and a row per problem. `reward`: the
    rule that graded the records (majority votes and the format-free accuracy use its equivalence)."""
    groups = _group_by_problem(records)
    if not groups:
        raise StatsError("no records to summarise")
    if k is None:
        k = min(len(samples) for samples in groups.values())
    if not isinstance(k, int) or k < 1:
        raise StatsError(f"k must be a positive integer, got {k!r}")
    for problem_id, samples in groups.items():
        if len(samples) < k:
            raise StatsError(f"problem {problem_id!r} has {len(samples)} samples, fewer than k={k}")
    if n_boot < 1:
        raise StatsError(f"n_boot must be at least 1, got {n_boot}")

    rows, table = _per_problem(groups, k, reward)
    names = metric_names(k)
    values = table.mean(axis=0)
    intervals = bootstrap_ci(table, n_boot=n_boot, seed=seed)
    metrics = {
        name: {"value": float(values[i]), "ci95": [float(intervals[i, 0]), float(intervals[i, 1])]}
        for i, name in enumerate(names)
    }
    return {
        "n_problems": len(rows),
        "n_samples": len(rows) * k,
        "k": k,
        "metrics": metrics,
        "per_problem": rows,
    }


def summary_document(experiment: str, dataset: str, base: list[dict], final: list[dict], **kw: Any) -> dict[str, Any]:
    """The whole summary.json. Without an explicit k both sides use the smaller default, so they compare.

    `paired` is final minus base over the same problems; when the two evaluations did not see the same problems
    it is empty and `paired_refused` says why."""
    k = kw.pop("k", None)
    if k is None:
        k = min(default_k(base), default_k(final))
    document = {
        "experiment": experiment,
        "dataset": dataset,
        "k": k,
        "reward": kw.get("reward", DEFAULT_REWARD),
        "base": summarize(base, k=k, **kw),
        "final": summarize(final, k=k, **kw),
    }
    try:
        document["paired"] = paired_block(document["base"], document["final"], n_resamples=kw.get("n_boot", 1000),
                                          seed=kw.get("seed", 0))
    except PairingError as exc:
        document["paired"], document["paired_refused"] = {}, str(exc)
    return document
