"""Export step: the final miles checkpoint back to Hugging Face format (miles' converter, CPU only)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from mileage.atomic import atomic_dir
from mileage.stages.models import model_dir


def export_hf(done: str, snapshot: str, out_dir: str, export: dict) -> None:
    if export["engine"] != "miles":
        raise ValueError("export_hf: the local engine's final model is already in HF format (see done.json)")
    from mileage.engines.miles.launch import export_command

    checkpoint = json.loads(Path(done).read_text())["final_checkpoint"]
    with atomic_dir(out_dir) as tmp:
        cmd = export_command(checkpoint, tmp, model_dir(snapshot), **export["miles"])
        print("mileage: exporting:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=export["miles"]["miles_dir"])
