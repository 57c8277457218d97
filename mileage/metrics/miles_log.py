"""Parse a miles / slime stdout log into canonical metric events.

miles prints one metric line per kind and id (FACTS section 5, LOGS.md):
    (RolloutManager pid=1805485) [2026-04-15 07:57:53] rollout.py:1193 - perf 0: {'perf/rollout_time': 371.17, ...}
    step 0: {'train/step': 0, 'train/loss': 9.5e-07, ...}
Real logs add Ray actor prefixes, timestamps, ANSI colour codes, numpy/torch reprs (`np.float64(0.4)`,
`tensor(2.0, device='cuda:0')`), print each `step` line twice, interleave actors and end mid-line when a run
dies. The dict is read by walking its Python AST and accepting only literal shapes: the log is never eval()'d.
"""

from __future__ import annotations

import ast
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from mileage.metrics.events import MetricEvent, Number, collapse_events

log = logging.getLogger(__name__)

# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and two-byte escapes.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Ray's log deduplication appends this to a line repeated by several processes.
_RAY_REPEATED_RE = re.compile(r"\s*\[repeated \d+x across cluster\]\s*$")
# "<kind> <id>: {" at the start of the message: after line start or whitespace (Ray prefix, "file.py:N - ").
_METRIC_RE = re.compile(r"(?:^|\s)(rollout|step|perf|eval) ([^\s:{}]+): (\{.*)$")

_KIND_OF_WORD = {"rollout": "rollout", "step": "train", "perf": "perf", "eval": "eval"}

# Calls whose first argument is the number: numpy scalar reprs, torch tensors, float()/int().
_NUMBER_CALLS = frozenset(
    {"float", "int", "tensor", "torch.tensor"}
    | {
        f"{module}.{dtype}"
        for module in ("np", "numpy")
        for dtype in (
            "float64", "float32", "float16", "int64", "int32", "int16", "int8",
            "uint64", "uint32", "uint16", "uint8", "float_", "int_",
        )
    }
)
_NUMBER_NAMES = {"nan": math.nan, "NaN": math.nan, "inf": math.inf, "Infinity": math.inf}
_NUMBER_ATTRS = {"np.nan": math.nan, "numpy.nan": math.nan, "np.inf": math.inf, "numpy.inf": math.inf,
                 "math.nan": math.nan, "math.inf": math.inf, "torch.nan": math.nan, "torch.inf": math.inf}


class MilesLogError(ValueError):
    """A log that cannot be read as a miles log at all (missing, unreadable)."""


class _Unsupported(Exception):
    """A value in a metric dict that is not a number literal (kept out of the events, counted)."""


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _number(node: ast.AST) -> Number:
    """The number a literal AST node spells, or _Unsupported."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Unsupported(repr(value))
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.Name) and node.id in _NUMBER_NAMES:
        return _NUMBER_NAMES[node.id]
    if isinstance(node, ast.Attribute):
        name = _dotted(node)
        if name in _NUMBER_ATTRS:
            return _NUMBER_ATTRS[name]
    func = _dotted(node.func) if isinstance(node, ast.Call) else None
    if func in _NUMBER_CALLS and node.args:
        first = node.args[0]
        # float('nan') / float('inf'): the only string arguments that make sense here.
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            try:
                return float(first.value)
            except ValueError:
                raise _Unsupported(first.value) from None
        # tensor([2.0]): a one-element tensor prints its value in a list.
        if isinstance(first, ast.List) and len(first.elts) == 1:
            first = first.elts[0]
        value = _number(first)
        integral = func == "int" or ".int" in func or ".uint" in func
        return int(value) if integral and math.isfinite(value) else value
    raise _Unsupported(ast.dump(node)[:60])


def parse_metric_dict(text: str) -> tuple[dict[str, Number], int]:
    """Parse a printed metric dict; return (metrics, number of entries dropped for not being numbers).

    Raises SyntaxError (or ValueError) when `text` is not a dict literal at all.
    """
    tree = ast.parse(text.strip(), mode="eval")
    if not isinstance(tree.body, ast.Dict):
        raise ValueError("not a dict literal")
    metrics: dict[str, Number] = {}
    dropped = 0
    for key_node, value_node in zip(tree.body.keys, tree.body.values):
        # key_node is None for a `**spread` entry.
        if not (isinstance(key_node, ast.Constant) and isinstance(key_node.value, str)):
            dropped += 1
            continue
        try:
            metrics[key_node.value] = _number(value_node)
        except _Unsupported:
            dropped += 1
    return metrics, dropped


@dataclass
class LogParseReport:
    """What a parse saw: enough for a user to trust (or distrust) the tables it produced."""

    source: str
    lines_read: int = 0
    metric_lines: int = 0  # lines that look like "<kind> <id>: {...}", parsed or not
    parsed_lines: int = 0
    duplicate_lines: int = 0  # parsed lines merged into an earlier (kind, step): repeated step lines, 2nd perf line
    truncated_lines: int = 0  # the last line, cut off by a dying run
    dropped_values: int = 0  # dict entries that were not numbers
    events: dict[str, int] = field(default_factory=dict)  # merged events per kind
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (1-based line number, reason)

    def warnings(self) -> list[str]:
        out: list[str] = []
        if self.truncated_lines:
            out.append(f"{self.source}: skipped {self.truncated_lines} truncated last line (the run ended mid-line)")
        others = [(n, r) for n, r in self.skipped if not r.startswith("truncated")]
        if others:
            shown = "; ".join(f"line {n}: {r}" for n, r in others[:5])
            more = f" (and {len(others) - 5} more)" if len(others) > 5 else ""
            out.append(f"{self.source}: skipped {len(others)} metric line(s): {shown}{more}")
        if self.dropped_values:
            out.append(f"{self.source}: dropped {self.dropped_values} non-numeric metric value(s)")
        return out

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "lines_read": self.lines_read,
            "metric_lines": self.metric_lines,
            "parsed_lines": self.parsed_lines,
            "duplicate_lines": self.duplicate_lines,
            "truncated_lines": self.truncated_lines,
            "dropped_values": self.dropped_values,
            "events": dict(self.events),
            "skipped": [{"line": n, "reason": r} for n, r in self.skipped],
        }


def _clean(line: str) -> str:
    if "\x1b" in line:
        line = _ANSI_RE.sub("", line)
    line = line.rstrip()
    if line.endswith("cluster]"):
        line = _RAY_REPEATED_RE.sub("", line)
    return line


def parse_miles_lines(lines: Iterable[str], source: str = "<lines>") -> tuple[list[MetricEvent], LogParseReport]:
    """Parse log lines into events, one per (kind, step), merged in the order each first appeared."""
    report = LogParseReport(source=source)
    raw_events: list[MetricEvent] = []
    seen: set[tuple[str, int]] = set()
    failed: list[tuple[int, str, str]] = []  # (line number, reason, dict text) of metric lines that did not parse
    last_nonblank = 0
    lineno = 0
    for lineno, raw in enumerate(lines, start=1):
        if raw.strip():
            last_nonblank = lineno
        # Cheap prefilter: every metric line holds a "{"; most noise lines do not.
        if "{" not in raw:
            continue
        line = _clean(raw)
        match = _METRIC_RE.search(line)
        if match is None:
            continue
        word, ident, body = match.groups()
        kind = _KIND_OF_WORD[word]
        report.metric_lines += 1
        if not ident.isdigit():
            report.skipped.append((lineno, f"{word} id {ident!r} is not a number"))
            continue
        try:
            metrics, dropped = parse_metric_dict(body)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            reason = "elided dict ('...')" if "..." in body else "unparseable dict"
            failed.append((lineno, f"{word} {ident}: {reason}", body))
            continue
        report.dropped_values += dropped
        step = int(ident)
        if kind == "train":
            # FACTS: train/step = rollout_id x steps_per_rollout + step_id; trust the dict's own value if printed.
            printed = metrics.get("train/step")
            if isinstance(printed, (int, float)) and math.isfinite(printed) and printed >= 0 and printed == int(printed):
                step = int(printed)
        if not metrics:
            report.skipped.append((lineno, f"{word} {ident}: no numeric metrics"))
            continue
        report.parsed_lines += 1
        if (kind, step) in seen:
            report.duplicate_lines += 1
        seen.add((kind, step))
        raw_events.append(MetricEvent(kind, step, metrics))
    report.lines_read = lineno
    for failed_lineno, reason, _ in failed:
        if failed_lineno == last_nonblank and "elided" not in reason:
            report.truncated_lines += 1
            report.skipped.append((failed_lineno, f"truncated last line ({reason})"))
        else:
            report.skipped.append((failed_lineno, reason))
    report.skipped.sort()
    events = collapse_events(raw_events)
    report.events = {}
    for event in events:
        report.events[event.kind] = report.events.get(event.kind, 0) + 1
    for message in report.warnings():
        log.warning(message)
    return events, report


def parse_miles_log(path: str | os.PathLike) -> tuple[list[MetricEvent], LogParseReport]:
    """Parse a log file. Undecodable bytes are replaced, "\\r" (progress bars) splits lines like "\\n"."""
    path = Path(path)
    if not path.is_file():
        raise MilesLogError(f"{path}: no such log file")
    with open(path, encoding="utf-8", errors="replace", newline=None) as fh:
        return parse_miles_lines(fh, source=str(path))
