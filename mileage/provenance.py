"""What ran: the provenance block of summary.json (and of the report).

`git_commit`/`git_dirty` of the checkout, the resolved experiment `config`, Hugging Face revisions resolved to
commit hashes (the snapshot markers the fetch rules wrote, else the revision lock), the sha256 of every data
file the experiment read, package versions, the `hardware` of the machine that made the summary (CPU, GPU model
and count: on a cluster the training node may differ, which `config.resources` records), wall time per stage,
GPU-hours and the seeds.

Wall time per stage comes from the stage logs (mileage.logs writes `mileage: wall time <s> s` when a stage ends),
the latest run of each stage of this experiment; stages shared through the cache (downloads, the demo model, the
base evaluation) are timed in `<results>/cache/logs/` and not counted here. GPU-hours are the wall time of the
training and evaluation stages times the GPUs they hold (`resources.gpus`), zero when the machine has no GPU or
the experiment runs on the CPU.

Training counts every attempt (mileage.attempts: the train stage records each one where the training job runs,
with the GPUs it held there): a run killed at rollout 20 and resumed reports the wall time and GPU-hours of both
attempts, listed under `attempts`, and `wall_seconds.train` is their sum.

No secret appears: keys that name a credential are dropped (mileage.secrets' option names) and the value of every
secret-named environment variable is blanked wherever it would appear.
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping

from mileage.digest import file_sha256

from mileage.secrets import is_secret_env_name, is_secret_option

REDACTED = "<redacted>"
# Distributions whose versions decide results (the light environment's).
PACKAGES = ("mileage", "torch", "transformers", "trl", "accelerate", "datasets", "tokenizers", "numpy", "scipy",
            "rliable", "pandas", "matplotlib", "sympy", "math-verify", "ray", "snakemake", "huggingface_hub")
WALL_LINE = re.compile(r"^mileage: wall time (?P<seconds>[0-9.]+) s$")
GPU_STAGES = ("train", "eval_final", "eval_base", "base_samples")
_SECRET_VALUE_MIN_CHARS = 6  # shorter values ("1", "yes") would blank ordinary text


def _git(base_dir: Path, *args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        done = subprocess.run(["git", "-C", str(base_dir), *args], capture_output=True, text=True, timeout=30,
                              check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    return done.stdout


def git_state(base_dir: str | os.PathLike) -> tuple[str | None, bool | None]:
    """(HEAD commit, whether tracked or untracked-not-ignored files differ from it); (None, None) outside git."""
    base = Path(base_dir)
    head = _git(base, "rev-parse", "HEAD")
    if head is None:
        return None, None
    status = _git(base, "status", "--porcelain")
    return head.strip(), bool(status and status.strip())


def data_hashes(paths: list[str]) -> dict[str, str | None]:
    """sha256 of every data file (None for one that is not there)."""
    return {str(p): (file_sha256(p) if Path(p).is_file() else None) for p in dict.fromkeys(paths)}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_models() -> list[str]:
    """One entry per GPU nvidia-smi lists (empty without NVIDIA GPUs or nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30, check=True)
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def hardware() -> dict[str, Any]:
    gpus = gpu_models()
    return {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system(), "gpu": sorted(set(gpus)), "gpu_count": len(gpus)}


def stage_wall_seconds(logs_dir: str | os.PathLike) -> dict[str, float]:
    """Stage name (its log's stem) -> seconds of its latest completed run, from the `wall time` lines."""
    walls: dict[str, float] = {}
    for log in sorted(Path(logs_dir).glob("*.log")):
        lines = [m for m in map(WALL_LINE.match, log.read_text(encoding="utf-8", errors="replace").splitlines()) if m]
        if lines:
            walls[log.stem] = float(lines[-1]["seconds"])
    return walls


def gpu_hours(walls: Mapping[str, float], exp: Mapping[str, Any], gpu_count: int,
              stages: tuple[str, ...] = GPU_STAGES) -> float:
    if gpu_count == 0 or exp["resources"]["device"] == "cpu":
        return 0.0
    gpus = min(int(exp["resources"]["gpus"]), gpu_count) if gpu_count else 0
    return sum(walls.get(stage, 0.0) for stage in stages) * gpus / 3600.0


def training_gpus(train: Mapping[str, Any]) -> int:
    """The GPUs a training attempt holds, judged where it runs: none on the CPU; on a joined Ray cluster the
    experiment's `resources.gpus`; on a head started here, as many of them as this machine has."""
    if train["resources"].get("device") == "cpu":  # a key of the local engine only (miles: GPUs always)
        return 0
    if (train.get("ray") or {}).get("address"):
        return int(train["resources"]["gpus"])
    return min(int(train["resources"]["gpus"]), len(gpu_models()))


def hf_revisions(exp: Mapping[str, Any], markers: list[str], lock: Mapping[str, str]) -> dict[str, str | None]:
    """`<type>:<repo>` -> commit sha: from the verified snapshot markers, else the lock, else an explicit sha."""
    from mileage.fetch.hf_snapshot import read_marker
    from mileage.fetch.revision_lock import is_commit_sha, lock_key

    found: dict[str, str | None] = {}
    for marker in markers:
        if Path(marker).is_file():
            info = read_marker(marker)
            found[f"{info['repo_type']}:{info['repo_id']}"] = info["revision"]
    wanted = []
    if exp["model"]["source"] == "hf" and exp["model"]["repo"]:
        wanted.append(("model", exp["model"]["repo"], exp["model"]["revision"]))
    for split in ("train", "eval"):
        for data in (exp["data"][split] if isinstance(exp["data"][split], list) else [exp["data"][split]]):
            if data.get("source") == "hf":
                wanted.append(("dataset", data["repo"], data.get("revision")))
    for repo_type, repo, revision in wanted:
        key = f"{repo_type}:{repo}"
        if found.get(key):
            continue
        found[key] = (revision.lower() if is_commit_sha(revision)
                      else lock.get(lock_key(repo, repo_type, revision)))
    return found


def _secret_values(environ: Mapping[str, str]) -> list[str]:
    return sorted({v for k, v in environ.items() if is_secret_env_name(k) and len(v) >= _SECRET_VALUE_MIN_CHARS},
                  key=len, reverse=True)


def scrub(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """`value` with credential-named keys dropped and secret environment values blanked, at any depth."""
    secrets = _secret_values(os.environ if environ is None else environ)

    def walk(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: walk(v) for k, v in node.items()
                    if not (isinstance(k, str) and is_secret_option(k))}
        if isinstance(node, (list, tuple)):
            return [walk(v) for v in node]
        if isinstance(node, str):
            for secret in secrets:
                node = node.replace(secret, REDACTED)
            return node
        return node

    return walk(value)


# The provenance fields that describe an attempt (how long it took, the checkout it ran from) rather than its
# result: a resumed or rerun run differs from an uninterrupted one only in these.
ATTEMPT_FIELDS = ("wall_seconds", "gpu_hours", "git_commit", "git_dirty", "attempts")


def result_view(summary: Mapping[str, Any]) -> dict[str, Any]:
    """`summary` without its attempt fields: what two runs of the same configuration must agree on exactly."""
    view = copy.deepcopy(dict(summary))
    for field in ATTEMPT_FIELDS:
        view.get("provenance", {}).pop(field, None)
    return view


def collect(
    exp: Mapping[str, Any],
    *,
    seeds: list[int],
    data_files: list[str],
    logs_dir: str | os.PathLike,
    base_dir: str | os.PathLike = ".",
    markers: list[str] = (),  # type: ignore[assignment]
    lock: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    run_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The `provenance` block for experiment `exp` (resolved config) as summary.json holds it; `run_dir`: its
    training run directory, whose attempts (mileage.attempts) time the training."""
    from mileage.attempts import read_attempts

    commit, dirty = git_state(base_dir)
    machine = hardware()
    walls = stage_wall_seconds(logs_dir)
    attempts = read_attempts(run_dir) if run_dir is not None else []
    if attempts:
        walls["train"] = round(sum(a["wall_seconds"] for a in attempts), 3)
        hours = sum(a["gpu_hours"] for a in attempts) + gpu_hours(
            walls, exp, machine["gpu_count"], tuple(s for s in GPU_STAGES if s != "train"))
    else:
        hours = gpu_hours(walls, exp, machine["gpu_count"])
    block = {
        "git_commit": commit,
        "git_dirty": dirty,
        "config": copy.deepcopy(dict(exp)),
        "hf_revisions": hf_revisions(exp, list(markers), lock or {}),
        "data_sha256": data_hashes(data_files),
        "packages": package_versions(),
        "hardware": machine,
        "wall_seconds": walls,
        "gpu_hours": hours,
        "attempts": attempts,
        "seeds": list(seeds),
    }
    return scrub(block, environ)


def for_experiment(config: Mapping[str, Any], name: str, base_dir: str | os.PathLike = ".",
                   environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The provenance of experiment `name` (or of its replicate `<name>/seeds/<n>`) under a Snakemake config:
    resolves the experiment as the Snakefile does and finds its data files, snapshot markers and lock."""
    from mileage.config import ExperimentResolver
    from mileage.fetch.revision_lock import read_lock
    from mileage.layout import Layout

    declared, _, seed = name.partition("/seeds/")
    resolver = ExperimentResolver(copy.deepcopy(dict(config)), base_dir=base_dir)
    exp = resolver.resolve(declared)
    results = resolver.config["results_dir"]
    layout = Layout(results=results, base_dir=Path(base_dir))
    data_files = [layout.dataset(exp, split) for split in ("train", "eval")]
    markers = [layout.hf_model_marker(exp)] if exp["model"]["source"] == "hf" else []
    lock_path = Path(base_dir) / resolver.config["hf_lock"]
    seeds = [int(seed)] if seed else list(exp.get("seeds") or [exp["seed"]])
    return collect(exp, seeds=seeds, data_files=data_files, logs_dir=layout.exp(name, "logs"), base_dir=base_dir,
                   markers=markers, lock=read_lock(lock_path), environ=environ, run_dir=layout.exp(name, "run"))
