"""Canonical metric events: the `events.jsonl` every engine writes and every importer produces.

One JSON object per line, in the order things happened (docs/contracts.md, "Canonical metric events"):
`{"kind": "rollout", "step": 3, "metrics": {"rollout/raw_reward": 0.5}}`. A later event of the same kind and
step merges into the earlier one (union of keys, later value wins).
"""

from __future__ import annotations

import json
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from mileage.atomic import atomic_path
from mileage.jsonl import append_line

KINDS: tuple[str, ...] = ("rollout", "train", "perf", "eval")

# The metric that names each kind's step; the column a table is keyed by.
STEP_KEYS: dict[str, str] = {
    "rollout": "rollout/step",
    "train": "train/step",
    "perf": "rollout/step",
    "eval": "eval/step",
}

# Metric prefixes that are no kind of their own, and the kind whose dict miles logs them in: `passrate/*`
# (`--log-passrate`) rides in the rollout-side `perf N: {...}` dict, stepped by `rollout/step`
# (miles v0.1.0 miles/ray/rollout/metrics.py, log_rollout_data).
PREFIX_KINDS: dict[str, str] = {"passrate": "perf"}

Number = int | float


def kind_of_metric(name: str) -> str | None:
    """The kind a metric name belongs to by its prefix (`rollout/raw_reward` -> rollout), or None."""
    if "/" not in name:
        return None
    prefix = name.split("/", 1)[0]
    return prefix if prefix in KINDS else PREFIX_KINDS.get(prefix)


class MetricEventError(ValueError):
    """An event (or a line of an events file) that does not follow the contract."""


def coerce_number(value: object) -> Number | None:
    """Return `value` as a builtin int or float, or None when it is not a number.

    numpy scalars become builtins so that repr() gives `0.4`, not `np.float64(0.4)`; bools are not numbers
    here (a metric that is True/False is a bug upstream, not a 1/0 to plot).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


@dataclass
class MetricEvent:
    kind: str
    step: int
    metrics: dict[str, Number] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MetricEventError(f"unknown event kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        step = coerce_number(self.step)
        if not isinstance(step, int) or step < 0:
            raise MetricEventError(f"{self.kind} event: step must be a non-negative integer, got {self.step!r}")
        self.step = step
        if not isinstance(self.metrics, Mapping):
            raise MetricEventError(f"{self.kind} event {step}: metrics must be a mapping, got {type(self.metrics).__name__}")
        clean: dict[str, Number] = {}
        for key, value in self.metrics.items():
            if not isinstance(key, str) or not key:
                raise MetricEventError(f"{self.kind} event {step}: metric name must be a non-empty string, got {key!r}")
            number = coerce_number(value)
            if number is None:
                raise MetricEventError(
                    f"{self.kind} event {step}: metric {key!r} must be a number, got {value!r}"
                )
            clean[key] = number
        self.metrics = clean

    def to_dict(self) -> dict:
        return {"kind": self.kind, "step": self.step, "metrics": dict(sorted(self.metrics.items()))}

    @classmethod
    def from_dict(cls, obj: object) -> "MetricEvent":
        if not isinstance(obj, Mapping):
            raise MetricEventError(f"an event must be a JSON object, got {type(obj).__name__}")
        missing = [k for k in ("kind", "step", "metrics") if k not in obj]
        if missing:
            raise MetricEventError(f"event lacks key(s) {', '.join(missing)}")
        return cls(obj["kind"], obj["step"], obj["metrics"])


def _dumps(event: MetricEvent) -> str:
    # NaN/Infinity are kept (Python's json reads them back): a diverged run's NaN loss is information.
    return json.dumps(event.to_dict(), allow_nan=True)


def _parse_line(line: str, path: Path, lineno: int) -> MetricEvent:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise MetricEventError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    try:
        return MetricEvent.from_dict(obj)
    except MetricEventError as exc:
        raise MetricEventError(f"{path}:{lineno}: {exc}") from None


def read_events(path: str | os.PathLike, allow_partial_last_line: bool = False) -> list[MetricEvent]:
    """Read an events file in order. Blank lines are ignored; any other bad line raises, naming file:line.

    `allow_partial_last_line` drops an unparseable last line that has no newline: what a process killed
    in the middle of `append_event` leaves behind.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    # After a final "\n", split() yields one empty string; otherwise the last element is unterminated.
    unterminated_last = len(lines) - 1 if lines and lines[-1] != "" else None
    events: list[MetricEvent] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            events.append(_parse_line(line, path, index + 1))
        except MetricEventError:
            if allow_partial_last_line and index == unterminated_last:
                break
            raise
    return events


def append_event(path: str | os.PathLike, event: MetricEvent) -> None:
    """Append one event and flush, so a running engine's events survive a crash of the process."""
    append_line(path, _dumps(event))


def write_events(path: str | os.PathLike, events: Iterable[MetricEvent]) -> None:
    """Write a whole events file atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for event in events:
                fh.write(_dumps(event) + "\n")


def merge_events(events: Iterable[MetricEvent]) -> dict[str, dict[int, dict[str, Number]]]:
    """Collapse events to {kind: {step: metrics}}: union of keys, later value wins. Every kind is present."""
    merged: dict[str, dict[int, dict[str, Number]]] = {kind: {} for kind in KINDS}
    for event in events:
        merged[event.kind].setdefault(event.step, {}).update(event.metrics)
    return merged


def collapse_events(events: Iterable[MetricEvent]) -> list[MetricEvent]:
    """One event per (kind, step), merged, in the order each (kind, step) first appeared."""
    order: dict[tuple[str, int], dict[str, Number]] = {}
    for event in events:
        order.setdefault((event.kind, event.step), {}).update(event.metrics)
    return [MetricEvent(kind, step, metrics) for (kind, step), metrics in order.items()]


def rollout_id_of(event: MetricEvent, steps_per_rollout: int) -> int:
    """The 0-based rollout an event belongs to: train steps count `steps_per_rollout` per rollout."""
    if event.kind == "train":
        return event.step // steps_per_rollout
    return event.step


def drop_after(path: str | os.PathLike, last_rollout: int, steps_per_rollout: int) -> int:
    """Keep only events of rollouts <= `last_rollout` (the checkpoint a run resumes from); return how many
    were dropped. `last_rollout = -1` empties the file (resume with no checkpoint). A missing file is left
    missing. A partial last line left by a killed writer is dropped too. Rewritten atomically.
    """
    if steps_per_rollout < 1:
        raise MetricEventError(f"steps_per_rollout must be >= 1, got {steps_per_rollout}")
    path = Path(path)
    if not path.exists():
        return 0
    events = read_events(path, allow_partial_last_line=True)
    kept = [e for e in events if rollout_id_of(e, steps_per_rollout) <= last_rollout]
    write_events(path, kept)
    return len(events) - len(kept)
