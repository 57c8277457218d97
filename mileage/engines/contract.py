"""What every engine provides, in three parts kept apart so each stays small. The stages, the params, the config
checks, doctor and the CLI talk to an engine through this contract only; none of them asks which engine it is, and
none of them knows an engine's config keys, flags, pins or imports.

1. `Declaration`: what the engine declares. The config keys each of its stages reads (mileage.keys derives the
   rules' params and the run's resume identity from them) and those a run may continue across, its config checks,
   the free-form keys that may carry secrets (mileage.secrets scans them), its doctor checks and stack pins, its
   software environment and container image.
2. `Jobs`: the jobs it runs. Training and evaluation are `JobSpec`s (entrypoint, runtime env, what to prepare
   first, the program's own argv); the stages' one runner launches every spec the same way.
   Beside them, the jobs' graph inputs, and the conversion and export tools for the engines that need them.
3. `RunReader`: how its runs are read. Checkpoints, metric events, the in-training evaluation rollouts, the final
   model; per-sample eval records are one layout for every engine, read by `read_eval_samples`.
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

# Where a job writes its per-sample eval records, below its run (or work) directory: `<dataset>/rollout_<N>.jsonl`.
EVAL_SAMPLES_DIR = "eval_samples"


# ---- 1. what an engine declares ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DoctorNeeds:
    """What an experiment of this engine asks of a machine (mileage doctor)."""

    gpus: int
    needs_cuda: bool
    min_free_disk_gb: float
    python: tuple[int, int] | None  # the interpreter the engine's stack is built for (None: any >= 3.10)
    light_env_required: bool  # whether the pyproject pins must be installed where the job runs
    needs_nccl: bool  # whether its GPUs talk over NCCL even on one box


@dataclass(frozen=True)
class StackModule:
    """A module of the engine's software stack that mileage doctor looks for."""

    module: str  # import name
    distribution: str
    required: bool
    expected: str = "any"  # what the doctor's table shows as expected (a version, a commit)
    exact: str | None = None  # a version the stack pins exactly (a mismatch WARNs)


@dataclass(frozen=True)
class Finding:
    """One row of mileage doctor's table, as an engine judges its own stack."""

    check: str
    expected: str
    found: str
    status: str  # OK | WARN | FAIL
    hint: str = ""


@dataclass(frozen=True)
class FreeFormKey:
    """A config key whose content the engine passes on unread, so it could carry a credential: `argv` (a list of
    command-line tokens) or `options` (a mapping of option names to values)."""

    key: str  # dotted, e.g. `<engine>.extra_args`
    form: str  # "argv" | "options"


class Declaration(ABC):
    name: str
    env: str  # mileage.pins.ENV_FILES key: the conda env of its GPU rules (snakemake --sdm conda)
    reads: Mapping[str, tuple[str, ...]]  # stage -> config keys (a section stands for all its leaves)
    resume_safe: Mapping[str, str] = {}  # keys of its own a run may continue across -> why (mileage.keys)
    free_form_keys: tuple[FreeFormKey, ...] = ()
    stack_modules: tuple[StackModule, ...] = ()

    def container(self, exp: Mapping[str, Any]) -> str | None:
        """The image its rules run in under `snakemake --sdm apptainer` (None: the current environment)."""
        return None

    def check_config(self, exp: Mapping[str, Any], where: str) -> None:
        """Raise mileage.errors.ConfigError (naming `where.<key>`) for what this engine cannot run."""

    def check_explicit_keys(self, exp: Mapping[str, Any], explicit: set[str], where: str) -> None:
        """Like check_config, for what the config itself sets (`explicit`: dotted keys, schema defaults excluded),
        e.g. a key that the experiment's settings make meaningless."""

    @abstractmethod
    def doctor_needs(self, exp: Mapping[str, Any]) -> DoctorNeeds:
        """What a machine must have to run `exp`."""

    def stack_findings(self, facts: Any) -> list[Finding]:
        """Its stack judged on a probed machine (mileage.doctor.MachineFacts: `versions`, `importable`, `gpus`)."""
        return []

    def memory_plan(self, plan: Mapping[str, Any], name: str | None = None, gpus: int | None = None,
                    gpu_memory_gb: float | None = None):
        """The memory plan (an object with `.fits`, `.summary`, `.problems`, `.gpu_peak_gib`, `.gpu_memory_gib`,
        `.host_total_gib`) of its GPU box, or of `gpus` x `gpu_memory_gb`; None when the engine needs none."""
        return None

    def plan_main(self, exp: Mapping[str, Any], gpus: int | None, gpu_memory_gb: float | None, name: str) -> int:
        """`mileage plan`: print the plan, 0 when it fits, 1 when it does not."""
        print(f"mileage plan: {name}: engine {self.name} needs no memory plan (small models on CPU or one GPU)")
        return 0


# ---- 2. the jobs it runs -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProgramCheck:
    """The job's own program, for mileage doctor: it calls `module.function()` (the program's argument parser) on
    the job's argv with `sys.argv[0]` = `prog`, in `python`, in the job's environment."""

    label: str  # the doctor's row, e.g. "<engine> parse_args"
    python: str
    cwd: str  # the program's directory (leads its sys.path), used where it exists here
    module: str
    function: str
    prog: str


@dataclass(frozen=True)
class JobSpec:
    """One job as the stages' runner launches it: `entrypoint` (a command line) run with `runtime_env`, as a Ray job
    (`cluster`: on the cluster the stage's `ray` and `resources.gpus` describe), or as one process on this machine
    when it needs no cluster. Building a spec has no effect (mileage argv and doctor build them): the runner calls
    `prepare` (checks that fail before any GPU time is spent, files the job reads) before it starts anything."""

    entrypoint: list[str]
    runtime_env: dict
    prepare: tuple[Callable[[], None], ...] = ()
    cluster: bool = True
    argv: list[str] | None = None  # the program's own command line (`mileage argv`), where it has one
    program: ProgramCheck | None = None


class Jobs(ABC):
    @abstractmethod
    def training_job(self, train: Mapping[str, Any], inputs: Mapping[str, str], run_dir: Path) -> JobSpec:
        """The job that trains, or resumes, in `run_dir` (its checkpoints, events and eval samples go there)."""

    @abstractmethod
    def evaluation_job(self, evaluation: Mapping[str, Any], inputs: Mapping[str, str], work_dir: Path) -> JobSpec:
        """The job that samples the start model (`which` base) or the final checkpoint (final) on the eval set and
        writes every sample to `<work_dir>/eval_samples/<dataset>/rollout_<N>.jsonl` (read_eval_samples).
        `evaluation` is the stage's params: the keys `reads` declares, plus `which`, `name` and `card`."""

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


# ---- 3. how its runs are read --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint of a run: how many rollouts it has trained, and where it is."""

    rollouts: int
    path: Path


class RunReader(ABC):
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

    def expected_final_model(self, train: Mapping[str, Any], run_dir: Path) -> Path | None:
        """What the final evaluation will load once a run of `rollout.num_rollout` rollouts has finished (before it
        has: `mileage argv --eval final`); None where the engine cannot say."""
        return None


def _rollout_of(file: Path) -> int:
    return int(re.findall(r"\d+", file.stem)[-1])


def eval_sample_files(run_dir: Path, dataset: str | None = None) -> list[Path]:
    """The per-sample eval files of a run (or of one dataset), by dataset then rollout."""
    pattern = f"{EVAL_SAMPLES_DIR}/{dataset or '*'}/rollout_*.jsonl"
    return sorted(Path(run_dir).glob(pattern), key=lambda f: (f.parent.name, _rollout_of(f)))


def evaluated_rollouts(run_dir: Path) -> dict[str, set[int]]:
    """{dataset: the rollouts it has eval records of} in a run."""
    by_dataset: dict[str, set[int]] = {}
    for file in eval_sample_files(run_dir):
        by_dataset.setdefault(file.parent.name, set()).add(_rollout_of(file))
    return by_dataset


def read_eval_samples(run_dir: Path, dataset: str | None = None) -> list[dict]:
    """Every eval sample a job wrote under `run_dir` (the one layout of every engine: the local engine writes it
    itself, miles through our eval hook), tagged with its dataset and rollout id, by dataset then rollout."""
    rows = []
    for file in eval_sample_files(run_dir, dataset):
        for _, record in iter_jsonl(file):
            rows.append({**record, "dataset": file.parent.name, "rollout": _rollout_of(file)})
    return rows


class Engine(Declaration, Jobs, RunReader):
    """An engine: its declaration, its jobs, and the reading of its runs."""
