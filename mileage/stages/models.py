"""Model steps: the tiny demo model and its warm start, Hugging Face snapshots, torch_dist conversion, and
the memory preflight that runs before any download."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mileage.atomic import write_text
from mileage.fetch.hf_snapshot import fetch_snapshot, read_marker
from mileage.fetch.revision_lock import resolve_revision


def build_demo_model(out_dir: str, model: dict) -> None:
    from mileage.models.tiny import build_demo_model as build

    build(out_dir, model["shape"], model["seed"])


def warm_start(base_dir: str, out_dir: str, warm: dict, device: str = "auto") -> None:
    from mileage.engines.local.warm_start import warm_start as run

    stats = run(base_dir, out_dir, device=device, **warm)
    print(f"mileage: warm start done: {stats}")


def model_dir(start_model: str) -> str:
    """The HF-format directory behind a start-model input: a directory itself, or a fetch marker."""
    path = Path(start_model)
    if path.name != "snapshot.json":
        return str(path)
    if path.is_file():
        return read_marker(path)["snapshot_dir"]
    # Not downloaded yet (e.g. `mileage argv` before the first run): name what will be there.
    return f"<snapshot of {path.parent.parent.name.replace('--', '/')}@{path.parent.name}>"


def fetch_hf_model(marker: str, model: dict, lock: str, cache_dir: str) -> None:
    requested = None if model["revision"] == "main" else model["revision"]
    sha = resolve_revision(model["repo"], "model", requested, lock)
    print(f"mileage: model {model['repo']} at {sha} (locked in {lock})")
    fetch_snapshot(
        model["repo"],
        "model",
        sha,
        cache_dir,
        expected_files=model["expected_files"],
        allow_patterns=model["allow_patterns"],
        marker_path=marker,
    )


def memory_refusal(name: str, plan: dict) -> str | None:
    """Why experiment `name` cannot fit its hardware (the plan, with what would fit), or None when it fits.

    The pipeline asks this for every miles experiment while Snakemake builds the job graph, so an experiment
    that cannot fit is refused before any download, whatever else the config holds."""
    if plan["engine"] != "miles":
        return None
    from mileage.engines.miles.plan import estimate_memory

    result = estimate_memory(plan, plan["card"], name=name)
    if result.fits:
        return None
    return f"experiments.{name}: does not fit the hardware it declares (resources, miles.placement):\n{result.summary}"


def preflight(out: str, name: str, plan: dict) -> None:
    """Record the memory plan of an experiment (`mileage plan`) beside its results."""
    if plan["engine"] != "miles":
        write_text(out, "local engine: no memory preflight (small models on CPU or one GPU)\n")
        return
    from mileage.engines.miles.plan import estimate_memory

    result = estimate_memory(plan, plan["card"], name=name)
    print(result.summary)
    if not result.fits:  # refused at graph-building time already; kept for a direct `snakemake <target>`
        raise RuntimeError(f"mileage plan: the experiment does not fit this hardware.\n{result.summary}")
    write_text(out, result.summary + "\n")


def convert_model(snapshot_marker: str, tracker: str, convert: dict) -> None:
    """HF -> Megatron torch_dist with miles' converter; finished only when the tracker reads `release`."""
    from mileage.engines.miles.checkpoints import is_converted
    from mileage.engines.miles.launch import convert_command

    out_dir = Path(tracker).parent
    cmd = convert_command(convert["card"], model_dir(snapshot_marker), str(out_dir), **convert["miles"])
    print("mileage: converting:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=convert["miles"]["miles_dir"])
    if not is_converted(out_dir):
        raise RuntimeError(f"conversion ended but {tracker} does not read 'release': the conversion did not finish")
