"""Send what a pipeline step prints to its Snakemake log file, and to the terminal what informs.

The log gets everything. The terminal gets the rest: not the plumbing of a Ray job that went well (the head
started and stopped, the job submitted, its entrypoint and runtime env, Ray's INFO lines), not progress bars
(a bar in a log stream is one long line of redraws), not blank lines, and not the stage's wall time (which
mileage.provenance reads back from the log). A failure's lines (a job that ended FAILED, an error) always reach
the terminal, and Snakemake shows the whole log of a failed rule (`show-failed-logs` in the profile).
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from pathlib import Path
from typing import Iterator, TextIO

_STAMP = r"\[mileage \d{4}-\d\d-\d\d [\d:]+\] "
LOG_ONLY = re.compile(
    rf"^({_STAMP}(ray job \S+ -> |entrypoint: |runtime_env: |submitted ray job |ray job \S+ SUCCEEDED$)"
    r"|ray: (starting a head |head ready |stopping the head |\S*ray start )"
    r"|\d{4}-\d\d-\d\d [\d:,]+\s+INFO |Running entrypoint for job "
    r"|.*\d+%\|.*\| *\d+/\d+ \["  # a tqdm bar: "desc:  40%|####      | 2/5 [00:01<00:02, ...]"
    r"|\s*$)"
)


def for_the_terminal(line: str) -> bool:
    """Whether a line a step printed informs the terminal (see the module doc), or belongs to the log only."""
    return not LOG_ONLY.match(line)


class _Tee:
    """Everything to the log; whole lines that inform to the terminal."""

    def __init__(self, terminal: TextIO, log: TextIO):
        self.terminal, self.log = terminal, log
        self.partial = ""

    def write(self, text: str) -> int:
        self.log.write(text)
        self.log.flush()
        *lines, self.partial = (self.partial + text).split("\n")
        shown = [line for line in lines if for_the_terminal(line)]
        if shown:
            self.terminal.write("".join(line + "\n" for line in shown))
            self.terminal.flush()
        return len(text)

    def finish(self) -> None:
        """End a last line printed without its newline (in the log too, so that the next line starts afresh)."""
        if self.partial:
            self.log.write("\n")
            if for_the_terminal(self.partial):
                self.terminal.write(self.partial + "\n")
        self.partial = ""
        self.flush()

    def flush(self) -> None:
        self.terminal.flush()
        self.log.flush()

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
        tees = _Tee(old_out, log), _Tee(old_err, log)
        sys.stdout, sys.stderr = tees
        start = time.monotonic()
        try:
            yield
            for tee in tees:
                tee.finish()
            # The stage's wall time, which mileage.provenance reads back (last line of its latest run): for the
            # log only, the terminal has Snakemake's progress.
            log.write(f"mileage: wall time {time.monotonic() - start:.3f} s\n")
        except BaseException as exc:
            # KeyboardInterrupt carries no message: say what happened rather than print an empty one.
            detail = str(exc) or ("interrupted" if isinstance(exc, KeyboardInterrupt) else "")
            print(f"mileage: {type(exc).__name__}" + (f": {detail}" if detail else ""), file=sys.stderr)
            raise
        finally:
            for tee in tees:
                tee.finish()
            sys.stdout, sys.stderr = old_out, old_err
