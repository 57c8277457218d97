"""Paired statistics: is b better than a on the same problems (and seeds)?

Direction: every number is **b minus a** (for final vs base: b = final, a = base; for experiments: b = the
experiment compared with the baseline a). Each problem's difference is between the two sides' means over their
seeds; then
- the interval is a percentile bootstrap of the mean difference: with one run a side, scipy's paired bootstrap
  over problems; with seeds, a two-level bootstrap (each side's seeds drawn with replacement, then the problems,
  the same draw for both sides), so seed-to-seed variation of whole training runs widens it;
- the p-value is the two-sided sign-flip test over problems (each problem's difference keeps or flips its sign):
  scipy's permutation_test (permutation_type='samples') enumerating every sign pattern when 2**problems <=
  n_resamples; otherwise random patterns by scipy's definition, computed for all rows in one matrix product
  (`_sign_flip`), with the floor 2 / (n_resamples + 1) (`p_resolution`);
- `mde80` is the smallest true difference the design detects with 80% power at alpha 0.05, from the
  bootstrap's standard error (`mde`);
- the probability of improvement is rliable's: per problem P(b > a) + 0.5 P(b = a) over every pair of b's and a's
  seeds (0/0.5/1 with one seed), averaged over problems; computed here by that definition in one array
  operation, which gives rliable's `probability_of_improvement` number for number (tests/test_paired.py).
Many tests at once (`paired_tests`) share their resampling draws (and scipy calls): the draws depend on the
seed and the shape only, so each test gets exactly the numbers a call of its own would give
(benchmarks/compare_scale.py). Over a family of tests, `holm` adjusts the p-values.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import scipy.stats

N_RESAMPLES = 9999
SEED = 0
ALPHA = 0.05
POWER = 0.8
OVER_PROBLEMS = "paired percentile bootstrap over problems"
TWO_LEVEL = "two-level percentile bootstrap (seeds of each side, then problems)"
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
    pair (other problem counts, a NaN or infinite score). The two sides may have different numbers of seeds: each
    problem's difference is then between its means over each side's seeds. Check a batch's pairs with it before
    `paired_tests`."""
    a, b = _as_matrix(a, "a"), _as_matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise PairingError(f"a and b are not paired: shapes {a.shape} and {b.shape} (seeds, problems) differ "
                           f"in the number of problems")
    return a, b, b.mean(axis=0) - a.mean(axis=0)  # the difference per problem, each side averaged over its seeds


def _mean(values: np.ndarray, axis: int) -> np.ndarray:
    """The bootstrap's statistic: np.mean of a C-ordered copy. scipy's fancy indexing lays a batch of resamples out
    with its rows innermost, and numpy sums a strided axis in another order than a contiguous one; in C order each
    row is summed as in a call of its own, to the last bit. (The sign-flip test needs no copy: there the problem
    axis is the outermost one whether the call holds one row or many.)"""
    return np.mean(np.ascontiguousarray(values), axis=axis)


def _sign_flip(diffs: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Two-sided sign-flip p-value of each row's mean (rows, problems). Exact over every sign pattern when
    2**problems <= n_resamples (scipy's permutation_test enumerates them); otherwise the same test with
    `n_resamples` random sign patterns shared by every row, by scipy's definition ((count + 1) / (n + 1) per tail,
    twice the smaller, capped at 1) in one matrix product: scipy's call costs about 30 times as much at the scale
    of a sweep (benchmarks/compare_scale.py)."""
    problems = diffs.shape[-1]
    if problems < 63 and 2 ** problems <= n_resamples:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flip = scipy.stats.permutation_test((diffs,), np.mean, axis=-1, permutation_type="samples",
                                                vectorized=True, n_resamples=n_resamples, alternative="two-sided",
                                                rng=rng)
        return np.atleast_1d(flip.pvalue)
    signs = 1.0 - 2.0 * rng.integers(0, 2, (n_resamples, problems))
    observed = diffs.sum(axis=-1) / problems
    tolerance = 1e-12 + 100 * np.finfo(float).eps * np.abs(observed)  # ties of sums taken in another order
    p_values = np.empty(len(diffs))
    rows = max(1, _BATCH_ELEMENTS // n_resamples)
    for start in range(0, len(diffs), rows):
        part = slice(start, start + rows)
        null = signs @ diffs[part].T / problems  # (resamples, rows)
        less = ((null <= observed[part] + tolerance[part]).sum(axis=0) + 1) / (n_resamples + 1)
        greater = ((null >= observed[part] - tolerance[part]).sum(axis=0) + 1) / (n_resamples + 1)
        p_values[part] = np.minimum(1.0, 2 * np.minimum(less, greater))
    return p_values


def _resampled(diffs: np.ndarray, n_resamples: int, seed: int) -> tuple[np.ndarray, ...]:
    """(low, high, standard error, p) per row of `diffs` (rows, problems): one bootstrap and one sign-flip call
    for all rows, with the rng a single test would use (seeded afresh, the bootstrap first, then the sign flips)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on constant or tiny samples; its numbers stand as given
        boot = scipy.stats.bootstrap((diffs,), _mean, axis=-1, n_resamples=n_resamples, vectorized=True,
                                     method="percentile", rng=rng)
    low, high = boot.confidence_interval.low, boot.confidence_interval.high
    return (np.atleast_1d(low), np.atleast_1d(high), np.atleast_1d(boot.standard_error),
            _sign_flip(diffs, n_resamples, rng))


def two_level_draws(n_seeds: Sequence[int], n_problems: int, n_resamples: int,
                    seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The resampling weights of a two-level bootstrap: per side, (resamples, seeds) weights of seeds drawn with
    replacement (summing to 1), and (resamples, problems) weights of problems drawn with replacement (summing to
    1), shared by the sides so the problems stay paired."""
    rng = np.random.Generator(np.random.PCG64(seed))

    def weights(size: int) -> np.ndarray:
        drawn = rng.integers(0, size, (n_resamples, size)) + size * np.arange(n_resamples)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=n_resamples * size).reshape(n_resamples, size)
        return counts / size

    seed_weights = [weights(s) for s in n_seeds]
    return seed_weights, weights(n_problems)


def resampled_means(scores: np.ndarray, seed_weights: np.ndarray, problem_weights: np.ndarray) -> np.ndarray:
    """Each resample's mean score of a (seeds, problems) table, or of each of a stack (tables, seeds, problems):
    the drawn seeds' mean per problem, then the drawn problems' mean; (resamples,) or (tables, resamples). Means
    of scores in [0, 1] stay in [0, 1], so no interval leaves the metric's range."""
    stack = np.asarray(scores, dtype=float)
    one = stack.ndim == 2
    stack = stack[None] if one else stack
    tables, seeds, problems = stack.shape
    # One product for the whole stack: (resamples, seeds) @ (seeds, tables * problems).
    per_problem = (seed_weights @ stack.transpose(1, 0, 2).reshape(seeds, tables * problems))
    means = np.einsum("rtp,rp->tr", per_problem.reshape(-1, tables, problems), problem_weights)
    # A weighted mean never leaves the table's range but for float rounding.
    means = np.clip(means, stack.min(axis=(1, 2))[:, None], stack.max(axis=(1, 2))[:, None])
    return means[0] if one else means


def _percentile_interval(resamples: np.ndarray) -> tuple[float, float, float]:
    low, high = np.percentile(resamples, [2.5, 97.5])
    return float(low), float(high), float(resamples.std(ddof=1))


def mde(standard_error: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided test at `alpha` detects with probability `power`, for an estimate
    with this standard error (normal approximation): (z_{1-alpha/2} + z_{power}) x se."""
    return float((scipy.stats.norm.ppf(1 - alpha / 2) + scipy.stats.norm.ppf(power)) * standard_error)


def p_resolution(n_problems: int, n_resamples: int) -> tuple[bool, float]:
    """(exact, smallest p the sign-flip test can give): exact over every sign pattern when 2**problems <=
    n_resamples (smallest p 2 / 2**problems), else (count + 1) / (n_resamples + 1) per tail, so at least
    2 / (n_resamples + 1) two-sided. A p at its floor means "this small or smaller"."""
    if n_problems < 2:
        return True, 1.0
    if n_problems < 63 and 2 ** n_problems <= n_resamples:
        return True, 2.0 / 2 ** n_problems
    return False, 2.0 / (n_resamples + 1)


def paired_tests(pairs: Sequence[tuple[Any, Any]], *, n_resamples: int = N_RESAMPLES,
                 seed: int = SEED) -> list[dict[str, Any]]:
    """`paired_test` of every (a, b) in `pairs`, in order, each exactly as its own call would give it; tests of the
    same shape share their resampling draws (and, with one seed a side, scipy calls). A pair that does not pair
    raises PairingError."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    prepared = [paired_scores(a, b) for a, b in pairs]
    results: list[tuple[float, float, float, float]] = [(0.0, 0.0, 0.0, 1.0)] * len(prepared)
    by_shape: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for index, (a, b, _) in enumerate(prepared):
        by_shape[(a.shape[0], b.shape[0], a.shape[1])].append(index)
    for (seeds_a, seeds_b, size), indices in by_shape.items():
        if size == 1:  # one problem: every resample is that problem, and one sign flip is as likely as none
            for index in indices:
                estimate = float(prepared[index][2].mean())
                results[index] = (estimate, estimate, 0.0, 1.0)
            continue
        if seeds_a == seeds_b == 1:  # one run a side: scipy's paired bootstrap over problems
            rows = max(1, _BATCH_ELEMENTS // (n_resamples * size))
            for start in range(0, len(indices), rows):
                batch = indices[start:start + rows]
                lows, highs, ses, ps = _resampled(np.stack([prepared[i][2] for i in batch]), n_resamples, seed)
                for index, low, high, se, p in zip(batch, lows, highs, ses, ps):
                    results[index] = (float(low), float(high), float(se), float(p))
            continue
        # Seeds on a side: resample the seeds of each side, then the problems (shared, so they stay paired).
        (weights_a, weights_b), problem_weights = two_level_draws((seeds_a, seeds_b), size, n_resamples, seed)
        ps = _sign_flip(np.stack([prepared[i][2] for i in indices]), n_resamples,
                        np.random.Generator(np.random.PCG64(seed)))
        rows = max(1, _BATCH_ELEMENTS // (n_resamples * size))  # bounds the (resamples, rows x problems) product
        for start in range(0, len(indices), rows):
            batch = indices[start:start + rows]
            means_b = resampled_means(np.stack([prepared[i][1] for i in batch]), weights_b, problem_weights)
            means_a = resampled_means(np.stack([prepared[i][0] for i in batch]), weights_a, problem_weights)
            for row, index in enumerate(batch):
                results[index] = (*_percentile_interval(means_b[row] - means_a[row]), float(ps[start + row]))
    tests = []
    for (a, b, diff), (low, high, se, p_value) in zip(prepared, results):
        exact, floor = p_resolution(int(a.shape[1]), n_resamples)
        two_level = max(a.shape[0], b.shape[0]) > 1
        tests.append({
            "estimate": float(diff.mean()),
            "ci95": [low, high],
            "interval": TWO_LEVEL if two_level else OVER_PROBLEMS,
            "se": se,
            "mde80": mde(se),
            "p_value": p_value,
            "p_exact": exact,
            "p_floor": floor,
            "prob_improvement": probability_of_improvement(b, a),
            "n_problems": int(a.shape[1]),
            "n_seeds_a": int(a.shape[0]),
            "n_seeds_b": int(b.shape[0]),
        })
    return tests


def paired_test(a: Any, b: Any, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """b minus a over the same problems: {"estimate", "ci95": [lo, hi], "interval", "se", "mde80", "p_value",
    "p_exact", "p_floor", "prob_improvement", "n_problems", "n_seeds_a", "n_seeds_b"}.

    `a` and `b` are per-problem scores, shape (problems,) or (seeds, problems), paired by problem. The interval is
    the percentile bootstrap's, never widened to contain the estimate: over problems with one run a side, over
    seeds and then problems (two levels) with several. The p-value is the sign-flip test over problems of the
    seed-averaged differences in both cases: it treats the seeds as given, the two-level interval does not, so the
    two can disagree near the edge (docs/statistics.md). `mde80`: the difference this design detects with 80%
    power at alpha 0.05, from the bootstrap's standard error."""
    return paired_tests([(a, b)], n_resamples=n_resamples, seed=seed)[0]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment over one family of tests: the i-th smallest p times (m - i + 1), made
    non-decreasing, capped at 1. Never below the unadjusted p; controls the family-wise error at alpha."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return [float(v) for v in np.maximum(adjusted, p)]
