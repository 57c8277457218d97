"""miles' checkpoint directory layouts: Megatron's (FACTS sections 2 and 3) and FSDP's.

Megatron: `<dir>/latest_checkpointed_iteration.txt` names the last complete save: a 0-based rollout id after
training saves (`iter_{id:07d}/`), or `release` after the HF -> torch_dist conversion (`release/`). It is written
last, so its content is the completion marker.

FSDP: FACTS is silent on its layout; read from miles v0.1.0's `miles/backends/fsdp_utils/checkpoint.py`
(78527b91, `save` and `load`): a save after rollout id r writes `iter_{r+1:07d}/` with `model/`, `optimizer/`,
`lr_scheduler/` (torch.distributed.checkpoint directories; the last two unless --no-save-optim), then on rank 0
`rng.pt` (torch and CUDA RNG states) and `meta.json`, then the tracker with r + 1 (the number of rollouts trained,
which is also the rollout a resumed run starts with). A load reads the tracker's iteration, always the model, and
the optimizer, scheduler and RNG state where their files exist. The HF export reads `iter_N/model` (tools/convert_fsdp_to_hf.py).

Verification (before a (re)start, `set_aside_unusable`): the tracker is written after the save's files, but not
after they reached the disk intact, so a save can be tracked and still be cut short (a full disk, a node lost while
the page cache was flushed, a copy cut off). Both layouts are torch.distributed.checkpoint (DCP) directories: a
`.metadata` (written last, by the coordinator) whose storage_data records, for every item, its shard file, offset
and length. A save is usable when each of its DCP directories has a readable `.metadata` and every shard it names
is at least as long as the items in it reach (DCP has no digests: a same-length overwrite is not seen), plus the
files a load reads first: Megatron's `metadata.json` (dist-checkpointing's config: which backend) and `common.pt`
(the non-sharded state), FSDP's `model/`. An unusable tracked save is renamed `iter_N.unusable-<time>` (kept, not
deleted) and the tracker pointed at the newest older save that verifies, or removed (a fresh start). Directories
past the tracker (cut off before it) are left: miles writes over them. The Megatron data-loader state files
(`rollout/global_dataset_state_dict_<id>.pt`) are keyed by rollout id and stay.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from mileage.atomic import write_text

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


# ---- verification before a (re)start (see the module doc) -----------------------------------------------------------

DCP_METADATA = ".metadata"
MEGATRON_FILES = ("metadata.json", "common.pt")  # what Megatron's load reads before the shards
FSDP_STATE = ("optimizer", "lr_scheduler")  # DCP directories an FSDP load reads where they exist
Log = Callable[[str], None]


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Unverifiable(RuntimeError):
    """A save whose `.metadata` this environment cannot read (a class it names is not importable here)."""


def dcp_problem(directory: Path, where: str = "") -> str | None:
    """Why the torch.distributed.checkpoint directory `directory` is not whole, or None: its `.metadata` missing or
    unreadable, or a shard it names missing or shorter than the items it records in it. `where` prefixes the file
    names said (the directory's place in its save)."""
    if not (directory / DCP_METADATA).is_file():
        return f"{where}{DCP_METADATA} is missing (the save did not finish)"
    from torch.distributed.checkpoint import FileSystemReader

    try:
        metadata = FileSystemReader(str(directory)).read_metadata()
        ends: dict[str, int] = {}
        for info in (metadata.storage_data or {}).values():
            ends[info.relative_path] = max(ends.get(info.relative_path, 0), info.offset + info.length)
    except (ImportError, AttributeError) as exc:
        # The pickle names a class this environment lacks: not evidence of damage, and a save is not thrown away
        # on a guess (Megatron's own extra, mcore_data, is a plain dict: torch alone reads its .metadata).
        raise Unverifiable(f"{directory}/{DCP_METADATA} needs what this environment lacks ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 (a damaged pickle raises anything: EOFError, UnpicklingError, ...)
        return f"{where}{DCP_METADATA} is unreadable ({exc.__class__.__name__}: {exc})"
    for name, end in sorted(ends.items()):
        shard = directory / name
        if not shard.is_file():
            return f"{where}{name} is missing"
        size = shard.stat().st_size
        if size < end:
            return f"{where}{name} is truncated ({size} bytes; its {DCP_METADATA} needs {end})"
    return None


def save_problem(save: Path, backend: str = "megatron") -> str | None:
    """Why the save `save` (an iter_NNNNNNN directory) cannot be resumed from, or None (see the module doc)."""
    if not save.is_dir():
        return "the directory is missing"
    if backend == "fsdp":
        if not (save / FSDP_MODEL).is_dir():
            return f"{FSDP_MODEL}/ is missing"
        parts = [save / FSDP_MODEL] + [save / part for part in FSDP_STATE if (save / part).exists()]
    else:
        for name in MEGATRON_FILES:
            if not (save / name).is_file():
                return f"{name} is missing"
        parts = [save]
    for part in parts:
        problem = dcp_problem(part, "" if part == save else f"{part.name}/")
        if problem:
            return problem
    return None


def _aside(save: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = save.with_name(f"{save.name}.unusable-{stamp}"), 1
    while aside.exists():  # two set-asides within a second
        aside, n = save.with_name(f"{save.name}.unusable-{stamp}-{n}"), n + 1
    return aside


def set_aside_unusable(ckpt_dir: str | os.PathLike, backend: str = "megatron", log: Log = _note) -> None:
    """Verify the tracker's save; when it is unusable, point the tracker at the newest older save that verifies
    (or remove it: a fresh start) and rename each unusable one newer than that to `iter_N.unusable-<time>`, saying
    so. The tracker moves first: a set-aside cut off halfway leaves a save past the tracker, which miles ignores."""
    root = Path(ckpt_dir)
    content = read_tracker(root)
    if content is None or content == RELEASE or not content.isdigit():
        return  # nothing saved yet, a conversion, or a tracker latest_iteration refuses (naming it)
    tracked = int(content)
    older = sorted((i for child in root.glob("iter_*") if (i := iteration_of(child)) is not None
                    and i < tracked and child.is_dir()), reverse=True)
    bad: list[tuple[Path, str]] = []
    resume = None
    for iteration in [tracked, *older]:
        try:
            problem = save_problem(iter_dir(root, iteration), backend)
        except Unverifiable as exc:
            log(f"mileage: cannot verify checkpoint {iter_dir(root, iteration)}: {exc}; taking it as saved")
            problem = None
        if problem is None:
            resume = iteration
            break
        bad.append((iter_dir(root, iteration), problem))
    if not bad:
        return
    if resume is None:
        (root / TRACKER).unlink()
        instead = "no earlier save verifies: starting afresh (rollout 0)"
    else:
        write_text(root / TRACKER, str(resume))
        instead = f"resuming from {iter_dir(root, resume).name} (after {rollouts_trained(resume, backend)} rollouts)"
    for save, problem in bad:
        kept = ""
        if save.is_dir():
            aside = _aside(save)
            save.rename(aside)
            kept = f"; kept as {aside.name}"
        log(f"mileage: checkpoint {save} is not usable ({problem}){kept}")
    log(f"mileage: the newest checkpoint in {root} is not usable (cut short or unreadable): {instead}")
