"""Read miles' TensorBoard scalars (`--use-tensorboard`, `$TENSORBOARD_DIR`) into canonical metric events.

miles logs each metric with tag = metric key and step = that kind's step key (FACTS section 5); three processes
write event files into the same directory. So the kind comes from the tag's prefix (`rollout/`, `train/`,
`perf/`, `eval/`; `passrate/` is perf's, as in the log line that prints it). One consequence: a rollout-side `perf` dict's `rollout/response_len/*` keys land in the
rollout kind here, while a stdout log files them under perf (the log line, not the key, names the kind there).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from mileage.metrics.events import KINDS, MetricEvent, kind_of_metric

log = logging.getLogger(__name__)


class TensorBoardEventsError(ValueError):
    """A TensorBoard directory that holds no event files, or a file that cannot be read."""


@dataclass
class TensorBoardReport:
    source: str
    files: list[str] = field(default_factory=list)
    scalars: int = 0
    events: dict[str, int] = field(default_factory=dict)
    skipped_tags: dict[str, int] = field(default_factory=dict)  # tag -> scalars dropped (no kind for its prefix)
    non_scalar_values: int = 0  # histograms, images, text, multi-element tensors

    def warnings(self) -> list[str]:
        out = []
        if self.skipped_tags:
            tags = ", ".join(sorted(self.skipped_tags)[:8])
            out.append(f"{self.source}: skipped {len(self.skipped_tags)} tag(s) with no metric kind: {tags}")
        return out

    def to_dict(self) -> dict:
        return {"source": self.source, "files": list(self.files), "scalars": self.scalars,
                "events": dict(self.events), "skipped_tags": dict(self.skipped_tags),
                "non_scalar_values": self.non_scalar_values}


def event_files(directory: str | os.PathLike) -> list[Path]:
    """Every TensorBoard event file under `directory` (recursively), in a stable order."""
    return sorted(p for p in Path(directory).rglob("*tfevents*") if p.is_file())


def kind_of_tag(tag: str, tag_kinds: Mapping[str, str] | None = None) -> str | None:
    """The event kind of a tag: its prefix when that is a kind, else the `tag_kinds` entry for its prefix
    (or for the whole tag), else None."""
    kind = kind_of_metric(tag)
    if kind is not None:
        return kind
    prefix = tag.split("/", 1)[0]
    if tag_kinds:
        kind = tag_kinds.get(tag, tag_kinds.get(prefix))
        if kind is not None and kind not in KINDS:
            raise TensorBoardEventsError(f"tag_kinds maps {tag!r} to unknown kind {kind!r}")
        return kind
    return None


def _scalar(value) -> float | None:
    """The float in one Summary.Value: `simple_value` (torch/tensorboardX) or a 0-d tensor (TF2 summaries)."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        from tensorboard.util import tensor_util

        array = tensor_util.make_ndarray(value.tensor)
        if array.size == 1 and array.dtype.kind in "fiu":
            return float(array.reshape(()))
    return None


def read_tensorboard_dir(
    directory: str | os.PathLike, tag_kinds: Mapping[str, str] | None = None
) -> tuple[list[MetricEvent], TensorBoardReport]:
    """Read every event file under `directory` into events, one per (kind, step), merged.

    The same (tag, step) written twice (a resumed run re-logging steps into a new file) keeps the value
    written last by wall time.
    """
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    directory = Path(directory)
    if not directory.is_dir():
        raise TensorBoardEventsError(f"{directory}: not a directory")
    files = event_files(directory)
    if not files:
        raise TensorBoardEventsError(f"{directory}: no TensorBoard event files (*tfevents*)")
    report = TensorBoardReport(source=str(directory), files=[str(p.relative_to(directory)) for p in files])
    # (wall_time, file index, order in file) sorts writes from several processes into one timeline.
    points: list[tuple[float, int, int, str, int, str, float]] = []
    for file_index, path in enumerate(files):
        try:
            for order, event in enumerate(EventFileLoader(str(path)).Load()):
                if not event.HasField("summary"):
                    continue
                for value in event.summary.value:
                    number = _scalar(value)
                    if number is None:
                        report.non_scalar_values += 1
                        continue
                    kind = kind_of_tag(value.tag, tag_kinds)
                    if kind is None:
                        report.skipped_tags[value.tag] = report.skipped_tags.get(value.tag, 0) + 1
                        continue
                    if event.step < 0:
                        raise TensorBoardEventsError(f"{path}: tag {value.tag!r} has negative step {event.step}")
                    report.scalars += 1
                    points.append((event.wall_time, file_index, order, kind, int(event.step), value.tag, number))
        except TensorBoardEventsError:
            raise
        except Exception as exc:  # a corrupt record: name the file rather than surface a protobuf error
            raise TensorBoardEventsError(f"{path}: cannot read TensorBoard events ({exc})") from exc
    points.sort(key=lambda p: (p[0] if math.isfinite(p[0]) else 0.0, p[1], p[2]))
    merged: dict[tuple[str, int], dict[str, float]] = {}
    for _, _, _, kind, step, tag, number in points:
        merged.setdefault((kind, step), {})[tag] = number
    events = [MetricEvent(kind, step, metrics) for (kind, step), metrics in merged.items()]
    for event in events:
        report.events[event.kind] = report.events.get(event.kind, 0) + 1
    for message in report.warnings():
        log.warning(message)
    return events, report
