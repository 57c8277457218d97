"""miles' checkpoint directory layouts: Megatron's (FACTS sections 2 and 3) and FSDP's.

Megatron: `<dir>/latest_checkpointed_iteration.txt` names the last complete save: a 0-based rollout id after
training saves (`iter_{id:07d}/`), or `release` after the HF -> torch_dist conversion (`release/`). It is written
last, so its content is the completion marker.

FSDP: FACTS is silent on its layout; read from miles' `miles/backends/fsdp_utils/checkpoint.py` (a 2026 commit of
radixark/miles in the code index, not checked at v0.1.0): a save after rollout id r writes
`iter_{r+1:07d}/` with `model/`, `optimizer/`, `lr_scheduler/` (torch.distributed.checkpoint directories),
`rng_rank_<rank>.pt` and `meta.json`, then the tracker with r + 1 (the number of rollouts trained, which is also
the rollout a resumed run starts with). A load reads the tracker's iteration, always the model, and the optimizer,
scheduler and RNG state where their files exist. The HF export reads `iter_N/model` (tools/convert_fsdp_to_hf.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TRACKER = "latest_checkpointed_iteration.txt"
RELEASE = "release"


class CheckpointError(RuntimeError):
    """A tracker file that names no readable iteration."""


def read_tracker(ckpt_dir: str | os.PathLike) -> str | None:
    """The tracker's content (stripped), or None when there is none."""
    path = Path(ckpt_dir) / TRACKER
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8").strip()


def is_converted(out_dir: str | os.PathLike) -> bool:
    """Whether a torch_dist conversion into `out_dir` finished (tracker reads `release`, `release/` exists)."""
    return read_tracker(out_dir) == RELEASE and (Path(out_dir) / RELEASE).is_dir()


def iter_dir(run_dir: str | os.PathLike, iteration: int) -> Path:
    return Path(run_dir) / f"iter_{iteration:07d}"


def latest_iteration(run_dir: str | os.PathLike) -> int | None:
    """The rollout id of the last complete training save, or None before the first one."""
    content = read_tracker(run_dir)
    if content is None:
        return None
    if content == RELEASE:
        return None
    try:
        iteration = int(content)
    except ValueError:
        raise CheckpointError(f"{Path(run_dir) / TRACKER}: expected an iteration number or 'release', "
                              f"got {content!r}") from None
    if not iter_dir(run_dir, iteration).is_dir():
        raise CheckpointError(f"{Path(run_dir) / TRACKER} names iteration {iteration}, but "
                              f"{iter_dir(run_dir, iteration)} is missing")
    return iteration


def rollouts_trained(iteration: int, backend: str = "megatron") -> int:
    """How many rollouts a save numbered `iteration` has trained: Megatron numbers by rollout id, FSDP by count."""
    return iteration if backend == "fsdp" else iteration + 1


def next_rollout(run_dir: str | os.PathLike, backend: str = "megatron") -> int:
    """The rollout a (re)started run begins with: the number of rollouts the last save trained, or 0."""
    latest = latest_iteration(run_dir)
    return 0 if latest is None else rollouts_trained(latest, backend)


FSDP_MODEL = "model"  # the weights of an FSDP save (iter_N/model/); the rest is optimizer, scheduler and RNG state


def pin_fsdp_weights(checkpoint: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Make `root` a checkpoint directory whose tracker names `checkpoint` (one FSDP `iter_NNNNNNN`) and which
    holds only its weights (a symlink to its `model/`): FSDP then loads exactly that save, without the optimizer
    or RNG state (it has no --ckpt-step or --no-load-optim). Replaces what `root` held; returns `root`."""
    checkpoint, root = Path(checkpoint), Path(root)
    iteration = iteration_of(checkpoint)
    if iteration is None or not (checkpoint / FSDP_MODEL).is_dir():
        raise CheckpointError(f"{checkpoint}: not an FSDP save (an iter_NNNNNNN directory with {FSDP_MODEL}/)")
    if root.exists():
        shutil.rmtree(root)
    pinned = iter_dir(root, iteration)
    pinned.mkdir(parents=True)
    (pinned / FSDP_MODEL).symlink_to((checkpoint / FSDP_MODEL).resolve(), target_is_directory=True)
    (root / TRACKER).write_text(str(iteration), encoding="utf-8")
    return root


def iteration_of(path: str | os.PathLike) -> int | None:
    """The rollout id of an `iter_NNNNNNN` directory name, or None for any other name."""
    name = Path(path).name
    if name.startswith("iter_") and name[5:].isdigit():
        return int(name[5:])
    return None
