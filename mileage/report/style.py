"""One seaborn style for every figure mileage draws, and byte-stable figure saving.

A style is a plain dict (it comes from the config as a Snakemake `params` value); every key is optional:

| key          | default              | meaning                                                           |
| ------------ | -------------------- | ----------------------------------------------------------------- |
| `context`    | `"paper"`            | seaborn context (`paper`, `notebook`, `talk`, `poster`)           |
| `palette`    | `"colorblind"`       | seaborn palette name                                              |
| `font_scale` | `1.0`                | seaborn font scale; every font size is then held at >= 7 pt       |
| `width_in`   | `3.3`                | figure width in inches (one column of a two-column paper)         |
| `page_width_in` | `6.9`             | width of the wide figures (loss panels, final scores): two columns |
| `height_in`  | `2.4`                | height of a one-panel figure in inches                            |
| `dpi`        | `300`                | raster resolution (PNG); PDFs are vector                          |
| `smoothing`  | `0.6`                | EMA weight of the past, in [0, 1): 0 = no smoothing. Same meaning |
|              |                      | as TensorBoard's smoothing slider (debiased EMA)                  |
| `formats`    | `["pdf", "png"]`     | files written per figure (`pdf`, `png`, `svg`)                    |

Figures are laid out with constrained layout, never `bbox_inches="tight"`, so a PNG is exactly
`width_in * dpi` pixels wide. Dates and software versions are left out of the file metadata so that the
same data give the same bytes on a rerun (PDF: no dates, producer or creator; fonts embedded as TrueType, Type 42).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from mileage.atomic import atomic_path  # noqa: E402

DEFAULT_STYLE: dict[str, Any] = {
    "context": "paper",
    "palette": "colorblind",
    "font_scale": 1.0,
    "width_in": 3.3,
    "page_width_in": 6.9,
    "height_in": 2.4,
    "dpi": 300,
    "smoothing": 0.6,
    "formats": ["pdf", "png"],
}

SUPPORTED_FORMATS = ("pdf", "png", "svg")
MIN_FONT_PT = 7.0
# DejaVu Sans ships inside matplotlib, so every machine renders the same glyphs.
FONT_FAMILY = "DejaVu Sans"

_FONT_SIZE_KEYS = (
    "font.size",
    "axes.labelsize",
    "axes.titlesize",
    "xtick.labelsize",
    "ytick.labelsize",
    "legend.fontsize",
    "legend.title_fontsize",
)

# Metadata that would change between runs (dates, versions) is dropped per format.
_STABLE_METADATA: dict[str, dict[str, Any]] = {
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
}


class StyleError(ValueError):
    """A plot style dict has an unknown key or a value of the wrong kind."""


def resolve_style(style: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return `style` merged over the defaults, validated; raises StyleError naming the bad key."""
    style = dict(style or {})
    unknown = sorted(set(style) - set(DEFAULT_STYLE))
    if unknown:
        raise StyleError(f"unknown plot style key(s) {unknown}; known keys: {sorted(DEFAULT_STYLE)}")
    merged = {**DEFAULT_STYLE, **style}

    for key in ("font_scale", "width_in", "page_width_in", "height_in", "dpi"):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise StyleError(f"plot style key {key!r} must be a positive number, got {value!r}")
    smoothing = merged["smoothing"]
    if smoothing is None:
        merged["smoothing"] = 0.0
    elif isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
        raise StyleError(f"plot style key 'smoothing' must be a number in [0, 1), got {smoothing!r}")
    for key in ("context", "palette"):
        if not isinstance(merged[key], str) or not merged[key]:
            raise StyleError(f"plot style key {key!r} must be a non-empty string, got {merged[key]!r}")

    formats = merged["formats"]
    if isinstance(formats, str):
        formats = [formats]
    if not isinstance(formats, (list, tuple)) or not formats:
        raise StyleError(f"plot style key 'formats' must be a non-empty list, got {formats!r}")
    bad = [f for f in formats if f not in SUPPORTED_FORMATS]
    if bad:
        raise StyleError(f"plot style key 'formats' has unsupported {bad}; supported: {list(SUPPORTED_FORMATS)}")
    merged["formats"] = list(dict.fromkeys(formats))
    return merged


def apply_style(style: dict[str, Any] | None = None) -> dict[str, Any]:
    """Set matplotlib/seaborn global state for `style`; returns the resolved style dict."""
    resolved = resolve_style(style)
    sns.set_theme(
        context=resolved["context"],
        style="ticks",
        palette=resolved["palette"],
        font_scale=float(resolved["font_scale"]),
        font=FONT_FAMILY,
    )
    rc: dict[str, Any] = {
        "figure.figsize": (float(resolved["width_in"]), float(resolved["height_in"])),
        "figure.dpi": float(resolved["dpi"]),
        "savefig.dpi": float(resolved["dpi"]),
        "figure.constrained_layout.use": True,
        "font.family": "sans-serif",
        "font.sans-serif": [FONT_FAMILY],
        "mathtext.fontset": "dejavusans",
        # TrueType in PDFs: text stays text (editable, searchable), as journals ask.
        "pdf.fonttype": 42,
        "svg.fonttype": "path",
        "svg.hashsalt": "mileage",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.linewidth": 0.4,
        "grid.alpha": 0.5,
        "legend.frameon": False,
    }
    for key in _FONT_SIZE_KEYS:
        size = matplotlib.rcParams[key]
        if isinstance(size, (int, float)):
            rc[key] = max(MIN_FONT_PT, float(size))
    matplotlib.rcParams.update(rc)
    return resolved


def new_figure(
    style: dict[str, Any], nrows: int = 1, ncols: int = 1, height_scale: float = 1.0, **kwargs: Any
) -> tuple[plt.Figure, Any]:
    """A figure of the style's width; height is `height_in * height_scale`."""
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(float(style["width_in"]), float(style["height_in"]) * height_scale),
        dpi=float(style["dpi"]),
        layout="constrained",
        **kwargs,
    )
    return fig, axes


def palette_colors(style: dict[str, Any], n: int) -> list[tuple[float, float, float]]:
    """`n` distinct colours from the style's palette (cycled if the palette is shorter)."""
    base = sns.color_palette(style["palette"])
    if n <= len(base):
        return list(base)[:n]
    return list(sns.color_palette(style["palette"], n_colors=n))


def smooth(values: pd.Series, smoothing: float) -> pd.Series:
    """Debiased exponential moving average (TensorBoard's smoothing): weight `smoothing` on the past."""
    if smoothing <= 0:
        return values.astype(float)
    return values.astype(float).ewm(alpha=1.0 - float(smoothing), adjust=True).mean()


def save_figure(fig: plt.Figure, outdir: str | os.PathLike, name: str, formats: Sequence[str]) -> list[Path]:
    """Write `fig` as `<outdir>/<name>.<fmt>` for each format, atomically, then close it."""
    outdir = Path(outdir)
    written: list[Path] = []
    try:
        for fmt in formats:
            if fmt not in SUPPORTED_FORMATS:
                raise StyleError(f"figure {name!r}: unsupported format {fmt!r}; supported: {list(SUPPORTED_FORMATS)}")
            target = outdir / f"{name}.{fmt}"
            with atomic_path(target) as tmp:
                # The temp file ends in .tmp, so the format must be explicit.
                fig.savefig(tmp, format=fmt, metadata=_STABLE_METADATA[fmt])
            written.append(target)
    finally:
        plt.close(fig)
    return written


def score_axis(ax: Axes, axis: str = "y") -> None:
    """A score axis in percent, as the tables print scores: values stay fractions, ticks read 0-100, and the axis
    starts at 0 and ends at or below 100 (no zoom that makes a 5-point gap look like the whole range)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PercentFormatter(xmax=1.0, symbol=""))
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    top = min(high, 1.0) if high > 0 else 1.0
    # Room for a marker at 100 so it is not cut in half by the frame.
    top = 1.02 if top >= 0.999 else top
    (ax.set_ylim if axis == "y" else ax.set_xlim)(0.0, top)


def legend_outside(fig: plt.Figure, handles: Sequence[Any], labels: Sequence[str], title: str | None = None,
                   where: str = "lower") -> Any:
    """A figure legend above (`where="upper"`) or below (`"lower"`) the axes, never on the data: constrained
    layout makes room for it, and the figure grows by the legend's height so the plot keeps its size. As many
    columns as fit the figure's width (measured); a label wider than the figure is wrapped onto several lines
    rather than cut at the figure's edge."""
    import textwrap

    if not handles:
        return None
    renderer = fig.canvas.get_renderer()
    room = fig.get_figwidth() * fig.dpi * 0.98
    labels, ncols, legend = list(labels), len(handles), None
    for _ in range(12):  # fewer columns, then wrapped labels, until the legend fits the figure's width
        if legend is not None:
            legend.remove()
        legend = fig.legend(handles, labels, loc=f"outside {where} center", ncols=ncols, title=title,
                            handlelength=1.6, columnspacing=1.2)
        width = legend.get_window_extent(renderer=renderer).width
        if width <= room:
            break
        if ncols > 1:
            ncols = max(1, int(ncols * room / width))
            continue
        longest = max(len(line) for text in [*labels, title or ""] for line in text.splitlines())
        fits = max(12, int(longest * room / width) - 2)
        labels = [textwrap.fill(" ".join(label.split()), fits) for label in labels]
        title = textwrap.fill(" ".join(title.split()), fits) if title else title
    # The figure grows by the legend's height, so the axes keep the size the style gives them.
    height = legend.get_window_extent(renderer=renderer).height / fig.dpi
    fig.set_figheight(fig.get_figheight() + height + 0.05)
    return legend


def is_number(value: Any) -> bool:
    """True for a finite int/float (not bool), as found in summaries."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))
