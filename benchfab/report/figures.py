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
        ax.set_xlabel("message size (bytes, binary prefixes)")


def _value_axis(ax: Any, values: list[float], band_tops: list[float], ylabel: str, wrap: int = 70) -> None:
    """The one y-axis rule (analysis.y_scale) over everything drawn, band included."""
    ylabel = textwrap.fill(ylabel, wrap)
    if y_scale(values, band_tops) == "log":
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
        ylabel += "\nlog scale (values or their tail span decades)"
    else:
        ax.set_ylim(bottom=0)  # the top stays autoscaled to the data and the band
    ax.set_ylabel(ylabel, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)


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
    fig, ax = plt.subplots(figsize=(12.5 if legend_outside else 9, 5.5), dpi=110)
    all_sizes: list[int] = []
    values: list[float] = []
    band_tops: list[float] = []
    for curve in data.values():
        first = curve.iloc[0]
        color, marker, linestyle = curve_style(test_ids.index((first["run_id"], first["test_id"])), bool(first["in_place"]))
        y = curve[column] * scale
        ax.plot(curve["size_bytes"], y, marker=marker, markersize=4.5, linewidth=1.4, color=color,
                linestyle=linestyle, label=f"{first['run_id']}: {curve_label(curve)}" if several_runs else curve_label(curve))
        if band is not None and curve[band].notna().any():
            # The tail (p99) as a shaded band above the typical value.
            top = curve[band] * scale
            ax.fill_between(curve["size_bytes"], y, top, color=color, alpha=0.15)
            band_tops.extend(float(v) for v in top.dropna().tolist())
        all_sizes.extend(int(s) for s in curve["size_bytes"])
        values.extend(float(v) for v in y.tolist())
    _size_axis(ax, all_sizes)
    _value_axis(ax, values, band_tops, fig_spec.ylabel)
    ax.set_title(f"{fig_spec.title}\n{subtitle}", fontsize=10)
    if legend_outside:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, handlelength=3.0,
                  ncol=1 if len(data) <= 24 else 2)
    else:
        ax.legend(fontsize=7, loc="best", handlelength=3.0)  # long enough to show dashes
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
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(10.5, 2.0 + sum(PANEL_HEIGHTS[p] for p in panels)),
                             dpi=110, gridspec_kw={"height_ratios": [PANEL_HEIGHTS[p] for p in panels]})
    ax = dict(zip(panels, axes))
    sizes: list[int] = []
    values: list[float] = []
    band_tops: list[float] = []
    for g, comp in enumerate(comparisons):
        marker = MARKERS[g % len(MARKERS)]
        for curve in comp.curves:
            color = PALETTE[profiles.index(curve.profile) % len(PALETTE)]
            pts = curve.points
            y = pts["value"] * scale
            label = curve.label if len(comparisons) == 1 else f"{comp.label} · {curve.label}"
            ax["values"].plot(pts["size_bytes"], y, marker=marker, markersize=4.5, linewidth=1.4, color=color,
                              label=label)
            if pts["band"].notna().any():
                top = pts["band"] * scale
                ax["values"].fill_between(pts["size_bytes"], y, top, color=color, alpha=0.15)
                band_tops.extend(float(v) for v in top.dropna().tolist())
            if has_rate and fig_spec.bits_per_unit is not None and pts["link_rate_bps"].notna().any():
                pct = pts["value"] * fig_spec.bits_per_unit / pts["link_rate_bps"] * 100
                ax["line_rate"].plot(pts["size_bytes"], pct, marker=marker, markersize=4, linewidth=1.2, color=color)
            sizes.extend(int(s) for s in pts["size_bytes"])
            values.extend(float(v) for v in y.tolist())
        for curve, ratio in comp.ratios():
            if ratio.empty:
                continue
            color = PALETTE[profiles.index(curve.profile) % len(PALETTE)]
            ax["ratio"].plot(ratio.index, ratio.values, marker=marker, markersize=4, linewidth=1.2, color=color,
                             label=f"{curve.profile} / {comp.curves[0].profile}")
    _value_axis(ax["values"], values, band_tops, fig_spec.ylabel, wrap=40)
    ax["values"].set_title(f"{fig_spec.title}, per profile\n{subtitle}", fontsize=10)
    ax["values"].legend(fontsize=7, loc="best")
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
