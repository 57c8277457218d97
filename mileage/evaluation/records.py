"""Per-sample evaluation records (`*.samples.jsonl`): build, validate, read and write.

One JSON object per sample (docs/contracts.md): problem_id, sample_index, label, extracted_answer,
reward, response_length, truncated, response. Extra keys are kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from mileage.jsonl import iter_jsonl
from mileage.atomic import write_jsonl
from mileage.rewards import extract_answer, get_reward, requires_think


class RecordError(ValueError):
    """A per-sample record that breaks the contract (names the file, line and key)."""


# key -> accepted types (bool is excluded from the numeric keys explicitly below)
REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "problem_id": (str,),
    "sample_index": (int,),
    "label": (str,),
    "extracted_answer": (str, type(None)),
    "reward": (int, float),
    "response_length": (int,),
    "truncated": (bool,),
    "response": (str,),
}


def validate_record(record: Any, where: str) -> None:
    """Raise RecordError (mentioning `where`, e.g. "file.jsonl line 3") if `record` breaks the contract."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
    for key, types in REQUIRED_KEYS.items():
        if key not in record:
            raise RecordError(f"{where}: missing key {key!r}")
        value = record[key]
        is_bool = isinstance(value, bool)
        if not isinstance(value, types) or (is_bool and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise RecordError(f"{where}: key {key!r} must be {names}, got {value!r}")
    if record["sample_index"] < 0:
        raise RecordError(f"{where}: key 'sample_index' must be >= 0, got {record['sample_index']}")
    if record["response_length"] < 0:
        raise RecordError(f"{where}: key 'response_length' must be >= 0, got {record['response_length']}")
    if record["reward"] != record["reward"]:  # NaN
        raise RecordError(f"{where}: key 'reward' is NaN")


def make_record(
    problem_id: str,
    sample_index: int,
    label: str,
    response: str,
    response_length: int,
    truncated: bool,
    reward_name: str,
) -> dict[str, Any]:
    """A validated record, with extracted_answer and reward computed by the named reward rule."""
    reward_fn = get_reward(reward_name)
    record = {
        "problem_id": str(problem_id),
        "sample_index": int(sample_index),
        "label": str(label),
        "extracted_answer": extract_answer(response, require_think=requires_think(reward_name)),
        "reward": float(reward_fn(response, str(label))),
        "response_length": int(response_length),
        "truncated": bool(truncated),
        "response": response,
    }
    validate_record(record, f"record for problem {problem_id!r} sample {sample_index}")
    return record


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a JSONL file, validated; blank lines are skipped."""
    path = Path(path)
    records: list[dict[str, Any]] = []
    for where, record in iter_jsonl(path, RecordError):
        validate_record(record, where)
        records.append(record)
    return records


def write_records(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Validate every record, then write them atomically, one per line, in the given order."""
    rows = list(records)
    for position, record in enumerate(rows):
        validate_record(record, f"record {position} for {path}")
    write_jsonl(path, rows)
