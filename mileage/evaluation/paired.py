"""Paired statistics: is b better than a on the same problems (and seeds)?

Direction: every number is **b minus a** (for final vs base: b = final, a = base; for experiments: b = the second
experiment of the pair). The resampling unit is the problem: each problem's difference is first averaged over
seeds, then
- the interval is scipy's paired percentile bootstrap of the mean difference over problems,
- the p-value is scipy's sign-flip test (permutation_test, permutation_type='samples' on one sample: each
  problem's difference keeps or flips its sign), two-sided,
- the probability of improvement is rliable's: per problem P(b > a) + 0.5 P(b = a) over every pair of b's and a's
  seeds (0/0.5/1 with one seed), averaged over problems; computed here by that definition in one array
  operation, which gives rliable's `probability_of_improvement` number for number (tests/test_paired.py).
Many tests at once (`paired_tests`) share one scipy call per batch: scipy draws its resampling indices and sign
patterns independently of how many rows a call holds, so each row gets exactly the numbers a call of its own
(same seed) would give, without scipy's per-call overhead (benchmarks/stats_aggregation.py).
Seed-to-seed variation of whole training runs is what `seed_interval` (a t-interval over per-seed values) shows.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import scipy.stats

N_RESAMPLES = 9999
SEED = 0
# Rows x resamples x problems per scipy call: bounds the memory of a batch (the sign-flip's null holds about
# twice this many floats) while keeping the per-call overhead small.
_BATCH_ELEMENTS = 4_000_000


class PairingError(ValueError):
    """The two sides are not paired: different problems, or different seeds / shapes."""


def check_paired(ids_a: Sequence[str], ids_b: Sequence[str], what: str = "a and b") -> None:
    """Raise PairingError saying which problems differ when two sides were not evaluated on the same problems."""
    set_a, set_b = list(map(str, ids_a)), list(map(str, ids_b))
    if set_a == set_b:
        return
    only_a = [p for p in set_a if p not in set(set_b)]
    only_b = [p for p in set_b if p not in set(set_a)]
    if not only_a and not only_b:
        if len(set_a) != len(set(set_a)) or len(set_b) != len(set(set_b)):
            raise PairingError(f"{what}: a problem id appears twice on one side")
        raise PairingError(f"{what}: the same problems in a different order (align them by problem id first)")

    def show(ids: list[str]) -> str:
        return ", ".join(repr(p) for p in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")

    parts = [f"{len(set_a)} vs {len(set_b)} problems, {len(set(set_a) & set(set_b))} in common"]
    if only_a:
        parts.append(f"only in the first: {show(only_a)}")
    if only_b:
        parts.append(f"only in the second: {show(only_b)}")
    raise PairingError(f"{what} were not evaluated on the same problems, so no paired test: " + "; ".join(parts))


def _as_matrix(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0:
        raise PairingError(f"{name} must be (problems,) or (seeds, problems) with at least one problem, "
                           f"got shape {np.shape(values)}")
    if not np.isfinite(array).all():
        raise PairingError(f"{name} holds a NaN or infinite score")
    return array


def probability_of_improvement(scores_x: Any, scores_y: Any) -> float:
    """rliable's probability of improvement of X over Y: per task (column) the Mann-Whitney U of X's runs over Y's
    divided by runs_x * runs_y, i.e. P(X > Y) + 0.5 P(X = Y) over every pair of runs, averaged over tasks.

    Shapes (runs_x, tasks) and (runs_y, tasks). Equal columns give 0.5, as in rliable."""
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"probability_of_improvement needs (runs, tasks) arrays with equal tasks, "
                         f"got {x.shape} and {y.shape}")
    pairs_x, pairs_y = x[:, None, :], y[None, :, :]
    wins = (pairs_x > pairs_y).sum(axis=(0, 1)) + 0.5 * (pairs_x == pairs_y).sum(axis=(0, 1))
    return float(np.mean(wins / (x.shape[0] * y.shape[0])))


def paired_scores(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, b - a per problem averaged over seeds) as (seeds, problems) arrays; PairingError when they do not
    pair (shapes differ, a NaN or infinite score). Check a batch's pairs with it before `paired_tests`."""
    a, b = _as_matrix(a, "a"), _as_matrix(b, "b")
    if a.shape != b.shape:
        raise PairingError(f"a and b are not paired: shapes {a.shape} and {b.shape} (seeds, problems) differ")
    return a, b, (b - a).mean(axis=0)  # the difference per problem, averaged over seeds


def _mean(values: np.ndarray, axis: int) -> np.ndarray:
    """The bootstrap's statistic: np.mean of a C-ordered copy. scipy's fancy indexing lays a batch of resamples out
    with its rows innermost, and numpy sums a strided axis in another order than a contiguous one; in C order each
    row is summed as in a call of its own, to the last bit. (The sign-flip test needs no copy: there the problem
    axis is the outermost one whether the call holds one row or many.)"""
    return np.mean(np.ascontiguousarray(values), axis=axis)


def _resampled(diffs: np.ndarray, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, p) per row of `diffs` (rows, problems): one bootstrap and one sign-flip call for all rows,
    with the rng a single test would use (seeded afresh, the bootstrap first, then the sign flips)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on constant or tiny samples; its numbers stand as given
        boot = scipy.stats.bootstrap((diffs,), _mean, axis=-1, n_resamples=n_resamples, vectorized=True,
                                     method="percentile", rng=rng)
        # With 2**problems <= n_resamples scipy runs the exact test over every sign pattern.
        flip = scipy.stats.permutation_test((diffs,), np.mean, axis=-1, permutation_type="samples",
                                            vectorized=True, n_resamples=n_resamples, alternative="two-sided",
                                            rng=rng)
    low, high = boot.confidence_interval.low, boot.confidence_interval.high
    return np.atleast_1d(low), np.atleast_1d(high), np.atleast_1d(flip.pvalue)


def paired_tests(pairs: Sequence[tuple[Any, Any]], *, n_resamples: int = N_RESAMPLES,
                 seed: int = SEED) -> list[dict[str, Any]]:
    """`paired_test` of every (a, b) in `pairs`, in order, each exactly as its own call would give it; tests with
    the same number of problems share scipy calls. A pair that does not pair raises PairingError."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    prepared = [paired_scores(a, b) for a, b in pairs]
    intervals: list[tuple[float, float, float]] = [(0.0, 0.0, 1.0)] * len(prepared)
    by_size: dict[int, list[int]] = defaultdict(list)
    for index, (_, _, diff) in enumerate(prepared):
        by_size[diff.size].append(index)
    for size, indices in by_size.items():
        if size == 1:  # one problem: every resample is that problem, and one sign flip is as likely as none
            for index in indices:
                estimate = float(prepared[index][2].mean())
                intervals[index] = (estimate, estimate, 1.0)
            continue
        rows = max(1, _BATCH_ELEMENTS // (n_resamples * size))
        for start in range(0, len(indices), rows):
            batch = indices[start:start + rows]
            lows, highs, ps = _resampled(np.stack([prepared[i][2] for i in batch]), n_resamples, seed)
            for index, low, high, p in zip(batch, lows, highs, ps):
                intervals[index] = (float(low), float(high), float(p))
    return [{
        "estimate": float(diff.mean()),
        "ci95": [low, high],
        "p_value": p_value,
        "prob_improvement": probability_of_improvement(b, a),
        "n_problems": int(a.shape[1]),
    } for (a, b, diff), (low, high, p_value) in zip(prepared, intervals)]


def paired_test(a: Any, b: Any, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """b minus a over the same problems: {"estimate", "ci95": [lo, hi], "p_value", "prob_improvement", "n_problems"}.

    `a` and `b` are per-problem scores, shape (problems,) or (seeds, problems), paired by index. The interval is
    reported as the percentile bootstrap gives it, never widened to contain the estimate."""
    return paired_tests([(a, b)], n_resamples=n_resamples, seed=seed)[0]


def seed_interval(values: Sequence[float]) -> dict[str, Any]:
    """Across-seed mean and 95% Student-t interval of per-seed values: {"mean", "ci95", "std", "n_seeds"}.

    One seed has no spread to measure: ci95 and std are None. Identical values give a zero-width interval."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"seed_interval needs a non-empty list of per-seed values, got shape {array.shape}")
    mean = float(array.mean())
    if array.size == 1:
        return {"mean": mean, "ci95": None, "std": None, "n_seeds": 1}
    std = float(array.std(ddof=1))
    if std == 0:
        ci = [mean, mean]
    else:
        low, high = scipy.stats.t.interval(0.95, df=array.size - 1, loc=mean, scale=scipy.stats.sem(array))
        ci = [float(low), float(high)]
    return {"mean": mean, "ci95": ci, "std": std, "n_seeds": int(array.size)}
