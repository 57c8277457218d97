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
    holm,
    p_resolution,
    paired_tests,
    probability_of_improvement,
)
from mileage.evaluation.replicates import seed_metrics


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


REFERENCE_KEYS = ("estimate", "ci95", "prob_improvement", "n_problems")


def same_p(test: dict, scipy_p: float, n_resamples: int = 9999) -> bool:
    """Exactly scipy's p where every sign pattern is enumerated; otherwise the same test with other random
    patterns: within its Monte Carlo error."""
    if test["p_exact"]:
        return test["p_value"] == scipy_p
    tail = min(scipy_p, 1.0) / 2  # a two-sided p is twice a tail's share: its Monte Carlo sd is 2 sqrt(t(1-t)/n)
    spread = 2 * np.sqrt(tail * (1 - tail) / n_resamples) * np.sqrt(2)  # of the difference of two such estimates
    return abs(test["p_value"] - scipy_p) <= 4 * spread + 4 / n_resamples


def test_batched_tests_give_exactly_what_one_call_per_pair_gives():
    pairs = random_pairs(np.random.default_rng(11), 40)
    batched = paired_tests(pairs)
    # Each test is what a call of its own gives, and with one run a side what scipy and rliable give.
    assert batched == [paired_test(a, b) for a, b in pairs]
    for (a, b), test in zip(pairs, batched):
        reference = one_call_reference(a, b)
        if np.ndim(a) == 1 or len(a) == 1:
            assert {key: test[key] for key in REFERENCE_KEYS} == {key: reference[key] for key in REFERENCE_KEYS}
            assert same_p(test, reference["p_value"]), (test, reference)
        else:  # seeds: the sign flips are on the seed-averaged differences; the interval is two-level
            diff = (np.asarray(b) - np.asarray(a)).mean(axis=0)
            if diff.size == 1:
                assert test["p_value"] == 1.0
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                flip = scipy.stats.permutation_test((diff,), np.mean, permutation_type="samples", vectorized=True,
                                                    n_resamples=9999, alternative="two-sided",
                                                    rng=np.random.Generator(np.random.PCG64(0)))
            assert same_p(test, float(flip.pvalue)), (test, float(flip.pvalue))
            assert test["estimate"] == pytest.approx(reference["estimate"], abs=1e-12)
            assert test["interval"].startswith("two-level")
    a, b = next((a, b) for a, b in pairs if np.shape(a)[-1] > 1)
    test = paired_test(a[:1], b[:1], seed=4, n_resamples=999)
    reference = one_call_reference(a[:1], b[:1], seed=4, n_resamples=999)
    assert {key: test[key] for key in REFERENCE_KEYS} == {key: reference[key] for key in REFERENCE_KEYS}
    assert same_p(test, reference["p_value"], 999)


def test_the_random_sign_flip_is_scipys_test():
    # Many p-values across the range, from scipy's permutation_test and from the one-product version.
    rng = np.random.default_rng(9)
    diffs = [rng.normal(shift, 0.3, 30) for shift in np.linspace(0, 0.2, 25)] + [np.zeros(30), np.r_[np.ones(15),
                                                                                                     -np.ones(15)]]
    tests = paired_tests([(np.zeros(30), d) for d in diffs], n_resamples=9999)
    for d, test in zip(diffs, tests):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flip = scipy.stats.permutation_test((d,), np.mean, permutation_type="samples", vectorized=True,
                                                n_resamples=9999, alternative="two-sided", rng=rng)
        assert same_p(test, float(flip.pvalue)), (test["p_value"], float(flip.pvalue))
    assert tests[-2]["p_value"] == 1.0 and tests[-1]["p_value"] == 1.0  # no difference; a balanced one


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
    assert set(result) == {"estimate", "ci95", "interval", "se", "mde80", "p_value", "p_exact", "p_floor",
                           "prob_improvement", "n_problems", "n_seeds_a", "n_seeds_b"}
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


def test_p_values_know_their_resolution():
    # 4 problems: all 16 sign patterns enumerated, so the p-value is exact and its floor 2/16.
    exact = paired_test(np.zeros(4), np.ones(4))
    assert exact["p_exact"] and exact["p_floor"] == pytest.approx(2 / 16) == exact["p_value"]
    # 30 problems, 999 resamples: a Monte Carlo p-value, never below 2 / 1000.
    rng = np.random.default_rng(2)
    a = rng.random(30)
    resampled = paired_test(a, a + 0.3, n_resamples=999)
    assert not resampled["p_exact"] and resampled["p_floor"] == pytest.approx(2 / 1000)
    assert resampled["p_value"] == pytest.approx(resampled["p_floor"])
    assert p_resolution(13, 9999) == (True, 2 / 2 ** 13) and p_resolution(14, 9999) == (False, 2 / 10000)


def test_holm_matches_its_definition_and_never_lowers_a_p_value():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == [] and holm([0.3]) == [0.3]
    rng = np.random.default_rng(8)
    p = rng.random(50) ** 3
    adjusted = np.array(holm(p))
    assert (adjusted >= p).all() and (adjusted <= 1).all()
    order = np.argsort(p)
    assert (np.diff(adjusted[order]) >= 0).all()  # the order of the p-values is kept
    # Family-wise error: under the null, Holm rejects anything in at most ~5% of families of 10 tests.
    families = rng.random((4000, 10))
    rejected = np.mean([min(holm(f)) < 0.05 for f in families])
    assert rejected <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4000)


def test_seeds_resample_at_two_levels_and_widen_the_interval():
    rng = np.random.default_rng(4)
    problems = rng.random(30)
    # Whole runs differ by a seed effect common to every problem: two seeds a side.
    a = problems + rng.normal(0, 0.08, (2, 1))
    b = problems + 0.05 + rng.normal(0, 0.08, (2, 1))
    two_level = paired_test(a, b)
    over_problems = paired_test(a.mean(axis=0), b.mean(axis=0))
    assert two_level["n_seeds_a"] == two_level["n_seeds_b"] == 2
    assert two_level["interval"].startswith("two-level") and over_problems["interval"].startswith("paired")
    width = lambda t: t["ci95"][1] - t["ci95"][0]  # noqa: E731
    assert width(two_level) > 5 * width(over_problems)
    assert two_level["mde80"] > 5 * over_problems["mde80"]
    # Different seed counts on the two sides pair by problem.
    uneven = paired_test(a[:1], b)
    assert uneven["n_seeds_a"] == 1 and uneven["estimate"] == pytest.approx(b.mean() - a[0].mean())


def test_mde80_is_the_gap_detected_with_80_percent_power():
    # Per-problem differences ~ N(delta, 0.2): with 30 problems se = 0.2 / sqrt(30), and a true gap of mde80
    # is significant in ~80% of designs like this one.
    rng = np.random.default_rng(6)
    result = paired_test(np.zeros(30), rng.normal(0.0, 0.2, 30), n_resamples=2000)
    assert result["mde80"] == pytest.approx(2.8016 * 0.2 / np.sqrt(30), rel=0.2)
    gap = 2.8016 * 0.2 / np.sqrt(30)
    tests = paired_tests([(np.zeros(30), rng.normal(gap, 0.2, 30)) for _ in range(200)], n_resamples=500)
    power = np.mean([t["p_value"] < 0.05 for t in tests])
    assert abs(power - 0.8) < 3 * np.sqrt(0.8 * 0.2 / 200) + 0.03


def test_an_aggregate_interval_never_leaves_the_metric_range():
    # Two seeds far apart on a metric near its ceiling: a Student-t gave [1.8, 160.7]%.
    rows = [[{"problem_id": f"p{i}", "n": 8, "n_correct": 8 if (i < 29 or s) else 0, "mean_reward": 1.0,
              "majority_correct": i < 29 or s} for i in range(30)] for s in (0, 1)]
    per_seed = [{"maj@8": {"value": float(np.mean([r["majority_correct"] for r in seed]))}} for seed in rows]
    entry = seed_metrics(["maj@8"], per_seed, rows, n_resamples=2000, seed=0)["maj@8"]
    assert 0 <= entry["ci95"][0] <= entry["value"] <= entry["ci95"][1] <= 1
    assert entry["per_seed"] == [29 / 30, 1.0]
