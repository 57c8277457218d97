"""Run a job's entrypoint as a child of this process: for a job spec that needs no Ray cluster (one process on this
machine), with what a Ray job gets from `run_job` otherwise: the lifeline (it dies with its starters; with `lock_dir`
it holds that run directory), the runtime env's variables, and its output redacted into the log and to stdout."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from mileage.launch.ray_job import _JobLog, lifeline, secret_argv_values, secret_env_values
from mileage.secrets import secret_env_problems


class LocalJobFailed(RuntimeError):
    """The job exited non-zero; the message holds its last lines."""

    def __init__(self, status: int, tail: list[str], log_path: Path):
        self.status, self.tail, self.log_path = status, tail, log_path
        lines = "\n".join(f"  {line}" for line in tail)
        super().__init__(f"the job exited with status {status}; its last lines ({log_path}):\n{lines}")


def run_here(entrypoint: Sequence[str], runtime_env: Mapping, log_path: Path, lock_dir: Path | None = None,
             tail_lines: int = 40) -> None:
    """Run `entrypoint` here, to its end; raise LocalJobFailed when it fails (KeyboardInterrupt: it is stopped)."""
    env_vars = dict((runtime_env or {}).get("env_vars") or {})
    carried = secret_env_problems(env_vars)
    if carried:  # the same rule as for a Ray job: a secret comes from the environment, never from the spec
        raise ValueError(f"runtime_env.env_vars carries {', '.join(carried)}: a job's secrets come from the "
                         "environment that starts it")
    log_path = Path(log_path)
    secrets = secret_env_values(env_vars) + secret_env_values(os.environ) + secret_argv_values(entrypoint)
    command = lifeline(list(entrypoint), lock_dir)
    sink = _JobLog(log_path, secrets, tail_lines)
    try:
        sink.note(f"entrypoint (here, no Ray cluster): {shlex.join(command)}")
        proc = subprocess.Popen(command, env={**os.environ, **env_vars}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace")
        try:
            for line in proc.stdout:
                sink.feed(line)
            status = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()  # the lifeline passes it on to the job and waits for it
            proc.wait()
            sink.note("interrupted: the job was stopped")
            raise
        sink.finish()
        if status != 0:
            sink.note(f"the job exited with status {status}")
            raise LocalJobFailed(status, list(sink.tail), log_path)
        sink.note("the job succeeded")
    finally:
        sink.close()
