"""The jobs of an experiment exactly as its rules build them (same params, same paths), for the commands that look
at them without running them: `mileage argv` prints their command lines (`--eval base|final`: the evaluations'),
`mileage doctor` hands the training's to the program's own argument parser."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mileage.engines import engine_of
from mileage.engines.contract import Engine, JobSpec


@dataclass(frozen=True)
class TrainJob:
    engine: Engine
    params: dict[str, Any]
    inputs: dict[str, str]
    run_dir: Path

    def spec(self) -> JobSpec:
        """The job spec the train rule would run (building it runs nothing)."""
        return self.engine.training_job(self.params, self.inputs, self.run_dir)

    def argv(self) -> list[str]:
        """The training program's own command line (NotImplementedError: the engine runs a job spec)."""
        argv = self.spec().argv
        if argv is None:
            raise NotImplementedError(f"engine {self.engine.name} has no command line of its own (it runs a job spec)")
        return argv


def _config_and_layout(config_path: str | Path, results_dir: str | Path):
    from mileage.config import ExperimentResolver, load_yaml
    from mileage.layout import Layout

    config_path = Path(config_path)
    raw = load_yaml(config_path) if config_path.is_file() else {}
    base_dir = config_path.resolve().parent.parent
    return ExperimentResolver(raw, base_dir=base_dir).config, Layout(results=str(results_dir), base_dir=base_dir)


def train_job(name: str, exp: dict, config_path: str | Path, results_dir: str | Path) -> TrainJob:
    from mileage.stages.params import experiment_paths, rule_params

    config, layout = _config_and_layout(config_path, results_dir)
    params = rule_params("train", name, exp, config, layout)
    inputs = experiment_paths(layout, name, exp, config)["train_inputs"]
    return TrainJob(engine_of(exp), params, inputs, Path(results_dir) / name / "run")


def evaluation_jobs(name: str, exp: dict, config_path: str | Path, results_dir: str | Path,
                    which: str) -> list[tuple[str, JobSpec]]:
    """[(evaluation set, the job its eval_<which> rule runs)] for experiment `name`, with the same params, inputs
    and work directories as the rules. Before training has finished there is no done.json to name the final
    model: the final evaluation is then shown for what a finished run will hold (Engine.expected_final_model),
    through a stand-in done.json in a temporary directory. Building a job runs nothing."""
    from mileage.stages.params import experiment_paths, rule_params

    if which not in ("base", "final"):
        raise ValueError(f"--eval: expected base or final, got {which!r}")
    config, layout = _config_and_layout(config_path, results_dir)
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
                    final = engine.expected_final_model(exp, Path(results_dir).resolve() / name / "run")
                    stand_in = Path(tmp) / "done.json"
                    stand_in.write_text(json.dumps({"final_checkpoint": str(final or "<final model>")}))
                    inputs["done"] = str(stand_in)
            work = out.with_name(f".{out.name}.work")  # as mileage.stages.evaluate places it
            jobs.append((set_name, engine.evaluation_job(params, inputs, work)))
    return jobs
