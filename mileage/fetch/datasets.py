"""Datasets from the hub: download a pinned snapshot and normalise it to our JSONL (prompt, label, id).

The normalised format is docs/contracts.md "Datasets": `prompt` is a message list or a string, `label`
a non-empty string, `id` = `<id_prefix>-<0-based row>`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mileage.jsonl import iter_jsonl
from mileage.atomic import write_jsonl
from mileage.fetch.hf_snapshot import fetch_snapshot


class DatasetFormatError(ValueError):
    """A source row cannot be normalised; the message names the file, the 1-based line and the key."""


@dataclass(frozen=True)
class KnownDataset:
    filename: str
    input_key: str
    label_key: str
    id_prefix: str


# Hub datasets the experiments use, with the file inside each repo and its keys (see shared data PROVENANCE).
KNOWN_DATASETS: dict[str, KnownDataset] = {
    "zhuzilin/dapo-math-17k": KnownDataset("dapo-math-17k.jsonl", "prompt", "label", "dapo-math-17k"),
    "zhuzilin/aime-2024": KnownDataset("aime-2024.jsonl", "prompt", "label", "aime-2024"),
}


def normalise_dataset(
    src_file: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    input_key: str = "prompt",
    label_key: str = "label",
    id_prefix: str,
    limit: int | None = None,
) -> int:
    """Read JSONL or parquet rows from `src_file` and write normalised JSONL to `out_path` atomically.

    Keeps the first `limit` rows when given. Returns the number of rows written.
    """
    src = Path(src_file)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    if not id_prefix:
        raise ValueError("id_prefix must be a non-empty string")
    rows = []
    for where, row in _read_rows(src):
        if limit is not None and len(rows) >= limit:
            break
        if not isinstance(row, dict):
            raise DatasetFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
        prompt = _prompt(row, input_key, src, where)
        label = _label(row, label_key, src, where)
        rows.append({"prompt": prompt, "label": label, "id": f"{id_prefix}-{len(rows)}"})
    if not rows:
        raise DatasetFormatError(f"{src}: no rows")
    write_jsonl(out_path, rows)
    return len(rows)


def fetch_dataset(
    repo_id: str,
    revision_sha: str,
    cache_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    filename: str | None = None,
    *,
    input_key: str | None = None,
    label_key: str | None = None,
    id_prefix: str | None = None,
    limit: int | None = None,
    marker_path: str | os.PathLike | None = None,
) -> Path:
    """Download `filename` of dataset `repo_id` at `revision_sha` (verified) and normalise it to `out_path`.

    Unset arguments come from KNOWN_DATASETS for known repos (keys default to prompt/label, the id prefix
    to the repo name otherwise). Returns `out_path`.
    """
    known = KNOWN_DATASETS.get(repo_id)
    if filename is None:
        if known is None:
            raise ValueError(f"dataset {repo_id!r} is not in KNOWN_DATASETS ({sorted(KNOWN_DATASETS)}): pass filename")
        filename = known.filename
    snapshot = fetch_snapshot(
        repo_id,
        "dataset",
        revision_sha,
        cache_dir,
        expected_files=[filename],
        allow_patterns=[filename],
        marker_path=marker_path,
    )
    normalise_dataset(
        snapshot / filename,
        out_path,
        input_key=input_key or (known.input_key if known else "prompt"),
        label_key=label_key or (known.label_key if known else "label"),
        id_prefix=id_prefix or (known.id_prefix if known else repo_id.split("/")[-1]),
        limit=limit,
    )
    return Path(out_path)


def _read_rows(src: Path) -> Iterator[tuple[str, Any]]:
    """(location, row) pairs: '<src>:line N' for JSONL, '<src>:row N' for parquet, both 1-based."""
    if src.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(src).to_pylist(), start=1):
            yield f"{src}:row {i}", row
        return
    yield from iter_jsonl(src, DatasetFormatError)


def _prompt(row: dict, key: str, src: Path, where: str) -> str | list[dict[str, str]]:
    if key not in row:
        raise DatasetFormatError(f"{where}: missing key {key!r} (has {sorted(row)})")
    value = row[key]
    if isinstance(value, str):
        if not value.strip():
            raise DatasetFormatError(f"{where}: key {key!r} is an empty string")
        return value
    if isinstance(value, list) and value:
        messages = []
        for i, msg in enumerate(value):
            if not (isinstance(msg, dict) and isinstance(msg.get("role"), str) and isinstance(msg.get("content"), str)):
                raise DatasetFormatError(
                    f"{where}: key {key!r} message {i} must be an object with string 'role' and 'content'"
                )
            messages.append({"role": msg["role"], "content": msg["content"]})
        return messages
    raise DatasetFormatError(f"{where}: key {key!r} must be a non-empty string or message list, got {value!r:.80}")


def _label(row: dict, key: str, src: Path, where: str) -> str:
    if key not in row:
        raise DatasetFormatError(f"{where}: missing key {key!r} (has {sorted(row)})")
    value = row[key]
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise DatasetFormatError(f"{where}: key {key!r} must be a string or number, got {value!r:.80}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DatasetFormatError(f"{where}: key {key!r} is {value}")
        # 34.0 (a float column) means the answer 34, which is how the reward compares it.
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        text = str(value).strip()
    if not text:
        raise DatasetFormatError(f"{where}: key {key!r} is empty")
    return text
