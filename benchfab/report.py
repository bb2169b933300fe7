"""``benchfab report RUN [RUN...]``: PNG curves, summary.md and a self-contained
report.html of one run or several.

Figures (each workload family declares its FigureSpecs; this module draws them):
- per test: the figure's column vs message size, log2 size axis with binary labels,
  one line per test (solid out-of-place, dashed in-place);
- per profile (``*-profiles.png``, when two or more profiles measured the same key):
  one curve per profile, its tail band, the % of line rate where the link's rate is
  known, and a ratio panel against the reference profile (RoCE / IB, SR-IOV / shared);
- per node pair (``pairs-*.png``, all-pairs runs on three nodes or more): a node x
  node heatmap at the largest size (bandwidth) or the smallest (latency), nodes by
  topology label, the slowest pairs listed under it in summary.md.
Units are in the axis labels, as benchfab.units names them (docs/UNITS.md).

Every figure follows the same two rules:
- y axis: linear from zero, or log when the values span more than
  ``analysis.LOG_Y_RATIO`` (100x), or a tail band reaches more than
  ``analysis.TAIL_LOG_RATIO`` (10x) above the lowest line point; a linear axis
  that starts near the data makes a 12 -> 21 -> 15 Gb/s wobble look like a collapse.
- styles: each test gets a (colour, marker) pair that no other test of the
  figure has (10 colours x 7 markers, periods coprime: 70 distinct pairs, then
  a second pair of line styles: 140 tests), so curves stay apart beyond
  matplotlib's 10-colour cycle.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

# Files only; never needs a display. A backend the user chose is kept: Jupyter's kernel sets
# MPLBACKEND to its inline backend, so a notebook shows the figures these functions draw.
if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.figure
import matplotlib.patches
import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from .analysis import (
    COMPARE_KEYS,
    curve_label,
    curves,
    pair_matrix,
    pair_rows,
    profile_comparisons,
    size_ticks,
    slowest_pairs,
    y_scale,
)
from .diagnosis import load_diagnosis, verdict_markdown
from .errors import UsageError
from .runfacts import run_facts
from .store import Run
from .tables import md_cell, num
from .units import figure, format_size
from .untrusted import markdown_code
from .verdicts import noise_text, read_verdicts
from .workloads import FAMILIES, FIGURES, FigureSpec
from .workloads.point_to_point import locality_lines

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
HEATMAP_ANNOTATE_MAX = 16  # nodes; beyond this the cells are too small for their numbers
SLOWEST_PAIRS = 5
MARK_COLOR = "#d62728"
NO_COMMON_SIZES = "no ratio: no message size was measured on the reference profile and another"


@dataclass(frozen=True)
class ReportInput:
    """What one report is drawn from: one run or several (``benchfab report A B``)."""

    runs: tuple[Run, ...]

    @property
    def summary(self) -> pd.DataFrame:
        """Every run's summary rows, each row's run_id the id of the run it was read from (as
        the report's headings name it): a copied or renamed run's rows never merge with the
        original's in a table row or a curve."""
        frames = [r.summary.assign(run_id=r.run_id) for r in self.runs if not r.summary.empty]
        if not frames:
            return self.runs[0].summary
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    @property
    def subtitle(self) -> str:
        ids = [r.run_id for r in self.runs]
        return f"run {ids[0]}" if len(ids) == 1 else f"runs {', '.join(ids)}"

    @property
    def leaf(self) -> dict[str, str | None]:
        """Each node's topology label (leaf switch) from the runs' inventories, where the spec named one."""
        found: dict[str, str | None] = {}
        for run in self.runs:
            for node in (run.meta.get("inventory") or {}).get("nodes") or []:
                if isinstance(node, dict) and node.get("name") and node.get("leaf"):
                    found[str(node["name"])] = str(node["leaf"])
        return found


def _rows_of(summary: pd.DataFrame, fig_spec: FigureSpec) -> pd.DataFrame:
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
    data = curves(_rows_of(summary, fig_spec), fig_spec.column)
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
    comparisons = profile_comparisons(_rows_of(summary, fig_spec), fig_spec.column, fig_spec.band)
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


@dataclass(frozen=True)
class PairMap:
    """One heatmap of an all-pairs run: its file, what it shows, the matrix and the slowest pairs."""

    file: str
    title: str
    fig_spec: FigureSpec
    matrix: pd.DataFrame
    slowest: pd.DataFrame

    def draw(self, leaf: dict[str, str | None] | None = None, marks: Marks | None = None) -> matplotlib.figure.Figure:
        """The heatmap the report saves as ``file``, with ``marks`` (e.g. second_pass_marks) on it."""
        return draw_pair_heatmap(self.matrix, self.title, self.fig_spec.quantity, self.fig_spec.scale,
                                 self.fig_spec.higher_is_better, leaf, marks.nodes if marks else (),
                                 marks.pairs if marks else ())


def pair_maps(summary: pd.DataFrame, leaf: dict[str, str | None] | None = None) -> list[PairMap]:
    """A node x node map per figure with a ``pair_at`` size, profile and measurement
    measured between at least three nodes (fewer make a single cell)."""
    found: list[PairMap] = []
    rows = pair_rows(summary)
    for fig_spec in FIGURES:
        if fig_spec.pair_at is None:
            continue
        mine = _rows_of(rows, fig_spec)
        if mine.empty:
            continue
        mine = mine[mine[fig_spec.column].notna()]
        keys = [k for k in COMPARE_KEYS if k in mine.columns]
        for profile, of_profile in mine.groupby("profile", dropna=False, sort=True):
            groups = list(of_profile.groupby(keys, dropna=False, sort=True))
            for i, (key, group) in enumerate(groups):
                matrix = pair_matrix(group, fig_spec.column, fig_spec.pair_at, leaf)
                if len(matrix.index) < 3:
                    continue
                named = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
                suffix = f"-{i}" if len(groups) > 1 else ""  # one profile measured it in several ways
                file = f"pairs-{fig_spec.file.removesuffix('.png')}-{profile}{suffix}.png"
                title = (f"{named.get('workload')} on {profile}, {named.get('ranks')} ranks: "
                         f"{fig_spec.quantity} at {format_size(matrix.attrs['size_bytes'])}")
                found.append(PairMap(file, title, fig_spec, matrix,
                                     slowest_pairs(matrix, fig_spec.higher_is_better, SLOWEST_PAIRS)))
    return found


def draw_pair_heatmap(matrix: pd.DataFrame, title: str, value_label: str, scale: float = 1.0,
                      higher_is_better: bool = True, leaf: dict[str, str | None] | None = None,
                      marked_nodes: Sequence[str] = (),
                      marked_pairs: Sequence[tuple[str, str]] = ()) -> matplotlib.figure.Figure:
    """A node x node heatmap of ``analysis.pair_matrix``: darker is slower whichever way the
    metric points; nodes in the matrix's (topology) order with their leaf label, lines
    between leaves; ``marked_nodes`` (red, bold labels) and ``marked_pairs`` (red frames)
    show verdicts drawn on it, e.g. a second pass's suspects."""
    nodes = [str(n) for n in matrix.index]
    values = matrix.to_numpy(dtype=float) * scale
    size = max(4.5, 0.45 * len(nodes) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), dpi=110)
    # grey: pairs not measured (and the diagonal)
    cmap = plt.get_cmap("viridis" if higher_is_better else "viridis_r").with_extremes(bad="#eeeeee")
    image = ax.imshow(values, cmap=cmap, aspect="equal")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=value_label)
    labels_of = leaf or {}
    tick_labels = [f"{n} ({labels_of[n]})" if labels_of.get(n) else n for n in nodes]
    ax.set_xticks(range(len(nodes)))
    ax.set_yticks(range(len(nodes)))
    ax.set_xticklabels(tick_labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels(tick_labels, fontsize=7)
    marked = set(marked_nodes)
    for tick in (*ax.get_xticklabels(), *ax.get_yticklabels()):
        if tick.get_text().split(" (")[0] in marked:
            tick.set_color(MARK_COLOR)
            tick.set_fontweight("bold")
    for i in range(1, len(nodes)):  # leaf boundaries
        if labels_of.get(nodes[i]) != labels_of.get(nodes[i - 1]):
            ax.axhline(i - 0.5, color="white", linewidth=2)
            ax.axvline(i - 0.5, color="white", linewidth=2)
    if len(nodes) <= HEATMAP_ANNOTATE_MAX:
        finite = values[~pd.isna(values)]
        middle = float(finite.mean()) if finite.size else 0.0
        for r in range(len(nodes)):
            for c in range(len(nodes)):
                if not pd.isna(values[r, c]):
                    dark = (values[r, c] < middle) == higher_is_better
                    ax.text(c, r, f"{values[r, c]:.3g}", ha="center", va="center", fontsize=6,
                            color="white" if dark else "black")
    for a, b in marked_pairs:
        if a in nodes and b in nodes:
            for r, c in ((nodes.index(a), nodes.index(b)), (nodes.index(b), nodes.index(a))):
                ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False,
                                                          edgecolor=MARK_COLOR, linewidth=2))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Marks:
    """Nodes and pairs to mark on every heatmap, with why (e.g. a second pass's verdicts)."""

    nodes: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    why: str = "marked"


def second_pass_marks(runs: Sequence[Run]) -> Marks | None:
    """The nodes and links the runs' second passes gave a verdict (diagnosis.json), to mark."""
    nodes: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    for run in runs:
        diagnosis = load_diagnosis(run.path)
        if diagnosis is not None:
            found_nodes, found_pairs = diagnosis.marked()
            nodes |= found_nodes
            pairs |= found_pairs
    if not nodes and not pairs:
        return None
    return Marks(tuple(sorted(nodes)), tuple(sorted(pairs)), "second pass verdicts")


def write_report(runs: Run | Sequence[Run], out_dir: Path | None = None, marks: Marks | None = None) -> list[Path]:
    """Write the figures with data (busbw.png, time.png, p2p_bw.png, p2p_lat.png; *-profiles.png
    when more than one profile measured the same thing; pairs-*.png for all-pairs runs, with
    ``marks`` drawn on them), summary.md and report.html (one file, images embedded); return
    their paths.

    Several runs are drawn together; the default folder is report_dir's."""
    data = ReportInput(tuple([runs] if isinstance(runs, Run) else runs))
    if not data.runs:
        raise UsageError("report: no run given", hint="name at least one run id, or latest")
    marks = marks or second_pass_marks(data.runs)
    out = Path(out_dir) if out_dir else report_dir(data.runs)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: matplotlib.figure.Figure | None, name: str) -> None:
        if fig is None:
            return
        try:
            fig.savefig(out / name)
        finally:
            plt.close(fig)
        written.append(out / name)

    summary = data.summary
    for fig_spec in FIGURES:
        save(draw_curves(summary, fig_spec, data.subtitle), fig_spec.file)
    for fig_spec in FIGURES:
        save(build_profile_figure(summary, fig_spec, data.subtitle), profile_figure_file(fig_spec))
    maps = pair_maps(summary, data.leaf)
    for pm in maps:
        save(pm.draw(data.leaf, marks), pm.file)
    images = [p.name for p in written]
    md_text = markdown_report(data, images, maps, marks)
    md = out / "summary.md"
    md.write_text(md_text)
    written.append(md)
    html = out / "report.html"
    html.write_text(markdown_to_html(md_text, out, title=f"benchfab {data.subtitle}"))
    written.append(html)
    return written


def report_dir(runs: Sequence[Run]) -> Path:
    """Where a report goes by default: one run's own report/; several runs' a folder of their
    own, results/reports/A+B (so no run's own report is overwritten), the same for the same runs."""
    if len(runs) == 1:
        return runs[0].path / "report"
    name = "+".join(run.run_id for run in runs)
    if len(name) > 120:  # a folder name, not a list: the first id, how many more, and a digest of them all
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{runs[0].run_id}+{len(runs) - 1}-more-{digest}"
    return runs[0].path.parent / "reports" / name


def markdown_summary(run: Run, images: list[str]) -> str:
    """summary.md of one run (see markdown_report for several)."""
    return markdown_report(ReportInput((run,)), images, [])


def markdown_report(data: ReportInput, images: list[str], maps: Sequence[PairMap], marks: Marks | None = None) -> str:
    """The report's text: runs, tests, each family's tables, verdicts, slowest pairs, figures."""
    several = len(data.runs) > 1
    lines = [f"# benchfab {md_cell(data.subtitle)}", ""]
    for run in data.runs:
        if several:
            lines += [f"## Run `{markdown_code(run.run_id)}`", ""]
        lines += run_facts(run.meta)
        lines.append("")
    lines += ["## Tests", "", "| run | test | workload | profile | ranks | status | reason |",
              "|---|---|---|---|---|---|---|"]
    for run in data.runs:
        tests = run.tests.sort_values("test_id") if not run.tests.empty else run.tests
        for _, t in tests.iterrows():
            lines.append(f"| {md_cell(run.run_id)} | {md_cell(t['test_id'])} | {md_cell(t['workload'])} | {md_cell(t['profile'])} "
                         f"| {md_cell(t['ranks'])} | {md_cell(t['status'])} | {md_cell(t['reason'])} |")
    summary = data.summary
    for family in FAMILIES:
        lines += family.report_section(summary)
    for run in data.runs:
        lines += locality_lines(run.run_id, run.tests)
    for run in data.runs:
        lines += verdict_lines(run)
        diagnosis = load_diagnosis(run.path)
        if diagnosis is not None:
            lines += verdict_markdown(diagnosis)
    for pm in maps:
        lines += _pair_lines(pm, marks)
    shown = {pm.file for pm in maps}  # each heatmap stands in its pairs section
    rest = [name for name in images if name not in shown]
    if rest:
        lines += ["", "## Figures", ""] + [f"![{name}]({name})" for name in rest]
    return "\n".join(lines) + "\n"


def verdict_lines(run: Run) -> list[str]:
    """The run's verdicts (verdicts.json, written by a comparison) as a table; none without the file."""
    verdicts = read_verdicts(run.path)
    if verdicts is None:
        return []
    bad = len(verdicts.regressions)
    method = ", ".join(f"{k} {v}" for k, v in verdicts.method.items())
    factor = float(verdicts.method.get("factor") or 1.0)
    lines = ["", f"## Verdicts of `{markdown_code(verdicts.new)}` against {md_cell(verdicts.base_label)}", "",
             f"{bad} regression(s) in {len(verdicts.verdicts)} key(s); base run(s): "
             f"{md_cell(', '.join(verdicts.base_runs) or 'none')}; method: {md_cell(method)}.", ""]
    lines += [f"- **damaged**: {md_cell(d)}" for d in verdicts.damaged]
    lines += ["", "| key | metric | verdict | base median | new median | new/base | noise | cause |",
              "|---|---|---|---|---|---|---|---|"]
    # Regressions first, then the rest, each in the file's order.
    for v in sorted(verdicts.verdicts, key=lambda v: not v.regression):
        verdict = f"**{md_cell(v.verdict)}**" if v.regression else md_cell(v.label(factor))
        lines.append(f"| {md_cell(v.key_id)} | {md_cell(v.metric)} | {verdict} | {figure(v.metric, v.base_median)} "
                     f"| {figure(v.metric, v.new_median)} | {num(v.ratio, '.3f')} | {noise_text(v.noise)} "
                     f"| {md_cell(v.cause)} |")
    return lines


def _pair_lines(pm: PairMap, marks: Marks | None) -> list[str]:
    spec = pm.fig_spec
    unit = spec.quantity
    worse = "lowest" if spec.higher_is_better else "highest"
    lines = ["", f"## Pairs: {pm.title}", "", f"![{pm.file}]({pm.file})", "",
             f"Slowest pairs ({worse} first; vs median: the pair's value / the median pair's):", "",
             f"| node | node | {unit} | vs median |", "|---|---|---|---|"]
    for _, r in pm.slowest.iterrows():
        lines.append(f"| {md_cell(r['node_a'])} | {md_cell(r['node_b'])} | {r['value'] * spec.scale:.4g} | {r['vs_median']:.3f} |")
    if marks is None:
        return lines
    here = set(pm.matrix.index)
    shown = []
    nodes = [n for n in marks.nodes if n in here]
    if nodes:
        shown.append(f"nodes {md_cell(', '.join(nodes))}")
    pairs = [f"{a}-{b}" for a, b in marks.pairs if a in here and b in here]
    if pairs:
        shown.append(f"pairs {md_cell(', '.join(pairs))}")
    if shown:
        lines += ["", f"Marked in red ({marks.why}): {'; '.join(shown)}."]
    return lines


# -- HTML ------------------------------------------------------------------------------

HTML_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
th { background: #f0f0f0; }
td strong { color: #b00020; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""
# Markup this report writes inline: `code` and **bold**; a backslash-escaped ` or * (markdown_cell) is text.
_INLINE = re.compile(r"(?<!\\)`([^`]*)`|(?<!\\)\*\*([^*]*)\*\*")
_ESCAPED = re.compile(r"\\([\\`*\[\]<>&|])")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")


def _inline(text: str) -> str:
    """Escaped text with the markdown this report writes inline: `code` and **bold**."""
    def plain(part: str) -> str:  # markdown_cell's escapes and entities read back, then HTML-escaped
        return html.escape(html.unescape(_ESCAPED.sub(r"\1", part)))

    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(plain(text[pos:m.start()]))
        out.append(f"<code>{html.escape(m.group(1))}</code>" if m.group(1) is not None
                   else f"<strong>{plain(m.group(2))}</strong>")
        pos = m.end()
    out.append(plain(text[pos:]))
    return "".join(out)


def _table_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
    return [c.strip().replace("\\|", "|") for c in cells]


def markdown_to_html(md: str, image_dir: Path, title: str) -> str:
    """One self-contained HTML page of summary.md's text: headings, lists, tables, and
    each image embedded as a base64 data URI (the page opens anywhere, alone)."""
    body: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            head, rows = _table_cells(block[0]), [_table_cells(b) for b in block[2:]]
            body.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                        + "</tbody></table>")
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        image = _IMAGE.match(line)
        if image:
            data = base64.b64encode((image_dir / image.group(2)).read_bytes()).decode("ascii")
            body.append(f'<img alt="{html.escape(image.group(1))}" src="data:image/png;base64,{data}">')
        elif line.startswith("## "):
            body.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
        i += 1
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
