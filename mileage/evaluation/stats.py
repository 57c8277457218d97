"""Evaluation statistics from per-sample records: avg@k, unbiased pass@j, maj@k, bootstrap intervals.

Every metric is a mean over problems of a per-problem value, so one bootstrap (resampling problems with
replacement) gives all the intervals at once. Each problem contributes exactly k samples (its k lowest
sample indices), so "@k" means the same thing for every problem.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np

from mileage.rewards import normalize_answer

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


def pass_at_j(n: int, c: int, j: int) -> float:
    """Unbiased pass@j from n samples with c correct: 1 - C(n-c, j) / C(n, j).

    Computed as a running product of ratios, which never forms the huge binomials.
    """
    if not 1 <= j <= n:
        raise StatsError(f"pass@{j} needs 1 <= j <= n (n={n})")
    if n - c < j:
        return 1.0
    miss = 1.0
    for i in range(j):
        miss *= (n - c - i) / (n - i)
    return 1.0 - miss


def majority_vote(samples: list[dict]) -> tuple[str | None, bool]:
    """Most common answer (equivalent forms pooled) and whether it is correct.

    Samples without an answer do not vote. Ties go to the answer that appeared first (lowest
    sample_index), so the result does not depend on dict or set order. The answer counts as correct
    when the samples that gave it were all graded correct.
    """
    votes: dict[str, list[dict]] = {}
    for sample in samples:  # already in sample_index order
        answer = sample.get("extracted_answer")
        if answer is None:
            continue
        votes.setdefault(normalize_answer(str(answer)), []).append(sample)
    if not votes:
        return None, False
    best = max(votes.values(), key=len)  # max keeps the first of equal counts: earliest answer wins
    correct = all(float(s["reward"]) >= CORRECT_AT for s in best)
    return str(best[0]["extracted_answer"]), correct


def _per_problem(groups: dict[str, list[dict]], k: int) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    rows, avg, passes, maj = [], [], [], []
    for problem_id, samples in groups.items():
        used = samples[:k]
        rewards = [float(s["reward"]) for s in used]
        n_correct = sum(r >= CORRECT_AT for r in rewards)
        answer, majority_correct = majority_vote(used)
        mean_reward = sum(rewards) / k
        rows.append({
            "problem_id": problem_id,
            "label": str(used[0]["label"]),
            "n": k,
            "n_correct": int(n_correct),
            "mean_reward": mean_reward,
            "majority_answer": answer,
            "majority_correct": majority_correct,
        })
        avg.append(mean_reward)
        passes.append([pass_at_j(k, n_correct, j) for j in range(1, k + 1)])
        maj.append(1.0 if majority_correct else 0.0)
    return rows, np.asarray(avg), np.asarray(passes), np.asarray(maj)


def bootstrap_ci(per_problem: np.ndarray, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """95% percentile intervals of column means, resampling rows (problems) with replacement.

    `per_problem` is (problems, metrics); returns (metrics, 2). One index draw serves every metric,
    so the intervals of different metrics come from the same resamples.
    """
    values = np.asarray(per_problem, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    rng = np.random.Generator(np.random.PCG64(seed))
    draws = rng.integers(0, n, size=(n_boot, n))
    means = values[draws].mean(axis=1)  # (n_boot, metrics)
    low, high = np.quantile(means, [0.025, 0.975], axis=0)
    point = values.mean(axis=0)
    # A mean lies inside its own percentile interval; min/max only absorb last-bit float differences.
    return np.stack([np.minimum(low, point), np.maximum(high, point)], axis=1)


def summarize(records: list[dict], k: int | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """One side (`base` or `final`) of summary.json: metrics with 95% CIs and a row per problem."""
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

    rows, avg, passes, maj = _per_problem(groups, k)
    names = [f"avg@{k}"] + [f"pass@{j}" for j in range(1, k + 1)] + [f"maj@{k}"]
    table = np.column_stack([avg, passes, maj])
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
    """The whole summary.json. Without an explicit k both sides use the smaller default, so they compare."""
    k = kw.pop("k", None)
    if k is None:
        k = min(default_k(base), default_k(final))
    return {
        "experiment": experiment,
        "dataset": dataset,
        "k": k,
        "base": summarize(base, k=k, **kw),
        "final": summarize(final, k=k, **kw),
    }
