"""Stand-in for miles' tools/convert_fsdp_to_hf.py: an HF directory from the original's files and one FSDP save.

Like the real tool it takes `iter_NNNNNNN` (or its `model/`) and refuses a directory without the saved weights:
the stand-in train.py writes `iter_N/model/weights.json` where FSDP writes its torch.distributed.checkpoint files.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from convert_torch_dist_to_hf import converter_args  # the tools directory leads sys.path of a script run


def main(argv: list[str]) -> int:
    args = converter_args(argv)
    source, out = Path(args.input_dir), Path(args.output_dir)
    model = source / "model" if (source / "model").is_dir() else source
    if not (model / "weights.json").is_file():
        print(f"ValueError: No model weights found in checkpoint {source} (pass iter_xxx or iter_xxx/model)",
              file=sys.stderr)
        return 1
    if out.exists() and not args.force:
        print(f"ValueError: Output directory {out} already exists. Use --force to overwrite it.", file=sys.stderr)
        return 1
    shutil.copytree(args.origin_hf_dir, out, dirs_exist_ok=True)
    (out / "mileage_fake_export.json").write_text(json.dumps({"from": str(source), "backend": "fsdp",
                                                              **json.loads((model / "weights.json").read_text())}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
