"""What do the local engine's callbacks and event writing cost per GRPO step?

    .venv/bin/python benchmarks/train_step_overhead.py [--rollouts 8] [--out DIR]

Times the same GRPO run twice on the tiny demo model: bare TRL (the engine's GRPOTrainer and GRPOConfig,
no callback, no in-training eval) and the engine's path (`build_trainer` with canonical events; eval off
so both do the same work). Reports start-up (building the trainer) separately from the steady per-step
time, and the ratio engine/bare of the per-step time (target <= 1.1).
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
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--out", default="results/bench/train_step_overhead")
    args = parser.parse_args(argv)
    root = Path(args.out)
    build_demo_model(root / "model", {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
                                      "intermediate_size": 128}, seed=0)
    write_demo_dataset(root / "train.jsonl", name="arith", n_problems=64, seed=1, max_operand=9, operations=["+"],
                       split="train")
    results = {}
    for label, with_events in (("bare TRL", False), ("engine", True), ("bare TRL (again)", False), ("engine (again)", True)):
        results[label] = timed_run(spec_for(root, root / label.replace(" ", "_"), args.rollouts), with_events)
        print(f"{label:18s} start-up {results[label][0]:.2f}s  per step {results[label][1] * 1000:.1f} ms", flush=True)
    bare = min(results["bare TRL"][1], results["bare TRL (again)"][1])
    engine = min(results["engine"][1], results["engine (again)"][1])
    print(f"per-step ratio engine/bare: {engine / bare:.3f} (target <= 1.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
