"""Paired statistics: is b better than a on the same problems (and seeds)?

Direction: every number is **b minus a** (for final vs base: b = final, a = base; for experiments: b = the second
experiment of the pair). The resampling unit is the problem: each problem's difference is first averaged over
seeds, then
- the interval is scipy's paired percentile bootstrap of the mean difference over problems,
- the p-value is scipy's sign-flip test (permutation_test, permutation_type='samples' on one sample: each
  problem's difference keeps or flips its sign), two-sided,
- the probability of improvement is rliable's P(b > a) per problem (a Mann-Whitney statistic over seeds, 0/0.5/1
  with one seed), averaged over problems.
Seed-to-seed variation of whole training runs is what `seed_interval` (a t-interval over per-seed values) shows.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import scipy.stats
from rliable.metrics import probability_of_improvement

N_RESAMPLES = 9999
SEED = 0


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


def paired_test(a: Any, b: Any, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """b minus a over the same problems: {"estimate", "ci95": [lo, hi], "p_value", "prob_improvement", "n_problems"}.

    `a` and `b` are per-problem scores, shape (problems,) or (seeds, problems), paired by index. The interval is
    reported as the percentile bootstrap gives it, never widened to contain the estimate."""
    a, b = _as_matrix(a, "a"), _as_matrix(b, "b")
    if a.shape != b.shape:
        raise PairingError(f"a and b are not paired: shapes {a.shape} and {b.shape} (seeds, problems) differ")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    diff = (b - a).mean(axis=0)  # per problem, averaged over seeds
    estimate = float(diff.mean())
    if diff.size == 1:  # one problem: every resample is that problem, and one sign flip is as likely as none
        low = high = estimate
        p_value = 1.0
    else:
        rng = np.random.Generator(np.random.PCG64(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's notes on constant or tiny samples; its numbers stand as given
            boot = scipy.stats.bootstrap((diff,), np.mean, n_resamples=n_resamples, vectorized=True,
                                         method="percentile", rng=rng)
            # With 2**problems <= n_resamples scipy runs the exact test over every sign pattern.
            flip = scipy.stats.permutation_test((diff,), np.mean, permutation_type="samples", vectorized=True,
                                                n_resamples=n_resamples, alternative="two-sided", rng=rng)
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        p_value = float(flip.pvalue)
    return {
        "estimate": estimate,
        "ci95": [low, high],
        "p_value": p_value,
        "prob_improvement": float(probability_of_improvement(b, a)),
        "n_problems": int(a.shape[1]),
    }


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
