"""The evaluation jobs of an experiment exactly as the eval_base / eval_final rules build them (same params, same
inputs, same work directories), for `mileage argv EXPERIMENT --eval base|final`: one per evaluation set.

Before training has finished there is no done.json to name the final checkpoint; the final evaluation's command
line is then shown for the checkpoint a run of `rollout.num_rollout` rollouts ends with (its last save, which miles
always writes), through a stand-in done.json in a temporary directory. Building a job runs nothing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mileage.engines import engine_of
from mileage.engines.contract import JobSpec
from mileage.engines.miles import checkpoints as ckpt


def final_checkpoint(exp: dict, run_dir: Path) -> Path:
    """The save a finished run of `num_rollout` rollouts ends with (Megatron numbers it by rollout id, FSDP by count)."""
    num_rollout = exp["rollout"]["num_rollout"]
    backend = exp.get("miles", {}).get("train_backend", "megatron")
    return ckpt.iter_dir(run_dir, num_rollout if backend == "fsdp" else num_rollout - 1)


def evaluation_jobs(name: str, exp: dict, config_path: str | Path, results_dir: str | Path,
                    which: str) -> list[tuple[str, JobSpec]]:
    """[(evaluation set, the job its eval_<which> rule runs)] for experiment `name`."""
    from mileage.config import ExperimentResolver, load_yaml
    from mileage.layout import Layout
    from mileage.stages.params import experiment_paths, rule_params

    if which not in ("base", "final"):
        raise ValueError(f"--eval: expected base or final, got {which!r}")
    config_path = Path(config_path)
    raw = load_yaml(config_path) if config_path.is_file() else {}
    base_dir = config_path.resolve().parent.parent
    config = ExperimentResolver(raw, base_dir=base_dir).config
    layout = Layout(results=str(results_dir), base_dir=base_dir)
    paths = experiment_paths(layout, name, exp, config)
    engine = engine_of(exp)
    jobs = []
    with tempfile.TemporaryDirectory(prefix="mileage-argv-") as tmp:
        for set_name, entry in paths["eval_sets"].items():
            params: dict[str, Any] = rule_params(f"eval_{which}", name if which == "final" else None, exp, config,
                                                 layout, eval_set=set_name)
            if which == "base":
                out = Path(entry["base_eval"])
                inputs = layout.base_evals[out.name.removesuffix(".samples.jsonl")]["inputs"]
            else:
                out = Path(results_dir) / name / "eval" / set_name / "final.samples.jsonl"
                inputs = dict(entry["final_eval_inputs"])
                if not Path(inputs["done"]).is_file():
                    stand_in = Path(tmp) / "done.json"
                    run_dir = Path(results_dir).resolve() / name / "run"
                    stand_in.write_text(json.dumps({"final_checkpoint": str(final_checkpoint(exp, run_dir))}))
                    inputs["done"] = str(stand_in)
            work = out.with_name(f".{out.name}.work")  # as mileage.stages.evaluate places it
            jobs.append((set_name, engine.evaluation_job(params, inputs, work)))
    return jobs
