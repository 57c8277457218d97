"""`mileage doctor`: can this machine run an experiment? One table of checks, and an exit code.

The machine is probed once (`probe_machine`: Python, installed versions, torch's CUDA build, GPUs,
driver, NCCL, which engine-stack modules are importable) and the facts are judged against what the
experiment needs (`requirements_for_experiment`). Probing and judging are apart so the verdicts can be
tested for machines we do not have (an RTX 5090 with a torch lacking sm_120 kernels, say).

Statuses: OK; WARN (runs, but not as pinned, or something could not be checked); FAIL (the experiment
cannot run here). The exit code is non-zero iff a row FAILs.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, TextIO

from mileage import pins
from mileage.engines import ENGINE_NAMES, get_engine
from mileage.engines.contract import DoctorNeeds, ProgramCheck, StackModule

Status = Literal["OK", "WARN", "FAIL"]
HUB_TIMEOUT_S = 3.0
DEFAULT_FREE_DISK_GB = 1.0  # the light environment alone; an engine says what its runs need (doctor_needs)


def _stack_modules() -> tuple[StackModule, ...]:
    """The modules of every engine's software stack: what probe_machine looks for."""
    modules: dict[str, StackModule] = {}
    for engine_name in ENGINE_NAMES:
        for module in get_engine(engine_name).stack_modules:
            modules.setdefault(module.module, module)
    return tuple(modules.values())


STACK_MODULES = _stack_modules()


class DoctorError(ValueError):
    """The experiment given to the doctor lacks or misnames a key the checks need."""


@dataclass(frozen=True)
class DoctorRow:
    check: str
    expected: str
    found: str
    status: Status
    hint: str = ""


@dataclass
class DoctorReport:
    experiment: str | None
    engine: str | None
    rows: list[DoctorRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(row.status == "FAIL" for row in self.rows)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def add(self, check: str, expected: str, found: str, status: Status, hint: str = "") -> None:
        self.rows.append(DoctorRow(check, expected, found, status, hint))


@dataclass(frozen=True)
class HfRepo:
    repo_id: str
    repo_type: str  # "model" | "dataset"
    revision: str | None = None


@dataclass(frozen=True)
class DoctorRequirements:
    """What an experiment needs from the machine. engine None = only the light environment."""

    experiment_name: str | None = None
    engine: str | None = None
    gpus: int = 0
    needs_cuda: bool = False
    results_dir: Path = Path("results")
    min_free_disk_gb: float = DEFAULT_FREE_DISK_GB
    hf_repos: tuple[HfRepo, ...] = ()
    hf_lock: Path = Path("config/hf.lock.json")
    experiment: dict | None = None
    check_network: bool = True
    needs: DoctorNeeds | None = None  # the engine's word on the rest (None = only the light environment)
    job: Any = None  # mileage.stages.job.TrainJob: the training job as the train rule builds it (None: not asked)
    job_error: str | None = None  # why the job could not be built
    parse_timeout_s: float = 180.0  # a big stack (miles: Megatron, Transformer Engine, SGLang) imports first


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    capability: tuple[int, int]
    memory_gb: float


@dataclass
class MachineFacts:
    """What probe_machine found; every field may be empty when the thing is absent."""

    python: str
    versions: dict[str, str]  # normalised distribution name -> installed version
    torch_version: str | None = None
    torch_cuda: str | None = None  # torch.version.cuda; None for a CPU build
    torch_arch_list: list[str] = field(default_factory=list)
    cuda_available: bool = False
    gpus: list[GpuInfo] = field(default_factory=list)
    nccl: str | None = None
    driver: str | None = None
    smi_gpus: list[str] = field(default_factory=list)  # "name, memory MiB" lines from nvidia-smi
    importable: dict[str, bool] = field(default_factory=dict)
    torch_error: str | None = None


def requirements_for_experiment(
    experiment: dict,
    results_dir: Path | str = "results",
    name: str | None = None,
    hf_lock: Path | str = "config/hf.lock.json",
    models_dir: Path | str = "config/models",
    config_path: Path | str | None = None,
) -> DoctorRequirements:
    """Translate a resolved experiment (engine, resources, model, data) into machine requirements. With
    `config_path`, also the training job as the train rule would build it (its argv goes to its program's parser)."""
    if not isinstance(experiment, dict):
        raise DoctorError(f"experiment {name or ''}: expected a mapping, got {type(experiment).__name__}")
    where = f"experiments.{name}" if name else "experiment"
    engine = experiment.get("engine", "local")
    if engine not in ENGINE_NAMES:
        raise DoctorError(f"{where}.engine: {engine!r} is not one of {', '.join(ENGINE_NAMES)}")
    gpus = (experiment.get("resources") or {}).get("gpus", 0)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        raise DoctorError(f"{where}.resources.gpus: expected a non-negative integer, got {gpus!r}")
    needs = get_engine(engine).doctor_needs(experiment)
    job, job_error = None, None
    if config_path is not None:
        from mileage.stages.job import train_job

        try:
            job = train_job(name or experiment.get("name") or "experiment", experiment, config_path, results_dir)
        except Exception as exc:  # noqa: BLE001 - a job that cannot be built is a finding, not a crash
            job_error = f"{type(exc).__name__}: {exc}"
    return DoctorRequirements(
        job=job,
        job_error=job_error,
        experiment_name=name or experiment.get("name"),
        engine=engine,
        gpus=needs.gpus,
        needs_cuda=needs.needs_cuda,
        results_dir=Path(results_dir),
        min_free_disk_gb=needs.min_free_disk_gb,
        needs=needs,
        hf_repos=tuple(_hf_repos(experiment, Path(models_dir))),
        hf_lock=Path(hf_lock),
        experiment=experiment,
    )


def _hf_repos(experiment: dict, models_dir: Path) -> list[HfRepo]:
    repos: list[HfRepo] = []
    model = experiment.get("model") or {}
    if model.get("source") == "hf":
        repo, revision = model.get("repo"), model.get("revision")
        if not repo and model.get("card"):
            card = _read_card(models_dir / f"{model['card']}.yaml")
            repo = card.get("repo") or card.get("hf_repo")
            revision = revision or card.get("revision")
        if repo:
            repos.append(HfRepo(repo, "model", revision))
    for split in ("train", "eval"):
        data = (experiment.get("data") or {}).get(split) or {}
        if data.get("source") == "hf" and data.get("repo"):
            repos.append(HfRepo(data["repo"], "dataset", data.get("revision")))
    return list(dict.fromkeys(repos))


def _read_card(path: Path) -> dict:
    import yaml

    from mileage.yaml_strict import DuplicateKeyError, load_yaml_strict

    try:
        card = load_yaml_strict(path) if path.is_file() else {}
    except DuplicateKeyError as exc:  # the card is ambiguous: say so rather than judge half of it
        raise DoctorError(str(exc)) from None
    except yaml.YAMLError:
        return {}
    if not isinstance(card, dict):
        return {}
    # A card may keep the Hugging Face coordinates under an `hf:` block.
    return {**card, **card["hf"]} if isinstance(card.get("hf"), dict) else card


# ---------------------------------------------------------------------------------------------- probing


def probe_machine(with_torch: bool = True) -> MachineFacts:
    """Look at this machine once. Never raises: what cannot be probed stays empty."""
    versions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(pins.normalise(name), dist.version)
    facts = MachineFacts(python=platform.python_version(), versions=versions)
    if with_torch:
        _probe_torch(facts)
    _probe_nvidia_smi(facts)
    for module in STACK_MODULES:
        facts.importable[module.module] = _module_present(module.module)
    return facts


def _module_present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False


def _probe_torch(facts: MachineFacts) -> None:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure is a finding, not a crash
        facts.torch_error = f"{type(exc).__name__}: {exc}"
        return
    facts.torch_version = torch.__version__
    facts.torch_cuda = torch.version.cuda
    try:
        facts.cuda_available = bool(torch.cuda.is_available())
        if facts.cuda_available:
            facts.torch_arch_list = list(torch.cuda.get_arch_list())
            for index in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(index)
                facts.gpus.append(
                    GpuInfo(index, props.name, (props.major, props.minor), props.total_memory / 2**30)
                )
            version = torch.cuda.nccl.version()
            facts.nccl = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    except Exception as exc:  # noqa: BLE001 - a broken driver shows up here
        facts.torch_error = f"{type(exc).__name__}: {exc}"


def _probe_nvidia_smi(facts: MachineFacts) -> None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=15, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            facts.driver = parts[0]
            facts.smi_gpus.append(f"{parts[1]}, {parts[2]} MiB")


# ---------------------------------------------------------------------------------------------- judging


def run_doctor(requirements: DoctorRequirements, facts: MachineFacts | None = None) -> DoctorReport:
    """Check the machine (probed now unless `facts` is given) against `requirements`."""
    facts = facts if facts is not None else probe_machine()
    report = DoctorReport(requirements.experiment_name, requirements.engine)
    _check_python(report, requirements, facts)
    needs = requirements.needs
    _check_light_env(report, facts, missing_is_fatal=needs is None or needs.light_env_required)
    _check_torch(report, requirements, facts)
    if requirements.needs_cuda or requirements.gpus > 0:
        _check_gpus(report, requirements, facts)
    if requirements.engine is not None:
        engine = get_engine(requirements.engine)
        for finding in engine.stack_findings(facts):
            report.add(finding.check, finding.expected, finding.found, finding.status, finding.hint)
        _check_plan(report, requirements, facts, engine)
        _check_program_args(report, requirements, facts)
    _check_disk(report, requirements)
    _check_hub(report, requirements)
    return report


def _check_python(report: DoctorReport, req: DoctorRequirements, facts: MachineFacts) -> None:
    found = pins.version_tuple(facts.python)
    if found < (3, 10):
        report.add("python", ">= 3.10", facts.python, "FAIL", "mileage needs Python 3.10 or newer")
    elif req.needs is not None and req.needs.python is not None and found[:2] != req.needs.python:
        wanted = ".".join(map(str, req.needs.python))
        report.add("python", f"{wanted} ({req.engine} stack)", facts.python, "WARN",
                   f"the {req.engine} stack is pinned and built for Python {wanted} (envs/, {pins.PYTHON_VERSION})")
    else:
        report.add("python", ">= 3.10", facts.python, "OK")


def _check_light_env(report: DoctorReport, facts: MachineFacts, missing_is_fatal: bool) -> None:
    """The pyproject pins. For an engine with a stack of its own the light env may be a separate driver env: WARN
    only."""
    try:
        wanted = pins.light_env_pins()
    except pins.PinsError as exc:
        report.add("light env pins", "pyproject.toml", "unreadable", "WARN", str(exc))
        return
    missing = sorted(name for name in wanted if name not in facts.versions)
    differing = sorted(
        name for name in wanted
        if name in facts.versions and not _same_release(facts.versions[name], wanted[name])
    )
    matching = len(wanted) - len(missing) - len(differing)
    missing_status: Status = "FAIL" if missing_is_fatal else "WARN"
    status: Status = missing_status if missing else "WARN" if differing else "OK"
    hint = "install the pinned light environment: pip install -e '.[dev]' (or nix develop)" if status != "OK" else ""
    report.add("light env pins", f"{len(wanted)} exact pins (pyproject.toml)",
               f"{matching}/{len(wanted)} match", status, hint)
    for name in missing:
        report.add(f"  {name}", wanted[name], "not installed", missing_status, f"pip install {name}=={wanted[name]}")
    for name in differing:
        report.add(f"  {name}", wanted[name], facts.versions[name], "WARN",
                   f"pinned {wanted[name]}; results may differ from the pinned environment")


def _same_release(installed: str, pinned: str) -> bool:
    """'2.13.0+cpu' satisfies a pin of '2.13.0' (a local build label), as pip's == does."""
    return installed == pinned or ("+" not in pinned and installed.split("+", 1)[0] == pinned)


def _check_torch(report: DoctorReport, req: DoctorRequirements, facts: MachineFacts) -> None:
    if facts.torch_version is None:
        report.add("torch", "importable", facts.torch_error or "not installed", "FAIL",
                   "install the pinned torch (pyproject.toml or envs/*.yaml)")
        return
    build = f"CUDA {facts.torch_cuda}" if facts.torch_cuda else "CPU build"
    if req.needs_cuda and not facts.torch_cuda:
        report.add("torch CUDA build", f">= CUDA {pins.CUDA_VERSION} build", f"{facts.torch_version} ({build})",
                   "FAIL", f"install torch=={pins.TORCH_CU128} from {pins.PYTORCH_CU128_INDEX}")
        return
    report.add("torch", "importable", f"{facts.torch_version} ({build})", "OK")


def _check_gpus(report: DoctorReport, req: DoctorRequirements, facts: MachineFacts) -> None:
    smi_found = "; ".join(facts.smi_gpus) if facts.smi_gpus else "nvidia-smi not found"
    if facts.driver:
        report.add("NVIDIA driver", "present", f"{facts.driver} ({len(facts.smi_gpus)} GPU)", "OK")
    else:
        status: Status = "FAIL" if req.needs_cuda else "WARN"
        report.add("NVIDIA driver", "present", smi_found, status,
                   "no NVIDIA driver/GPU visible: run on a GPU machine (or check CUDA_VISIBLE_DEVICES)")
    count = len(facts.gpus)
    enough = count >= req.gpus
    if enough:
        status = "OK"
    else:
        status = "FAIL" if req.needs_cuda else "WARN"
    hint = "" if enough else (
        f"the experiment asks for resources.gpus={req.gpus}; torch sees {count}"
        + ("" if req.needs_cuda else " (the local engine falls back to the CPU)")
        + (f" ({facts.torch_error})" if facts.torch_error else "")
    )
    report.add("CUDA GPUs", f">= {req.gpus}", str(count), status, hint)
    for gpu in facts.gpus:
        report.add(f"  GPU {gpu.index}", "", f"{gpu.name}, sm_{gpu.capability[0]}{gpu.capability[1]}, "
                   f"{gpu.memory_gb:.1f} GiB", "OK")
    if not facts.gpus:
        return
    _check_blackwell(report, facts)
    if req.gpus > 1 or (req.needs is not None and req.needs.needs_nccl):
        if facts.nccl:
            report.add("NCCL", "available", facts.nccl, "OK")
        else:
            report.add("NCCL", "available", "none", "FAIL" if req.gpus > 1 else "WARN",
                       "torch was built without NCCL: multi-GPU training cannot communicate")


def _check_blackwell(report: DoctorReport, facts: MachineFacts) -> None:
    """sm_120 (RTX 50xx) runs only with CUDA >= 12.8, torch >= 2.7, and kernels compiled for it."""
    consumer_blackwell = [gpu for gpu in facts.gpus if gpu.capability == pins.SM120_CAPABILITY]
    needed = sorted({f"sm_{g.capability[0]}{g.capability[1]}" for g in facts.gpus})
    have = set(facts.torch_arch_list)
    missing = [arch for arch in needed if arch not in have and arch.replace("sm_", "compute_") not in have]
    report.add("torch arch list", " ".join(needed), " ".join(facts.torch_arch_list) or "none",
               "FAIL" if missing else "OK",
               f"this torch has no kernels for {', '.join(missing)}: install torch=={pins.TORCH_CU128} "
               f"from {pins.PYTORCH_CU128_INDEX}" if missing else "")
    if not consumer_blackwell:
        return
    cuda = pins.version_tuple(facts.torch_cuda or "0")
    torch_release = pins.version_tuple(facts.torch_version or "0")
    ok = cuda >= pins.MIN_CUDA_FOR_SM120 and torch_release >= pins.MIN_TORCH_FOR_SM120
    report.add("sm_120 support", "CUDA >= 12.8, torch >= 2.7",
               f"CUDA {facts.torch_cuda}, torch {facts.torch_version}", "OK" if ok else "FAIL",
               "" if ok else f"RTX 50xx needs a CUDA 12.8+ torch: torch=={pins.TORCH_CU128}")
    nvls = os.environ.get("NCCL_NVLS_ENABLE")
    if len(facts.gpus) > 1 and nvls != "0":
        report.add("NCCL_NVLS_ENABLE", "0 (no NVLink on RTX 50xx)", str(nvls), "WARN",
                   "export NCCL_NVLS_ENABLE=0 before starting Ray")


def _check_plan(report: DoctorReport, req: DoctorRequirements, facts: MachineFacts, engine) -> None:
    if req.experiment is None:
        return
    # On a GPU machine judge the GPUs that are here; elsewhere the ones the experiment declares.
    gpus = len(facts.gpus) or None
    memory = min(g.memory_gb for g in facts.gpus) if facts.gpus else None
    try:
        plan = engine.memory_plan(req.experiment, gpus=gpus, gpu_memory_gb=memory)
    except Exception as exc:  # noqa: BLE001 - the preflight's own error is the finding
        report.add("memory plan", "fits", "plan failed", "WARN", f"{type(exc).__name__}: {exc}")
        return
    if plan is None:
        return
    where = f"{gpus} x {memory:.0f} GiB here" if gpus else "declared GPUs"
    found = f"peak {plan.gpu_peak_gib:.1f} of {plan.gpu_memory_gib:.1f} GiB/GPU, host {plan.host_total_gib:.0f} GiB"
    report.add("memory plan", f"fits ({where})", found, "OK" if plan.fits else "FAIL",
               "" if plan.fits else "; ".join(plan.problems) + " (`mileage plan` says what would fit)")


# The training program's own parser, in its own interpreter: `sys.argv` as the program would see it, nothing
# launched. Exit 0 = accepted; any other status = refused (argparse exits 2, a program's asserts exit 1), except
# NOT_IMPORTABLE_STATUS, which this snippet itself uses when the parser cannot even be imported.
NOT_IMPORTABLE_STATUS = 3
_NOT_IMPORTABLE = "mileage-doctor: parser not importable: "
_PARSE_PROGRAM = f"""\
import importlib, sys
prog, module, function = sys.argv[1:4]
sys.argv = [prog, *sys.argv[4:]]
try:
    parse = getattr(importlib.import_module(module), function)
except (ImportError, AttributeError) as exc:
    print({_NOT_IMPORTABLE!r} + type(exc).__name__ + ": " + str(exc), file=sys.stderr)
    sys.exit({NOT_IMPORTABLE_STATUS})
parse()
"""


@dataclass(frozen=True)
class ParseVerdict:
    verdict: Literal["accepted", "refused", "not importable", "no answer"]
    message: str = ""


def parse_with_program(program: ProgramCheck, argv: list[str], env_vars: dict[str, str],
                       timeout_s: float) -> ParseVerdict:
    """Run the program's own parser on `argv` in its interpreter (cwd = its directory when it exists here). The
    job's own environment variables are added to this one's, secrets left out: parsing needs none."""
    from mileage.secrets import scrubbed_environ

    env = scrubbed_environ(os.environ)
    for key, value in env_vars.items():
        env[key] = value + os.pathsep + env[key] if key == "PYTHONPATH" and env.get(key) else str(value)
    cwd = program.cwd if program.cwd and Path(program.cwd).is_dir() else None
    command = [program.python, "-c", _PARSE_PROGRAM, program.prog, program.module, program.function, *argv]
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return ParseVerdict("not importable", f"no interpreter {program.python!r} here")
    except subprocess.TimeoutExpired:
        return ParseVerdict("no answer", f"{program.function} gave no verdict within {timeout_s:g} s")
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    if done.returncode == 0:
        return ParseVerdict("accepted")
    marked = [line for line in lines if line.startswith(_NOT_IMPORTABLE)]
    if done.returncode == NOT_IMPORTABLE_STATUS and marked:
        return ParseVerdict("not importable", marked[-1].removeprefix(_NOT_IMPORTABLE))
    errors = [line for line in lines if "error:" in line or "Error" in line]
    return ParseVerdict("refused", (errors or lines or [f"exit status {done.returncode}"])[-1].strip())


def _check_program_args(report: DoctorReport, req: DoctorRequirements, facts: MachineFacts) -> None:
    """The experiment's training argv, in the job's environment (CUDA_DEVICE_MAX_CONNECTIONS, PYTHONPATH, ...),
    through the installed program's own parser. Not importable: a WARN on a machine that cannot run the experiment
    anyway (a CPU or submit host: the check happens on the GPU machine), a FAIL where its GPUs are (this is where
    it is about to run, and the program would not start)."""
    if req.job is None:
        if req.job_error:
            report.add("training job", "the train job's argv", "job not built", "WARN", req.job_error)
        return
    spec = req.job.spec()
    program = spec.program
    if program is None or spec.argv is None:
        return  # the engine's training runs inside mileage's own interpreter: no program to ask
    check, argv = program.label, spec.argv
    result = parse_with_program(program, argv, spec.runtime_env.get("env_vars", {}), req.parse_timeout_s)
    expected = f"accepted ({program.python}, {len(argv)} tokens)"
    if result.verdict == "accepted":
        report.add(check, expected, "accepted", "OK")
    elif result.verdict == "refused":
        report.add(check, expected, "refused", "FAIL", f"{program.prog} says: {result.message}")
    elif result.verdict == "no answer":
        report.add(check, expected, "no verdict", "WARN", result.message)
    else:
        here = bool(facts.gpus) and len(facts.gpus) >= req.gpus
        report.add(check, expected, f"{program.module} not importable", "FAIL" if here else "WARN",
                   f"{result.message}; " + (f"install {req.engine} into that interpreter (envs/README.md)" if here
                                            else "checked on the GPU machine that runs it (run mileage doctor "
                                            "there)"))


def _check_disk(report: DoctorReport, req: DoctorRequirements) -> None:
    probe = req.results_dir.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_gb = shutil.disk_usage(probe).free / 2**30
    enough = free_gb >= req.min_free_disk_gb
    report.add("free disk", f">= {req.min_free_disk_gb:g} GiB in {req.results_dir}", f"{free_gb:.1f} GiB",
               "OK" if enough else "FAIL",
               "" if enough else "free space or point results_dir at a larger disk (downloads + checkpoints)")


def _check_hub(report: DoctorReport, req: DoctorRequirements) -> None:
    if not req.hf_repos:
        report.add("Hugging Face", "nothing to download", "-", "OK")
        return
    missing = _missing_from_cache(req)
    names = ", ".join(r.repo_id for r in req.hf_repos)
    if _offline():
        if missing:
            report.add("HF cache (offline)", f"locked + cached: {names}", f"missing: {', '.join(missing)}", "FAIL",
                       "HF_HUB_OFFLINE is set: fetch these once online (snakemake ... fetch rules), then go offline")
        else:
            report.add("HF cache (offline)", f"locked + cached: {names}", "complete", "OK")
        return
    if not req.check_network:
        report.add("HF hub", "reachable", "not checked", "WARN")
        return
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    reachable, detail = hub_reachable(endpoint)
    if reachable:
        report.add("HF hub", f"reachable ({endpoint})", detail, "OK")
    elif not missing:
        report.add("HF hub", f"reachable ({endpoint})", detail, "WARN",
                   "hub unreachable but every repo is locked and cached: set HF_HUB_OFFLINE=1")
    else:
        report.add("HF hub", f"reachable ({endpoint})", detail, "FAIL",
                   f"cannot download {', '.join(missing)}: check the network/proxy or pre-fill the cache")


def _offline() -> bool:
    try:
        from mileage.fetch.revision_lock import hub_offline
    except ImportError:
        return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    return hub_offline()


def _missing_from_cache(req: DoctorRequirements) -> list[str]:
    """Repos whose pinned commit is not both in the lock (or the config) and in the local HF cache."""
    try:
        from huggingface_hub import constants

        from mileage.fetch.hf_snapshot import snapshot_dir
        from mileage.fetch.revision_lock import RevisionLockError, is_commit_sha, lock_key, read_lock
    except ImportError:
        return [r.repo_id for r in req.hf_repos]
    try:
        lock = read_lock(req.hf_lock)
    except RevisionLockError:
        lock = {}
    missing = []
    for repo in req.hf_repos:
        if is_commit_sha(repo.revision):
            sha = repo.revision
        else:
            sha = lock.get(lock_key(repo.repo_id, repo.repo_type, repo.revision))
        if not sha or not snapshot_dir(constants.HF_HUB_CACHE, repo.repo_id, repo.repo_type, sha).is_dir():
            missing.append(repo.repo_id)
    return missing


def hub_reachable(endpoint: str, timeout: float = HUB_TIMEOUT_S) -> tuple[bool, str]:
    """HEAD the hub; gives up after `timeout` seconds even when name resolution itself hangs."""
    result: list[tuple[bool, str]] = []

    def attempt() -> None:
        try:
            request = urllib.request.Request(endpoint, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result.append((True, f"HTTP {response.status}"))
        except urllib.error.HTTPError as exc:  # the server answered: reachable
            result.append((exc.code < 500, f"HTTP {exc.code}"))
        except Exception as exc:  # noqa: BLE001 - every failure means "not reachable"
            result.append((False, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"))

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return result[0] if result else (False, f"no answer within {timeout:g} s")


# ---------------------------------------------------------------------------------------------- output


def format_table(report: DoctorReport, width: int = 48) -> str:
    """The report as an aligned text table, hints of non-OK rows below it, and a one-line verdict."""
    header = ("check", "expected", "found", "status")
    rows = [(r.check, _clip(r.expected, width), _clip(r.found, width), r.status) for r in report.rows]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    title = f"mileage doctor: {report.experiment or ('experiment' if report.engine else 'light environment')}"
    if report.engine:
        title += f" (engine {report.engine})"
    out = [title, line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    hints = [r for r in report.rows if r.status != "OK" and r.hint]
    if hints:
        out.append("")
        out += [f"{r.status} {r.check.strip()}: {r.hint}" for r in hints]
    fails = sum(r.status == "FAIL" for r in report.rows)
    warns = sum(r.status == "WARN" for r in report.rows)
    verdict = "cannot run here" if fails else "can run here"
    out += ["", f"verdict: {verdict} ({fails} FAIL, {warns} WARN)"]
    return "\n".join(out) + "\n"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def main_doctor(
    experiment: dict | None,
    results_dir: Path | str = "results",
    name: str | None = None,
    hf_lock: Path | str = "config/hf.lock.json",
    stream: TextIO | None = None,
    probe: Callable[[], MachineFacts] = probe_machine,
    config_path: Path | str | None = None,
) -> int:
    """Print the doctor's table for `experiment` (None: the light environment only); return the exit code."""
    if experiment is None:
        req = DoctorRequirements(results_dir=Path(results_dir))
    else:
        req = requirements_for_experiment(experiment, results_dir=results_dir, name=name, hf_lock=hf_lock,
                                          config_path=config_path)
    report = run_doctor(req, probe())
    (stream or sys.stdout).write(format_table(report))
    return report.exit_code
