"""miles' checkpoint directory layout (Megatron backend, FACTS sections 2 and 3).

`<dir>/latest_checkpointed_iteration.txt` names the last complete save: a 0-based rollout id after training
saves (`iter_{id:07d}/`), or `release` after the HF -> torch_dist conversion (`release/`). It is written last,
so its content is the completion marker.
"""

from __future__ import annotations

import os
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


def next_rollout(run_dir: str | os.PathLike) -> int:
    """The rollout a (re)started run begins with: the saved one + 1, or 0."""
    latest = latest_iteration(run_dir)
    return 0 if latest is None else latest + 1


def iteration_of(path: str | os.PathLike) -> int | None:
    """The rollout id of an `iter_NNNNNNN` directory name, or None for any other name."""
    name = Path(path).name
    if name.startswith("iter_") and name[5:].isdigit():
        return int(name[5:])
    return None
