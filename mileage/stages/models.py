"""Model steps: the tiny demo model and its warm start, Hugging Face snapshots, torch_dist conversion, and
the memory preflight that runs before any download."""

from __future__ import annotations

from mileage.atomic import write_text
from mileage.engines import engine_of
from mileage.fetch.hf_snapshot import fetch_snapshot
from mileage.models.cards import check_config_before_download
from mileage.paths import model_dir
from mileage.fetch.revision_lock import resolve_revision


def build_demo_model(out_dir: str, model: dict) -> None:
    from mileage.models.tiny import build_demo_model as build

    build(out_dir, model["shape"], model["seed"])


def warm_start(base_dir: str, out_dir: str, warm: dict, device: str = "auto") -> None:
    from mileage.engines.local.warm_start import warm_start as run

    stats = run(base_dir, out_dir, device=device, **warm)
    print(f"mileage: warm start done: {stats}")


def fetch_hf_model(marker: str, model: dict, lock: str, cache_dir: str) -> None:
    requested = None if model["revision"] == "main" else model["revision"]
    sha = resolve_revision(model["repo"], "model", requested, lock)
    print(f"mileage: model {model['repo']} at {sha} (locked in {lock})")
    if model.get("config_checks"):  # a card whose shape disagrees is refused before any weights come down
        check_config_before_download(model["config_checks"], model["repo"], sha, cache_dir)
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
    """Why experiment `name` cannot fit its hardware (the plan, with what would fit), or None when it fits or its
    engine needs no plan.

    The pipeline asks this for every experiment while Snakemake builds the job graph, so an experiment that cannot
    fit is refused before any download, whatever else the config holds."""
    result = engine_of(plan).memory_plan(plan, name=name)
    if result is None or result.fits:
        return None
    return f"experiments.{name}: does not fit the hardware it declares (resources, its engine's layout):\n{result.summary}"


def preflight(out: str, name: str, plan: dict) -> None:
    """Record the memory plan of an experiment (`mileage plan`) beside its results."""
    result = engine_of(plan).memory_plan(plan, name=name)
    if result is None:
        write_text(out, f"engine {plan['engine']}: no memory preflight (small models on CPU or one GPU)\n")
        return
    print(result.summary)
    if not result.fits:  # refused at graph-building time already; kept for a direct `snakemake <target>`
        raise RuntimeError(f"mileage plan: the experiment does not fit this hardware.\n{result.summary}")
    write_text(out, result.summary + "\n")


def convert_model(snapshot_marker: str, tracker: str, convert: dict) -> None:
    """The engine's conversion of the HF snapshot (miles: HF -> Megatron torch_dist); `tracker` is its marker."""
    engine_of(convert).convert_model(convert, model_dir(snapshot_marker), tracker)
