"""What do the local engine's callbacks and event writing cost per GRPO step?

    .venv/bin/python benchmarks/train_step_overhead.py [--rollouts 8] [--out DIR]

Times the same GRPO run on the tiny demo model: bare TRL (the engine's GRPOTrainer and GRPOConfig, no
callback, no in-training eval), the engine's path in-process (`build_trainer` with canonical events; eval
off so both do the same work), and the engine as the pipeline runs it: `python -m mileage.engines.local.job`
submitted as a Ray job to a head on 127.0.0.1 (its per-step time from its own perf/step_time events).
Reports start-up costs (building the trainer; starting Ray, submitting, stopping) separately from the
steady per-step time, and the ratios to bare TRL (target <= 1.1).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

from mileage.data.demo_problems import write_demo_dataset
from mileage.engines.local.grpo import build_trainer
from mileage.models.tiny import build_demo_model


def spec_for(root: Path, run_dir: Path, rollouts: int) -> dict:
    return {
        "experiment": "bench", "model_path": str(root / "model"), "train_data": str(root / "train.jsonl"),
        "eval_data": None, "run_dir": str(run_dir), "seed": 1, "rollout_seed": 2,
        "data": {"apply_chat_template": True},
        "rollout": {"num_rollout": rollouts, "rollout_batch_size": 8, "n_samples_per_prompt": 8,
                    "max_response_len": 16, "reward": "deepscaler_nothink"},
        "train": {"global_batch_size": 64, "num_steps_per_rollout": 1, "micro_batch_size": 64, "lr": 1e-4,
                  "weight_decay": 0.0, "save_interval": 10_000},
        "eval": {"interval": None},
        "resources": {"device": "cpu"},
    }


def timed_run(spec: dict, with_events: bool) -> tuple[float, float]:
    """(start-up seconds, median seconds per optimizer step) of one run."""
    from transformers import TrainerCallback

    shutil.rmtree(spec["run_dir"], ignore_errors=True)
    t0 = time.perf_counter()
    trainer, _, config = build_trainer(spec, with_events=with_events)
    startup = time.perf_counter() - t0
    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    trainer.add_callback(Stamp())
    trainer.train()
    # steady state: the median step after step 1 (which includes warm-up); the median shrugs off the stalls
    # other processes on a shared machine cause
    per_step = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
    return startup, per_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="results/bench/train_step_overhead")
    args = parser.parse_args(argv)
    root = Path(args.out)
    build_demo_model(root / "model", {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
                                      "intermediate_size": 128}, seed=0)
    write_demo_dataset(root / "train.jsonl", name="arith", n_problems=64, seed=1, max_operand=9, operations=["+"],
                       split="train")
    # Interleaved rounds, so drift in the machine's load hits every variant alike; medians over the rounds.
    per_step: dict[str, list[float]] = {"bare TRL": [], "engine": [], "engine as a Ray job": []}
    fixed: list[float] = []
    for round_ in range(args.rounds):
        for label, with_events in (("bare TRL", False), ("engine", True)):
            startup, step = timed_run(spec_for(root, root / f"{label.replace(' ', '_')}_{round_}", args.rollouts), with_events)
            per_step[label].append(step)
            print(f"round {round_}: {label:20s} start-up {startup:.2f}s  per step {step * 1000:.1f} ms", flush=True)
        step, overhead = ray_job_step(root, args.rollouts)
        per_step["engine as a Ray job"].append(step)
        fixed.append(overhead)
        print(f"round {round_}: engine as a Ray job    per step {step * 1000:.1f} ms; Ray start + submit + stop "
              f"{overhead:.1f}s", flush=True)
    bare = statistics.median(per_step["bare TRL"])
    for label in ("engine", "engine as a Ray job"):
        ratio = statistics.median(per_step[label]) / bare
        print(f"per-step ratio {label} / bare TRL: {ratio:.3f} (target <= 1.1): {'PASS' if ratio <= 1.1 else 'FAIL'}")
    print(f"fixed cost of the Ray path, once per training: median {statistics.median(fixed):.1f}s")
    return 0


def ray_job_step(root: Path, rollouts: int) -> tuple[float, float]:
    """(median perf/step_time of the job after its first step, fixed Ray + job overhead in seconds)."""
    from mileage.atomic import write_json
    from mileage.launch.ray_cluster import RayClusterSpec, free_port, ray_cluster
    from mileage.launch.ray_job import run_job
    from mileage.metrics.events import read_events
    from mileage.engines.local.engine import job_env

    run_dir = (root / "ray_job").resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    spec = spec_for(root.resolve(), run_dir, rollouts)
    write_json(run_dir / "job.json", spec)
    entry = [sys.executable, "-m", "mileage.engines.local.job", str(run_dir / "job.json")]
    cluster = RayClusterSpec(port=free_port("127.0.0.1"), dashboard_port=free_port("127.0.0.1"), num_cpus=2, num_gpus=0)
    t0 = time.perf_counter()
    with ray_cluster(cluster, log=lambda _: None) as address:
        run_job(address, entry, job_env({"num_cpus": 2}), run_dir / "job.log", job_id_prefix="bench")
    total = time.perf_counter() - t0
    steps = [e.metrics["perf/step_time"] for e in read_events(run_dir / "events.jsonl")
             if e.kind == "perf" and "perf/step_time" in e.metrics]
    return statistics.median(steps[1:]), total - sum(steps)


if __name__ == "__main__":
    sys.exit(main())
