"""Download a Hugging Face repo at a pinned commit into the standard HF cache, verify it, mark it complete.

The download itself is huggingface_hub's `snapshot_download` (it resumes interrupted files and, offline,
serves the cache). What it returns is checked before a completion marker is written: the marker is the
Snakemake rule's declared output, so a snapshot that is partial, truncated or missing shards never looks done.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

from mileage.atomic import write_json
from mileage.fetch.revision_lock import REPO_TYPES, hub_offline, is_commit_sha

log = logging.getLogger(__name__)

SAFETENSORS_INDEX_SUFFIX = ".safetensors.index.json"
# A safetensors header is JSON metadata; anything near this size means the 8-byte length is garbage.
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


class IncompleteSnapshot(RuntimeError):
    """The snapshot lacks files, has empty/truncated ones, or misses shards its index names."""

    def __init__(self, message: str, missing: list[str]):
        super().__init__(message)
        self.missing = missing


def snapshot_dir(cache_dir: str | os.PathLike, repo_id: str, repo_type: str, revision_sha: str) -> Path:
    """Where huggingface_hub keeps the snapshot: <cache>/<type>s--org--name/snapshots/<sha>."""
    from huggingface_hub.file_download import repo_folder_name

    storage = repo_folder_name(repo_id=repo_id, repo_type=repo_type)
    return Path(cache_dir).expanduser().resolve() / storage / "snapshots" / revision_sha


def fetch_snapshot(
    repo_id: str,
    repo_type: str,
    revision_sha: str,
    cache_dir: str | os.PathLike,
    expected_files: list[str] | None,
    allow_patterns: list[str] | str | None = None,
    min_sizes: dict[str, int] | None = None,
    marker_path: str | os.PathLike | None = None,
) -> Path:
    """Download (or reuse) `repo_id` at `revision_sha`, verify it, and write `marker_path` when complete.

    `expected_files` must exist and be non-empty; `min_sizes` maps a file to its smallest acceptable size
    in bytes. With HF_HUB_OFFLINE=1 only the local cache is used. Returns the snapshot directory.
    Raises IncompleteSnapshot (naming the missing files) when verification fails; no marker is written then.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError, LocalEntryNotFoundError

    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r} for {repo_id!r}")
    if not is_commit_sha(revision_sha):
        raise ValueError(
            f"revision for {repo_type} {repo_id!r} must be a 40-hex commit sha (resolve it with "
            f"mileage.fetch.revision_lock.resolve_revision first), got {revision_sha!r}"
        )
    sha = revision_sha.lower()
    if marker_path is not None:
        # A marker from an earlier run must not vouch for what this run finds.
        Path(marker_path).unlink(missing_ok=True)

    offline = hub_offline()
    try:
        folder = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=sha,
            cache_dir=str(cache_dir),
            allow_patterns=allow_patterns,
            token=os.environ.get("HF_TOKEN"),
            local_files_only=offline,
        )
    except IncompleteSnapshotError as exc:
        # huggingface_hub knows from its cached tree listing that files are missing; name them ourselves.
        where = snapshot_dir(cache_dir, repo_id, repo_type, sha)
        problems = _problems(where, repo_id, repo_type, sha, cache_dir, expected_files, allow_patterns, min_sizes)
        missing = [p.path for p in problems] or list(expected_files or [])
        raise IncompleteSnapshot(_message(repo_id, repo_type, sha, where, problems, offline) + f"\n({exc})", missing) from exc
    except LocalEntryNotFoundError as exc:
        why = (
            "HF_HUB_OFFLINE is set and the cache holds no snapshot of this commit: run once online"
            if offline
            else "the hub could not be reached and the cache holds no snapshot of this commit"
        )
        raise IncompleteSnapshot(
            f"{repo_type} {repo_id} @ {sha}: {why} (cache_dir {Path(cache_dir)}).", list(expected_files or [])
        ) from exc

    folder_path = Path(folder)
    problems = _problems(folder_path, repo_id, repo_type, sha, cache_dir, expected_files, allow_patterns, min_sizes)
    if problems:
        raise IncompleteSnapshot(
            _message(repo_id, repo_type, sha, folder_path, problems, offline), [p.path for p in problems]
        )

    sizes = _snapshot_files(folder_path, allow_patterns)
    if marker_path is not None:
        write_json(
            marker_path,
            {
                "repo_id": repo_id,
                "repo_type": repo_type,
                "revision": sha,
                "allow_patterns": _as_list(allow_patterns),
                "snapshot_dir": str(folder_path),
                "files": sizes,
            },
        )
    log.info("verified %s %s @ %s: %d files in %s", repo_type, repo_id, sha, len(sizes), folder_path)
    return folder_path


def read_marker(marker_path: str | os.PathLike) -> dict[str, Any]:
    """The completion marker written by fetch_snapshot (repo_id, repo_type, revision, snapshot_dir, files)."""
    return json.loads(Path(marker_path).read_text(encoding="utf-8"))


class _Problem:
    def __init__(self, path: str, why: str):
        self.path = path
        self.why = why

    def __str__(self) -> str:
        return f"{self.path}: {self.why}"


def _message(repo_id: str, repo_type: str, sha: str, folder: Path, problems: list[_Problem], offline: bool) -> str:
    lines = [f"incomplete snapshot of {repo_type} {repo_id} @ {sha} in {folder}:"]
    lines += [f"  - {p}" for p in problems]
    lines.append(
        "Run again with HF_HUB_OFFLINE unset to complete the download."
        if offline
        else "Run again to resume the download."
    )
    return "\n".join(lines)


def _problems(
    folder: Path,
    repo_id: str,
    repo_type: str,
    sha: str,
    cache_dir: str | os.PathLike,
    expected_files: list[str] | None,
    allow_patterns: list[str] | str | None,
    min_sizes: dict[str, int] | None,
) -> list[_Problem]:
    """Everything wrong with the snapshot, in a stable order; empty means complete."""
    present = _snapshot_files(folder, None) if folder.is_dir() else {}
    problems: list[_Problem] = []
    seen: set[str] = set()

    def add(path: str, why: str) -> None:
        if path not in seen:
            seen.add(path)
            problems.append(_Problem(path, why))

    if folder.is_dir():
        for rel in _dangling_links(folder):
            add(rel, "link into blobs/ is dangling (blob missing)")
    for rel, expected_size in _tree_listing(repo_id, repo_type, sha, cache_dir, allow_patterns).items():
        if rel not in present:
            add(rel, "missing (listed in the repo tree)")
        elif present[rel] != expected_size:
            add(rel, f"size {present[rel]} != {expected_size} in the repo tree (truncated?)")
    for rel in expected_files or []:
        if rel not in present:
            add(rel, "missing")
        elif present[rel] == 0:
            add(rel, "empty")
    for rel, minimum in sorted((min_sizes or {}).items()):
        if rel not in present:
            add(rel, "missing")
        elif present[rel] < minimum:
            add(rel, f"size {present[rel]} < minimum {minimum}")
    for rel in sorted(present):
        if rel.endswith(SAFETENSORS_INDEX_SUFFIX):
            for shard, why in _index_problems(folder, rel, present):
                add(shard, why)
    for rel in sorted(present):
        if rel.endswith(".safetensors") and rel not in seen:
            why = _safetensors_problem(folder / rel, present[rel])
            if why:
                add(rel, why)
    return problems


def _snapshot_files(folder: Path, allow_patterns: list[str] | str | None) -> dict[str, int]:
    """Repo-relative '/'-paths of the snapshot's readable files -> size in bytes (following blob links)."""
    from huggingface_hub.utils import filter_repo_objects

    sizes: dict[str, int] = {}
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_file():
                sizes[full.relative_to(folder).as_posix()] = full.stat().st_size
    keep = set(filter_repo_objects(items=list(sizes), allow_patterns=allow_patterns))
    return {rel: sizes[rel] for rel in sorted(keep)}


def _dangling_links(folder: Path) -> list[str]:
    dangling = []
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() and not full.exists():
                dangling.append(full.relative_to(folder).as_posix())
    return sorted(dangling)


def _tree_listing(
    repo_id: str, repo_type: str, sha: str, cache_dir: str | os.PathLike, allow_patterns: list[str] | str | None
) -> dict[str, int]:
    """File sizes from the tree listing huggingface_hub caches per commit (trees/<sha>.json); {} if not cached."""
    from huggingface_hub import get_cached_repo_tree
    from huggingface_hub.errors import CachedRepoTreeNotFoundError
    from huggingface_hub.utils import filter_repo_objects

    try:
        files = get_cached_repo_tree(repo_id, repo_type=repo_type, revision=sha, cache_dir=str(cache_dir))
    except CachedRepoTreeNotFoundError:
        return {}
    sizes = {f.path: f.size for f in files}
    keep = filter_repo_objects(items=list(sizes), allow_patterns=allow_patterns)
    return {rel: sizes[rel] for rel in sorted(keep)}


def _index_problems(folder: Path, index_rel: str, present: dict[str, int]) -> list[tuple[str, str]]:
    """Shards named in a `*.safetensors.index.json` weight_map that are missing or empty."""
    try:
        index = json.loads((folder / index_rel).read_text(encoding="utf-8"))
        weight_map = index["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return [(index_rel, f"unreadable safetensors index ({exc.__class__.__name__}: {exc})")]
    base = Path(index_rel).parent
    out = []
    for shard in shards:
        rel = (base / shard).as_posix() if str(base) != "." else shard
        if rel not in present:
            out.append((rel, f"missing (named in {index_rel})"))
        elif present[rel] == 0:
            out.append((rel, f"empty (named in {index_rel})"))
    return out


def _safetensors_problem(path: Path, size: int) -> str | None:
    """Check a safetensors file's header against its size: catches truncated or non-safetensors files."""
    if size < 8:
        return f"not a safetensors file ({size} bytes)"
    with open(path, "rb") as fh:
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if header_len > min(size - 8, _MAX_SAFETENSORS_HEADER):
            return f"corrupt safetensors header (length {header_len}, file {size} bytes)"
        raw = fh.read(header_len)
    try:
        header = json.loads(raw)
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return f"corrupt safetensors header ({exc.__class__.__name__})"
    expected = 8 + header_len + max(ends, default=0)
    if expected != size:
        return f"safetensors size {size} != {expected} from its header (truncated?)"
    return None


def _as_list(patterns: list[str] | str | None) -> list[str] | None:
    if patterns is None:
        return None
    return [patterns] if isinstance(patterns, str) else list(patterns)
