"""Paths the engines and the stages both need: absolute paths for a Ray job, the model directory behind a
start-model input, the final model a training recorded. Below the engines, so an engine never imports a stage."""

from __future__ import annotations

import json
from pathlib import Path

from mileage.fetch.hf_snapshot import read_marker


def absolute(path: str | Path) -> str:
    """An absolute path (a Ray job does not run in our working directory); a `<placeholder>` stays as it is."""
    if str(path).startswith("<"):  # what a download will produce (see model_dir)
        return str(path)
    return str(Path(path).resolve())


def model_dir(start_model: str) -> str:
    """The HF-format directory behind a start-model input: a directory itself, or a fetch marker."""
    path = Path(start_model)
    if path.name != "snapshot.json":
        return str(path)
    if path.is_file():
        return read_marker(path)["snapshot_dir"]
    # Not downloaded yet (e.g. `mileage argv` before the first run): name what will be there.
    return f"<snapshot of {path.parent.parent.name.replace('--', '/')}@{path.parent.name}>"


def final_model(done_path: str) -> str:
    """The final checkpoint a finished training recorded in its done.json."""
    return json.loads(Path(done_path).read_text())["final_checkpoint"]
