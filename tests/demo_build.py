"""The session's finished demo, built in the background from the moment the tests that need it are collected.

The demo takes about three minutes of two cores; built on first use, every test before it waited, and under
pytest-xdist each worker built its own. So the first process of the session to collect a test that takes
`finished_demo` starts one build, detached, in the session's shared temp dir (the base temp dir; under xdist the
workers' dirs lie inside it), and every `finished_demo` waits for that one build. conftest.py orders the modules
that need it last, so the other tests run meanwhile. The process that owns the session (the only one, or xdist's
controller) stops a build still running when the session ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline_helpers import DEMO_SECRETS, SNAKEMAKE, copy_repo

NAME = "finished-demo"
TIMEOUT_S = 1800


def shared_dir(config: pytest.Config) -> Path:
    """The session's base temp dir, the same for xdist's controller and its workers."""
    base = config._tmp_path_factory.getbasetemp()  # pytest's own factory: it names the base dir once per session
    return base.parent if hasattr(config, "workerinput") else base


def start(config: pytest.Config) -> None:
    """Start the build unless a process of this session already did (an exclusive create decides)."""
    root = shared_dir(config) / NAME
    root.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(root / "started", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    repo = copy_repo(root / "repo")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", **DEMO_SECRETS}
    # A small supervisor writes the exit status once Snakemake ends; `terminal.txt` is what the user saw.
    supervisor = (
        "import subprocess, sys\n"
        f"with open({str(root / 'terminal.txt')!r}, 'w') as out:\n"
        f"    code = subprocess.call([{SNAKEMAKE!r}, '--cores', '2', '--resources', 'gpu=1'], cwd={str(repo)!r},"
        " stdout=out, stderr=subprocess.STDOUT)\n"
        f"open({str(root / 'exit.tmp')!r}, 'w').write(str(code))\n"
        f"import os; os.replace({str(root / 'exit.tmp')!r}, {str(root / 'exit')!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", supervisor], env=env, start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (root / "pid").write_text(json.dumps({"pid": proc.pid}))


def wait(config: pytest.Config) -> Path:
    """The finished demo's repo, once the build ended well; starts it if nothing did (e.g. a test selected after
    collection)."""
    root = shared_dir(config) / NAME
    if not (root / "started").exists():
        start(config)
    deadline = time.monotonic() + TIMEOUT_S
    while not (root / "exit").exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the demo build in {root} did not end in {TIMEOUT_S} s")
        time.sleep(1)
    code = int((root / "exit").read_text())
    if code != 0:
        tail = (root / "terminal.txt").read_text(errors="replace")[-6000:]
        pytest.fail(f"the session's demo build failed (exit {code}):\n{tail}")
    return root / "repo"


def stop(config: pytest.Config) -> None:
    """At the session's end: stop a build still running (an interrupted or failed session)."""
    root = shared_dir(config) / NAME
    if (root / "pid").exists() and not (root / "exit").exists():
        pid = json.loads((root / "pid").read_text())["pid"]
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
