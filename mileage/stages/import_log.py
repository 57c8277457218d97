"""`mileage import-log`: an existing run's log -> the metric tables (mileage.metrics) and the training figures
(mileage.report), composed here, above both."""

from __future__ import annotations

import os

from mileage.metrics.import_log import ImportReport, import_log


def import_log_with_figures(log_path: str | os.PathLike, outdir: str | os.PathLike, plot: bool = True,
                            style: dict | None = None) -> ImportReport:
    if not plot:
        return import_log(log_path, outdir)
    from mileage.report.plots import plot_training  # matplotlib: only when figures are asked for

    return import_log(log_path, outdir, plot=lambda metrics, figures: plot_training(metrics, figures, style))
