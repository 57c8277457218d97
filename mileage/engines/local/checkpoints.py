"""The local engine's checkpoints: TRL's `checkpoints/checkpoint-<optimizer step>/`, complete once
`trainer_state.json` (written last) exists, and the HF model directory made from one of them."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from mileage.atomic import atomic_dir

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# What a TRL checkpoint holds beside the model and tokenizer: the optimizer, the schedule, the RNG and the
# trainer's own state. An evaluation needs none of them.
TRAINER_FILES = re.compile(r"^(optimizer\.pt|scheduler\.pt|rng_state.*\.pth|trainer_state\.json|training_args\.bin)$")


def complete_checkpoints(checkpoint_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(optimizer step, path) of every finished checkpoint (trainer_state.json is written last), ascending."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = CHECKPOINT_RE.match(child.name)
        if m and child.is_dir() and (child / "trainer_state.json").exists():
            found.append((int(m.group(1)), child))
    return sorted(found)


def export_model(checkpoint: Path, source_model: str | os.PathLike, out: Path) -> Path:
    """`out` = the checkpoint's model and tokenizer (no trainer state), plus the start model's
    special_tokens_map.json when TRL did not write one; replaced atomically."""
    with atomic_dir(out) as tmp:
        for item in sorted(Path(checkpoint).iterdir()):
            if item.is_file() and not TRAINER_FILES.match(item.name):
                shutil.copy2(item, tmp / item.name)
        special = Path(source_model) / "special_tokens_map.json"
        if special.exists() and not (tmp / special.name).exists():
            shutil.copy2(special, tmp / special.name)
    return out
