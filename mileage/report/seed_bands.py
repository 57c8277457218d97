"""The band across replicate seeds that every curve of a seeded result draws, and what to call it: one definition
for the per-run figures (mileage.report.plots) and the learning curves (mileage.report.curves)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats


def across_seeds(series: list[pd.Series]) -> pd.DataFrame:
    """Per step: `mean`, `low`, `high` and `n` (how many seeds logged the step). From three seeds on, low and high
    are the 95% Student-t interval across the seeds; two seeds are too few for one (a t with one degree of freedom
    spans 12.7 standard errors), so their band is the range of the two (band_label says which); one: NaN."""
    frame = pd.concat(series, axis=1)
    n = frame.notna().sum(axis=1)
    mean = frame.mean(axis=1)
    sem = frame.std(axis=1, ddof=1) / np.sqrt(n)
    half = pd.Series(scipy.stats.t.ppf(0.975, np.maximum(n - 1, 1)), index=frame.index) * sem
    low, high = mean - half, mean + half
    two = n == 2
    low[two], high[two] = frame.min(axis=1)[two], frame.max(axis=1)[two]
    low[n < 2], high[n < 2] = np.nan, np.nan
    return pd.DataFrame({"mean": mean, "low": low, "high": high, "n": n}).sort_index()


def band_label(n_seeds: int | set[int]) -> str:
    """What an across-seed band is (across_seeds) for `n_seeds`, or for experiments with these seed counts."""
    counts = {n for n in ({n_seeds} if isinstance(n_seeds, int) else n_seeds) if n > 1}
    if counts and min(counts) > 2:
        return f"95% CI across {counts.pop()} seeds" if len(counts) == 1 else "95% CI across seeds"
    if counts == {2}:
        return "range of 2 seeds (too few for a CI)"
    return "95% CI across seeds (the range where 2 seeds)"
