"""The comparison at the scale of a sweep: 50 experiments x 10 seeds x 30 problems x 16 samples. Target: <= 60 s.

Times the statistics the pipeline computes once the seeds' summaries exist: each experiment's aggregate over its
seeds (two-level bootstrap interval of every metric, paired final minus base over problems x seeds: the
`aggregate` rule), then the comparison's rows (each experiment against the baseline, per compared metric, two-level
bootstrap, sign-flip p, Holm over the family, mde80: `paired.tsv`) and its Markdown and LaTeX tables (the
`compare` rule's tables; its figures are timed by benchmarks/render_figures.py). `--pairs all` compares every
pair instead (1,225 pairs). The seeds' summaries are built directly from simulated counts (what `summarize` would
write), outside the timing. The time printed is machine-specific; the counts are not.

    .venv/bin/python benchmarks/compare_scale.py [--pairs baseline|all] [--resamples N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mileage.evaluation.comparison import comparison_rows
from mileage.evaluation.metrics import metric_names
from mileage.evaluation.paired import N_RESAMPLES
from mileage.evaluation.replicates import aggregate_summaries
from mileage.evaluation.stats import bootstrap_ci, metric_table
from mileage.report.compare import final_scores_latex, paired_markdown, score_row, scores_markdown

EXPERIMENTS, SEEDS, PROBLEMS, SAMPLES = 50, 10, 30, 16
AGGREGATE_RESAMPLES = 1000  # config/schema.yaml's report.bootstrap_samples default, what the aggregate rule uses


def side(rng: np.random.Generator, rates: np.ndarray) -> dict:
    """One evaluation's summary side from simulated counts: per-problem rows and each metric with its interval."""
    correct = rng.binomial(SAMPLES, rates)
    answered = np.maximum(correct, rng.binomial(SAMPLES, 0.9, PROBLEMS))
    rows = [{"problem_id": f"aime-{p}", "label": str(p), "n": SAMPLES, "n_correct": int(c),
             "mean_reward": c / SAMPLES, "majority_answer": str(p), "majority_correct": bool(c > SAMPLES // 2),
             "n_answer_correct": int(c), "n_formatted": int(f)} for p, (c, f) in enumerate(zip(correct, answered))]
    names = metric_names(SAMPLES)
    table = metric_table(rows, names)
    intervals = bootstrap_ci(table, n_boot=200)
    metrics = {n: {"value": float(v), "ci95": [float(lo), float(hi)]}
               for n, v, (lo, hi) in zip(names, table.mean(axis=0), intervals)}
    return {"n_problems": PROBLEMS, "n_samples": PROBLEMS * SAMPLES, "k": SAMPLES, "metrics": metrics,
            "per_problem": rows}


def seed_summaries(rng: np.random.Generator) -> dict[str, list[dict]]:
    difficulty = rng.uniform(0.05, 0.8, PROBLEMS)
    base = side(rng, difficulty)
    out = {}
    for e in range(EXPERIMENTS):
        name = f"sweep~train.lr={1e-4 * (1 + e):.4g}"
        gain = 0.002 * e
        out[name] = [{"experiment": f"{name}/seeds/{s}", "dataset": "aime-2024", "k": SAMPLES, "base": base,
                      "final": side(rng, np.clip(difficulty + gain + rng.normal(0, 0.03) +
                                                 rng.normal(0, 0.05, PROBLEMS), 0, 1))}
                     for s in range(SEEDS)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", choices=("baseline", "all"), default="baseline")
    parser.add_argument("--resamples", type=int, default=N_RESAMPLES,
                        help="the comparison's bootstrap and sign-flip resamples (its default: %(default)s)")
    parser.add_argument("--aggregate-resamples", type=int, default=AGGREGATE_RESAMPLES,
                        help="the aggregates' resamples (report.bootstrap_samples, default %(default)s)")
    args = parser.parse_args()
    per_seed = seed_summaries(np.random.default_rng(0))
    names = list(per_seed)

    wall, cpu = time.perf_counter(), time.process_time()
    aggregates = {name: aggregate_summaries(name, list(range(SEEDS)), sums, n_resamples=args.aggregate_resamples)
                  for name, sums in per_seed.items()}
    t_aggregates = time.perf_counter() - wall
    sides = {name: [s["final"] for s in sums] for name, sums in per_seed.items()}
    rows, refusals = comparison_rows(names, aggregates, sides, baseline=names[0], pairs=args.pairs,
                                     n_resamples=args.resamples)
    t_rows = time.perf_counter() - wall - t_aggregates
    scores = [score_row(name, aggregates[name]) for name in names]
    tables = (scores_markdown(scores, aggregates) + "\n".join(paired_markdown(rows, refusals, names[0]))
              + final_scores_latex(names, aggregates, rows, names[0]))
    elapsed, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert not refusals, refusals

    significant = sum(r["significant"] for r in rows)
    last = next(r for r in rows if r["b"] == names[-1] and r["metric"] == f"avg@{SAMPLES}")
    print(f"{EXPERIMENTS} experiments x {SEEDS} seeds x {PROBLEMS} problems x {SAMPLES} samples, pairs: {args.pairs}: "
          f"{EXPERIMENTS} aggregates ({args.aggregate_resamples:,} resamples), {len(rows)} paired tests "
          f"({args.resamples:,} resamples each), "
          f"{significant} significant after Holm; tables {len(tables):,} characters")
    print(f"{last['b']} - {last['a']} avg@{SAMPLES}: {last['estimate']:+.3f} [{last['ci95_low']:+.3f}, "
          f"{last['ci95_high']:+.3f}], p = {last['p_value']:.2g}, p_holm = {last['p_holm']:.2g}, "
          f"mde80 = {last['mde80']:.3f}")
    print(f"aggregates {t_aggregates:.2f} s, comparison rows {t_rows:.2f} s, tables "
          f"{elapsed - t_aggregates - t_rows:.2f} s")
    print(f"wall time: {elapsed:.2f} s, CPU time {cpu:.2f} s (target <= 60 s; machine-specific, here on a shared "
          f"2-core machine)")


if __name__ == "__main__":
    main()
