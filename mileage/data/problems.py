"""Problem datasets in miles' JSONL schema: `{"prompt": [...] | "...", "label": "204", "id": "..."}`.

miles prints and skips rows it cannot decode; here a bad row is an error naming the file and the
1-based line, so a broken dataset is noticed before a multi-day run rather than after.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from mileage.jsonl import iter_jsonl
from mileage.atomic import write_jsonl

ROLES = ("system", "user", "assistant")


class DatasetError(ValueError):
    """A dataset row that breaks the schema (names the file and line)."""


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: list[dict] | str
    label: str


def _check_prompt(prompt: Any, where: str) -> list[dict] | str:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DatasetError(f"{where}: key 'prompt' is an empty string")
        return prompt
    if not isinstance(prompt, list) or not prompt:
        raise DatasetError(f"{where}: key 'prompt' must be a non-empty string or message list, got {prompt!r:.80}")
    for position, message in enumerate(prompt):
        if not isinstance(message, dict):
            raise DatasetError(f"{where}: prompt message {position} is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise DatasetError(f"{where}: prompt message {position} has key 'role' = {role!r}, expected one of {ROLES}")
        if not isinstance(content, str):
            raise DatasetError(f"{where}: prompt message {position} has no string key 'content'")
    if not any(m["role"] == "user" and m["content"].strip() for m in prompt):
        raise DatasetError(f"{where}: key 'prompt' has no non-empty user message")
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def _check_label(label: Any, where: str) -> str:
    # JSON numbers are accepted (some datasets store integer answers as numbers); booleans are not.
    if isinstance(label, bool) or not isinstance(label, (str, int, float)):
        raise DatasetError(f"{where}: key 'label' must be a string or number, got {label!r:.80}")
    text = str(label).strip()
    if not text:
        raise DatasetError(f"{where}: key 'label' is empty")
    return text


def _check_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DatasetError(f"{where}: key 'id' must be a string or integer, got {value!r:.80}")
    text = str(value).strip()
    if not text:
        raise DatasetError(f"{where}: key 'id' is empty")
    return text


def read_problems(path: str | os.PathLike) -> list[Problem]:
    """Every row of a JSONL dataset as a Problem; blank lines are skipped, anything malformed raises.

    A row without `id` gets `<file stem>-<0-based row index>` (index among non-blank rows).
    """
    path = Path(path)
    problems: list[Problem] = []
    first_where: dict[str, str] = {}
    for where, row in iter_jsonl(path, DatasetError):
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
        for key in ("prompt", "label"):
            if key not in row:
                raise DatasetError(f"{where}: missing key {key!r}")
        prompt = _check_prompt(row["prompt"], where)
        label = _check_label(row["label"], where)
        problem_id = _check_id(row["id"], where) if "id" in row else f"{path.stem}-{len(problems)}"
        if problem_id in first_where:
            raise DatasetError(f"{where}: duplicate id {problem_id!r} (first at {first_where[problem_id]})")
        first_where[problem_id] = where
        problems.append(Problem(id=problem_id, prompt=prompt, label=label))
    if not problems:
        raise DatasetError(f"{path}: no problems (the file is empty)")
    return problems


def prompt_text(problem: Problem) -> str:
    """The user's content: the prompt string itself, or the last user message of a message list."""
    if isinstance(problem.prompt, str):
        return problem.prompt
    return next(m["content"] for m in reversed(problem.prompt) if m["role"] == "user")


def write_problems(path: str | os.PathLike, problems: Iterable[Problem]) -> None:
    """Write problems atomically in the schema read_problems reads (ids always written)."""
    write_jsonl(path, ({"id": p.id, "prompt": p.prompt, "label": p.label} for p in problems))
