"""The local engine's checkpoints: TRL's `checkpoints/checkpoint-<optimizer step>/`, and the HF model directory
made from one of them.

A checkpoint is usable when it is complete and intact:
- TRL writes `trainer_state.json` last; then our callback writes `mileage-manifest.json` (size and sha256 of every
  file, atomically), so a checkpoint cut short before either is never taken as complete.
- Before a checkpoint is resumed from (the newest usable one), every file is checked against its manifest: a
  truncated or overwritten weights file is caught, and the previous checkpoint is used, saying so. Older ones get
  the cheap checks (sizes). A checkpoint of an earlier version (no manifest) counts when `trainer_state.json`
  exists and each `*.safetensors` is as long as its header says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import sys
import time
from pathlib import Path
from typing import Callable

from mileage.atomic import atomic_dir, write_json
from mileage.digest import file_sha256

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# What a TRL checkpoint holds beside the model and tokenizer: the optimizer, the schedule, the RNG and the
# trainer's own state. An evaluation needs none of them.
TRAINER_FILES = re.compile(r"^(optimizer\.pt|scheduler\.pt|rng_state.*\.pth|trainer_state\.json|training_args\.bin)$")


MANIFEST = "mileage-manifest.json"
Log = Callable[[str], None]


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_manifest(checkpoint: str | os.PathLike) -> Path:
    """Size and sha256 of every file of a finished checkpoint, written atomically after them."""
    checkpoint = Path(checkpoint)
    files = {f.name: {"size": f.stat().st_size, "sha256": file_sha256(f)}
             for f in sorted(checkpoint.iterdir()) if f.is_file() and f.name != MANIFEST}
    write_json(checkpoint / MANIFEST, {"files": files})
    return checkpoint / MANIFEST


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is not whole (its 8-byte header length, JSON header and tensor data must add up to
    the file's length), or None."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > size - 8:
                return f"{path.name} is {size} bytes, shorter than its header says"
            header = json.loads(fh.read(header_len))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        return f"{path.name} has no readable safetensors header ({exc.__class__.__name__})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + end != size:
        return f"{path.name} is {size} bytes, its header says {8 + header_len + end}"
    return None


def checkpoint_problem(checkpoint: Path, verify_digests: bool) -> str | None:
    """Why `checkpoint` is not usable (incomplete, or a file not as saved), or None."""
    if not (checkpoint / "trainer_state.json").is_file():
        return "no trainer_state.json (the save did not finish)"
    manifest_path = checkpoint / MANIFEST
    if not manifest_path.is_file():
        for weights in sorted(checkpoint.glob("*.safetensors")):  # a checkpoint from before manifests
            problem = safetensors_problem(weights)
            if problem:
                return problem
        return None
    try:
        files = json.loads(manifest_path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST} is unreadable"
    for name, want in sorted(files.items()):
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != want["size"]:
            return f"{name} is {path.stat().st_size} bytes, {want['size']} when saved"
    if verify_digests:
        for name, want in sorted(files.items()):
            if file_sha256(checkpoint / name) != want["sha256"]:
                return f"{name} differs from what was saved (sha256)"
    return None


def _candidates(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    return sorted((int(m.group(1)), child) for child in root.iterdir()
                  if (m := CHECKPOINT_RE.match(child.name)) and child.is_dir())


def usable_checkpoints(checkpoint_dir: str | os.PathLike, log: Log = _note) -> tuple[list[tuple[int, Path]], list[tuple[Path, str]]]:
    """(usable checkpoints ascending, [(unusable checkpoint newer than the newest usable one, why)]). The newest
    usable one is verified file by file (digests): it is the one a run resumes from or ends with."""
    usable, bad = [], []
    for step, path in _candidates(Path(checkpoint_dir)):
        problem = checkpoint_problem(path, verify_digests=False)
        if problem:
            bad.append((step, path, problem))
        else:
            usable.append((step, path))
    while usable:
        problem = checkpoint_problem(usable[-1][1], verify_digests=True)
        if problem is None:
            break
        step, path = usable.pop()
        bad.append((step, path, problem))
    newest = usable[-1][0] if usable else -1
    newer_bad = sorted((s, p, why) for s, p, why in bad if s > newest)
    for _, path, why in newer_bad:
        instead = f"using {usable[-1][1].name} instead" if usable else "no usable checkpoint before it"
        log(f"mileage: checkpoint {path} is not usable ({why}): {instead}")
    return usable, [(p, why) for _, p, why in newer_bad]


def complete_checkpoints(checkpoint_dir: str | os.PathLike, log: Log = _note) -> list[tuple[int, Path]]:
    """(optimizer step, path) of every usable checkpoint (see the module doc), ascending."""
    return usable_checkpoints(checkpoint_dir, log)[0]


def set_aside_unusable(checkpoint_dir: str | os.PathLike, log: Log = _note) -> None:
    """Rename the unusable checkpoints newer than the newest usable one to `checkpoint-N.unusable-<time>`, so a
    resumed run saves fresh ones under their names (not into a half-written directory) and the evidence stays."""
    _, newer_bad = usable_checkpoints(checkpoint_dir, log)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for path, why in newer_bad:
        aside = path.with_name(f"{path.name}.unusable-{stamp}")
        n = 1
        while aside.exists():
            aside, n = path.with_name(f"{path.name}.unusable-{stamp}-{n}"), n + 1
        path.rename(aside)
        log(f"mileage: kept the unusable {path.name} as {aside.name}")


def manifest_callback():
    """A TrainerCallback writing each checkpoint's manifest once TRL has saved it (on_save follows the save)."""
    from transformers import TrainerCallback

    class Manifest(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir() and state.is_world_process_zero:
                write_manifest(checkpoint)

    return Manifest()


def export_model(checkpoint: Path, source_model: str | os.PathLike, out: Path) -> Path:
    """`out` = the checkpoint's model and tokenizer (no trainer state), plus the start model's
    special_tokens_map.json when TRL did not write one; replaced atomically."""
    with atomic_dir(out) as tmp:
        for item in sorted(Path(checkpoint).iterdir()):
            if item.is_file() and not TRAINER_FILES.match(item.name) and item.name != MANIFEST:
                shutil.copy2(item, tmp / item.name)
        special = Path(source_model) / "special_tokens_map.json"
        if special.exists() and not (tmp / special.name).exists():
            shutil.copy2(special, tmp / special.name)
    return out
