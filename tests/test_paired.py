"""Paired statistics (mileage/evaluation/paired.py): b minus a over the same problems, and refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
from rliable.metrics import probability_of_improvement as rliable_probability_of_improvement

from mileage.evaluation.paired import (
    PairingError,
    check_paired,
    paired_test,
    paired_tests,
    probability_of_improvement,
    seed_interval,
)


def one_call_reference(a, b, n_resamples=9999, seed=0):
    """The slow reference: one scipy bootstrap, one scipy sign-flip test and rliable's own probability of
    improvement per pair, as paired_test first computed them."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    diff = (b - a).mean(axis=0)
    if diff.size == 1:
        low = high = float(diff.mean())
        p_value = 1.0
    else:
        rng = np.random.Generator(np.random.PCG64(seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot = scipy.stats.bootstrap((diff,), np.mean, n_resamples=n_resamples, vectorized=True,
                                         method="percentile", rng=rng)
            flip = scipy.stats.permutation_test((diff,), np.mean, permutation_type="samples", vectorized=True,
                                                n_resamples=n_resamples, alternative="two-sided", rng=rng)
        low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
        p_value = float(flip.pvalue)
    return {"estimate": float(diff.mean()), "ci95": [low, high], "p_value": p_value,
            "prob_improvement": float(rliable_probability_of_improvement(b, a)), "n_problems": int(a.shape[1])}


def random_pairs(rng, count):
    """Continuous and k/16-valued scores (ties), 1-3 seeds, sizes that take scipy's exact and random sign-flip
    paths, and some pairs with no difference."""
    pairs = []
    for i in range(count):
        seeds, problems = int(rng.integers(1, 4)), int(rng.choice([1, 2, 5, 13, 14, 30]))
        if i % 2:
            a, b = rng.integers(0, 17, (seeds, problems)) / 16, rng.integers(0, 17, (seeds, problems)) / 16
        else:
            a = rng.random((seeds, problems))
            b = a + rng.normal(0.05, 0.2, (seeds, problems))
        pairs.append((a, a.copy() if i % 7 == 0 else b))
    return pairs


def test_batched_tests_give_exactly_what_one_call_per_pair_gives():
    pairs = random_pairs(np.random.default_rng(11), 40)
    assert paired_tests(pairs) == [one_call_reference(a, b) for a, b in pairs]
    a, b = pairs[3]
    assert paired_test(a, b, seed=4, n_resamples=999) == one_call_reference(a, b, seed=4, n_resamples=999)


def test_probability_of_improvement_is_rliables_number_for_number():
    rng = np.random.default_rng(5)
    for _ in range(200):
        runs_x, runs_y, tasks = (int(v) for v in rng.integers(1, 5, 3))
        x, y = rng.integers(0, 5, (runs_x, tasks)) / 4, rng.integers(0, 5, (runs_y, tasks)) / 4
        if rng.random() < 0.1:
            y = x.copy() if runs_x == runs_y else y
        assert probability_of_improvement(x, y) == float(rliable_probability_of_improvement(x, y))
    x = rng.random((3, 8))
    assert probability_of_improvement(x, x + 1) == 0.0 and probability_of_improvement(x + 1, x) == 1.0


def test_a_pair_that_does_not_pair_is_refused_before_any_test():
    with pytest.raises(PairingError, match=r"shapes \(1, 3\) and \(1, 4\)"):
        paired_tests([(np.zeros(5), np.ones(5)), (np.zeros(3), np.zeros(4))])
    assert paired_tests([]) == []


def test_a_clear_gain_is_significant_with_an_interval_around_it():
    rng = np.random.default_rng(3)
    a = rng.random(30)
    b = a + 0.2 + rng.normal(0, 0.05, 30)
    result = paired_test(a, b)
    assert set(result) == {"estimate", "ci95", "p_value", "prob_improvement", "n_problems"}
    assert result["estimate"] == pytest.approx(float((b - a).mean()))
    low, high = result["ci95"]
    assert 0.15 < low < result["estimate"] < high < 0.25
    assert result["p_value"] < 0.001
    assert result["prob_improvement"] > 0.95
    assert result["n_problems"] == 30


def test_direction_is_b_minus_a():
    a, b = np.zeros(10), np.r_[np.ones(6), np.zeros(4)]
    forward, backward = paired_test(a, b), paired_test(b, a)
    assert forward["estimate"] == pytest.approx(0.6) and backward["estimate"] == pytest.approx(-0.6)
    assert forward["prob_improvement"] == pytest.approx(0.8)  # 6 wins, 4 ties at 0.5
    assert backward["prob_improvement"] == pytest.approx(0.2)


def test_no_difference_gives_p_one_and_a_zero_interval():
    a = np.linspace(0, 1, 12)
    result = paired_test(a, a.copy())
    assert result["estimate"] == 0 and result["ci95"] == [0.0, 0.0] and result["p_value"] == 1.0
    assert result["prob_improvement"] == 0.5


def test_noise_is_not_significant():
    rng = np.random.default_rng(0)
    a = rng.random(30)
    b = a + rng.normal(0, 0.1, 30) - 0.0
    b = b - (b - a).mean()  # centred: no true difference
    result = paired_test(a, b)
    assert result["p_value"] > 0.5
    assert result["ci95"][0] < 0 < result["ci95"][1]


def test_exact_sign_flip_on_few_problems():
    # 4 problems, all improved by 1: the exact two-sided sign-flip p-value is 2 / 2**4.
    result = paired_test(np.zeros(4), np.ones(4))
    assert result["p_value"] == pytest.approx(2 / 16)


def test_seeds_are_averaged_per_problem():
    a = np.zeros((3, 5))
    b = np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=float)
    result = paired_test(a, b)
    assert result["estimate"] == pytest.approx(b.mean())
    assert result["n_problems"] == 5


def test_same_seed_gives_the_same_numbers():
    rng = np.random.default_rng(1)
    a, b = rng.random(20), rng.random(20)
    assert paired_test(a, b, seed=5) == paired_test(a, b, seed=5)


def test_shapes_that_do_not_pair_are_refused():
    with pytest.raises(PairingError, match=r"shapes \(1, 5\) and \(1, 6\)"):
        paired_test(np.zeros(5), np.zeros(6))
    with pytest.raises(PairingError, match="NaN"):
        paired_test([0.0, np.nan], [0.0, 1.0])


def test_different_problems_are_named():
    with pytest.raises(PairingError) as info:
        check_paired(["p1", "p2", "p3"], ["p1", "p2", "q9"], "`demo` and `lr`")
    message = str(info.value)
    assert "`demo` and `lr` were not evaluated on the same problems" in message
    assert "2 in common" in message and "'p3'" in message and "'q9'" in message
    check_paired(["p1", "p2"], ["p1", "p2"])  # same problems: no error


def test_seed_interval_is_a_t_interval():
    result = seed_interval([0.1, 0.2, 0.3])
    assert result["mean"] == pytest.approx(0.2) and result["n_seeds"] == 3
    # t(0.975, df=2) = 4.303; sem = 0.1 / sqrt(3)
    half = 4.302652729911275 * 0.1 / np.sqrt(3)
    assert result["ci95"] == pytest.approx([0.2 - half, 0.2 + half])
    assert seed_interval([0.4])["ci95"] is None
    assert seed_interval([0.4, 0.4])["ci95"] == [0.4, 0.4]
    with pytest.raises(ValueError):
        seed_interval([])
