"""Dataset steps: the demo's synthetic problems, and Hugging Face datasets at a pinned revision."""

from __future__ import annotations

from pathlib import Path

from mileage.data.demo_problems import write_demo_dataset
from mileage.fetch.datasets import fetch_dataset, normalise_dataset
from mileage.fetch.revision_lock import resolve_revision


def build_demo_dataset(out: str, dataset: dict) -> None:
    write_demo_dataset(
        out,
        name=dataset["name"],
        n_problems=dataset["n_problems"] if dataset["limit"] is None else min(dataset["limit"], dataset["n_problems"]),
        seed=dataset["seed"],
        max_operand=dataset["max_operand"],
        operations=dataset["operations"],
        split=dataset["split"],
    )


def fetch_hf_dataset(out: str, dataset: dict, lock: str, cache_dir: str) -> None:
    requested = None if dataset["revision"] == "main" else dataset["revision"]
    sha = resolve_revision(dataset["repo"], "dataset", requested, lock)
    print(f"mileage: dataset {dataset['repo']} at {sha} (locked in {lock})")
    fetch_dataset(
        dataset["repo"], sha, Path(cache_dir), out, dataset["file"], id_prefix=dataset["name"], limit=dataset["limit"]
    )


def normalise_file_dataset(src: str, out: str, dataset: dict) -> None:
    """A local JSONL/parquet file in miles' schema, checked row by row (errors name file and line)."""
    rows = normalise_dataset(src, out, id_prefix=dataset["name"], limit=dataset["limit"])
    print(f"mileage: {src}: {rows} rows -> {out}")
