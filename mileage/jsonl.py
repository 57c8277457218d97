"""Reading JSONL files strictly: every problem names the file and the 1-based line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


def iter_jsonl(path: str | os.PathLike, error: type[Exception] = ValueError) -> Iterator[tuple[str, Any]]:
    """Yield (`<path>:line N`, decoded value) for every non-blank line; raise `error` on bad UTF-8 or JSON."""
    path = Path(path)
    with open(path, "rb") as fh:
        for line_number, raw in enumerate(fh, start=1):
            where = f"{path}:line {line_number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(f"{where}: not UTF-8 ({err})") from None
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{where}: not valid JSON ({err.msg})") from None
