"""Aggregation and statistics at paper scale: 10 experiments x 3 seeds x 30 problems x 16 samples.

Times what the pipeline does with such results: one summary (base and final, bootstrap intervals, votes by the
reward's equivalence, format-free accuracy, paired final minus base) per experiment and seed, the across-seed
interval of every metric, and the paired test of every pair of experiments over problems x seeds. Target: < 10 s.
The time printed is machine-specific; the counts are not.

    .venv/bin/python benchmarks/stats_aggregation.py
"""

from __future__ import annotations

import random
import time

import numpy as np

from mileage.evaluation.paired import paired_test, seed_interval
from mileage.evaluation.stats import headline_metrics, per_problem_scores, summary_document

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
    finals = {e: [records(0.2 + 0.04 * e, seed=100 * e + s) for s in range(SEEDS)] for e in range(EXPERIMENTS)}
    start = time.perf_counter()
    summaries = {e: [summary_document(f"exp{e}", "synthetic", base, f, n_boot=1000, seed=s, reward="deepscaler")
                     for s, f in enumerate(fs)] for e, fs in finals.items()}
    k = summaries[0][0]["k"]
    intervals = {e: {m: seed_interval([s["final"]["metrics"][m]["value"] for s in ss]) for m in headline_metrics(k)}
                 for e, ss in summaries.items()}
    pairs = 0
    for a in range(EXPERIMENTS):
        for b in range(a + 1, EXPERIMENTS):
            for metric in headline_metrics(k):
                sa = np.array([per_problem_scores(s["final"]["per_problem"], metric) for s in summaries[a]])
                sb = np.array([per_problem_scores(s["final"]["per_problem"], metric) for s in summaries[b]])
                paired_test(sa, sb)
                pairs += 1
    elapsed = time.perf_counter() - start
    last = intervals[EXPERIMENTS - 1][f"avg@{k}"]
    print(f"{EXPERIMENTS} experiments x {SEEDS} seeds x {PROBLEMS} problems x {SAMPLES} samples: "
          f"{EXPERIMENTS * SEEDS} summaries, {pairs} paired tests (9,999 resamples each)")
    print(f"exp{EXPERIMENTS - 1} avg@{k} across seeds: {last['mean']:.3f} 95% CI [{last['ci95'][0]:.3f}, "
          f"{last['ci95'][1]:.3f}]")
    print(f"wall time: {elapsed:.2f} s (target < 10 s; machine-specific)")


if __name__ == "__main__":
    main()
