"""`mileage import-log LOG OUTDIR`: turn an existing miles/slime run's metrics into the pipeline's tables and plots.

LOG is a stdout log file; a directory is read as TensorBoard event files (`--use-tensorboard`) when it holds
any, else as `--save-debug-event-data` JSONL. Output, mirroring an experiment's layout:
    OUTDIR/metrics/{rollout,train,perf,eval}.tsv   the wide tables (docs/contracts.md)
    OUTDIR/events.jsonl                            the canonical events they were built from
    OUTDIR/import_report.json                      what the parse saw (lines, duplicates, skipped lines)
    OUTDIR/report/                                 plots, when asked for and the plotting code is present
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mileage.atomic import write_json
from mileage.metrics.events import MetricEvent, write_events
from mileage.metrics.tables import write_tables

log = logging.getLogger(__name__)


class LogImportError(ValueError):
    """A log that is missing, empty, or holds no metric lines."""


@dataclass
class ImportReport:
    source: str
    source_format: str  # "miles-log", "tensorboard" or "debug-events"
    outdir: Path
    tables: dict[str, Path] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)  # merged events (= table rows) per kind
    parse: dict[str, Any] = field(default_factory=dict)  # the format reader's own report
    warnings: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    plot_note: str = ""  # why no plots were made, when none were

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "source_format": self.source_format,
            "outdir": str(self.outdir),
            "tables": {k: str(v) for k, v in self.tables.items()},
            "events": dict(self.events),
            "parse": self.parse,
            "warnings": list(self.warnings),
            "plots": [str(p) for p in self.plots],
            "plot_note": self.plot_note,
        }

    def summary(self) -> str:
        rows = ", ".join(f"{kind} {n}" for kind, n in self.events.items()) or "none"
        lines = [f"imported {self.source} ({self.source_format}): rows per table: {rows}",
                 f"tables in {self.outdir / 'metrics'}"]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"plots: {len(self.plots)} file(s)" if self.plots else f"plots: none ({self.plot_note})")
        return "\n".join(lines)


def _read_source(path: Path) -> tuple[str, list[MetricEvent], Any]:
    if path.is_dir():
        from mileage.metrics.tensorboard_events import event_files, read_tensorboard_dir

        if event_files(path):
            events, report = read_tensorboard_dir(path)
            return "tensorboard", events, report
        from mileage.metrics.debug_events import debug_event_files, read_debug_events

        if debug_event_files(path):
            events, report = read_debug_events(path)
            return "debug-events", events, report
        raise LogImportError(f"{path}: a directory with neither TensorBoard event files nor debug-event JSONL")
    from mileage.metrics.miles_log import parse_miles_log

    if path.stat().st_size == 0:
        raise LogImportError(f"{path}: the log is empty")
    events, report = parse_miles_log(path)
    if report.metric_lines == 0:
        raise LogImportError(
            f"{path}: no metric lines in {report.lines_read} line(s); expected miles/slime lines such as "
            "\"rollout 0: {'rollout/raw_reward': ...}\" or \"step 0: {'train/loss': ...}\""
        )
    return "miles-log", events, report


def import_log(
    log_path: str | os.PathLike,
    outdir: str | os.PathLike,
    plot: Callable[[Path, Path], list[Path]] | None = None,
) -> ImportReport:
    """Parse a miles/slime log (or TensorBoard / debug-event directory), write the tables, and the figures when
    given `plot(metrics_dir, figures_dir)` (the figures are another part of mileage: mileage.stages.import_log
    composes the two)."""
    path = Path(log_path)
    if not path.exists():
        raise LogImportError(f"{path}: no such log file or directory")
    outdir = Path(outdir)
    source_format, events, parse_report = _read_source(path)
    if not events:
        reasons = "; ".join(f"line {n}: {r}" for n, r in getattr(parse_report, "skipped", [])[:5])
        raise LogImportError(f"{path}: no metric could be read" + (f" ({reasons})" if reasons else ""))

    report = ImportReport(source=str(path), source_format=source_format, outdir=outdir)
    report.parse = parse_report.to_dict()
    report.warnings = parse_report.warnings()
    report.tables = write_tables(events, outdir / "metrics")
    write_events(outdir / "events.jsonl", events)
    for event in events:
        report.events[event.kind] = report.events.get(event.kind, 0) + 1

    if plot is None:
        report.plot_note = "not requested"
    else:
        report.plots = list(plot(outdir / "metrics", outdir / "report"))
        if not report.plots:
            report.plot_note = "no plottable metrics"
    write_json(outdir / "import_report.json", report.to_dict())
    return report
