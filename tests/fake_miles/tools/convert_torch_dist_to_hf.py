"""Stand-in for miles' tools/convert_torch_dist_to_hf.py: an HF directory from the original's files."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def converter_args(argv: list[str]) -> argparse.Namespace:
    """The arguments miles' checkpoint -> HF converters share (this one and convert_fsdp_to_hf.py)."""
    parser = argparse.ArgumentParser(allow_abbrev=False)
    parser.add_argument("--input-dir", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--origin-hf-dir", required=True)
    parser.add_argument("-f", "--force", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = converter_args(argv)
    source, out = Path(args.input_dir), Path(args.output_dir)
    if not (source / "metadata.json").is_file():
        print(f"FileNotFoundError: {source} is not a checkpoint iteration", file=sys.stderr)
        return 1
    if out.exists() and not args.force:
        print(f"{out} exists (use -f)", file=sys.stderr)
        return 1
    shutil.copytree(args.origin_hf_dir, out, dirs_exist_ok=True)
    (out / "mileage_fake_export.json").write_text(json.dumps({"from": str(source)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
