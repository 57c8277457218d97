"""`mileage power`: the designs it proposes reach the power it states, on experiments simulated with a known
effect, and a smaller gap never needs fewer seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats

from mileage.cli import main
from mileage.evaluation.power import PowerError, Variance, components, plan, power

PROBLEMS = 30
TRUE = {"seed": 0.03, "seed_problem": 0.06}  # standard deviations on the score (fractions)


def simulate(rng, seeds: int, samples: int, gain: float = 0.0, difficulty=None, trials: int | None = None):
    """(seeds, problems) shares of correct samples ((trials, seeds, problems) with `trials`): each problem's rate
    plus a whole-run seed effect plus a seed-by-problem effect (clipped to [0, 1]), then `samples` Bernoulli draws
    per cell."""
    lead = () if trials is None else (trials,)
    q = difficulty if difficulty is not None else rng.uniform(0.2, 0.8, lead + (1, PROBLEMS))
    theta = (q + gain + rng.normal(0, TRUE["seed"], lead + (seeds, 1))
             + rng.normal(0, TRUE["seed_problem"], lead + (seeds, PROBLEMS)))
    return rng.binomial(samples, np.clip(theta, 0, 1)) / samples


def rejection_rate(rng, design: dict, gain: float, trials: int) -> float:
    """How often the planned test (t-test of per-seed means, same problems) finds the simulated gain."""
    q = rng.uniform(0.2, 0.8, (trials, 1, PROBLEMS))
    seeds, samples = design["seeds"], design["samples_per_problem"]
    a = simulate(rng, seeds, samples, 0.0, q, trials).mean(axis=2)
    b = simulate(rng, seeds, samples, gain, q, trials).mean(axis=2)
    with np.errstate(all="ignore"):
        p = scipy.stats.ttest_ind(b, a, axis=1).pvalue
    return float(np.mean(np.nan_to_num(p, nan=1.0) < 0.05))


def test_the_components_of_a_large_pilot_are_the_simulated_ones():
    rng = np.random.default_rng(0)
    variance = components(simulate(rng, 40, 16), 16)
    assert np.sqrt(variance.seed) == pytest.approx(TRUE["seed"], rel=0.35)
    assert np.sqrt(variance.seed_problem) == pytest.approx(TRUE["seed_problem"], rel=0.2)
    assert variance.sample == pytest.approx(0.25 - np.var(np.linspace(0.2, 0.8, 100)), rel=0.2)


@pytest.mark.parametrize("delta", [0.05, 0.1])
def test_proposed_designs_reach_the_stated_power_on_simulated_experiments(delta):
    # Twenty pilots of 8 seeds each; every design proposed is run 400 times with the known gain. The plan uses the
    # seed variance's 80% upper bound, so about 80% of pilots (or more) propose a design that reaches the power it
    # states, within the 400 trials' sampling error; planning on the point estimate reaches it for about half.
    rng = np.random.default_rng(int(delta * 100))
    trials, reached = 400, []
    for _ in range(20):
        design = plan(components(simulate(rng, 8, 8), 8), delta, 8, 8)
        assert 0.8 <= design["power"] <= 1 and design["seeds"] >= 2
        achieved = rejection_rate(rng, design, delta, trials)
        reached.append(achieved >= design["power"] - 3 * np.sqrt(design["power"] * (1 - design["power"]) / trials))
    assert np.mean(reached) >= 0.7


def test_the_stated_power_is_the_simulated_one_for_known_components():
    # With the true components the formula alone is under test: it must match the simulation closely.
    rng = np.random.default_rng(3)
    sample = float(np.mean([p * (1 - p) for p in rng.uniform(0.2, 0.8, 100_000)]))
    variance = Variance(TRUE["seed"] ** 2, TRUE["seed_problem"] ** 2, sample, PROBLEMS)
    for seeds, samples, gain in [(3, 8, 0.06), (6, 4, 0.04), (10, 16, 0.03)]:
        stated = power(variance, gain, seeds, samples)
        trials = 600
        achieved = rejection_rate(rng, {"seeds": seeds, "samples_per_problem": samples}, gain, trials)
        assert abs(achieved - stated) <= 3 * np.sqrt(stated * (1 - stated) / trials) + 0.03, (seeds, samples)


def test_a_smaller_gap_never_needs_fewer_seeds():
    variance = components(simulate(np.random.default_rng(5), 4, 8), 8)
    seeds = [plan(variance, d, 4, 8)["seeds"] for d in (0.2, 0.1, 0.05, 0.03, 0.02, 0.01)]
    assert seeds == sorted(seeds) and seeds[0] < seeds[-1]


def test_bad_pilots_and_gaps_are_refused_clearly():
    with pytest.raises(PowerError, match="at least 2 samples"):
        components(np.zeros((2, 5)), 1)
    with pytest.raises(PowerError, match="--delta"):
        plan(Variance(0, 0, 0.2, 30), 0.0, 2, 8)
    one_seed = components(simulate(np.random.default_rng(1), 1, 8), 8)
    assert one_seed.seed == 0 and "one seed" in one_seed.notes[0]


def write_pilot(root, seeds: list[int], samples: int = 8) -> None:
    """A finished experiment's results: the aggregate summary and each seed's own (the pipeline's layout)."""
    rng = np.random.default_rng(2)
    scores = simulate(rng, len(seeds), samples)

    def side(row):
        return {"per_problem": [{"problem_id": f"p{i}", "n": samples, "n_correct": int(round(v * samples))}
                                for i, v in enumerate(row)]}

    for seed, row in zip(seeds, scores):
        path = root / "demo" / "seeds" / str(seed) / "report" / "summary.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"k": samples, "final": side(row)}))
    (root / "demo" / "report").mkdir(parents=True)
    (root / "demo" / "report" / "summary.json").write_text(
        json.dumps({"k": samples, "seeds": seeds, "final": side(scores.mean(axis=0))}))


def test_the_command_reads_a_finished_pilot_and_prints_one_json_object(tmp_path, capsys):
    write_pilot(tmp_path, [1, 2, 3])
    results = {}
    for delta in (0.05, 0.2):
        assert main(["--results-dir", str(tmp_path), "power", "demo", "--delta", str(delta), "--json"]) == 0
        results[delta] = json.loads(capsys.readouterr().out)
    for delta, result in results.items():
        assert {"delta", "seeds", "samples_per_problem", "power"} <= set(result)
        assert result["delta"] == delta and 0.8 <= result["power"] <= 1
        assert result["current"]["seeds"] == 3 and result["current"]["samples_per_problem"] == 8
    assert results[0.05]["seeds"] >= results[0.2]["seeds"]
    assert main(["--results-dir", str(tmp_path), "power", "demo", "--delta", "0.05"]) == 0
    assert "seeds per experiment" in capsys.readouterr().out
    assert main(["--results-dir", str(tmp_path), "power", "nope", "--delta", "0.05"]) == 2
    assert "nope/report/summary.json: not found" in capsys.readouterr().err
