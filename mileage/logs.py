"""Send what a pipeline step prints to its Snakemake log file as well as to the terminal; its wall time to the log."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Iterator, TextIO


class _Tee:
    def __init__(self, *streams: TextIO):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def logged(log_path: str | Path | None) -> Iterator[None]:
    """Tee stdout and stderr into `log_path` (appended) for the duration of the block."""
    if not log_path:
        yield
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(old_out, log), _Tee(old_err, log)
        start = time.monotonic()
        try:
            yield
            # The stage's wall time, which mileage.provenance reads back (last line of its latest run): for the
            # log only, the terminal has Snakemake's progress.
            log.write(f"mileage: wall time {time.monotonic() - start:.3f} s\n")
        except BaseException as exc:
            # KeyboardInterrupt carries no message: say what happened rather than print an empty one.
            detail = str(exc) or ("interrupted" if isinstance(exc, KeyboardInterrupt) else "")
            print(f"mileage: {type(exc).__name__}" + (f": {detail}" if detail else ""), file=sys.stderr)
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err
