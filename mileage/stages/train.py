"""The train step: decide what the run directory needs, submit the engine's job to Ray, collect its outputs.

Every engine goes the same way (mileage.engines.contract, one runner: mileage.stages.runner): the run directory (checkpoints, events, eval samples)
persists across attempts, the job is one Ray job, and the declared outputs (events, eval samples, done.json) are
written only after the job succeeded, so a failure never looks finished and never deletes a checkpoint. A run
already at `num_rollout` trains nothing more, and the outputs hold exactly the first `num_rollout` rollouts.
"""

from __future__ import annotations

from pathlib import Path

from mileage.atomic import write_json, write_jsonl
from mileage.attempts import attempt
from mileage.engines import engine_of
from mileage.engines.contract import read_eval_samples
from mileage.metrics.events import write_events
from mileage.paths import absolute
from mileage.provenance import training_gpus
from mileage.run_dir import checkpoint_at, events_within, plan_run, training_identity
from mileage.stages.runner import run_spec


def run_training(train: dict, inputs: dict, outputs: dict, run_dir: str) -> None:
    run = Path(run_dir)
    engine = engine_of(train)
    num_rollout = train["rollout"]["num_rollout"]
    plan = plan_run(run, training_identity(train, inputs), engine, train)
    if plan.state == "done":
        checkpoint = plan.checkpoint
    else:
        job = engine.training_job(train, inputs, run)
        # Each attempt's wall time and GPUs, kept in the run directory: provenance sums every attempt of a run.
        rollouts_before = plan.checkpoint.rollouts if plan.checkpoint else 0
        with attempt(run, training_gpus(train), rollouts_before):
            run_spec(job, train, run / "job.log", f"mileage-{train['name']}",
                     lock_dir=run,  # the job holds the run directory for its whole life, whatever the engine
                     metadata={"experiment": train["name"], "state": plan.state})
        checkpoint = checkpoint_at(engine, train, run, num_rollout)
    final, last = engine.final_model(train, inputs, run, checkpoint)
    events = events_within(engine.collect_events(run), num_rollout, train["train"]["num_steps_per_rollout"])
    samples = [row for row in read_eval_samples(run) if row["rollout"] < num_rollout]
    write_jsonl(outputs["eval_samples"], samples)
    write_events(outputs["events"], events)
    write_json(
        outputs["done"],
        {
            "experiment": train["name"],
            "engine": train["engine"],
            "final_checkpoint": final,
            "last_iteration": last,
            "rollouts_logged": len({e.step for e in events if e.kind == "rollout"}),
            "run_dir": absolute(run),
            "job_log": absolute(run / "job.log"),
        },
    )
