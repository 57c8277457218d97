"""Test helper: experiments resolved by the pipeline's own config code (schema defaults, batch identity)."""

from __future__ import annotations

import copy
from pathlib import Path

from mileage.config import ExperimentResolver, load_experiment as _load_experiment, load_schema

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS_DIR = REPO / "config" / "experiments"
MODELS_DIR = REPO / "config" / "models"


def resolve(partial: dict, name: str = "t") -> dict:
    """A complete experiment from a partial one."""
    return ExperimentResolver({"experiments": {name: copy.deepcopy(partial)}}, base_dir=REPO).resolve(name)


def load_experiment(name: str) -> dict:
    return _load_experiment(str(EXPERIMENTS_DIR / f"{name}.yaml"), config_path=REPO / "config" / "config.yaml")[1]


__all__ = ["resolve", "load_experiment", "load_schema", "REPO", "EXPERIMENTS_DIR", "MODELS_DIR"]
