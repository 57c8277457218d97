"""Run one command as a Ray job, stream its output into a log file, and stop it when we are stopped.

Both engines (miles and the local TRL engine) are launched this way, on a head that
`ray_cluster.ray_cluster` started or joined. Nothing is uploaded (no working_dir): the job runs the
code that is installed where the cluster runs.

Secrets. A job's ``runtime_env`` (env_vars included) is stored by Ray and returned in plain text by
its job API to anyone who can reach the dashboard (Ray masks it only for browsers). So no secret
travels in ``runtime_env``: `run_job` refuses secret-looking env_vars (mileage.secrets). A job
inherits the environment of the ``ray start`` process instead, and a head started by mileage gets
the pipeline's environment scrubbed of every secret but those its job needs (`ray_cluster`:
WANDB_API_KEY when tracking.wandb is on, HF_TOKEN never). On a cluster we only join, the secret
must be in the environment its nodes were started with.

Fate. Every entrypoint runs under `mileage.launch.lifeline`, which kills it when anything that
started it (Ray's shell wrapper, its supervisor, the head, this process, Snakemake) is gone, so no
trainer outlives its job. When the job API stops answering and the head we started is dead, the
error says so (`RayHeadDied`: "the Ray head at ... died"), not that contact was lost.

Whatever we write or print (the command, the runtime env, the job's own output) goes through
`redact`: values of secret-looking variables (from runtime_env and from our environment) and of
secret-looking command-line flags (``--wandb-key X``) are replaced by ``***``.

Stopping. SIGINT (a terminal's Ctrl-C) and SIGTERM (what Snakemake sends its jobs on Ctrl-C) stop
the Ray job (Ray sends the job's process group SIGTERM, then SIGKILL after 3 s), wait briefly for
it to end, and raise KeyboardInterrupt, so the caller exits non-zero after its own cleanup (e.g.
stopping the head it started).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import json
import os
import re
import shlex
import signal
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from mileage.launch.ray_cluster import RayHeadDied, auth_headers, head_death
from mileage.secrets import is_secret_env_name, is_secret_option, secret_env_problems

MASK = "***"
# Shorter "secrets" are not credentials, and masking them would garble every line.
MIN_SECRET_CHARS = 4

TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "STOPPED")
STOP_WAIT_S = 20.0  # after stop_job: Ray itself escalates to SIGKILL after 3 s
# A fresh head's job agent may register after its dashboard answers; Ray then refuses a submission with "No available
# agent" once its own 10 s wait ran out (seen on a loaded 2-core box). The submission is tried again until this.
AGENT_WAIT_S = 120.0
NO_AGENT = "No available agent"
_JOB_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RayJobError(RuntimeError):
    """The Ray job could not be submitted or followed."""


class RayJobFailed(RayJobError):
    """The Ray job ended FAILED or STOPPED."""

    def __init__(self, job_id: str, status: str, message: str, tail: list[str], log_path: Path):
        self.job_id = job_id
        self.status = status
        self.job_message = message
        self.tail = tail
        self.log_path = log_path
        super().__init__(
            f"Ray job {job_id} ended {status}: {message or '(no message from Ray)'}\n"
            f"last {len(tail)} lines of its log ({log_path}):\n" + "\n".join(tail)
        )


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of this name holds a secret (HF_TOKEN, WANDB_API_KEY, ...)."""
    return is_secret_env_name(name)


def secret_env_values(env: Mapping[str, str]) -> list[str]:
    """The values of the secret-looking variables in `env`, longest first (for `redact`)."""
    values = {str(v) for k, v in env.items() if is_secret_name(k) and len(str(v)) >= MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every occurrence of each secret replaced by ***."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _secret_flag(token: str) -> bool:
    return token.startswith("-") and is_secret_option(token)


def secret_argv_values(argv: Sequence[str]) -> list[str]:
    """Values given to secret-looking flags: `--wandb-key X` and `--hf-token=X` give X."""
    values = []
    for i, token in enumerate(argv):
        if not _secret_flag(token):
            continue
        if "=" in token:
            values.append(token.split("=", 1)[1])
        elif i + 1 < len(argv):
            values.append(argv[i + 1])
    return [v for v in values if len(v) >= MIN_SECRET_CHARS]


def mask_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of `env` whose secret-looking variables read ***."""
    return {k: (MASK if is_secret_name(k) else v) for k, v in env.items()}


def masked_runtime_env(runtime_env: Mapping) -> dict:
    shown = dict(runtime_env)
    if isinstance(shown.get("env_vars"), Mapping):
        shown["env_vars"] = mask_env(shown["env_vars"])
    return shown


def lifeline(entrypoint: Sequence[str], lock_dir: str | os.PathLike | None = None) -> list[str]:
    """`entrypoint` under `mileage.launch.lifeline`, run by the entrypoint's own Python when it starts with one
    (e.g. miles' interpreter, which finds mileage on its PYTHONPATH), else by ours; holding `lock_dir`'s run
    directory lock while it runs, when given."""
    first = os.path.basename(entrypoint[0])
    python = entrypoint[0] if first.startswith("python") else sys.executable
    lock = ["--lock", os.path.abspath(lock_dir)] if lock_dir is not None else []
    return [python, "-m", "mileage.launch.lifeline", *lock, "--", *entrypoint]


def new_job_id(prefix: str) -> str:
    """A submission id that says what ran and when: `<prefix>-<UTC time>-<random>`."""
    if not _JOB_PREFIX.match(prefix):
        raise ValueError(
            f"job_id_prefix {prefix!r} must start with a letter or digit and contain only letters, "
            "digits, '_', '.', '-'"
        )
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


class _JobLog:
    """Appends our notes and the job's output, redacted, to the log file and to stdout.

    The log is appended to, not written atomically: it is the running record of every attempt of
    a step (reruns after a crash add to it), never a declared output that marks a step done.
    The job's output is passed on line by line, so a secret split across two chunks is still
    redacted; otherwise lines are unchanged.
    """

    def __init__(self, path: Path, secrets: Sequence[str], tail_lines: int):
        self.path = path
        self.secrets = list(secrets)
        self.tail: collections.deque[str] = collections.deque(maxlen=max(tail_lines, 0))
        self.raw_chars = 0  # characters of job output received, before redaction
        self._partial = ""
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")

    def _emit(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()
        sys.stdout.write(text)
        sys.stdout.flush()

    def note(self, message: str) -> None:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            self._emit(f"[mileage {stamp}] {redact(message, self.secrets)}\n")

    def feed(self, chunk: str) -> None:
        with self._lock:
            self.raw_chars += len(chunk)
            *lines, self._partial = (self._partial + chunk).split("\n")
            if lines:
                lines = [redact(line, self.secrets) for line in lines]
                self.tail.extend(lines)
                self._emit("".join(line + "\n" for line in lines))

    def finish(self) -> None:
        """Write a last line that had no newline."""
        with self._lock:
            if self._partial:
                line = redact(self._partial, self.secrets)
                self._partial = ""
                self.tail.append(line)
                self._emit(line + "\n")

    def close(self) -> None:
        self._fh.close()


@contextlib.contextmanager
def _sigterm_raises_interrupt(received: list[str]) -> Iterator[None]:
    """While following a job, SIGTERM behaves like Ctrl-C (KeyboardInterrupt), so the job is stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; the caller handles signals
        return

    def on_sigterm(signum, frame):
        received.append("SIGTERM")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred(received: list[str]) -> Iterator[None]:
    """While stopping the job (bounded by STOP_WAIT_S), further SIGINT/SIGTERM are noted, not raised."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum, frame):
        received.append(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _status(client, job_id: str) -> str:
    status = client.get_job_status(job_id)
    return str(getattr(status, "value", status))


def _wait_terminal(client, job_id: str, timeout_s: float | None, poll_s: float = 1.0) -> str:
    """Poll until the job is terminal; return its status (the last one seen if `timeout_s` passes)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    failures = 0
    status = "UNKNOWN"
    while True:
        try:
            status = _status(client, job_id)
            failures = 0
        except Exception as exc:  # the dashboard restarting, the head gone, ...
            died = head_death(client.get_address())
            if died:
                raise RayHeadDied(f"{died}\nwhile following job {job_id}") from None
            failures += 1
            if failures >= 30:
                raise RayJobError(f"lost contact with the Ray job API while following job {job_id}: {exc}")
        if status in TERMINAL_STATUSES:
            return status
        if deadline is not None and time.monotonic() >= deadline:
            return status
        time.sleep(poll_s)


def _stream_logs(client, job_id: str, sink: _JobLog, errors: list[BaseException]) -> None:
    """Thread body: follow the job's log (Ray's websocket stream) until Ray closes it at the job's end."""

    async def follow() -> None:
        async for chunk in client.tail_job_logs(job_id):
            sink.feed(chunk)

    try:
        asyncio.run(follow())
    except BaseException as exc:  # reported to the main thread, which falls back to polling
        errors.append(exc)


def _follow_to_end(client, job_id: str, sink: _JobLog) -> str:
    errors: list[BaseException] = []
    # The stream runs in a thread so that the main thread stays free to take SIGINT/SIGTERM.
    streamer = threading.Thread(
        target=_stream_logs, args=(client, job_id, sink, errors), name=f"ray-job-log-{job_id}", daemon=True
    )
    streamer.start()
    while streamer.is_alive():
        streamer.join(0.5)
    if errors:
        sink.note(f"the log stream of ray job {job_id} broke ({errors[0]!r}); following its status instead")
        status = _wait_terminal(client, job_id, timeout_s=None)
        with contextlib.suppress(Exception):  # catch up on what the stream missed
            sink.feed(client.get_job_logs(job_id)[sink.raw_chars:])
    else:
        status = _wait_terminal(client, job_id, timeout_s=60.0)
    sink.finish()
    return status


def _stop_job(client, job_id: str, sink: _JobLog, why: str, received: list[str]) -> None:
    with _signals_deferred(received):
        sink.note(f"{why}: stopping ray job {job_id}")
        try:
            client.stop_job(job_id)
        except Exception as exc:  # e.g. interrupted before the job existed
            sink.note(f"could not stop ray job {job_id}: {exc}")
            return
        status = _wait_terminal(client, job_id, timeout_s=STOP_WAIT_S, poll_s=0.5)
        sink.finish()
        if status in TERMINAL_STATUSES:
            sink.note(f"ray job {job_id} is {status}")
        else:
            sink.note(f"ray job {job_id} is still {status} {STOP_WAIT_S:.0f} s after the stop request")


def _short_message(message: str) -> str:
    """Ray's job message without the copy of the log it appends (we show our own tail)."""
    return re.split(r",? last available logs", message.strip().split("\n", 1)[0], maxsplit=1)[0]


def _submit(client, sink: "_JobLog", wait_s: float = AGENT_WAIT_S, poll_s: float = 2.0, **job) -> None:
    """client.submit_job(**job), tried again while the head has no job agent yet (NO_AGENT), for `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.submit_job(**job)
            return
        except Exception as exc:  # the SDK raises RuntimeError with the HTTP answer
            if NO_AGENT not in str(exc) or time.monotonic() >= deadline:
                raise
            sink.note(f"the Ray head has no job agent yet ({_short_message(str(exc))}); trying again")
            time.sleep(poll_s)


def _connect(address: str):
    from ray.job_submission import JobSubmissionClient  # heavy import, only when a job runs

    try:
        headers = auth_headers(address)  # the token of a head we started; a joined cluster: Ray's own lookup
        return JobSubmissionClient(address, headers=headers or None)
    except Exception as exc:
        raise RayJobError(f"cannot reach the Ray job API at {address}: {exc}") from None


def run_job(
    address: str,
    entrypoint: list[str],
    runtime_env: dict,
    log_path: Path,
    *,
    job_id_prefix: str,
    tail_lines: int = 40,
    metadata: dict | None = None,
    lock_dir: Path | None = None,
) -> None:
    """Submit `entrypoint` as a Ray job at `address`, stream its output into `log_path` and stdout.
    With `lock_dir`, the job holds that run directory's lock (mileage.run_lock) for as long as it runs.

    Returns when the job SUCCEEDED; raises RayJobFailed (job id, status, Ray's message, last
    `tail_lines` lines) when it ended FAILED or STOPPED; on SIGINT/SIGTERM stops the job and
    raises KeyboardInterrupt.
    """
    if not entrypoint:
        raise ValueError("entrypoint is empty: give the command to run as a list of arguments")
    log_path = Path(log_path)
    runtime_env = dict(runtime_env or {})
    env_vars = runtime_env.get("env_vars") or {}
    carried = secret_env_problems(env_vars)
    if carried:
        raise RayJobError(
            f"runtime_env.env_vars carries {', '.join(carried)}: Ray's job API shows env_vars in plain text to "
            "anyone who can reach the dashboard. A secret reaches a job through the environment of the Ray head "
            "(mileage.secrets.JOB_SECRETS says which job gets which)"
        )
    secrets = secret_env_values(env_vars) + secret_env_values(os.environ) + secret_argv_values(entrypoint)
    job_id = new_job_id(job_id_prefix)
    command = shlex.join(lifeline(entrypoint, lock_dir))

    sink = _JobLog(log_path, secrets, tail_lines)
    received: list[str] = []
    try:
        sink.note(f"ray job {job_id} -> {address}")
        sink.note(f"entrypoint: {command}")  # redacted by note()
        sink.note(f"runtime_env: {json.dumps(masked_runtime_env(runtime_env), sort_keys=True)}")
        client = _connect(address)
        with _sigterm_raises_interrupt(received):
            try:
                _submit(
                    client,
                    sink,
                    entrypoint=command,
                    submission_id=job_id,
                    runtime_env=runtime_env,
                    metadata={str(k): str(v) for k, v in (metadata or {}).items()},
                )
                sink.note(f"submitted ray job {job_id}; following its log")
                status = _follow_to_end(client, job_id, sink)
            except KeyboardInterrupt:
                why = "interrupted by " + (received[0] if received else "SIGINT (Ctrl-C)")
                _stop_job(client, job_id, sink, why, received)
                raise
            except RayJobError:
                raise
            except Exception as exc:
                raise RayJobError(f"ray job {job_id} at {address}: {exc}") from exc
        if status == "SUCCEEDED":
            sink.note(f"ray job {job_id} SUCCEEDED")
            return
        message = ""
        with contextlib.suppress(Exception):
            message = redact(_short_message(client.get_job_info(job_id).message or ""), secrets)
        sink.note(f"ray job {job_id} ended {status}: {message}")
        raise RayJobFailed(job_id, status, message, list(sink.tail), log_path)
    finally:
        sink.close()
