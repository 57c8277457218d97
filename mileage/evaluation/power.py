"""Planning a comparison from a pilot: how many seeds and samples per problem a gain of `delta` needs.

The model (for avg@k, the mean reward: a share of correct samples). The score of seed s on problem p from m
samples is

    x[s, p] = mu + u[p] + v[s] + w[s, p] + e[s, p]

u: the problem's difficulty (the same problems on both sides of a comparison, so it cancels), v: the whole run's
seed effect (variance `seed`), w: the seed-by-problem interaction (`seed_problem`), e: the sampling noise of m
samples (variance `sample` / m, `sample` the per-sample Bernoulli variance). A comparison of two experiments with
S seeds each on the same P problems estimates the gap with variance

    se**2 = (2 / S) * (seed + (seed_problem + sample / m) / P)

and the test it is planned for is the two-sample t-test of the per-seed mean scores (df = 2S - 2, two-sided
alpha 0.05): seeds are the replicates, the problems are shared. Its power at a true gap delta is the noncentral
t's. From the pilot's own cells (seeds x problems x samples) the components are the two-way analysis of variance's
moment estimates: `sample` from the binomial variance within cells, `seed_problem` from the residual mean square
less the sampling part, `seed` from the seed mean square less the residual. One seed cannot separate seed
effects from problems: both seed terms are then 0 and the answer says so (a lower bound on what is needed).

A pilot of a few seeds measures the seed variance poorly, and a design planned on an underestimate falls short;
so the plan uses its 80% upper confidence bound (chi-square on the seed mean square's seeds - 1 degrees of
freedom): with 2 seeds that bound is large, which is what 2 seeds can say. `power` is the power at that bound
(a lower bound, with 80% confidence); `power_at_estimate` the power at the point estimates.

The proposal: the fewest seeds (at least 2) that reach the target power with up to 8 x the pilot's samples per
problem, then the fewest samples per problem (from the pilot's k, 2k, 4k, 8k) that reach it with those seeds.
Power grows with delta, so a smaller gap never needs fewer seeds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from mileage.evaluation.paired import ALPHA, POWER

MAX_SEEDS = 1000
UPPER_CONFIDENCE = 0.8  # the plan's seed variance: its 80% one-sided upper confidence bound
SAMPLE_FACTORS = (1, 2, 4, 8)


class PowerError(ValueError):
    """A pilot that cannot be planned from (missing results, too few samples) or a bad delta."""


@dataclass(frozen=True)
class Variance:
    """Variance components of one run's per-problem score (fractions squared)."""
    seed: float
    seed_problem: float
    sample: float  # per sample: a cell of m samples has sample / m
    problems: int
    notes: tuple[str, ...] = field(default=())
    seed_upper: float | None = None  # the seed variance's one-sided upper confidence bound (None: not measured)

    def planning(self) -> "Variance":
        """The components a plan uses: the seed variance at its upper bound, so that a pilot's few seeds, which
        often underestimate it, do not propose a design that falls short."""
        if self.seed_upper is None:
            return self
        return Variance(self.seed_upper, self.seed_problem, self.sample, self.problems, self.notes)

    def se(self, seeds: int, samples: int) -> float:
        """Standard error of the gap between two experiments of `seeds` seeds each, `samples` per problem."""
        return math.sqrt(2.0 / seeds * (self.seed + (self.seed_problem + self.sample / samples) / self.problems))


def components(scores: np.ndarray, samples: int) -> Variance:
    """The variance components of a pilot: `scores` (seeds, problems) shares of correct samples, `samples` per
    cell (module docstring)."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise PowerError(f"a pilot needs (seeds, problems) scores over at least 2 problems, got shape {x.shape}")
    if samples < 2:
        raise PowerError(f"a pilot needs at least 2 samples per problem to measure sampling noise, got {samples}")
    seeds, problems = x.shape
    sample = float(np.mean(x * (1 - x)) * samples / (samples - 1))  # unbiased per-sample Bernoulli variance
    notes: list[str] = []
    if seeds < 2:
        notes.append("one seed: seed-to-seed variation is not measured and taken as 0, so the seeds proposed are a "
                     "lower bound; run the pilot with 2 or more seeds")
        return Variance(0.0, 0.0, sample, problems, tuple(notes))
    residual = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    ms_residual = float((residual ** 2).sum() / ((seeds - 1) * (problems - 1)))
    ms_seed = float(problems * ((x.mean(axis=1) - x.mean()) ** 2).sum() / (seeds - 1))
    seed_problem = max(0.0, ms_residual - sample / samples)
    seed = max(0.0, (ms_seed - ms_residual) / problems)
    # The seed mean square has seeds - 1 degrees of freedom: its upper bound is the chi-square one.
    upper_ms = ms_seed * (seeds - 1) / scipy.stats.chi2.ppf(1 - UPPER_CONFIDENCE, seeds - 1)
    seed_upper = max(seed, (upper_ms - ms_residual) / problems)
    if seeds < 5:
        notes.append(f"{seeds} seeds measure the seed-to-seed variation poorly: the plan uses its 80% upper bound "
                     f"(sd {100 * math.sqrt(seed_upper):.1f} points; estimate {100 * math.sqrt(seed):.1f}), so a "
                     f"pilot with more seeds will likely propose fewer")
    return Variance(seed, seed_problem, sample, problems, tuple(notes), seed_upper)


def power(variance: Variance, delta: float, seeds: int, samples: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided t-test of per-seed means (df 2S - 2) at a true gap `delta`; with one seed a side
    (no df) the normal approximation."""
    se = variance.se(seeds, samples)
    if se == 0:
        return 1.0 if delta != 0 else alpha
    ncp = abs(delta) / se
    if seeds < 2:
        z = scipy.stats.norm.ppf(1 - alpha / 2)
        return float(scipy.stats.norm.sf(z - ncp) + scipy.stats.norm.cdf(-z - ncp))
    df = 2 * seeds - 2
    t = scipy.stats.t.ppf(1 - alpha / 2, df)
    result = float(scipy.stats.nct.sf(t, df, ncp) + scipy.stats.nct.cdf(-t, df, ncp))
    if not math.isfinite(result):  # scipy's noncentral t fails far in the tail, where the power is all but 1
        result = float(scipy.stats.norm.sf(t - ncp) + scipy.stats.norm.cdf(-t - ncp))
    return min(1.0, max(0.0, result))


def plan(variance: Variance, delta: float, pilot_seeds: int, pilot_samples: int, alpha: float = ALPHA,
         target: float = POWER) -> dict[str, Any]:
    """The design to propose for a gap `delta` and the power of the pilot's own design (module docstring)."""
    if not (isinstance(delta, (int, float)) and 0 < abs(delta) <= 1):
        raise PowerError(f"--delta must be a gain in (0, 1] as a fraction (0.05 = 5 points), got {delta!r}")
    measured, variance = variance, variance.planning()
    sample_options = [pilot_samples * f for f in SAMPLE_FACTORS]
    most = sample_options[-1]
    seeds = next((s for s in range(2, MAX_SEEDS + 1) if power(variance, delta, s, most, alpha) >= target), None)
    notes = list(variance.notes)
    if seeds is None:
        seeds, samples = MAX_SEEDS, most
        notes.append(f"not reachable with {MAX_SEEDS} seeds: the gap is small against the seed-to-seed variation")
    else:
        samples = next(m for m in sample_options if power(variance, delta, seeds, m, alpha) >= target)
    return {
        "delta": float(delta),
        "seeds": seeds,
        "samples_per_problem": samples,
        "power": power(variance, delta, seeds, samples, alpha),
        "alpha": alpha,
        "target_power": target,
        "problems": variance.problems,
        "current": {"seeds": pilot_seeds, "samples_per_problem": pilot_samples,
                    "power": power(variance, delta, pilot_seeds, pilot_samples, alpha),
                    "power_at_estimate": power(measured, delta, pilot_seeds, pilot_samples, alpha)},
        "variance": {"seed": measured.seed, "seed_problem": measured.seed_problem, "sample": measured.sample,
                     "seed_planned": variance.seed},
        "test": "two-sided t-test of the two experiments' per-seed mean scores on the same problems, each "
                "experiment with `seeds` seeds",
        "notes": notes,
    }


# ---- reading a finished pilot ----------------------------------------------------------------------------------

def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PowerError(f"{path}: not found; run the pilot experiment to the end first (snakemake)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PowerError(f"{path}: not JSON ({exc})") from None


def pilot_scores(results_dir: str | Path, experiment: str, eval_set: str | None = None) -> tuple[np.ndarray, int]:
    """((seeds, problems) avg@k per cell, k) of a finished experiment: its headline summary
    (`results/<exp>/report/summary.json`, or `eval/<set>/summary.json` for `eval_set`) and, for an experiment with
    seeds, each seed's own (`results/<exp>/seeds/<n>/...`)."""
    root = Path(results_dir) / experiment
    relative = Path("eval", eval_set, "summary.json") if eval_set else Path("report", "summary.json")
    summary = _load(root / relative)
    seeds = summary.get("seeds") or []
    sides = [_load(root / "seeds" / str(s) / relative)["final"] for s in seeds] if seeds else [summary["final"]]
    k = int(summary["k"])
    ids = [str(r["problem_id"]) for r in sides[0]["per_problem"]]
    for seed, side in zip(seeds, sides):
        if [str(r["problem_id"]) for r in side["per_problem"]] != ids:
            raise PowerError(f"{experiment}: seed {seed} was evaluated on other problems than seed {seeds[0]}")
    scores = np.array([[float(r["n_correct"]) / float(r["n"]) for r in side["per_problem"]] for side in sides])
    return scores, k


def plan_experiment(results_dir: str | Path, experiment: str, delta: float, eval_set: str | None = None,
                    alpha: float = ALPHA, target: float = POWER) -> dict[str, Any]:
    scores, k = pilot_scores(results_dir, experiment, eval_set)
    result = plan(components(scores, k), delta, scores.shape[0], k, alpha, target)
    return {"experiment": experiment, "metric": f"avg@{k}", **result}


def format_plan(result: dict[str, Any]) -> str:
    """The plan as a researcher reads it."""
    current = result["current"]
    var = result["variance"]
    lines = [
        f"mileage power: {result['experiment']} ({result['metric']}, {result['problems']} problems)",
        f"  pilot: {current['seeds']} seed(s) x {current['samples_per_problem']} samples per problem; "
        f"sd across seeds {100 * math.sqrt(var['seed']):.1f} points, seed x problem "
        f"{100 * math.sqrt(var['seed_problem']):.1f}, per sample {100 * math.sqrt(var['sample']):.1f}",
        f"  a gain of {100 * result['delta']:.1f} points: the pilot's design has power {current['power']:.2f}",
        f"  to reach {result['target_power']:.0%} at alpha {result['alpha']}: {result['seeds']} seeds per experiment "
        f"x {result['samples_per_problem']} samples per problem (power {result['power']:.2f})",
        f"  test planned for: {result['test']}",
    ]
    lines += [f"  note: {note}" for note in result["notes"]]
    return "\n".join(lines)

