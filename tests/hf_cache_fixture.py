"""Lay out a local Hugging Face hub cache exactly as huggingface_hub writes one, for offline tests.

    <root>/<type>s--<org>--<name>/
        blobs/<git-sha1 or sha256>          file contents (sha256 for LFS files, git blob sha1 otherwise)
        refs/main                           the commit hash, no newline
        snapshots/<commit>/<path>           relative symlinks into ../../blobs/<id>
        trees/<commit>.json                 the per-commit tree listing huggingface_hub >= 2.4 caches
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

# Suffixes the hub stores through Git LFS (a subset of its default .gitattributes).
LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".pt", ".h5", ".msgpack", ".zip")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


def safetensors_bytes(tensors: dict[str, list[float]]) -> bytes:
    """A valid little safetensors file of F32 vectors, written by hand to the format's spec."""
    import struct

    header: dict[str, dict] = {}
    payload = b""
    for name, values in tensors.items():
        data = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": [len(values)], "data_offsets": [len(payload), len(payload) + len(data)]}
        payload += data
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8-byte alignment with spaces
    return struct.pack("<Q", len(raw)) + raw + payload


def make_hf_cache(
    root: str | os.PathLike,
    repo_id: str,
    repo_type: str,
    files: dict[str, bytes],
    commit: str | None = None,
    *,
    ref: str = "main",
    tree_cache: bool = True,
) -> str:
    """Write `files` as one commit of `repo_id` into the cache at `root`; return the commit sha.

    `commit` defaults to a sha1 over the repo id and file contents (deterministic, 40-hex).
    `tree_cache=False` mimics a cache written by an older huggingface_hub (no trees/ listing).
    """
    storage = Path(root) / "--".join([f"{repo_type}s", *repo_id.split("/")])
    if commit is None:
        digest = hashlib.sha1(repo_id.encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        commit = digest.hexdigest()
    blobs = storage / "blobs"
    snapshot = storage / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    tree: dict[str, dict] = {}
    for rel, data in sorted(files.items()):
        is_lfs = rel.endswith(LFS_SUFFIXES)
        blob_id = hashlib.sha256(data).hexdigest() if is_lfs else git_blob_sha1(data)
        (blobs / blob_id).write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(blobs / blob_id, link.parent), link)
        entry: dict = {"size": len(data), "blob_id": git_blob_sha1(lfs_pointer(data) if is_lfs else data)}
        if is_lfs:
            entry.update(lfs_sha256=blob_id, lfs_size=len(data))
        tree[rel] = entry
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / ref).write_text(commit)
    if tree_cache:
        (storage / "trees").mkdir(parents=True, exist_ok=True)
        listing = {"format_version": 1, "files": dict(sorted(tree.items()))}
        (storage / "trees" / f"{commit}.json").write_text(json.dumps(listing, indent=1))
    return commit


class FakeHub:
    """An in-process stand-in for the hub's HTTP API, served to huggingface_hub through its client factory.

    Serves what `HfApi.repo_info`, `list_repo_tree` and `hf_hub_download` ask for (revision info, recursive
    tree listing, HEAD/GET on resolve URLs with Range support) and records every request, so tests exercise
    the real online code path without a network.
    """

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], tuple[str, dict[str, bytes], dict[str, str]]] = {}
        self.requests: list = []

    def add(self, repo_id: str, repo_type: str, files: dict[str, bytes], commit: str | None = None) -> str:
        commit = commit or hashlib.sha1(repr((repo_id, sorted(files.items()))).encode()).hexdigest()
        self.repos[(repo_type, repo_id)] = (commit, dict(files), {"main": commit})
        return commit

    def handle(self, request):
        import httpx2

        self.requests.append(request)
        path = request.url.path
        for (repo_type, repo_id), (commit, files, refs) in self.repos.items():
            api = f"/api/{repo_type}s/{repo_id}/"
            resolve = f"/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}/resolve/"
            if path == api.rstrip("/") or path.startswith(api + "revision/"):
                rev = path[len(api + "revision/"):] or "main"
                sha = refs.get(rev, rev if rev == commit else None)
                if sha is None:
                    return httpx2.Response(404, headers={"X-Error-Code": "RevisionNotFound"}, json={"error": "no rev"})
                return httpx2.Response(200, json={"id": repo_id, "sha": sha, "private": False})
            if path.startswith(api + "tree/"):
                entries = []
                for rel, data in sorted(files.items()):
                    entry = {"type": "file", "path": rel, "size": len(data)}
                    if rel.endswith(LFS_SUFFIXES):
                        entry["oid"] = git_blob_sha1(lfs_pointer(data))
                        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                        "pointerSize": len(lfs_pointer(data))}
                    else:
                        entry["oid"] = git_blob_sha1(data)
                    entries.append(entry)
                return httpx2.Response(200, json=entries)
            if path.startswith(resolve):
                rev, _, rel = path[len(resolve):].partition("/")
                if refs.get(rev, rev) != commit or rel not in files:
                    return httpx2.Response(404, headers={"X-Error-Code": "EntryNotFound"})
                data = files[rel]
                etag = hashlib.sha256(data).hexdigest() if rel.endswith(LFS_SUFFIXES) else git_blob_sha1(data)
                headers = {"X-Repo-Commit": commit, "ETag": f'"{etag}"', "X-Linked-Size": str(len(data))}
                if request.method == "HEAD":
                    return httpx2.Response(200, headers=headers)
                start = 0
                if rng := request.headers.get("Range"):
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                return httpx2.Response(206 if start else 200, headers=headers, content=data[start:])
        return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"}, json={"error": "unknown repo"})

    def __enter__(self) -> "FakeHub":
        import httpx2
        from huggingface_hub import set_client_factory

        set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(self.handle), follow_redirects=True))
        return self

    def __exit__(self, *exc) -> None:
        from huggingface_hub import set_client_factory
        from huggingface_hub.utils._http import default_client_factory

        set_client_factory(default_client_factory)
