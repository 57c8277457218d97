"""The miles environment's lock (envs/miles.lock.txt, written by tools/lock/miles_env.py) and `mileage doctor`'s
check of an environment against it: every locked package at its version, the git-built ones at their commits,
torch on CUDA 12.8, sglang-kernel the source build (PyPI's wheel is another CUDA line and has no sm_120 code),
and the glibc the lock's wheels need."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from mileage import pins as shared
from mileage.engines.contract import Finding

# mbridge, which miles' tools/convert_hf_to_torch_dist.py imports (its lines 12-13): the commit miles v0.1.0's
# docker/Dockerfile installs (line 85, --no-deps).
MBRIDGE_REPO = "https://github.com/ISEEKYAN/mbridge.git"
MBRIDGE_COMMIT = "89eb10887887bc74853f89a4de258c0702932a1c"

LOCK_FILE = Path(__file__).resolve().parents[3] / "envs" / "miles.lock.txt"
_LINE = re.compile(r"^(?P<name>[a-z0-9\-]+)(==(?P<version>\S+)| @ git\+(?P<url>\S+?)@(?P<commit>[0-9a-f]{40})\S*)")
_GLIBC = re.compile(r"^# requires-glibc: (\d+)\.(\d+)", re.M)
_HINT = "rebuild the env from envs/miles.yaml (its post-deploy installs envs/miles.lock.txt)"


class EnvLockError(ValueError):
    """The lock file cannot be read."""


@dataclass(frozen=True)
class Locked:
    name: str
    version: str | None = None  # name==version
    commit: str | None = None  # name @ git+url@commit


def read_lock(path: Path = LOCK_FILE) -> tuple[dict[str, Locked], tuple[int, int] | None]:
    """({name: Locked}, the glibc it needs) of a lock file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvLockError(f"{path}: cannot read the miles env lock ({exc.strerror})") from None
    locked = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise EnvLockError(f"{path}:{number}: not a pinned line: {line!r}")
        locked[match["name"]] = Locked(match["name"], match["version"], match["commit"])
    glibc = _GLIBC.search(text)
    return locked, (int(glibc[1]), int(glibc[2])) if glibc else None


def installed_commit(name: str) -> str | None:
    """The git commit a distribution was installed from (PEP 610 direct_url.json), or None."""
    try:
        raw = importlib.metadata.distribution(name).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    try:
        return json.loads(raw or "{}").get("vcs_info", {}).get("commit_id")
    except json.JSONDecodeError:
        return None


def _same_version(found: str, wanted: str) -> bool:
    try:
        return Version(found) == Version(wanted)
    except InvalidVersion:
        return found == wanted


def lock_findings(versions: dict[str, str], torch_cuda: str | None, glibc: tuple[int, int] | None,
                  commits: dict[str, str | None], path: Path = LOCK_FILE) -> list[Finding]:
    """One row per way this environment differs from the lock (or one OK row). `versions`: installed {normalised
    name: version}; `commits`: {name: installed git commit or None} for the lock's git lines; `glibc`: this host's."""
    try:
        locked, glibc_needed = read_lock(path)
    except EnvLockError as exc:
        return [Finding("miles env lock", str(path), str(exc), "WARN", "")]
    if "miles" not in versions:  # not the miles env: its rows belong where the job runs
        return [Finding("miles env lock", path.name, "miles not installed here: not checked", "WARN",
                        "run mileage doctor inside the miles env (conda activate mileage-miles)")]
    found: list[Finding] = []
    if glibc_needed and glibc is not None and glibc < glibc_needed:
        found.append(Finding("glibc", f">= {glibc_needed[0]}.{glibc_needed[1]} (the lock's wheels)",
                             f"{glibc[0]}.{glibc[1]}", "FAIL", "the locked wheels need a newer host (e.g. Ubuntu 22.04+)"))
    if torch_cuda is not None and shared.version_tuple(torch_cuda)[:2] != shared.version_tuple(shared.CUDA_VERSION):
        found.append(Finding("torch CUDA", shared.CUDA_VERSION, torch_cuda, "FAIL",
                             f"install torch=={shared.TORCH_CU128} from {shared.PYTORCH_CU128_INDEX}"))
    for name, lock in sorted(locked.items()):
        have = versions.get(name)
        if have is None:
            found.append(Finding(f"{name} (lock)", lock.version or f"commit {lock.commit[:10]}", "not installed",
                                 "WARN", _HINT))
        elif lock.commit is not None:
            commit = commits.get(name)
            if commit != lock.commit:
                status = "FAIL" if name == "sglang-kernel" else "WARN"
                why = ("PyPI's wheel is built for another CUDA line and without sm_120: build it from the lock's line"
                       if name == "sglang-kernel" and commit is None else _HINT)
                found.append(Finding(f"{name} (lock)", f"commit {lock.commit[:10]}",
                                     f"commit {commit[:10]}" if commit else f"{have}, not a git build", status, why))
        elif not _same_version(have, lock.version):
            found.append(Finding(f"{name} (lock)", lock.version, have, "WARN", _HINT))
    if not found:
        found.append(Finding("miles env lock", f"{len(locked)} packages", "all at their locked versions", "OK"))
    return found


def probe_and_check(facts) -> list[Finding]:
    """lock_findings for this machine, from doctor's probe (`facts`) and what only this module looks at."""
    try:
        locked, _ = read_lock()
    except EnvLockError as exc:
        return [Finding("miles env lock", str(LOCK_FILE), str(exc), "WARN", "")]
    commits = {name: installed_commit(name) for name, lock in locked.items() if lock.commit}
    libc, version = platform.libc_ver()
    glibc = tuple(shared.version_tuple(version)[:2]) if libc == "glibc" and version else None
    return lock_findings(facts.versions, facts.torch_cuda, glibc, commits)
