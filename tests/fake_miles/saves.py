"""The stand-in miles' checkpoints: real torch.distributed.checkpoint (DCP) directories of tiny CPU tensors in
miles' two layouts, written and read back as miles does (a truncated or missing shard fails the load), so that
mileage's verification (mileage/engines/miles/checkpoints.py) runs against real `.metadata` files. No side effects
on import: tests use `save` directly.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path


def dcp_save(directory: Path, iteration: int, parts: tuple[str, ...]) -> None:
    """A real torch.distributed.checkpoint directory (.metadata + __0_0.distcp) of tiny CPU tensors, one pair per
    part (weights, optimizer or scheduler state), saved in one process as miles' rank 0 would."""
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    state = {}
    for part in parts:
        state[f"{part}.weight"] = torch.full((8, 8), float(iteration))
        state[f"{part}.bias"] = torch.arange(8.0) + iteration
    with warnings.catch_warnings():  # "torch.distributed is ... uninitialized, assuming ... a single process"
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(directory))


def dcp_load(directory: Path, weights_only: bool = False) -> None:
    """Read the tensors of a DCP directory back (only the model's with `weights_only`), as a resumed miles does: a
    truncated or missing shard raises."""
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    metadata = dcp.FileSystemReader(str(directory)).read_metadata()
    state = {key: torch.empty(item.size) for key, item in metadata.state_dict_metadata.items()
             if not weights_only or key.startswith("model.")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(state, checkpoint_id=str(directory))


def load_save(load_dir: str, iteration: int, backend: str, optimizer: bool = True) -> None:
    """Load the save `iteration` as miles would: Megatron's one DCP directory (its weights alone under
    --no-load-optim); FSDP's model/ and, where they exist, its optimizer/ and lr_scheduler/."""
    it = Path(load_dir) / f"iter_{iteration:07d}"
    if backend == "fsdp":
        for part in ("model", "optimizer", "lr_scheduler"):
            if part == "model" or (it / part).is_dir():
                dcp_load(it / part)
    else:
        dcp_load(it, weights_only=not optimizer)


def save(save_dir: str, rollout_id: int, debug_dir: str | None, backend: str = "megatron",
         save_optim: bool = True) -> None:
    """Megatron: iter_<rollout id>/ (one torch_dist DCP directory with metadata.json and common.pt) and the tracker
    with the rollout id. FSDP (mileage/engines/miles/checkpoints.py says where the layout was read):
    iter_<rollout id + 1>/{model,optimizer,lr_scheduler}/ (DCP directories), rng.pt, meta.json, and the
    tracker with rollout id + 1. model/ also holds weights.json, which the stand-in converter reads."""
    import torch

    iteration = rollout_id + 1 if backend == "fsdp" else rollout_id
    it = Path(save_dir) / f"iter_{iteration:07d}"
    it.mkdir(parents=True, exist_ok=True)
    if backend == "fsdp":
        dcp_save(it / "model", iteration, ("model",))
        (it / "model" / "weights.json").write_text(json.dumps({"rollouts_trained": iteration, "fake": True}))
        if save_optim:
            for part in ("optimizer", "lr_scheduler"):
                dcp_save(it / part, iteration, (part,))
        torch.save({"python": random.getstate()}, it / "rng.pt")
        (it / "meta.json").write_text(json.dumps({"iteration": iteration, "rollout_id": rollout_id,
                                                  "next_rollout_id": rollout_id + 1}))
    else:
        # Megatron's torch_dist: the model's and the optimizer's shards in one DCP directory.
        dcp_save(it, iteration, ("model", "optimizer") if save_optim else ("model",))
        torch.save({"iteration": rollout_id, "checkpoint_version": 3.0}, it / "common.pt")
        (it / "metadata.json").write_text(json.dumps({"sharded_backend": "torch_dist", "sharded_backend_version": 1,
                                                      "common_backend": "torch", "common_backend_version": 1,
                                                      "iteration": rollout_id}))
    if debug_dir and Path(debug_dir).is_dir():  # miles snapshots the debug-event dir into each checkpoint
        shutil.copytree(debug_dir, it / "debug_event_data", dirs_exist_ok=True)
    state = Path(save_dir) / "rollout"
    state.mkdir(exist_ok=True)
    (state / f"global_dataset_state_dict_{rollout_id}.pt").write_bytes(b"fake")
    tmp = Path(save_dir) / ".latest_checkpointed_iteration.txt.tmp"
    tmp.write_text(str(iteration))
    os.replace(tmp, Path(save_dir) / "latest_checkpointed_iteration.txt")  # written last
