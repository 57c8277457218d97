"""The process environment that the pipeline's jobs inherit."""

from __future__ import annotations

import os


def prepend_pythonpath(path: str) -> None:
    """Let jobs (also in per-rule conda envs or containers) import the mileage library from this checkout."""
    parts = [path] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != path]
    os.environ["PYTHONPATH"] = os.pathsep.join(parts)
