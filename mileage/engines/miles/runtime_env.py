"""The Ray runtime environment of a miles job: what miles' launcher exports, plus what mileage needs.

miles' recipe submits with env_vars PYTHONPATH=<Megatron-LM>, CUDA_DEVICE_MAX_CONNECTIONS=1 and
NCCL_NVLS_ENABLE=<1 with NVLink, else 0> (FACTS section 1). mileage adds its own package directory to
PYTHONPATH (miles imports the eval hook and custom rewards by module path inside Ray workers), an absolute
TENSORBOARD_DIR, the eval-sample directory and reward rule for the hooks, and the determinism environment
(FACTS section 8) when asked. Secrets never go here: WANDB_API_KEY is inherited from the environment of the
Ray head, so it never lands in a job description or a log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Mapping

from mileage.engines.miles.argv import MilesPaths
from mileage.engines.miles.eval_hook import EVAL_SAMPLES_ENV
from mileage.engines.miles.reward_hook import REWARD_ENV

DETERMINISM_ENV = {"NCCL_ALGO": "Ring", "NVTE_ALLOW_NONDETERMINISTIC_ALGO": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}

Runner = Callable[[list[str]], str | None]

# `nvidia-smi nvlink --status`: one "Link N: <speed> GB/s" line per active link ("<inactive>" otherwise).
_ACTIVE_LINK = re.compile(r"Link\s+\d+:\s*[\d.]+\s*GB/s")
# `nvidia-smi topo -m`: matrix cells NV1..NV18 mean the GPU pair is connected by that many NVLinks.
_TOPO_NVLINK = re.compile(r"\bNV\d+\b")


def _run_nvidia_smi(args: list[str]) -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def has_nvlink_status(text: str) -> bool:
    return bool(_ACTIVE_LINK.search(text))


def has_nvlink_topology(text: str) -> bool:
    return bool(_TOPO_NVLINK.search(text))


def detect_nvlink(run: Runner = _run_nvidia_smi) -> bool:
    """Whether this machine's GPUs talk over NVLink: the link status first, the topology matrix as fallback;
    no nvidia-smi (or no answer) means no."""
    status = run(["nvlink", "--status"])
    if status is not None and has_nvlink_status(status):
        return True
    topo = run(["topo", "-m"])
    return topo is not None and has_nvlink_topology(topo)


def nvls_enabled(setting: Any, run: Runner = _run_nvidia_smi) -> bool:
    """NCCL NVLink SHARP on or off from the config's miles.nvlink (auto | true | false)."""
    if setting is True or setting is False:
        return setting
    if setting != "auto":
        raise ValueError(f"miles.nvlink must be auto, true or false, got {setting!r}")
    return detect_nvlink(run)


def package_root() -> Path:
    """The directory that holds the `mileage` package (what Ray workers need on PYTHONPATH)."""
    return Path(__file__).resolve().parents[3]


def runtime_env(experiment: Mapping[str, Any], paths: MilesPaths, hook_dir: str | os.PathLike | None = None,
                run: Runner = _run_nvidia_smi) -> dict[str, Any]:
    """The `runtime_env` of the Ray job (`{"env_vars": {...}}`). `hook_dir` is the directory holding the
    `mileage` package as seen by the Ray workers (default: this installation's)."""
    miles = experiment["miles"]
    hook_dir = Path(hook_dir) if hook_dir is not None else package_root()
    env = {
        "PYTHONPATH": os.pathsep.join([str(miles["megatron_dir"]), str(Path(hook_dir).resolve())]),
        "CUDA_DEVICE_MAX_CONNECTIONS": "1",
        "NCCL_NVLS_ENABLE": "1" if nvls_enabled(miles["nvlink"], run) else "0",
        "PYTHONUNBUFFERED": "1",
        REWARD_ENV: experiment["rollout"]["reward"],  # the reward and eval hooks grade with it
    }
    if miles["tensorboard"] and paths.tensorboard_dir:
        env["TENSORBOARD_DIR"] = str(Path(paths.tensorboard_dir).resolve())
    if paths.eval_samples_dir:
        env[EVAL_SAMPLES_ENV] = str(Path(paths.eval_samples_dir).resolve())
    if miles["deterministic"]:
        env.update(DETERMINISM_ENV)
    return {"env_vars": env}
