"""Ray job entrypoint of the local engine: `python -m mileage.engines.local.job SPEC_JSON`.

SPEC_JSON holds {"experiment", "model_path", "train_data", "eval_data": {"name", "path"} | null, "run_dir",
"seed", "rollout_seed", "data", "rollout", "train", "eval", "resources"} (sections as in config/schema.yaml,
train.global_batch_size and train.num_steps_per_rollout filled in). Resumes from the run directory's latest
checkpoint when there is one.
"""

from __future__ import annotations

import sys

from mileage.engines.local.entrypoint import job_spec_argument


def main(argv: list[str] | None = None) -> int:
    spec_path = job_spec_argument(argv, "mileage.engines.local.job")
    if spec_path is None:
        return 2
    from mileage.engines.local.console import route_output
    from mileage.engines.local.grpo import load_spec, run_grpo
    from mileage.engines.local.wandb_import import settle_wandb

    spec = load_spec(spec_path)
    settle_wandb(bool((spec.get("tracking") or {}).get("wandb")))  # before torch: 15 s of every start (its docstring)
    # Before TRL is imported: its warnings and log records to the details log, one line per rollout here.
    details = route_output(spec["run_dir"])
    print(f"[mileage] training {spec.get('experiment', '')}: one line per rollout; TRL's per-step metrics and "
          f"every warning in {details.path}", flush=True)
    # One trainer per run directory: the lifeline around this job holds its lock (mileage.run_lock). An unusable
    # newest checkpoint was set aside by the train rule's plan (Engine.set_aside_unusable), under that lock.
    final = run_grpo(spec, details)
    print(f"[mileage] final model: {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
