"""sha256 of a file's bytes, read in 1 MiB blocks: the one content digest of data files (run identity,
provenance) and checkpoint manifests. Standard library only."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
