"""What every engine provides. The stages, the params, the config checks, doctor and the CLI talk to an engine
through this contract only; none of them asks which engine it is.

An engine (a backend such as miles' FSDP is part of its engine) declares:
- `reads`: the config keys each of its stages reads (mileage.keys derives the rules' params and the run's resume
  identity from it);
- its software environment (`env`, a key of mileage.pins.ENV_FILES) and container image;
- the training job (entrypoint and Ray runtime env), how its metric events, checkpoints and per-sample in-training
  eval records are collected, and which rollouts a run of a given length evaluates in training;
- its evaluation job, its memory plan, its extra inputs (a conversion, the recorded plan), its config checks and
  doctor requirements.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from mileage.jsonl import iter_jsonl
from mileage.metrics.events import MetricEvent

# The stages an engine implements; mileage.keys asks `reads` for each.
ENGINE_STAGES = ("train", "eval_base", "eval_final", "preflight", "convert_model", "export_hf")


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint of a run: how many rollouts it has trained, and where it is."""

    rollouts: int
    path: Path


@dataclass(frozen=True)
class DoctorNeeds:
    """What an experiment of this engine asks of a machine (mileage doctor)."""

    gpus: int
    needs_cuda: bool
    min_free_disk_gb: float
    python: tuple[int, int] | None  # the interpreter the engine's stack is built for (None: any >= 3.10)
    light_env_required: bool  # whether the pyproject pins must be installed where the job runs
    needs_nccl: bool  # whether its GPUs talk over NCCL even on one box


class Engine(ABC):
    name: str
    env: str  # mileage.pins.ENV_FILES key: the conda env of its GPU rules (snakemake --sdm conda)
    reads: Mapping[str, tuple[str, ...]]  # stage -> config keys (a section stands for all its leaves)
    stack_modules: tuple[tuple[str, str, bool], ...] = ()  # (import name, distribution, required) doctor checks

    # ---- software -----------------------------------------------------------------------------------
    def container(self, exp: Mapping[str, Any]) -> str | None:
        """The image its rules run in under `snakemake --sdm apptainer` (None: the current environment)."""
        return None

    # ---- config ---------------------------------------------------------------------------------------
    def check_config(self, exp: Mapping[str, Any], where: str) -> None:
        """Raise mileage.config.ConfigError (naming `where.<key>`) for what this engine cannot run."""

    def check_explicit_keys(self, exp: Mapping[str, Any], explicit: set[str], where: str) -> None:
        """Like check_config, for what the config itself sets (`explicit`: dotted keys, schema defaults excluded),
        e.g. a key that the experiment's settings make meaningless."""

    # ---- graph ------------------------------------------------------------------------------------------
    def model_inputs(self, layout, exp: Mapping[str, Any]) -> dict[str, str]:
        """What its training and evaluations load beyond the HF start model and the datasets (e.g. a conversion)."""
        return {}

    def train_inputs(self, layout, name: str, exp: Mapping[str, Any]) -> dict[str, str]:
        """Inputs of its training beyond the start model, the datasets and `model_inputs` (e.g. the memory plan)."""
        return {}

    def converts(self, exp: Mapping[str, Any]) -> bool:
        """Whether it trains from a conversion of the HF snapshot (the convert rule)."""
        return False

    def exports(self, exp: Mapping[str, Any]) -> bool:
        """Whether its final checkpoint needs a conversion back to HF format (the export rule)."""
        return False

    def convert_model(self, params: Mapping[str, Any], hf_dir: str, marker: str) -> None:
        """Convert the HF snapshot for training; `marker` is the file that says it finished."""
        raise NotImplementedError(f"engine {self.name} trains the HF snapshot as it is")

    def export_hf(self, params: Mapping[str, Any], checkpoint: str, origin_hf_dir: str, out_dir: str) -> None:
        """Write the final checkpoint as a Hugging Face directory into `out_dir`."""
        raise NotImplementedError(f"engine {self.name}'s final model is already in HF format (see done.json)")

    # ---- training ---------------------------------------------------------------------------------------
    @abstractmethod
    def training_job(self, train: Mapping[str, Any], inputs: Mapping[str, str], run_dir: Path) -> tuple[list[str], dict]:
        """(entrypoint, runtime_env) of the Ray job that trains, or resumes, in `run_dir`."""

    def job_argv(self, train: Mapping[str, Any], inputs: Mapping[str, str], run_dir: Path) -> list[str]:
        """The training program's own command line (`mileage argv`), built exactly as the train rule builds it."""
        raise NotImplementedError(f"engine {self.name} has no command line of its own (it runs a job spec)")

    def job_process(self, train: Mapping[str, Any], inputs: Mapping[str, str],
                    run_dir: Path) -> tuple[str, str, dict[str, str]] | None:
        """(Python, working directory, environment variables) of the training program's own process, where it has
        one: mileage doctor runs the program's own argument parser there on `job_argv`. None: no such program."""
        return None

    @abstractmethod
    def checkpoints(self, train: Mapping[str, Any], run_dir: Path) -> list[Checkpoint]:
        """The run's complete checkpoints, ascending by rollouts trained."""

    def set_aside_unusable(self, train: Mapping[str, Any], run_dir: Path, log: Callable[[str], None]) -> None:
        """Before a (re)start: set aside the unusable newest checkpoints (cut short, truncated, unreadable; their
        weights verified) so that the job resumes from the newest verified one, saying so through `log`."""

    @abstractmethod
    def collect_events(self, run_dir: Path) -> list[MetricEvent]:
        """The run's canonical metric events (miles' names and step keys), one event per kind and step."""

    @abstractmethod
    def in_training_evals(self, train: Mapping[str, Any], num_rollout: int) -> set[int]:
        """The rollout ids a run of `num_rollout` rollouts evaluates at, in training."""

    @abstractmethod
    def final_model(self, train: Mapping[str, Any], inputs: Mapping[str, str], run_dir: Path,
                    checkpoint: Checkpoint) -> tuple[str, int | None]:
        """(what the final evaluation loads, the engine's iteration number or None) for the final checkpoint."""

    def collect_eval_samples(self, run_dir: Path) -> list[dict]:
        """Every in-training eval sample, tagged with its dataset and rollout id, in rollout order. Both engines
        write `eval_samples/<dataset>/rollout_<N>.jsonl` (the local engine itself, miles through our eval hook)."""

        def rollout_of(file: Path) -> int:
            return int(re.findall(r"\d+", file.stem)[-1])

        rows = []
        files = sorted(run_dir.glob("eval_samples/*/rollout_*.jsonl"), key=lambda f: (f.parent.name, rollout_of(f)))
        for file in files:
            for _, record in iter_jsonl(file):
                rows.append({**record, "dataset": file.parent.name, "rollout": rollout_of(file)})
        return rows

    # ---- evaluation, plan, doctor -------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, evaluation: Mapping[str, Any], inputs: Mapping[str, str], out: str) -> None:
        """Sample the start model (`which` base) or the final checkpoint (final) on the eval set; every sample to
        `out`. `evaluation` is the stage's params: the keys `reads` declares, plus `which`, `name` and `card`."""

    def memory_plan(self, plan: Mapping[str, Any], name: str | None = None, gpus: int | None = None,
                    gpu_memory_gb: float | None = None):
        """The memory plan (an object with `.fits`, `.summary`, `.problems`, `.gpu_peak_gib`, `.gpu_memory_gib`,
        `.host_total_gib`) of its GPU box, or of `gpus` x `gpu_memory_gb`; None when the engine needs none."""
        return None

    def plan_main(self, exp: Mapping[str, Any], gpus: int | None, gpu_memory_gb: float | None, name: str) -> int:
        """`mileage plan`: print the plan, 0 when it fits, 1 when it does not."""
        print(f"engine {self.name}: no memory plan (small models on CPU or one GPU)")
        return 0

    @abstractmethod
    def doctor_needs(self, exp: Mapping[str, Any]) -> DoctorNeeds:
        """What a machine must have to run `exp`."""
