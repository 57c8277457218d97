"""Wide metric tables: `metrics/{rollout,train,perf,eval}.tsv` (docs/contracts.md, "Metric tables").

First column the kind's step key, then one column per metric sorted by name; rows sorted by step; an empty
cell means "not logged"; floats written with repr() so the same events always give the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from mileage.atomic import atomic_path
from mileage.metrics.events import KINDS, STEP_KEYS, MetricEvent, Number, coerce_number, merge_events

if TYPE_CHECKING:  # pandas is only needed by readers that ask for a DataFrame
    import pandas

Merged = Mapping[str, Mapping[int, Mapping[str, Number]]]


class MetricTableError(ValueError):
    """A metrics TSV that is not a wide table as the contract describes."""


def format_cell(value: Number) -> str:
    number = coerce_number(value)
    if number is None:
        raise MetricTableError(f"not a number: {value!r}")
    # repr() of a float is the shortest string that reads back to the same float.
    return repr(number)


def table_text(kind: str, steps: Mapping[int, Mapping[str, Number]]) -> str:
    """The TSV text of one kind. The metric named like the step key is the first column, not repeated."""
    step_key = STEP_KEYS[kind]
    columns = sorted({name for metrics in steps.values() for name in metrics} - {step_key})
    for name in columns:
        if "\t" in name or "\n" in name:
            raise MetricTableError(f"{kind} metric name {name!r} contains a tab or newline")
    lines = ["\t".join([step_key, *columns])]
    for step in sorted(steps):
        metrics = steps[step]
        cells = [str(int(step))]
        for name in columns:
            cells.append(format_cell(metrics[name]) if name in metrics else "")
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def write_tables(events: Iterable[MetricEvent] | Merged, outdir: str | os.PathLike) -> dict[str, Path]:
    """Write the four tables into `outdir` (each atomically); return {kind: path}.

    `events` is a sequence of MetricEvent (merged here) or the output of `merge_events`.
    """
    merged = events if isinstance(events, Mapping) else merge_events(events)
    unknown = set(merged) - set(KINDS)
    if unknown:
        raise MetricTableError(f"unknown event kind(s): {', '.join(sorted(unknown))}")
    outdir = Path(outdir)
    paths: dict[str, Path] = {}
    for kind in KINDS:
        path = outdir / f"{kind}.tsv"
        text = table_text(kind, merged.get(kind, {}))
        with atomic_path(path) as tmp:
            # newline="" keeps "\n" on every platform: the bytes must not depend on the OS.
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
        paths[kind] = path
    return paths


def parse_cell(cell: str) -> Number | None:
    if cell == "":
        return None
    try:
        return int(cell)
    except ValueError:
        return float(cell)  # repr() of a float always has '.', 'e', 'nan' or 'inf', so it never parses as int


def read_table(path: str | os.PathLike) -> tuple[list[str], list[dict[str, Number | None]]]:
    """Read one TSV: (columns, rows). Each row maps every column to its value, None for an empty cell."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0]:
        raise MetricTableError(f"{path}:1: no header line")
    columns = lines[0].split("\t")
    if columns[0] not in set(STEP_KEYS.values()):
        raise MetricTableError(f"{path}:1: first column {columns[0]!r} is not a step key")
    rows: list[dict[str, Number | None]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) != len(columns):
            raise MetricTableError(f"{path}:{lineno}: {len(cells)} cells, header has {len(columns)}")
        row: dict[str, Number | None] = {}
        for name, cell in zip(columns, cells):
            try:
                row[name] = parse_cell(cell)
            except ValueError:
                raise MetricTableError(f"{path}:{lineno}: column {name!r}: not a number: {cell!r}") from None
        if not isinstance(row[columns[0]], int):
            raise MetricTableError(f"{path}:{lineno}: step {cells[0]!r} is not an integer")
        rows.append(row)
    return columns, rows


def load_table(path: str | os.PathLike) -> "pandas.DataFrame":
    """One TSV as a DataFrame for plotting: the step column first, NaN where a metric was not logged."""
    import pandas as pd

    columns, rows = read_table(path)
    frame = pd.DataFrame.from_records(rows, columns=columns)
    if frame.empty:
        return frame.astype({columns[0]: "int64"})
    return frame.astype({columns[0]: "int64", **{c: "float64" for c in columns[1:]}})


def read_tables(metrics_dir: str | os.PathLike) -> dict[str, dict[int, dict[str, Number]]]:
    """Read the four tables back into {kind: {step: metrics}} (the shape `merge_events` returns)."""
    metrics_dir = Path(metrics_dir)
    merged: dict[str, dict[int, dict[str, Number]]] = {}
    for kind in KINDS:
        columns, rows = read_table(metrics_dir / f"{kind}.tsv")
        if columns[0] != STEP_KEYS[kind]:
            raise MetricTableError(f"{metrics_dir / f'{kind}.tsv'}:1: first column should be {STEP_KEYS[kind]!r}")
        merged[kind] = {
            int(row[columns[0]]): {k: v for k, v in row.items() if k != columns[0] and v is not None} for row in rows
        }
    return merged
