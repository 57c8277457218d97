"""The local engine (TRL's GRPOTrainer on CPU or one GPU) as an implementation of the engine contract."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping

from mileage.atomic import write_json
from mileage.engines.contract import EVAL_SAMPLES_DIR, Checkpoint, DoctorNeeds, Engine, JobSpec
from mileage.engines.local.checkpoints import complete_checkpoints, export_model
from mileage.engines.local.checkpoints import set_aside_unusable as set_aside_checkpoints
from mileage.errors import ConfigError
from mileage.metrics.events import MetricEvent, collapse_events, read_events
from mileage.paths import absolute, final_model, model_dir

# What each stage of this engine reads (mileage.keys derives params and the resume identity from it).
READS = {
    "train": (
        "engine", "seed", "rollout_seed", "data.apply_chat_template", "data.eval.name", "data.extra_eval",
        "rollout", "train", "eval", "resources.device", "resources.gpus", "ray", "tracking",
    ),
    "eval_base": ("engine", "data.apply_chat_template", "rollout.reward", "resources.device", "base_eval"),
    "eval_final": ("engine", "data.apply_chat_template", "rollout.reward", "resources.device", "final_eval"),
    "preflight": ("engine",),
    "convert_model": (),
    "export_hf": (),
}


def job_spec(train: Mapping[str, Any], inputs: Mapping[str, str], run_dir: Path) -> dict:
    """The spec `python -m mileage.engines.local.job` reads: plain values, absolute paths."""
    return {
        "experiment": train["name"],
        "model_path": absolute(model_dir(inputs["model"])),
        "train_data": absolute(inputs["train_data"]),
        "eval_data": (
            [{"name": train["data"]["eval"]["name"], "path": absolute(inputs["eval_data"])}]
            + [{"name": data["name"], "path": absolute(inputs[f"eval_data_{i}"])}
               for i, data in enumerate(train["data"]["extra_eval"], start=1)]
            if train["eval"]["interval"] else None
        ),
        "run_dir": absolute(run_dir),
        "seed": train["seed"],
        "rollout_seed": train["rollout_seed"],
        "data": {"apply_chat_template": train["data"]["apply_chat_template"]},
        # Which trackers (mileage.engines.local.tracking); a W&B key only ever comes from the job's environment.
        "tracking": {key: train["tracking"][key] for key in ("wandb", "wandb_project", "wandb_group")},
        **{key: train[key] for key in ("rollout", "train", "eval", "resources")},
    }


def job_env(ray: Mapping[str, Any] | None) -> dict:
    """The local engine's runtime env. Ray starts a job's entrypoint with OMP_NUM_THREADS=1; the engine is the
    only job on its head, so torch gets the CPUs the head offers (1.5x slower steps on 2 cores otherwise). A job
    without a cluster (`ray` None) gets this machine's CPUs."""
    threads = (ray or {}).get("num_cpus") or os.cpu_count() or 1
    env = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(threads)}
    return {"env_vars": env}


FINAL_MODEL = "final_model"  # the run's final checkpoint, exported as a Hugging Face directory


class LocalEngine(Engine):
    name = "local"
    env = "local"
    reads = READS

    # ---- what it declares --------------------------------------------------------------------------------
    def check_config(self, exp: Mapping[str, Any], where: str) -> None:
        if exp["rollout"]["n_samples_per_prompt"] < 2:
            raise ConfigError(f"{where}.rollout.n_samples_per_prompt: GRPO needs at least 2 samples per prompt, "
                              f"got {exp['rollout']['n_samples_per_prompt']}")

    def doctor_needs(self, exp):
        resources = exp.get("resources") or {}
        device = resources.get("device", "auto")
        gpus = resources.get("gpus", 0)
        return DoctorNeeds(
            gpus=gpus if device != "cpu" else 0,
            needs_cuda=device == "cuda",
            min_free_disk_gb=2.0,
            python=None,
            light_env_required=True,
            needs_nccl=False,
        )

    # ---- the jobs it runs -----------------------------------------------------------------------------------
    def training_job(self, train, inputs, run_dir):
        spec_path = Path(absolute(run_dir / "job.json"))  # absolute: a Ray job does not run in our working directory
        spec = job_spec(train, inputs, run_dir)
        return JobSpec(entrypoint=[sys.executable, "-m", "mileage.engines.local.job", str(spec_path)],
                       runtime_env=job_env(train["ray"]), prepare=(lambda: write_json(spec_path, spec),))

    def evaluation_job(self, evaluation, inputs, work_dir):
        which = evaluation["which"]
        settings = evaluation[f"{which}_eval"]
        model = model_dir(inputs["model"]) if which == "base" else final_model(inputs["done"])
        spec_path = Path(absolute(work_dir / "eval.json"))
        spec = {
            "model_path": absolute(model),
            "problems_path": absolute(inputs["data"]),
            "out_path": absolute(work_dir / EVAL_SAMPLES_DIR / "eval" / "rollout_0.jsonl"),
            "n_samples": settings["n_samples_per_prompt"],
            "max_new_tokens": settings["max_response_len"],
            "temperature": settings["temperature"],
            "top_p": settings["top_p"],
            "seed": settings["seed"],
            "reward": evaluation["rollout"]["reward"],
            "apply_chat_template": evaluation["data"]["apply_chat_template"],
            "device": evaluation["resources"]["device"],
        }
        # One process sampling one model: it needs no Ray cluster (the runner runs it here, no head to start).
        return JobSpec(entrypoint=[sys.executable, "-m", "mileage.engines.local.eval_job", str(spec_path)],
                       runtime_env=job_env(None), prepare=(lambda: write_json(spec_path, spec),), cluster=False)

    # ---- how its runs are read ------------------------------------------------------------------------------
    def checkpoints(self, train, run_dir):
        steps = train["train"]["num_steps_per_rollout"]
        return [Checkpoint(step // steps, path) for step, path in complete_checkpoints(run_dir / "checkpoints")
                if step % steps == 0]

    def set_aside_unusable(self, train, run_dir, log):
        set_aside_checkpoints(run_dir / "checkpoints", log)  # verified by each checkpoint's manifest (checkpoints.py)

    def collect_events(self, run_dir: Path) -> list[MetricEvent]:
        return collapse_events(read_events(run_dir / "events.jsonl", allow_partial_last_line=True))

    def in_training_evals(self, train, num_rollout):
        interval = train["eval"]["interval"]
        if not interval:
            return set()
        # The callback evaluates at the end of every interval-th rollout and of the last one.
        return {r for r in range(num_rollout) if (r + 1) % interval == 0 or r == num_rollout - 1}

    def final_model(self, train, inputs, run_dir, checkpoint):
        out = export_model(checkpoint.path, model_dir(inputs["model"]), run_dir / FINAL_MODEL)
        return absolute(out), None

    def expected_final_model(self, train, run_dir):
        return Path(run_dir) / FINAL_MODEL
