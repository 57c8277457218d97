"""docs/statistics.md agrees with the metric registry and with paired.tsv's columns: a metric added to the
registry, or a column added to the comparison, must be documented."""

from __future__ import annotations

import re
from pathlib import Path

from mileage.evaluation.comparison import COLUMNS
from mileage.evaluation.metrics import METRICS, compared_metrics, headline_metrics, metric_names

DOC = (Path(__file__).resolve().parents[1] / "docs" / "statistics.md").read_text(encoding="utf-8")


def table_after(heading: str) -> list[list[str]]:
    section = DOC.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]  # after the header and rule


def test_the_metric_table_is_the_registry():
    rows = {re.sub(r"`(\w+)@\w+`", r"\1", row[0]): row for row in table_after("## Metrics")}
    assert list(rows) == list(METRICS)
    for family, metric in METRICS.items():
        _, headline, compared, description = rows[family]
        assert headline.startswith("yes") == metric.headline, family
        assert compared.startswith("yes") == metric.compared, family
        assert description.startswith(metric.description.split(" (")[0].split(":")[0][:40]), family


def test_what_the_docs_say_of_pass_at_1_holds():
    assert "pass@1" in metric_names(8) and "pass@1" not in headline_metrics(8)
    assert compared_metrics(16) == ["avg@16", "pass@16", "maj@16"]


def test_every_paired_tsv_column_is_documented():
    documented = {name.strip("` ") for row in table_after("### `paired.tsv`") for name in row[0].split(",")}
    assert documented == set(COLUMNS)
