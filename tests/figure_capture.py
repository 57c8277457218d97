"""What a reader sees of each figure mileage saves, captured before the figure is closed (tests of the figures)."""

from __future__ import annotations

import matplotlib.colors

FIGURE_MODULES = ("mileage.report.plots", "mileage.report.curves", "mileage.report.forest",
                  "mileage.report.sweep_figure", "mileage.report.comparison_figures")


def capture_figures(monkeypatch) -> dict:
    """Every figure saved, by name: what a reader sees of it, read off the Figure before it is closed. `overlaps`:
    legends that cover part of an axes (a legend must sit off the data)."""
    import importlib

    figures: dict = {}

    def capture(fig, outdir, name, formats, real):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        axes = [ax for ax in fig.axes if ax.get_visible()]
        legends = [*fig.legends, *[a.get_legend() for a in axes if a.get_legend() is not None]]
        boxes = [lg.get_window_extent(renderer) for lg in legends]
        figures[name] = {
            "axes": [(ax.get_title() or ax.get_title("left"), ax.get_xlabel(), [line.get_xydata().copy() for line in ax.lines],
                      len(ax.collections)) for ax in axes],
            "titles": [ax.get_title("left") or ax.get_title() for ax in axes],
            "ylabels": [ax.get_ylabel() for ax in axes],
            "xscales": [ax.get_xscale() for ax in axes],
            "yticklabels": [[t.get_text() for t in ax.get_yticklabels()] for ax in axes],
            "ylims": [ax.get_ylim() for ax in axes],
            # Text as read: a label wrapped onto two lines reads as one.
            "legends": [" ".join(t.get_text().split()) for lg in legends for t in lg.get_texts()]
                       + [" ".join(lg.get_title().get_text().split()) for lg in legends if lg.get_title().get_text()],
            "overlaps": [i for i, box in enumerate(boxes) for ax in axes if box.overlaps(ax.get_window_extent(renderer))],
            "texts": [t.get_text() for ax in axes for t in ax.texts],
            # Single-point lines (markers): x, y and whether the marker is hollow (white face), per axes.
            "markers": [[(float(line.get_xdata()[0]), float(line.get_ydata()[0]),
                          matplotlib.colors.to_hex(line.get_markerfacecolor()) == "#ffffff")
                         for line in ax.lines if len(line.get_xdata()) == 1] for ax in axes],
            "size": (fig.get_figwidth(), fig.get_figheight()),
        }
        return real(fig, outdir, name, formats)

    for module_name in FIGURE_MODULES:
        module = importlib.import_module(module_name)
        real = module.save_figure
        monkeypatch.setattr(module, "save_figure", lambda fig, outdir, name, formats, real=real:
                            capture(fig, outdir, name, formats, real))
    return figures
