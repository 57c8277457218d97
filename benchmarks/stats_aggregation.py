"""Aggregation and statistics at paper scale: 10 experiments x 3 seeds x 30 problems x 16 samples.

Times what the pipeline does with such results: one summary (base and final, bootstrap intervals, votes by the
reward's equivalence, format-free accuracy, paired final minus base) per experiment and seed, the across-seed
interval of every metric, and the paired test of every experiment against the baseline (the first) over
problems x seeds (the functions the pipeline's rules call; benchmarks/compare_scale.py times a 50-point sweep). Target: < 10 s.
The time printed is machine-specific; the counts are not.

    .venv/bin/python benchmarks/stats_aggregation.py
"""

from __future__ import annotations

import random
import time

from mileage.evaluation.paired import N_RESAMPLES
from mileage.evaluation.replicates import aggregate_summaries
from mileage.evaluation.stats import summary_document
from mileage.report.compare import paired_rows

EXPERIMENTS, SEEDS, PROBLEMS, SAMPLES = 10, 3, 30, 16


def records(skill: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for p in range(PROBLEMS):
        label = str(p * 7 % 97)
        for i in range(SAMPLES):
            right = rng.random() < skill
            boxed = rng.random() < 0.7
            answer = label if right else str(rng.randint(0, 99))
            response = f"</think>\\boxed{{{answer}}}" if boxed else f"</think>Answer: {answer}"
            rows.append({"problem_id": f"p{p}", "sample_index": i, "label": label,
                         "extracted_answer": answer if boxed else None,
                         "reward": 1.0 if (right and boxed) else 0.0, "response_length": 8, "truncated": False,
                         "response": response})
    return rows


def main() -> None:
    base = records(0.2, seed=0)
    finals = {f"exp{e}": [records(0.2 + 0.04 * e, seed=100 * e + s) for s in range(SEEDS)] for e in range(EXPERIMENTS)}
    wall, cpu = time.perf_counter(), time.process_time()
    # What the pipeline does: each replicate's summary.json (with its paired final minus base), ...
    summaries = {name: [summary_document(name, "synthetic", base, f, n_boot=1000, seed=s, reward="deepscaler")
                        for s, f in enumerate(fs)] for name, fs in finals.items()}
    t_summaries = time.perf_counter() - wall
    # ... each experiment's aggregate over its seeds (across-seed intervals, paired over problems x seeds), ...
    aggregates = {name: aggregate_summaries(name, list(range(SEEDS)), ss) for name, ss in summaries.items()}
    t_aggregates = time.perf_counter() - wall - t_summaries
    # ... and results/compare/paired.tsv: each experiment against the baseline over problems x seeds.
    names = list(summaries)
    rows, refusals = paired_rows(names, aggregates, {n: [s["final"] for s in ss] for n, ss in summaries.items()})
    elapsed, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert not refusals, refusals
    k = summaries[names[0]][0]["k"]
    last = aggregates[names[-1]]["final"]["metrics"][f"avg@{k}"]
    first_last = next(r for r in rows if (r["a"], r["b"], r["metric"]) == (names[0], names[-1], f"avg@{k}"))
    print(f"{EXPERIMENTS} experiments x {SEEDS} seeds x {PROBLEMS} problems x {SAMPLES} samples: "
          f"{EXPERIMENTS * SEEDS} summaries, {EXPERIMENTS} aggregates, {len(rows)} paired tests between experiments "
          f"({N_RESAMPLES:,} resamples each)")
    print(f"{names[-1]} avg@{k} across seeds: {last['value']:.3f} 95% CI [{last['ci95'][0]:.3f}, {last['ci95'][1]:.3f}]; "
          f"{names[-1]} - {names[0]}: {first_last['estimate']:+.3f} [{first_last['ci95_low']:+.3f}, "
          f"{first_last['ci95_high']:+.3f}], p = {first_last['p_value']:.2g}")
    print(f"summaries {t_summaries:.2f} s, aggregates {t_aggregates:.2f} s, "
          f"paired tests {elapsed - t_summaries - t_aggregates:.2f} s")
    print(f"wall time: {elapsed:.2f} s, CPU time {cpu:.2f} s (target < 10 s; machine-specific, here on a shared "
          f"2-core machine)")


if __name__ == "__main__":
    main()
