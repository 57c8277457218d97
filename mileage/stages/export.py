"""Export step: the final checkpoint back to Hugging Face format, by the engine (miles' converter, CPU only)."""

from __future__ import annotations

from mileage.atomic import atomic_dir
from mileage.engines import engine_of
from mileage.paths import final_model, model_dir


def export_hf(done: str, snapshot: str, out_dir: str, export: dict) -> None:
    with atomic_dir(out_dir) as tmp:
        engine_of(export).export_hf(export, final_model(done), model_dir(snapshot), str(tmp))
