"""Settle W&B in the trainer process before anything imports torch.

TRL imports wandb on its own import whenever wandb is installed (trl.extras.profiling, through transformers'
`is_wandb_available`), after torch and transformers. wandb's pydantic models then find their own source through
`inspect.getmodule`, which scans every loaded module on each lookup: with torch and transformers loaded that import
took about 17 s here, before them about 3 s (wandb 0.22, pydantic 2.14, Python 3.11; benchmarks/trainer_start.py).
Every training start and every resume paid it, W&B on or off.
"""

from __future__ import annotations

import sys


def settle_wandb(tracking_wandb: bool) -> None:
    """With W&B tracking on, import wandb now (while few modules are loaded); off, hide it from this process, so
    that transformers reports it unavailable (importlib.util.find_spec answers None for a module mapped to None)
    and TRL never imports it. Call before torch, transformers or TRL are imported."""
    if tracking_wandb:
        import wandb  # noqa: F401
    elif "wandb" not in sys.modules:
        sys.modules["wandb"] = None
