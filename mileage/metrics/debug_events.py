"""Read miles' `--save-debug-event-data DIR` JSONL files into canonical metric events.

miles writes one JSONL per process (`rollout_manager.jsonl`, `actor_cell0_rank0.jsonl`, ...); lines with
`"type": "metric"` carry `{"metrics": {...}}` (FACTS section 5). FACTS does not spell out where the step is,
so this reader ASSUMES: the step key is a metric in the dict (`train/step`, `rollout/step`, `eval/step`, as
miles puts it there for its trackers), else a `step` or `rollout_id` key on the line itself. The kind of each
metric comes from its name's prefix, so one line holding several kinds yields several events.
Lines of other types are ignored. Files are read in name order; within one (kind, step) the later line wins.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from mileage.metrics.events import KINDS, MetricEvent, Number, coerce_number, kind_of_metric

log = logging.getLogger(__name__)

_STEP_METRICS = frozenset({"rollout/step", "train/step", "eval/step"})


class DebugEventsError(ValueError):
    """A debug-event file with a line that is not JSON (other than a cut-off last line)."""


@dataclass
class DebugEventsReport:
    source: str
    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    metric_lines: int = 0
    truncated_lines: int = 0
    dropped_values: int = 0  # non-numeric values and names with no kind prefix
    no_step: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line, kind) with no step found
    events: dict[str, int] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        out = []
        if self.truncated_lines:
            out.append(f"{self.source}: skipped {self.truncated_lines} cut-off last line(s)")
        if self.no_step:
            f, n, k = self.no_step[0]
            out.append(f"{self.source}: {len(self.no_step)} metric group(s) without a step, e.g. {k} at {f}:{n}")
        if self.dropped_values:
            out.append(f"{self.source}: dropped {self.dropped_values} value(s) that are not numbers or have no kind")
        return out

    def to_dict(self) -> dict:
        return {"source": self.source, "files": list(self.files), "lines_read": self.lines_read,
                "metric_lines": self.metric_lines, "truncated_lines": self.truncated_lines,
                "dropped_values": self.dropped_values,
                "no_step": [{"file": f, "line": n, "kind": k} for f, n, k in self.no_step],
                "events": dict(self.events)}


def _step_for(kind: str, metrics: dict, line: dict) -> int | None:
    """The step of `kind`'s metrics on one line, by the assumption in the module docstring."""
    if kind == "train":
        candidates = [metrics.get("train/step"), line.get("step")]
    elif kind == "eval":
        candidates = [metrics.get("eval/step"), metrics.get("rollout/step"), line.get("rollout_id"), line.get("step")]
    else:
        candidates = [metrics.get("rollout/step"), line.get("rollout_id"), line.get("step")]
    for value in candidates:
        number = coerce_number(value)
        if number is not None and number >= 0 and number == int(number):
            return int(number)
    return None


def debug_event_files(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*.jsonl") if p.is_file())


def read_debug_events(path: str | os.PathLike) -> tuple[list[MetricEvent], DebugEventsReport]:
    """Read a debug-event directory (or one of its files) into events, one per (kind, step), merged."""
    path = Path(path)
    files = debug_event_files(path)
    if not files:
        raise DebugEventsError(f"{path}: no debug-event JSONL files")
    report = DebugEventsReport(source=str(path), files=[p.name for p in files])
    merged: dict[tuple[str, int], dict[str, Number]] = {}
    for file in files:
        lines = file.read_text(encoding="utf-8", errors="replace").split("\n")
        unterminated_last = len(lines) - 1 if lines[-1] != "" else None
        for index, text in enumerate(lines):
            if not text.strip():
                continue
            report.lines_read += 1
            try:
                line = json.loads(text)
            except json.JSONDecodeError as exc:
                if index == unterminated_last:  # the process died mid-write
                    report.truncated_lines += 1
                    continue
                raise DebugEventsError(f"{file}:{index + 1}: not valid JSON ({exc.msg})") from None
            if not isinstance(line, dict) or line.get("type") != "metric":
                continue
            metrics = line.get("metrics")
            if not isinstance(metrics, dict):
                raise DebugEventsError(f"{file}:{index + 1}: metric line without a 'metrics' object")
            report.metric_lines += 1
            groups: dict[str, dict[str, Number]] = {}
            for name, value in metrics.items():
                if name in _STEP_METRICS:
                    continue  # a step key is the row, not a column
                kind = kind_of_metric(name)
                number = coerce_number(value)
                if kind not in KINDS or number is None:
                    report.dropped_values += 1
                    continue
                groups.setdefault(kind, {})[name] = number
            for kind, values in groups.items():
                step = _step_for(kind, metrics, line)
                if step is None:
                    report.no_step.append((file.name, index + 1, kind))
                    continue
                merged.setdefault((kind, step), {}).update(values)
    events = [MetricEvent(kind, step, values) for (kind, step), values in merged.items()]
    for event in events:
        report.events[event.kind] = report.events.get(event.kind, 0) + 1
    for message in report.warnings():
        log.warning(message)
    return events, report
