"""The miles environment's lock (envs/miles.lock.txt) and how a machine is checked against it."""

from __future__ import annotations

# mbridge, which miles' tools/convert_hf_to_torch_dist.py imports (its lines 12-13): the commit miles v0.1.0's
# docker/Dockerfile installs (line 85, --no-deps).
MBRIDGE_REPO = "https://github.com/ISEEKYAN/mbridge.git"
MBRIDGE_COMMIT = "89eb10887887bc74853f89a4de258c0702932a1c"
