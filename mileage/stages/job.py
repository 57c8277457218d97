"""The training job of an experiment exactly as the train rule builds it (same params, same paths), for the
commands that look at it without running it: `mileage argv` prints its command line, `mileage doctor` hands
that command line to the installed miles' own argument parser."""

from __future__ import annotations

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


def train_job(name: str, exp: dict, config_path: str | Path, results_dir: str | Path) -> TrainJob:
    from mileage.config import ExperimentResolver, load_yaml
    from mileage.layout import Layout
    from mileage.stages.params import experiment_paths, rule_params

    config_path = Path(config_path)
    raw = load_yaml(config_path) if config_path.is_file() else {}
    base_dir = config_path.resolve().parent.parent
    config = ExperimentResolver(raw, base_dir=base_dir).config
    layout = Layout(results=str(results_dir), base_dir=base_dir)
    params = rule_params("train", name, exp, config, layout)
    inputs = experiment_paths(layout, name, exp, config)["train_inputs"]
    return TrainJob(engine_of(exp), params, inputs, Path(results_dir) / name / "run")
