"""The evaluation metrics, one registry entry each: its name, its per-problem function, and where it is used.

A metric is a family spelled `<family>@<n>`: `avg@16`, `pass@4`. Each entry gives the value of one problem from
that problem's summary row (counts over its k samples), so every metric of a side is a mean over problems and one
bootstrap over problems gives all their intervals. Adding a metric is adding an entry here: the summaries, the
report's tables, the paired tests and docs/statistics.md (tested against this registry) all read it.

- `headline`: shown in the score tables (report, comparison, LaTeX) and tested final vs base in summary.json.
- `compared`: tested between experiments in the comparison (`paired.tsv`), so part of the family that Holm's
  adjustment runs over. Diagnostics (format rate, the format-free accuracy) are headline but not compared: each
  compared metric widens the family and so costs every comparison power.
- `at`: which n the family is computed at for a side of k samples: "k" (n = k), "1..k" (every n from 1 to k,
  the pass@n curve), and the headline/compared entries use `headline_at` ("k" or "1": pass@1 is left out of the
  headlines, since on a binary reward it equals avg@k and a table would repeat a number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


class MetricError(ValueError):
    """A metric name that the registry does not know, or rows that lack what a metric needs."""


def pass_at_j(n: int, c: int, j: int) -> float:
    """Unbiased pass@j from n samples with c correct: 1 - C(n-c, j) / C(n, j).

    Computed as a running product of ratios, which never forms the huge binomials.
    """
    if not 1 <= j <= n:
        raise MetricError(f"pass@{j} needs 1 <= j <= n (n={n})")
    if n - c < j:
        return 1.0
    miss = 1.0
    for i in range(j):
        miss *= (n - c - i) / (n - i)
    return 1.0 - miss


def _share(key: str) -> Callable[[dict, int], float]:
    def value(row: dict, _: int) -> float:
        if key not in row:
            raise MetricError(f"the summary's per-problem rows lack {key!r} (an older summary)")
        return float(row[key]) / float(row["n"])
    return value


@dataclass(frozen=True)
class Metric:
    family: str
    per_problem: Callable[[dict, int], float]  # (a summary's per-problem row, n of `<family>@<n>`) -> value in [0, 1]
    description: str
    at: str = "k"  # "k" or "1..k"
    headline_at: tuple[str, ...] = ("k",)  # which n of the family the headlines show ("k", "1")
    headline: bool = True
    compared: bool = True

    def names(self, k: int) -> list[str]:
        """Every name of this family for a side of k samples, in summary order."""
        ns = range(1, k + 1) if self.at == "1..k" else [k]
        return [f"{self.family}@{n}" for n in ns]

    def headline_names(self, k: int) -> list[str]:
        return [f"{self.family}@{k if at == 'k' else int(at)}" for at in self.headline_at]


METRICS: dict[str, Metric] = {m.family: m for m in (
    Metric("avg", lambda row, n: float(row["mean_reward"]),
           "mean reward over all k samples of each problem, averaged over problems (miles' `eval/<dataset>`)"),
    Metric("pass", lambda row, n: pass_at_j(int(row["n"]), int(row["n_correct"]), n),
           "unbiased pass@n: the chance that at least one of n samples drawn from the k is correct", at="1..k",
           headline_at=("k",)),
    Metric("maj", lambda row, n: 1.0 if row["majority_correct"] else 0.0,
           "majority-vote accuracy over the k samples, answers pooled by the reward's equivalence"),
    Metric("answer_avg", _share("n_answer_correct"),
           "share of samples whose last answer anywhere, in any format, is right by the reward's equivalence",
           compared=False),
    Metric("format", _share("n_formatted"),
           "share of samples in which the reward found an answer at all (the format the reward needs)",
           compared=False),
)}


def parse(name: str) -> tuple[Metric, int]:
    """(registry entry, n) of a metric name such as `maj@8`; MetricError naming the known families otherwise."""
    family, sep, n = str(name).partition("@")
    if not sep or family not in METRICS or not n.isdigit() or int(n) < 1:
        raise MetricError(f"unknown metric {name!r} (known: {', '.join(f'{f}@n' for f in METRICS)})")
    return METRICS[family], int(n)


def metric_names(k: int) -> list[str]:
    """Every metric of a side of k samples, in summary order."""
    return [name for metric in METRICS.values() for name in metric.names(k)]


def headline_metrics(k: int) -> list[str]:
    """The metrics the score tables show and summary.json tests final vs base (dropping repeats: pass@k is
    avg@k when k == 1)."""
    return list(dict.fromkeys(n for m in METRICS.values() if m.headline for n in m.headline_names(k)))


def compared_metrics(k: int) -> list[str]:
    """The metrics the comparison tests between experiments: the family Holm's adjustment runs over."""
    names = list(dict.fromkeys(n for m in METRICS.values() if m.compared for n in m.headline_names(k)))
    return [n for n in names if n in headline_metrics(k)]


def per_problem_scores(rows: list[dict[str, Any]], name: str) -> np.ndarray:
    """One metric's value for every per-problem row of a summary side (in row order)."""
    metric, n = parse(name)
    try:
        return np.array([metric.per_problem(row, n) for row in rows], dtype=float)
    except KeyError as exc:
        raise MetricError(f"metric {name!r}: the summary's per-problem rows lack {exc.args[0]!r}") from None
    except MetricError as exc:
        raise MetricError(f"metric {name!r}: {exc}") from None
