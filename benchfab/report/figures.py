"""The curves of a report: per test (``draw_curves``) and per profile (``build_profile_figure``),
drawn from the families' FigureSpecs with the one y-axis rule and the one style rule
(see the package's docstring)."""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib.figure
import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from ..analysis import curve_label, curves, profile_comparisons, size_ticks, y_scale
from ..store import Run
from ..workloads import FigureSpec

# Fixed (not from rcParams, which a user style could shorten): matplotlib's tab10.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # 7 is coprime with 10: (colour, marker) repeats after 70 tests
LINESTYLES = (("-", "--"), ("-.", ":"))  # (out-of-place, in-place); the second pair from test 70 on
LEGEND_INSIDE_MAX = 8  # more entries than this go beside the axes, where they hide no curve


def curve_style(index: int, in_place: bool = False) -> tuple[str, str, str]:
    """(colour, marker, linestyle) of the index-th test of a figure; distinct for 140 tests x in-place flag."""
    period = len(PALETTE) * len(MARKERS)
    family = LINESTYLES[(index // period) % len(LINESTYLES)]
    return PALETTE[index % len(PALETTE)], MARKERS[index % len(MARKERS)], family[1 if in_place else 0]


SIZE_LABEL = "message size (bytes; K, M, G = 1024, 1024², 1024³)"
LOG_MARGIN = 1.3  # a log axis ends this factor beyond the lowest and highest values drawn
TITLE_CHARS_PER_INCH = 9.5  # at the title's font size: wrap before it overflows the figure
SUBTITLE_CHARS_PER_INCH = 12.5
SINGLE_SIZE_MARKER = 8.0
FIGURE_WIDTH_PROFILES = 10.5  # inches

# Figure parts of a profile comparison: values, % of line rate (where the rate is known), ratio.
PANEL_HEIGHTS = {"values": 3.0, "line_rate": 1.3, "ratio": 1.5}
NO_COMMON_SIZES = "no ratio: no message size was measured on the reference profile and another"


def rows_of(summary: pd.DataFrame, fig_spec: FigureSpec) -> pd.DataFrame:
    """The summary rows of the figure's workloads."""
    if summary.empty:
        return summary
    return summary[summary["workload"].isin(list(fig_spec.workloads))]


def _size_axis(ax: Any, sizes: list[int], label: bool = True) -> None:
    ax.set_xscale("log", base=2)
    ticks, labels = size_ticks(sizes)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels if label else [], rotation=45)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    if label:
        ax.set_xlabel(SIZE_LABEL, fontsize=9)


def _value_axis(ax: Any, values: list[float], band_tops: list[float], ylabel: str, wrap: int = 70) -> None:
    """The one y-axis rule (analysis.y_scale) over everything drawn, band included. A log
    axis spans the data (and a margin), not the whole decades around it."""
    ylabel = textwrap.fill(ylabel, wrap)
    if y_scale(values, band_tops) == "log":
        ax.set_yscale("log")
        drawn = [v for v in values + band_tops if v > 0]
        ax.set_ylim(min(drawn) / LOG_MARGIN, max(drawn) * LOG_MARGIN)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
        if max(drawn) / min(drawn) < 1000:  # three decades or less: 2 and 5 labelled too, so the axis reads
            ax.yaxis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2.0, 5.0)))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
        ylabel += ", log scale"
    else:
        ax.set_ylim(bottom=0)  # the top stays autoscaled to the data and the band
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)


def _titles(ax: Any, title: str, subtitle: str, width_in: float) -> None:
    """The figure's title, wrapped to the figure's width, and under it the runs it shows, smaller."""
    sub = textwrap.fill(subtitle, max(40, int(width_in * SUBTITLE_CHARS_PER_INCH)))
    size = 8.0
    # The title sits above the subtitle: its offset, its lines at matplotlib's 1.2 line spacing, a gap.
    ax.set_title(textwrap.fill(title, max(30, int(width_in * TITLE_CHARS_PER_INCH))), fontsize=10.5,
                 pad=4 + size * 1.2 * (sub.count("\n") + 1) + 4)
    ax.annotate(sub, xy=(0.5, 1.0), xycoords="axes fraction", xytext=(0, 4), textcoords="offset points",
                ha="center", va="bottom", fontsize=size, color="#555555")


def _line(ax: Any, x: Any, y: Any, color: str, marker: str, linestyle: str, in_place: bool, label: str | None,
          markersize: float = 4.5, linewidth: float = 1.4) -> None:
    """One curve: in-place dashed with hollow markers, out-of-place solid and filled; a curve of
    one size (nothing to join) gets a larger marker."""
    ax.plot(x, y, marker=marker, markersize=SINGLE_SIZE_MARKER if len(x) == 1 else markersize, linewidth=linewidth,
            color=color, linestyle=linestyle, markerfacecolor="white" if in_place else color, label=label)


def _band(ax: Any, x: Any, y: Any, top: Any, color: str) -> None:
    """The tail (p99) above the typical value: shaded between the sizes, and a bar with a cap
    at a size measured alone (a shaded area one size wide would be a hairline)."""
    if len(x) == 1:
        ax.vlines(x, y, top, color=color, linewidth=6, alpha=0.3)
        ax.scatter(x, top, marker="_", s=120, color=color, linewidths=2)
    else:
        ax.fill_between(x, y, top, color=color, alpha=0.15)


def _legend_title(flags: set[bool]) -> str | None:
    """What the line styles mean, when a figure holds both in-place and out-of-place curves."""
    return "solid, filled: out-of-place\ndashed, hollow: in-place" if flags == {True, False} else None


def build_figure(run: Run, fig_spec: FigureSpec) -> matplotlib.figure.Figure | None:
    """The figure of one FigureSpec over one run, or None when it has no data (caller closes it)."""
    return draw_curves(run.summary, fig_spec, f"run {run.run_id}")


def draw_curves(summary: pd.DataFrame, fig_spec: FigureSpec, subtitle: str) -> matplotlib.figure.Figure | None:
    """One line per test (and in-place flag) of ``fig_spec``'s workloads, or None without data."""
    data = curves(rows_of(summary, fig_spec), fig_spec.column)
    if not data:
        return None
    column, scale, band = fig_spec.column, fig_spec.scale, fig_spec.band
    test_ids = sorted({(c.iloc[0]["run_id"], c.iloc[0]["test_id"]) for c in data.values()})
    several_runs = len({run_id for run_id, _ in test_ids}) > 1  # the same test id in two runs: name the run
    legend_outside = len(data) > LEGEND_INSIDE_MAX
    width = 12.5 if legend_outside else 9.0
    fig, ax = plt.subplots(figsize=(width, 5.5), dpi=110)
    all_sizes: list[int] = []
    values: list[float] = []
    band_tops: list[float] = []
    for curve in data.values():
        first = curve.iloc[0]
        in_place = bool(first["in_place"])
        color, marker, linestyle = curve_style(test_ids.index((first["run_id"], first["test_id"])), in_place)
        y = curve[column] * scale
        _line(ax, curve["size_bytes"], y, color, marker, linestyle, in_place,
              f"{first['run_id']}: {curve_label(curve)}" if several_runs else curve_label(curve))
        if band is not None and curve[band].notna().any():
            top = curve[band] * scale
            _band(ax, curve["size_bytes"], y, top, color)
            band_tops.extend(float(v) for v in top.dropna().tolist())
        all_sizes.extend(int(s) for s in curve["size_bytes"])
        values.extend(float(v) for v in y.tolist())
    _size_axis(ax, all_sizes)
    _value_axis(ax, values, band_tops, fig_spec.ylabel, wrap=50)
    _titles(ax, fig_spec.title, subtitle, width)
    title = _legend_title({bool(c.iloc[0]["in_place"]) for c in data.values()})
    if legend_outside:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, handlelength=3.0,
                  ncol=1 if len(data) <= 24 else 2, title=title, title_fontsize=7)
    else:
        ax.legend(fontsize=7, loc="best", handlelength=3.0, title=title, title_fontsize=7)  # long enough to show dashes
    fig.tight_layout()
    return fig


def profile_figure_file(fig_spec: FigureSpec) -> str:
    return fig_spec.file.removesuffix(".png") + "-profiles.png"


def build_profile_figure(summary: pd.DataFrame, fig_spec: FigureSpec,
                         subtitle: str) -> matplotlib.figure.Figure | None:
    """The same measurements on each profile, on one figure: a curve per profile (colour)
    and comparison group (marker), the tail band where the figure has one, the % of line
    rate where the link's rate is known, and each profile's ratio to the reference
    profile (analysis.profile_order: RoCE / IB, SR-IOV / shared). None when the rows hold
    fewer than two profiles of any measurement."""
    comparisons = profile_comparisons(rows_of(summary, fig_spec), fig_spec.column, fig_spec.band)
    if not comparisons:
        return None
    scale = fig_spec.scale
    profiles = list(dict.fromkeys(c.profile for comp in comparisons for c in comp.curves))
    has_rate = fig_spec.bits_per_unit is not None and any(
        c.points["link_rate_bps"].notna().any() for comp in comparisons for c in comp.curves)
    panels = ["values"] + (["line_rate"] if has_rate else []) + ["ratio"]
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(FIGURE_WIDTH_PROFILES, 2.0 + sum(PANEL_HEIGHTS[p] for p in panels)),
                             dpi=110, gridspec_kw={"height_ratios": [PANEL_HEIGHTS[p] for p in panels]})
    ax = dict(zip(panels, axes))
    sizes: list[int] = []
    values: list[float] = []
    band_tops: list[float] = []
    flags = {comp.key.get("in_place") is True for comp in comparisons}
    for g, comp in enumerate(comparisons):
        marker = MARKERS[g % len(MARKERS)]
        in_place = comp.key.get("in_place") is True
        linestyle = LINESTYLES[0][1 if in_place else 0]
        group = comp.label + (" out-of-place" if flags == {True, False} and not in_place else "")
        for curve in comp.curves:
            color = PALETTE[profiles.index(curve.profile) % len(PALETTE)]
            pts = curve.points
            y = pts["value"] * scale
            label = curve.label if len(comparisons) == 1 else f"{group} · {curve.label}"
            _line(ax["values"], pts["size_bytes"], y, color, marker, linestyle, in_place, label)
            if pts["band"].notna().any():
                top = pts["band"] * scale
                _band(ax["values"], pts["size_bytes"], y, top, color)
                band_tops.extend(float(v) for v in top.dropna().tolist())
            if has_rate and fig_spec.bits_per_unit is not None and pts["link_rate_bps"].notna().any():
                pct = pts["value"] * fig_spec.bits_per_unit / pts["link_rate_bps"] * 100
                _line(ax["line_rate"], pts["size_bytes"], pct, color, marker, linestyle, in_place, None,
                      markersize=4, linewidth=1.2)
            sizes.extend(int(s) for s in pts["size_bytes"])
            values.extend(float(v) for v in y.tolist())
        for curve, ratio in comp.ratios():
            if ratio.empty:
                continue
            color = PALETTE[profiles.index(curve.profile) % len(PALETTE)]
            _line(ax["ratio"], ratio.index, ratio.values, color, marker, linestyle, in_place,
                  f"{curve.profile} / {comp.curves[0].profile}", markersize=4, linewidth=1.2)
    _value_axis(ax["values"], values, band_tops, fig_spec.ylabel, wrap=40)
    _titles(ax["values"], f"{fig_spec.title}, per profile", subtitle, FIGURE_WIDTH_PROFILES)
    ax["values"].legend(fontsize=7, loc="best", handlelength=3.0, title=_legend_title(flags), title_fontsize=7)
    if has_rate:
        ax["line_rate"].set_ylim(bottom=0)
        ax["line_rate"].set_ylabel("% of line rate\n(link rate known)", fontsize=8)
        ax["line_rate"].grid(True, alpha=0.3)
    ax["ratio"].axhline(1.0, color="#444444", linewidth=0.8)
    better = "above 1: higher" if fig_spec.higher_is_better else "below 1: lower"
    ax["ratio"].set_ylabel(f"ratio to reference\n({better} is better)", fontsize=8)
    ax["ratio"].grid(True, alpha=0.3)
    handles, labels = ax["ratio"].get_legend_handles_labels()
    if handles:
        unique = dict(zip(labels, handles))
        ax["ratio"].legend(unique.values(), unique.keys(), fontsize=7, loc="best")
    else:  # e.g. imported reports that swept different size ranges
        ax["ratio"].text(0.5, 0.5, NO_COMMON_SIZES, transform=ax["ratio"].transAxes, ha="center", va="center",
                         fontsize=9, color="#444444")
    for name in panels:
        _size_axis(ax[name], sizes, label=name == panels[-1])
    fig.tight_layout()
    fig.align_ylabels(axes)
    return fig
