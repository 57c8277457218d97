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

# A fresh worker's start and imports (sympy, math-verify): its own allowance, never counted against a call's limit.
START_ALLOWANCE_S = 60.0
_HEADER = struct.Struct("!I")
_lock = threading.Lock()
_worker: subprocess.Popen | None = None


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


def warm_up() -> bool:
    """In the worker: import what the checks use, so their time limit never pays for the imports."""
    import sympy  # noqa: F401

    try:
        import math_verify  # noqa: F401
    except ImportError:
        pass
    return True


def _call(fn_module: str, fn_name: str, args: tuple, seconds: float) -> tuple[bool, Any]:
    """(answered in time and without error, value) of one call to the worker."""
    _send(_worker.stdin, (fn_module, fn_name, args))
    fd = _worker.stdout.fileno()
    if not select.select([fd], [], [], seconds)[0]:
        return False, None
    size = _HEADER.unpack(_read_exact(fd, _HEADER.size))[0]
    return pickle.loads(_read_exact(fd, size))


def _stop() -> None:
    global _worker
    if _worker is not None:
        _worker.kill()
        _worker.wait(timeout=10)
        for stream in (_worker.stdin, _worker.stdout):
            stream.close()
        _worker = None


atexit.register(_stop)


def call_with_time_limit(fn: Callable[..., Any], args: tuple, seconds: float, default: Any) -> Any:
    """`fn(*args)` (a module-level function) in the worker process, or `default` when it fails or takes longer
    than `seconds` (the worker is then killed, and the next call starts a fresh one)."""
    global _worker
    with _lock:
        try:
            if _worker is None or _worker.poll() is not None:
                _stop()
                _worker = _start()
                ok, _ = _call(__name__, "warm_up", (), START_ALLOWANCE_S)
                if not ok:
                    _stop()
                    return default
            ok, value = _call(fn.__module__, fn.__name__, args, seconds)
        except (EOFError, OSError, ValueError):
            _stop()
            return default
        if not ok and value is None:  # out of time: the worker is stuck in the call
            _stop()
        return value if ok else default


if __name__ == "__main__":
    _serve()
