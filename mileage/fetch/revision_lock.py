"""Pin Hugging Face revisions: a branch or tag is resolved to a commit once, then read from a lock file.

The lock file (JSON, or YAML when its name ends in .yaml/.yml) maps a key to a 40-hex commit sha:

    {"dataset:zhuzilin/dapo-math-17k": "<sha>", "model:zai-org/GLM-Z1-9B-0414": "<sha>"}

The key is `<repo_type>:<repo_id>` for the default branch (revision unset) and
`<repo_type>:<repo_id>@<ref>` for an explicitly named branch or tag, so switching the config from one
ref to another never silently returns the commit of the old one. Explicit shas are not written: the
config already pins them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Protocol

import yaml

from mileage.atomic import write_text

REPO_TYPES = ("model", "dataset")
_COMMIT_SHA = re.compile(r"[0-9a-fA-F]{40}")
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


class RevisionLockError(RuntimeError):
    """The lock file is unreadable, conflicts with the config, or lacks an entry we cannot resolve offline."""


class _RepoInfoApi(Protocol):
    def repo_info(self, repo_id: str, *, repo_type: str | None = ..., revision: str | None = ...) -> Any: ...


def is_commit_sha(revision: str | None) -> bool:
    return revision is not None and _COMMIT_SHA.fullmatch(revision) is not None


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now.

    huggingface_hub reads the variable once at import; we read it per call so a value set later
    (by a test, or a Snakemake rule's env) is honoured too.
    """
    from huggingface_hub import constants

    raw = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return raw.upper() in _TRUE_VALUES or bool(constants.HF_HUB_OFFLINE)


def lock_key(repo_id: str, repo_type: str, ref: str | None = None) -> str:
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r} for {repo_id!r}")
    return f"{repo_type}:{repo_id}" if ref is None else f"{repo_type}:{repo_id}@{ref}"


def read_lock(lock_path: str | os.PathLike) -> dict[str, str]:
    """The lock's entries; an absent file is an empty lock. Malformed content names the file and key."""
    path = Path(lock_path)
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    try:
        data = _load(path, text) if text.strip() else {}
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RevisionLockError(f"lock file {path} is not valid {_format(path)}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RevisionLockError(f"lock file {path} must hold a mapping of 'type:repo' -> commit sha")
    for key, sha in data.items():
        if not isinstance(key, str) or ":" not in key:
            raise RevisionLockError(f"lock file {path}: key {key!r} is not of the form 'model:org/name'")
        if not isinstance(sha, str) or not is_commit_sha(sha):
            raise RevisionLockError(f"lock file {path}: key {key!r} maps to {sha!r}, not a 40-hex commit sha")
    return {key: sha.lower() for key, sha in data.items()}


def resolve_revision(
    repo_id: str,
    repo_type: str,
    requested: str | None,
    lock_path: str | os.PathLike,
    api: _RepoInfoApi | None = None,
) -> str:
    """Return the 40-hex commit sha to download for `repo_id` at `requested`.

    - a 40-hex `requested` is returned as is (lowercased), after checking the lock does not pin another;
    - a branch/tag or None is looked up in the lock; if absent it is resolved once through
      `api.repo_info(...).sha` (default `HfApi` with the token from HF_TOKEN) and merged into the lock.
    With HF_HUB_OFFLINE=1 a missing entry is an error instead of a network call.
    """
    path = Path(lock_path)
    default_key = lock_key(repo_id, repo_type)
    if is_commit_sha(requested):
        sha = requested.lower()  # type: ignore[union-attr]
        locked = read_lock(path).get(default_key)
        if locked is not None and locked != sha:
            raise RevisionLockError(
                f"lock file {path}: key {default_key!r} pins {locked}, but the config asks for {sha}. "
                f"Remove the key from the lock file or set the config revision to the locked sha."
            )
        return sha
    if requested is not None and not requested.strip():
        raise ValueError(f"revision for {repo_type} {repo_id!r} is an empty string; use null for the default branch")

    key = lock_key(repo_id, repo_type, requested)
    locked = read_lock(path).get(key)
    if locked is not None:
        return locked
    if hub_offline():
        raise RevisionLockError(
            f"lock file {path} has no entry {key!r} and HF_HUB_OFFLINE is set, so revision "
            f"{requested or '(default branch)'!s} cannot be resolved. Run once online to record it, "
            f"or pin a 40-hex commit sha in the config."
        )
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=os.environ.get("HF_TOKEN"))
    info = api.repo_info(repo_id, repo_type=repo_type, revision=requested)
    sha = getattr(info, "sha", None)
    if not is_commit_sha(sha):
        raise RevisionLockError(f"the hub returned no commit sha for {repo_type} {repo_id!r} at {requested!r}: {sha!r}")
    return _record(path, key, sha.lower())


def _record(path: Path, key: str, sha: str) -> str:
    """Merge key -> sha into the lock under an exclusive file lock; keep a concurrent writer's entry if it won."""
    with _exclusive(path):
        entries = read_lock(path)
        existing = entries.get(key)
        if existing is not None:
            return existing
        entries[key] = sha
        write_text(path, _dump(path, dict(sorted(entries.items()))))
    return sha


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    # Parallel fetch jobs may resolve different repos at once; serialise read-merge-write so none is lost.
    path.parent.mkdir(parents=True, exist_ok=True)
    guard = path.with_name(f".{path.name}.flock")
    with open(guard, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _format(path: Path) -> str:
    return "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"


def _load(path: Path, text: str) -> Any:
    return yaml.safe_load(text) if _format(path) == "YAML" else json.loads(text)


def _dump(path: Path, entries: dict[str, str]) -> str:
    if _format(path) == "YAML":
        return yaml.safe_dump(entries, sort_keys=True, default_flow_style=False)
    return json.dumps(entries, indent=2, sort_keys=True) + "\n"
