"""A hard time limit for symbolic checks, in any thread or process.

A SIGALRM guard works only in the main thread and cannot interrupt C code (a big-integer power holds the
interpreter until it is done), and miles calls a custom reward from its rollout workers' threads. So the check
runs in one persistent worker process, `python -m mileage.symbolic` (a fresh interpreter: nothing of the caller's
threads, CUDA or Ray state, and the caller's main script is not run again as multiprocessing's spawn would); a
call that overruns its limit kills the worker, which is started afresh for the next call, and gets `default`.
Calls from several threads take turns (symbolic checks are the rare, slow path of a reward).
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

# The first call also pays for the worker's start and its imports (sympy): not counted against the limit.
START_ALLOWANCE_S = 60.0
_HEADER = struct.Struct("!I")
_lock = threading.Lock()
_worker: subprocess.Popen | None = None
_warm = False


def _send(stream, obj) -> None:
    blob = pickle.dumps(obj)
    stream.write(_HEADER.pack(len(blob)) + blob)
    stream.flush()


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError("the symbolic worker closed its pipe")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _serve() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = stdin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        module, name, args = pickle.loads(stdin.read(_HEADER.unpack(header)[0]))
        try:
            result = (True, getattr(importlib.import_module(module), name)(*args))
        except Exception as exc:  # noqa: BLE001 - the caller decides what a failure means
            result = (False, repr(exc))
        _send(stdout, result)


def _start() -> subprocess.Popen:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    return subprocess.Popen([sys.executable, "-m", "mileage.symbolic"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, start_new_session=True)


def _stop() -> None:
    global _worker, _warm
    if _worker is not None:
        _worker.kill()
        _worker.wait(timeout=10)
        for stream in (_worker.stdin, _worker.stdout):
            stream.close()
        _worker, _warm = None, False


atexit.register(_stop)


def call_with_time_limit(fn: Callable[..., Any], args: tuple, seconds: float, default: Any) -> Any:
    """`fn(*args)` (a module-level function) in the worker process, or `default` when it fails or takes longer
    than `seconds` (the worker is then killed)."""
    global _worker, _warm
    with _lock:
        if _worker is None or _worker.poll() is not None:
            _stop()
            _worker = _start()
        try:
            _send(_worker.stdin, (fn.__module__, fn.__name__, args))
            fd = _worker.stdout.fileno()
            limit = seconds if _warm else seconds + START_ALLOWANCE_S
            if not select.select([fd], [], [], limit)[0]:
                _stop()
                return default
            size = _HEADER.unpack(_read_exact(fd, _HEADER.size))[0]
            ok, value = pickle.loads(_read_exact(fd, size))
        except (EOFError, OSError, ValueError):
            _stop()
            return default
        _warm = True
        return value if ok else default


if __name__ == "__main__":
    _serve()
