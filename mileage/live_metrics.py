"""Live metrics: the metric tables and training figures of a run while it trains, on demand or as it goes.

Read with the engine's own event reader (the local engine's events.jsonl, miles' debug events and TensorBoard
files), the reader the train stage uses when the run ends, so the live tables are the ones the pipeline will
write, as far as the run has come. They are written to a directory the user names, outside the results tree:
nothing the pipeline declares or reads is touched, and the run's files are only read.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from mileage.metrics.events import KINDS
from mileage.metrics.tables import write_tables


class LiveMetricsError(ValueError):
    """Live metrics that cannot be written where asked, or a run with nothing to show yet."""


def check_outdir(outdir: str | os.PathLike, results: str | os.PathLike) -> Path:
    """`outdir`, refused when it lies inside the results tree (where it could become, or overwrite, what the
    pipeline writes)."""
    out, tree = Path(outdir).resolve(), Path(results).resolve()
    if out == tree or tree in out.parents:
        raise LiveMetricsError(f"{outdir} is inside the results tree {results}: live metrics go elsewhere, so that "
                               "they never change what the pipeline writes (e.g. live/<experiment>)")
    return out


def write_live(run_dir: str | os.PathLike, read_events: Callable, outdir: str | os.PathLike,
               plot: Callable[[Path, Path], list[Path]] | None = None) -> dict[str, Any]:
    """Read the run's events with the engine's `read_events(run_dir)`, write `<outdir>/metrics/<kind>.tsv` and,
    with `plot(metrics_dir, figures_dir)`, `<outdir>/figures/`; return what was written."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LiveMetricsError(f"{run_dir}: no run directory yet (the training has not started)")
    try:
        events = read_events(run_dir)
    except FileNotFoundError:  # the engine has not written its first event file yet
        events = []
    if not events:
        raise LiveMetricsError(f"{run_dir}: the training has logged no metric yet")
    outdir = Path(outdir)
    tables = write_tables(events, outdir / "metrics")
    figures = list(plot(outdir / "metrics", outdir / "figures")) if plot is not None else []
    counts = {kind: len({e.step for e in events if e.kind == kind}) for kind in KINDS}
    return {"tables": [str(p) for p in tables.values()], "figures": [str(p) for p in figures], "rows": counts,
            "written_at": time.strftime("%Y-%m-%d %H:%M:%S")}


def summary_line(written: Mapping[str, Any], outdir: str | os.PathLike) -> str:
    rows = ", ".join(f"{kind} {n}" for kind, n in written["rows"].items() if n)
    return (f"{written['written_at']}: {outdir}/metrics ({rows}); "
            f"{len(written['figures'])} figure file(s) in {outdir}/figures")
