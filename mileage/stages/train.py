"""The train step: decide what the run directory needs, submit the engine's job to Ray, collect its outputs.

Every engine goes the same way (mileage.engines.contract): the run directory (checkpoints, events, eval samples)
persists across attempts, the job is one Ray job, and the declared outputs (events, eval samples, done.json) are
written only after the job succeeded, so a failure never looks finished and never deletes a checkpoint. A run
already at `num_rollout` trains nothing more, and the outputs hold exactly the first `num_rollout` rollouts.
"""

from __future__ import annotations

from pathlib import Path

from mileage.atomic import write_json, write_jsonl
from mileage.engines import engine_of
from mileage.launch.ray_cluster import cluster_spec, ray_cluster
from mileage.launch.ray_job import run_job
from mileage.metrics.events import write_events
from mileage.paths import absolute
from mileage.secrets import job_secret_names
from mileage.run_dir import checkpoint_at, events_within, plan_run, training_identity


def run_training(train: dict, inputs: dict, outputs: dict, run_dir: str) -> None:
    run = Path(run_dir)
    engine = engine_of(train)
    num_rollout = train["rollout"]["num_rollout"]
    plan = plan_run(run, training_identity(train, inputs), engine, train)
    if plan.state == "done":
        checkpoint = plan.checkpoint
    else:
        entrypoint, runtime_env = engine.training_job(train, inputs, run)
        # The head (and so the job) gets only the secrets the job needs: WANDB_API_KEY when tracking.wandb is on.
        spec = cluster_spec(train["ray"], train["resources"]["gpus"], job_secret_names(train))
        with ray_cluster(spec) as address:
            run_job(
                address,
                entrypoint,
                runtime_env,
                run / "job.log",
                job_id_prefix=f"mileage-{train['name']}".replace("/", "-"),  # a replicate: <exp>/seeds/<n>
                metadata={"experiment": train["name"], "state": plan.state},
                lock_dir=run,  # the job holds the run directory for its whole life, whatever the engine
            )
        checkpoint = checkpoint_at(engine, train, run, num_rollout)
    final, last = engine.final_model(train, inputs, run, checkpoint)
    events = events_within(engine.collect_events(run), num_rollout, train["train"]["num_steps_per_rollout"])
    samples = [row for row in engine.collect_eval_samples(run) if row["rollout"] < num_rollout]
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
