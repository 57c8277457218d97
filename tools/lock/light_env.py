#!/usr/bin/env python3
"""Write constraints.txt: every package `make demo` and `make test` install, at one exact version.

    python tools/lock/light_env.py               # rewrite constraints.txt (resolves with pip; about a minute)
    python tools/lock/light_env.py --upgrade     # the same, resolving every package afresh
    python tools/lock/light_env.py --check       # resolve again and fail if constraints.txt would change
    python tools/lock/light_env.py --venv .venv  # compare an installed venv with constraints.txt

The Makefile installs with `pip install -c constraints.txt` (the tools and torch) and `uv pip install -c
constraints.txt` (the rest), so a fresh venv holds exactly these versions
(`--venv` shows it). pip resolves `.[dev]` (pyproject.toml's pins and all they pull in) plus pip and
setuptools as this machine's pip is set up: on the project's machines torch comes as the CPU build
(`2.13.0+cpu`) from the wheel the machine carries; elsewhere point pip at PyPI's CPU index for torch
(PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu). The lock is for the interpreter that wrote it
(its header says which); mileage itself (`-e .`) is not in it.

A rewrite keeps every version the lock already holds (they constrain the resolve), so adding a dependency adds it
and what it needs and moves nothing else; `--upgrade` lets every package move to what PyPI offers now.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pip_resolve import UV_VERSION, normalise, resolve, write_or_check  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "constraints.txt"
SELF = "mileage"
# Installed into the venv by the Makefile besides the project (pip is upgraded; setuptools comes with the venv;
# uv installs the project, the same uv that resolves the miles lock).
TOOLS = ["pip", "setuptools", f"uv=={UV_VERSION}"]


def lock_lines(keep: dict[str, str] | None = None) -> list[str]:
    """The lock's lines; `keep` (name -> version, a lock read back) holds those packages at their versions."""
    resolved = resolve([f"{REPO}[dev]", *TOOLS], constraints=[f"{name}=={v}" for name, v in (keep or {}).items()])
    header = [
        "# The light environment (make demo / make test): every package the Makefile installs, one version each.",
        "# Written by tools/lock/light_env.py (do not edit by hand; run it again); the Makefile installs with",
        f"# pip/uv -c constraints.txt. Resolved for CPython {sys.version_info[0]}.{sys.version_info[1]} on "
        f"{platform.system().lower()} {platform.machine()}; torch is the CPU build.",
    ]
    return header + [f"{r.name}=={r.version}" for r in resolved if r.name != SELF]


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[normalise(name)] = version.strip()
    return pins


def installed(venv: Path) -> dict[str, str]:
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True)
    return {normalise(k): v for k, v in json.loads(out.stdout).items()}


def venv_differences(lock: dict[str, str], have: dict[str, str]) -> list[str]:
    """Each way an installed venv differs from the lock (mileage itself left out)."""
    problems = []
    for name in sorted(set(lock) | set(have)):
        if name == SELF:
            continue
        if name not in have:
            problems.append(f"{name}: locked at {lock[name]}, not installed")
        elif name not in lock:
            problems.append(f"{name}: {have[name]} installed, not in the lock")
        elif have[name] != lock[name]:
            problems.append(f"{name}: {have[name]} installed, locked at {lock[name]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if constraints.txt is not what a resolve writes")
    parser.add_argument("--venv", type=Path, help="compare this venv's packages with constraints.txt")
    parser.add_argument("--upgrade", action="store_true", help="resolve every package afresh (default: keep the "
                        "versions constraints.txt holds)")
    parser.add_argument("--out", type=Path, default=LOCK)
    args = parser.parse_args()
    if args.venv:
        problems = venv_differences(read_lock(args.out), installed(args.venv))
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{args.venv}: {'differs from' if problems else 'matches'} {args.out.name}")
        return 1 if problems else 0
    keep = read_lock(args.out) if args.out.is_file() and not args.upgrade else None
    try:
        text = "\n".join(lock_lines(keep)) + "\n"
    except SystemExit as err:  # pip could not resolve (pip_resolve.resolve says why)
        if keep is None:
            raise
        print(f"{err}\nthe versions {args.out.name} holds do not resolve with pyproject.toml's pins: run again "
              "with --upgrade", file=sys.stderr)
        return 1
    return write_or_check(args.out, text, "tools/lock/light_env.py", args.check)


if __name__ == "__main__":
    sys.exit(main())
