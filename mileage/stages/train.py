"""The train step: prepare the run directory, submit the engine's job to Ray, collect its outputs.

Both engines go the same way: the run directory (checkpoints, events, eval samples) persists across attempts,
the job is one Ray job, and the declared outputs (events, eval samples, done.json) are written only after the
job succeeded, so a failure never looks finished and never deletes a checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from mileage.atomic import write_json, write_jsonl
from mileage.jsonl import iter_jsonl
from mileage.launch.ray_cluster import RayClusterSpec, free_port, ray_cluster
from mileage.launch.ray_job import run_job
from mileage.metrics.events import collapse_events, read_events, write_events
from mileage.run_dir import prepare_run_dir, training_identity
from mileage.stages.models import model_dir


def _abs(path: str | Path) -> str:
    if str(path).startswith("<"):  # a placeholder for what a download will produce (see model_dir)
        return str(path)
    return str(Path(path).resolve())


def cluster_spec(train: dict, run_dir: Path) -> RayClusterSpec:
    ray = train["ray"]
    return RayClusterSpec(
        address=ray["address"],
        host=ray["host"],
        port=ray["port"] or free_port(ray["host"]),
        dashboard_port=ray["dashboard_port"] or free_port(ray["host"]),
        num_cpus=ray["num_cpus"],
        num_gpus=train["resources"]["gpus"],
    )


def local_job(train: dict, inputs: dict, run_dir: Path) -> tuple[list[str], dict]:
    """The local engine's entrypoint: `python -m mileage.engines.local.job SPEC` with a spec of plain values."""
    spec = {
        "experiment": train["name"],
        "model_path": _abs(model_dir(inputs["model"])),
        "train_data": _abs(inputs["train_data"]),
        "eval_data": {"name": train["data"]["eval"]["name"], "path": _abs(inputs["eval_data"])} if train["eval"]["interval"] else None,
        "run_dir": _abs(run_dir),
        "seed": train["seed"],
        "rollout_seed": train["rollout_seed"],
        "data": {"apply_chat_template": train["data"]["apply_chat_template"]},
        **{key: train[key] for key in ("rollout", "train", "eval", "resources")},
    }
    spec_path = Path(_abs(run_dir / "job.json"))  # absolute: a Ray job does not run in our working directory
    write_json(spec_path, spec)
    entrypoint = [sys.executable, "-m", "mileage.engines.local.job", str(spec_path)]
    return entrypoint, local_job_env(train["ray"]["num_cpus"] or os.cpu_count() or 1)


def local_job_env(threads: int) -> dict:
    """The local engine's runtime env. Ray starts a job's entrypoint with OMP_NUM_THREADS=1; the engine is the
    only job on its head, so torch gets the CPUs the head offers (1.5x slower steps on 2 cores otherwise)."""
    env = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(threads)}
    return {"env_vars": env}


def miles_job(train: dict, inputs: dict, run_dir: Path) -> tuple[list[str], dict]:
    from mileage.engines.miles.launch import train_entrypoint
    from mileage.engines.miles.runtime_env import runtime_env

    from mileage.models.cards import check_hf_config

    paths = miles_paths(train, inputs, run_dir)
    # miles checks the card's shape against config.json at start-up; fail here, before any GPU time is spent.
    config_json = Path(paths.hf_checkpoint) / "config.json"
    check_hf_config(train["card"], json.loads(config_json.read_text()), where=str(config_json))
    return train_entrypoint(train, train["card"], paths), runtime_env(train, paths)


def miles_paths(train: dict, inputs: dict, run_dir: Path):
    from mileage.engines.miles.argv import MilesPaths

    return MilesPaths(
        hf_checkpoint=_abs(model_dir(inputs["model"])),
        ref_load=_abs(Path(inputs["torch_dist"]).parent),
        run_dir=_abs(run_dir / "checkpoints"),
        prompt_data=_abs(inputs["train_data"]),
        eval_data=[(train["data"]["eval"]["name"], _abs(inputs["eval_data"]))],
        tensorboard_dir=_abs(run_dir / "tensorboard"),
        debug_event_dir=_abs(run_dir / "debug_events"),
        eval_samples_dir=_abs(run_dir / "eval_samples"),
    )


def collect_events(engine: str, run_dir: Path):
    if engine == "local":
        return collapse_events(read_events(run_dir / "events.jsonl", allow_partial_last_line=True))
    from mileage.metrics.debug_events import read_debug_events
    from mileage.metrics.tensorboard_events import read_tensorboard_dir

    reports = []
    events = []
    if (run_dir / "tensorboard").is_dir():
        events, report = read_tensorboard_dir(run_dir / "tensorboard")
        reports.append(report)
    if (run_dir / "debug_events").is_dir():
        debug, report = read_debug_events(run_dir / "debug_events")
        reports.append(report)
        # The debug events win; TensorBoard fills the gaps. On resume miles restores the debug-event snapshot of
        # the checkpoint, which was taken before that rollout's eval, so the eval at a save point is only in
        # TensorBoard (its files keep every attempt's scalars).
        logged = {(e.kind, e.step) for e in debug}
        events = [e for e in events if (e.kind, e.step) not in logged] + debug
    for report in reports:
        for warning in report.warnings():
            print(f"mileage: metrics: {warning}")
    return collapse_events(events)


def collect_eval_samples(run_dir: Path) -> list[dict]:
    """Every in-training eval sample, tagged with its dataset and rollout id, in rollout order."""
    def rollout_of(file: Path) -> int:
        return int(re.findall(r"\d+", file.stem)[-1])

    rows = []
    files = sorted(run_dir.glob("eval_samples/*/rollout_*.jsonl"), key=lambda f: (f.parent.name, rollout_of(f)))
    for file in files:
        for _, record in iter_jsonl(file):
            rows.append({**record, "dataset": file.parent.name, "rollout": rollout_of(file)})
    return rows


def final_checkpoint(engine: str, run_dir: Path) -> tuple[str, int | None]:
    if engine == "local":
        return _abs(run_dir / "final_model"), None
    from mileage.engines.miles.checkpoints import iter_dir, latest_iteration

    last = latest_iteration(run_dir / "checkpoints")
    if last is None:
        raise RuntimeError(f"the miles job ended without a checkpoint in {run_dir / 'checkpoints'}")
    return _abs(iter_dir(run_dir / "checkpoints", last)), last


def run_training(train: dict, inputs: dict, outputs: dict, run_dir: str) -> None:
    run = Path(run_dir)
    state = prepare_run_dir(run, training_identity(train, inputs))
    make_job = local_job if train["engine"] == "local" else miles_job
    entrypoint, runtime_env = make_job(train, inputs, run)
    with ray_cluster(cluster_spec(train, run)) as address:
        run_job(
            address,
            entrypoint,
            runtime_env,
            run / "job.log",
            job_id_prefix=f"mileage-{train['name']}",
            metadata={"experiment": train["name"], "state": state},
        )
    events = collect_events(train["engine"], run)
    checkpoint, last = final_checkpoint(train["engine"], run)
    write_jsonl(outputs["eval_samples"], collect_eval_samples(run))
    write_events(outputs["events"], events)
    rollouts = [e.step for e in events if e.kind == "rollout"]
    write_json(
        outputs["done"],
        {
            "experiment": train["name"],
            "engine": train["engine"],
            "final_checkpoint": checkpoint,
            "last_iteration": last,
            "rollouts_logged": len(set(rollouts)),
            "run_dir": _abs(run),
            "job_log": _abs(run / "job.log"),
        },
    )
