"""What every Ray job entrypoint of the local engine does first (`python -m mileage.engines.local.<job> SPEC_JSON`)."""

from __future__ import annotations

import os
import sys


def job_spec_argument(argv: list[str] | None, module: str) -> str | None:
    """The job's one argument, SPEC_JSON, with the process set offline before transformers/TRL are imported (the
    local engine never talks to the hub); None after printing the usage when the command line is not that."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {module} SPEC_JSON", file=sys.stderr)
        return None
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return argv[0]
