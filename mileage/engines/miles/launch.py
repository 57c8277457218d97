"""The commands that run miles: training and evaluation entrypoints for the Ray job, and the checkpoint
conversions (FACTS sections 1-3, 6).

Paths are absolute so the Ray job needs no working_dir upload: the miles checkout is already on the
machines (the miles image puts it at /root/miles). The conversions run outside Ray; `env` carries their
PYTHONPATH (Megatron-LM and the miles checkout) so the returned list is a complete command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from mileage.engines.miles.argv import MilesPaths, build_argv, eval_only_argv

DEFAULT_MILES_DIR = "/root/miles"
DEFAULT_MEGATRON_DIR = "/root/Megatron-LM"
# miles' checkpoint -> HF converters per backend (tools/; both read at v0.1.0, 78527b91: --input-dir, --output-dir,
# --origin-hf-dir).
EXPORT_TOOLS = {"megatron": "convert_torch_dist_to_hf.py", "fsdp": "convert_fsdp_to_hf.py"}


def _abs(path: str | os.PathLike) -> str:
    return str(Path(path).resolve())


def train_entrypoint(experiment: Mapping[str, Any], card: Mapping[str, Any], paths: MilesPaths) -> list[str]:
    """`[python, <miles_dir>/train.py, *argv]` for `ray job submit -- ...`."""
    miles = experiment["miles"]
    return [miles["python"], str(Path(miles["miles_dir"]) / "train.py"), *build_argv(experiment, card, paths)]


def eval_entrypoint(
    experiment: Mapping[str, Any],
    card: Mapping[str, Any],
    paths: MilesPaths,
    checkpoint_dir: str | None,
    n_samples: int | Mapping[str, Any],
    max_response_len: int | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> list[str]:
    """The evaluation-only run of `train.py` (`--num-rollout 0`); checkpoint_dir None = the starting model,
    else a checkpoint directory or one `iter_NNNNNNN` in it. `n_samples` may be a whole `final_eval` /
    `base_eval` settings dict (n_samples_per_prompt, max_response_len, temperature, top_p, seed)."""
    miles = experiment["miles"]
    if isinstance(n_samples, Mapping):
        settings = n_samples
        n_samples, max_response_len = settings["n_samples_per_prompt"], settings["max_response_len"]
        temperature, top_p, seed = settings["temperature"], settings["top_p"], settings.get("seed")
    if max_response_len is None:
        raise TypeError("eval_entrypoint: max_response_len is required when n_samples is a number")
    argv = eval_only_argv(experiment, card, paths, checkpoint_dir, n_samples, max_response_len,
                          temperature, top_p, seed)
    return [miles["python"], str(Path(miles["miles_dir"]) / "train.py"), *argv]


def _pythonpath(megatron_dir: str | os.PathLike, miles_dir: str | os.PathLike) -> str:
    return "PYTHONPATH=" + os.pathsep.join([str(megatron_dir), str(miles_dir)])


def convert_command(
    card: Mapping[str, Any],
    hf_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    miles_dir: str | os.PathLike = DEFAULT_MILES_DIR,
    megatron_dir: str | os.PathLike = DEFAULT_MEGATRON_DIR,
    python: str = "python3",
) -> list[str]:
    """HF snapshot -> Megatron torch_dist (one GPU is enough for 9B). Done when checkpoints.is_converted(out_dir)."""
    return ["env", _pythonpath(megatron_dir, miles_dir), python,
            str(Path(miles_dir) / "tools" / "convert_hf_to_torch_dist.py"), *card["megatron_args"],
            "--hf-checkpoint", _abs(hf_dir), "--save", _abs(out_dir)]


def export_command(
    iter_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    origin_hf_dir: str | os.PathLike,
    miles_dir: str | os.PathLike = DEFAULT_MILES_DIR,
    megatron_dir: str | os.PathLike = DEFAULT_MEGATRON_DIR,
    python: str = "python3",
    force: bool = True,
    backend: str = "megatron",
) -> list[str]:
    """One training checkpoint (`<run_dir>/iter_NNNNNNN`) -> a Hugging Face directory (CPU only). The converter is
    the backend's: Megatron's torch_dist one, or FSDP's (reads `iter_N/model`; same arguments)."""
    tool = EXPORT_TOOLS[backend]
    command = ["env", _pythonpath(megatron_dir, miles_dir), python, str(Path(miles_dir) / "tools" / tool),
               "--input-dir", _abs(iter_dir), "--output-dir", _abs(out_dir), "--origin-hf-dir", _abs(origin_hf_dir)]
    if force:
        command.append("-f")
    return command
