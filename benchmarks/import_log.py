"""Benchmark `mileage import-log` on a synthetic 3000-rollout miles log (target: median under 5 s).

The log is built from the line shapes of real miles/slime logs (shared/miles/LOGS.md): Ray actor prefixes with
ANSI colours, `[timestamp] file.py:N - ` logger prefixes, `np.float64(...)` and `tensor(...)` values, every
`step` line printed twice, two `perf` lines per rollout, interleaved noise and a truncated last line.

    .venv/bin/python benchmarks/import_log.py [--rollouts 3000] [--runs 3] [--target 5.0]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mileage.metrics.import_log import import_log

CYAN, RESET = "\x1b[36m", "\x1b[0m"
ROLLOUT_PREFIX = f"{CYAN}(RolloutManager pid=1805485){RESET} "
TRAIN_PREFIX = f"{CYAN}(MegatronTrainRayActor pid=1806112){RESET} "


def _stamp(rollout_id: int) -> str:
    seconds = 7 * 3600 + rollout_id * 412
    return f"[2026-04-15 {seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}]"


def rollout_lines(rollout_id: int, steps_per_rollout: int, eval_interval: int, rng: random.Random) -> list[str]:
    """All lines one rollout prints, noise included, in the order miles prints them."""
    r = rollout_id
    stamp = _stamp(r)
    reward = rng.random()
    lines = [
        f"{ROLLOUT_PREFIX}{stamp} sglang_rollout.py:338 - Abort request for ['http://10.0.0.1:15006', "
        "'http://10.0.0.1:15000']",
        "Rollout generation: 100%|██████████| 32/32 [00:48<00:00, 1.52s/it]",
    ]
    if eval_interval and r % eval_interval == 0:
        lines.append(
            f"{ROLLOUT_PREFIX}{stamp} rollout.py:1170 - eval {r}: {{'eval/aime': {rng.random()!r}, "
            f"'eval/aime-pass@1': np.float64({rng.random()!r}), 'eval/aime-pass@16': np.float64({rng.random()!r}), "
            f"'eval/aime/response_len/mean': {rng.uniform(2000, 9000)!r}}}"
        )
    lines.append(
        f"{ROLLOUT_PREFIX}{stamp} rollout.py:1193 - perf {r}: {{'rollout/response_len/mean': "
        f"{rng.uniform(500, 8000)!r}, 'rollout/response_len/median': {rng.uniform(500, 8000)!r}, "
        f"'rollout/response_len/max': {rng.randint(4000, 8192)}, 'rollout/response_len/min': {rng.randint(1, 600)}, "
        f"'rollout/zero_std/count_0': {rng.randint(0, 32)}, 'rollout/zero_std/count_1': {rng.randint(0, 32)}, "
        f"'rollout/repetition_frac': 0.0, 'rollout/truncated_ratio': {rng.random()!r}, "
        f"'perf/rollout_time': {rng.uniform(100, 400)!r}, 'perf/tokens_per_gpu_per_sec': {rng.uniform(100, 300)!r}, "
        f"'perf/longest_sample_tokens_per_sec': {rng.uniform(5, 20)!r}, "
        f"'perf/effective_tokens_per_gpu_per_sec': {rng.uniform(100, 300)!r}, "
        f"'perf/longest_effective_sample_tokens_per_sec': {rng.uniform(5, 20)!r}}}"
    )
    lines.append(
        f"{ROLLOUT_PREFIX}{stamp} rollout.py:1210 - rollout {r}: {{'rollout/step': {r}, "
        f"'rollout/response_lengths': {rng.uniform(500, 8000)!r}, 'rollout/rewards': 0.0, "
        f"'rollout/truncated': {rng.random()!r}, 'rollout/rollout_log_probs': {-rng.random()!r}, "
        f"'rollout/raw_reward': {reward!r}, 'rollout/total_lengths': {rng.uniform(600, 8200)!r}, "
        f"'rollout/log_probs': {-rng.random()!r}, 'rollout/advantages': {rng.uniform(-1e-8, 1e-8)!r}, "
        f"'rollout/returns': {rng.uniform(-1e-8, 1e-8)!r}}}"
    )
    for step_id in range(steps_per_rollout):
        step = r * steps_per_rollout + step_id
        line = (
            f"{TRAIN_PREFIX}{stamp} model.py:612 - step {step}: {{'train/step': {step}, "
            f"'train/loss': {rng.gauss(0, 1e-3)!r}, 'train/pg_loss': {rng.gauss(0, 1e-3)!r}, "
            f"'train/entropy_loss': {rng.random()!r}, 'train/pg_clipfrac': {rng.random() / 100!r}, "
            f"'train/ppo_kl': {rng.random() / 1e6!r}, 'train/ois': 1.0, 'train/tis': tensor({1 + rng.random() / 1e3!r}, "
            f"device='cuda:0'), 'train/grad_norm': {rng.random()!r}, 'train/lr-pg_0': 1e-06, 'train/lr-pg_1': 1e-06}}"
        )
        lines += [line, line]  # the Megatron backend prints every step line twice
    lines.append(
        f"{TRAIN_PREFIX}{stamp} actor.py:402 - perf {r}: {{'perf/sleep_time': {rng.uniform(1, 9)!r}, "
        f"'perf/update_weights_time': {rng.uniform(1, 5)!r}, 'perf/wake_up_time': {rng.uniform(1, 5)!r}, "
        f"'perf/train_wait_time': {rng.uniform(100, 400)!r}, 'perf/log_probs_time': {rng.uniform(5, 30)!r}, "
        f"'perf/actor_train_time': {rng.uniform(20, 90)!r}, 'perf/train_time': {rng.uniform(30, 120)!r}, "
        f"'perf/actor_train_tflops': {rng.uniform(10, 40)!r}, 'perf/step_time': {rng.uniform(150, 500)!r}, "
        f"'perf/wait_time_ratio': {rng.random()!r}}}"
    )
    lines.append(f"{TRAIN_PREFIX}{stamp} timer.py:24 - Timer train_wait end (elapsed: {rng.uniform(1, 9):.1f}s)")
    return lines


def write_synthetic_log(
    path: Path, n_rollouts: int = 3000, steps_per_rollout: int = 1, eval_interval: int = 20, seed: int = 0
) -> int:
    """Write the log; returns the number of metric lines in it (the truncated last line included)."""
    rng = random.Random(seed)
    metric_lines = 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("Job submission server address: http://127.0.0.1:8265\n")
        for r in range(n_rollouts):
            for line in rollout_lines(r, steps_per_rollout, eval_interval, rng):
                metric_lines += ": {" in line
                fh.write(line + "\n")
        # The run died while printing the next rollout's line.
        fh.write(f"{ROLLOUT_PREFIX}{_stamp(n_rollouts)} rollout.py:1210 - rollout {n_rollouts}: "
                 "{'rollout/step': 3000, 'rollout/response_lengths': 40")
    return metric_lines + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target", type=float, default=5.0, help="seconds the median must stay under")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mileage-bench-") as tmp:
        log_path = Path(tmp) / "train.log"
        n_metric = write_synthetic_log(log_path, args.rollouts)
        size_mb = log_path.stat().st_size / 1e6
        print(f"log: {args.rollouts} rollouts, {n_metric} metric lines, {size_mb:.1f} MB")
        times = []
        for run in range(args.runs):
            start = time.perf_counter()
            report = import_log(log_path, Path(tmp) / f"out{run}")
            times.append(time.perf_counter() - start)
            print(f"run {run + 1}: {times[-1]:.2f} s; rows {report.events}; "
                  f"truncated {report.parse['truncated_lines']}, duplicates {report.parse['duplicate_lines']}")
        median = statistics.median(times)
        verdict = "PASS" if median < args.target else "FAIL"
        print(f"median {median:.2f} s (target < {args.target:.1f} s): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
