"""A hard time limit for symbolic checks, in any thread or process.

A SIGALRM guard works only in the main thread and cannot interrupt C code (a big-integer power holds the
interpreter until it is done), and miles calls a custom reward from its rollout workers' threads. So a check
runs in a worker process, `python -m mileage.symbolic` (a fresh interpreter: nothing of the caller's threads,
CUDA or Ray state, and the caller's main script is not run again as multiprocessing's spawn would). Workers are
kept in a small pool and reused, so a check costs a pipe round trip; each serves one thread at a time, so
threads calling at once each get their own (up to `MAX_WORKERS`, then they wait for a free one). A call that
overruns its limit kills its worker, which a later call replaces, and gets `default`.
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
import time
import warnings
from pathlib import Path
from typing import Any, Callable

# A fresh worker's start and imports (sympy, math-verify): its own allowance, never counted against a call's limit.
START_ALLOWANCE_S = 120.0
MAX_WORKERS = max(1, min(4, os.cpu_count() or 1))
_HEADER = struct.Struct("!I")


class SymbolicTimeout(Exception):
    """A check ran out of time (its worker has been killed)."""


# ---------------------------------------------------------------------------------------------------
# Worker side


def _send(stream, obj) -> None:
    blob = pickle.dumps(obj)
    stream.write(_HEADER.pack(len(blob)) + blob)
    stream.flush()


def _exit_with_parent(parent: int) -> None:
    """End the worker when its parent is gone, even in the middle of a long computation."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _serve() -> None:
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
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


def warm_up() -> bool:
    """In the worker: import what the checks use, so their time limit never pays for the imports."""
    import sympy  # noqa: F401

    try:
        import math_verify  # noqa: F401
    except ImportError:
        pass
    # After the imports (sympy installs its own filter): its deprecation notes on odd answers would flood stderr.
    warnings.simplefilter("ignore")
    return True


# ---------------------------------------------------------------------------------------------------
# Caller side


class _Worker:
    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[1])  # the worker imports this same mileage
        path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.proc = subprocess.Popen([sys.executable, "-m", "mileage.symbolic"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": path},
                                     start_new_session=True)
        try:
            ok, _ = self.call(__name__, "warm_up", (), START_ALLOWANCE_S)
        except Exception:
            self.stop()
            raise
        if not ok:
            self.stop()
            raise RuntimeError("the symbolic worker did not start")

    def _read_exact(self, n: int, deadline: float) -> bytes:
        fd, chunks = self.proc.stdout.fileno(), []
        while n:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise SymbolicTimeout()
            chunk = os.read(fd, n)
            if not chunk:
                raise EOFError("the symbolic worker closed its pipe")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def call(self, module: str, name: str, args: tuple, seconds: float) -> tuple[bool, Any]:
        """(ran without error, its value or the error); SymbolicTimeout past `seconds`."""
        _send(self.proc.stdin, (module, name, args))
        deadline = time.monotonic() + seconds
        size = _HEADER.unpack(self._read_exact(_HEADER.size, deadline))[0]
        return pickle.loads(self._read_exact(size, deadline))

    def stop(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class _Pool:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.free = threading.BoundedSemaphore(MAX_WORKERS)
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []

    def run(self, fn: Callable[..., Any], args: tuple, seconds: float) -> tuple[bool, Any]:
        with self.free:
            with self.lock:
                worker = self.idle.pop() if self.idle else None
            healthy = False
            try:
                if worker is None:
                    worker = _Worker()
                result = worker.call(fn.__module__, fn.__name__, args, seconds)
                healthy = True
                return result
            finally:
                if worker is not None:
                    if healthy:
                        with self.lock:
                            self.idle.append(worker)
                    else:  # out of time, dead or desynchronised: never reused
                        worker.stop()

    def close(self) -> None:
        with self.lock:
            workers, self.idle = self.idle, []
        for worker in workers:
            worker.stop()


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():  # a forked child must not share its parent's workers
            _pool = _Pool()
        return _pool


def shutdown() -> None:
    """Stop the idle workers (a later call starts new ones)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and pool.pid == os.getpid():
        pool.close()


atexit.register(shutdown)


def call_with_time_limit(fn: Callable[..., Any], args: tuple, seconds: float, default: Any) -> Any:
    """`fn(*args)` (a module-level function) in a worker process, or `default` when it raises, its worker fails,
    or it takes longer than `seconds` (the worker is then killed)."""
    try:
        ok, value = _get_pool().run(fn, args, seconds)
    except (SymbolicTimeout, EOFError, OSError, RuntimeError, pickle.UnpicklingError, struct.error):
        return default
    return value if ok else default


if __name__ == "__main__":
    _serve()
