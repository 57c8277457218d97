"""Stand-in for miles' tools/convert_hf_to_torch_dist.py: writes `<save>/release/` and, last, the tracker."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    def value(flag: str) -> str | None:
        return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None

    hf_dir, save = value("--hf-checkpoint"), value("--save")
    if not hf_dir or not save or "--num-layers" not in argv:
        print("convert_hf_to_torch_dist.py: error: --hf-checkpoint, --save and the model arguments are required",
              file=sys.stderr)
        return 2
    config = Path(hf_dir) / "config.json"
    if not config.is_file():
        print(f"FileNotFoundError: {config}", file=sys.stderr)
        return 1
    hidden = json.loads(config.read_text()).get("hidden_size")
    if str(hidden) != value("--hidden-size"):
        print(f"AssertionError: hidden_size {hidden} != --hidden-size {value('--hidden-size')}", file=sys.stderr)
        return 1
    release = Path(save) / "release"
    release.mkdir(parents=True, exist_ok=True)
    (release / "metadata.json").write_text(json.dumps({"from": str(hf_dir), "fake": True}))
    tmp = Path(save) / ".tracker.tmp"
    tmp.write_text("release")
    os.replace(tmp, Path(save) / "latest_checkpointed_iteration.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
