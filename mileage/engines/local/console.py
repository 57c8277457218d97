"""What the local engine's job prints, and what it keeps in its details log instead.

The terminal (through the Ray job's log, the train rule's log and Snakemake) gets one line per rollout (step,
reward, evaluation when there is one, time) and each warning once. TRL's per-step metric dicts, the libraries'
log records and every Python warning in full go to the run's details log, `<run_dir>/trainer.log`;
FutureWarning and DeprecationWarning (the libraries' notes to their own developers) go there only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Mapping

DETAILS_NAME = "trainer.log"
_LIBRARY_LOGGERS = ("transformers", "trl", "datasets", "accelerate", "torch", "huggingface_hub")
_DETAILS_ONLY = (FutureWarning, DeprecationWarning, PendingDeprecationWarning)


class Details:
    """The run's details log (appended to: it holds every attempt) and the warnings already shown."""

    def __init__(self, run_dir: str | Path, terminal=None):
        self.path = Path(run_dir) / DETAILS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.terminal = terminal if terminal is not None else sys.stdout
        self.shown: set[str] = set()

    def write(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")

    def say(self, line: str) -> None:
        """One line on the terminal (and in the details log)."""
        self.write(line)
        print(line, file=self.terminal, flush=True)

    def warning(self, message: str, category: type[Warning], filename: str, lineno: int) -> None:
        self.write(f"{category.__name__}: {message} ({filename}:{lineno})")
        if issubclass(category, _DETAILS_ONLY) or message in self.shown:
            return
        self.shown.add(message)
        print(f"[mileage] warning: {message} (once; every warning is in {self.path})", file=self.terminal,
              flush=True)

    def metrics(self, step: int, logs: Mapping) -> None:
        """A TRL metric dict, for the details log only."""
        self.write(json.dumps({"step": step, **{k: v for k, v in logs.items() if _plain(v)}}, sort_keys=True))


def _plain(value) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


class _ToDetails(logging.Handler):
    def __init__(self, details: Details):
        super().__init__(logging.INFO)
        self.details = details
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.details.write(self.format(record))
            if record.levelno >= logging.ERROR:
                print(f"[mileage] {record.name}: {record.getMessage()}", file=self.details.terminal, flush=True)
        except Exception:  # a log record must never fail the training
            self.handleError(record)


def route_output(run_dir: str | Path) -> Details:
    """Before TRL and transformers are imported: warnings and library log records to the details log (the
    terminal gets errors, and each other warning once)."""
    details = Details(run_dir)
    details.write(f"---- attempt started {time.strftime('%Y-%m-%d %H:%M:%S')} ----")
    warnings.simplefilter("default")  # each warning once per place it is raised, FutureWarnings included

    def show(message, category, filename, lineno, file=None, line=None):
        details.warning(str(message), category, filename, lineno)

    warnings.showwarning = show
    handler = _ToDetails(details)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    try:  # transformers installs its own stderr handler on first use: not for this job
        from transformers.utils import logging as hf_logging

        hf_logging.disable_default_handler()
        hf_logging.disable_progress_bar()  # loading and saving bars: noise between the rollout lines
    except ImportError:
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
    return details


def rollout_line(rollout_id: int, num_rollout: int, reward: float | None, evals: Mapping[str, float],
                 seconds: float) -> str:
    """`[mileage] rollout 10/30  reward 0.512  eval arith 0.562  3.9 s` (rollouts counted from 1)."""
    parts = [f"[mileage] rollout {rollout_id + 1}/{num_rollout}",
             "reward -" if reward is None else f"reward {reward:.3f}"]
    parts += [f"eval {name} {value:.3f}" for name, value in evals.items()]
    parts.append(f"{seconds:.1f} s")
    return "  ".join(parts)
