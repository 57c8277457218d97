"""JSONL files: read strictly (every problem names the file and the 1-based line), appended crash-safe."""

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


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one JSON line and flush, so what a running job wrote survives its crash. A previous writer killed
    mid-line leaves no newline: this line then starts on a fresh one, so it stays whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = line.rstrip("\n") + "\n"
    with open(path, "a+b") as fh:
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                data = "\n" + data
        fh.write(data.encode("utf-8"))
        fh.flush()
