"""``benchfab report RUN``: PNG curves and a markdown summary of one run.

Figures: bus bandwidth vs message size and time per op vs message size, log2
size axis with binary labels, one line per test (solid out-of-place, dashed
in-place). Units are in the axis labels: GB/s = 1e9 B/s as nccl-tests prints.

Every figure follows the same two rules:
- y axis: linear from zero, or log when the values span more than
  ``analysis.LOG_Y_RATIO`` (100x); a linear axis that starts near the data
  makes a 12 -> 21 -> 15 Gb/s wobble look like a collapse.
- styles: each test gets a (colour, marker) pair that no other test of the
  figure has (10 colours x 7 markers, periods coprime: 70 distinct pairs, then
  a second pair of line styles: 140 tests), so curves stay apart beyond
  matplotlib's 10-colour cycle.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.figure
import matplotlib.pyplot as plt
import matplotlib.ticker

from .analysis import LOG_Y_RATIO, curve_label, curves, size_ticks, y_scale
from .diagnosis import load_diagnosis, verdict_markdown
from .store import Run
from .workloads import FAMILIES, FigureSpec

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


# Each family's figures, collectives first (busbw.png, time.png, p2p_bw.png, p2p_lat.png).
FIGURES: tuple[FigureSpec, ...] = tuple(fig for family in FAMILIES for fig in family.figures)


def build_figure(run: Run, fig_spec: FigureSpec) -> matplotlib.figure.Figure | None:
    """The figure of one FigureSpec, or None when the run has no data for it (caller closes it)."""
    summary = run.summary
    if not summary.empty:
        summary = summary[summary["workload"].isin(list(fig_spec.workloads))]
    data = curves(summary, fig_spec.column)
    if not data:
        return None
    column, scale, band = fig_spec.column, fig_spec.scale, fig_spec.band
    test_ids = sorted({c.iloc[0]["test_id"] for c in data.values()})
    legend_outside = len(data) > LEGEND_INSIDE_MAX
    fig, ax = plt.subplots(figsize=(12.5 if legend_outside else 9, 5.5), dpi=110)
    all_sizes: list[int] = []
    values: list[float] = []
    for curve in data.values():
        first = curve.iloc[0]
        color, marker, linestyle = curve_style(test_ids.index(first["test_id"]), bool(first["in_place"]))
        y = curve[column] * scale
        ax.plot(curve["size_bytes"], y, marker=marker, markersize=4.5, linewidth=1.4, color=color,
                linestyle=linestyle, label=curve_label(curve))
        if band is not None and curve[band].notna().any():
            # The tail (p99) as a shaded band above the typical value.
            ax.fill_between(curve["size_bytes"], y, curve[band] * scale, color=color, alpha=0.15)
        all_sizes.extend(int(s) for s in curve["size_bytes"])
        values.extend(float(v) for v in y.tolist())
    ax.set_xscale("log", base=2)
    if y_scale(values) == "log":
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    else:
        ax.set_ylim(bottom=0)  # the top stays autoscaled to the data (and the p99 band)
    ticks, labels = size_ticks(all_sizes)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, rotation=45)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("message size (bytes, binary prefixes)")
    ylabel = fig_spec.ylabel + (f"; log scale (values span > {LOG_Y_RATIO:g}x)" if ax.get_yscale() == "log" else "")
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(f"{fig_spec.title}\nrun {run.run_id}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if legend_outside:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, handlelength=3.0,
                  ncol=1 if len(data) <= 24 else 2)
    else:
        ax.legend(fontsize=7, loc="best", handlelength=3.0)  # long enough to show dashes
    fig.tight_layout()
    return fig


def write_report(run: Run, out_dir: Path | None = None) -> list[Path]:
    """Write busbw.png, time.png, p2p_bw.png, p2p_lat.png (those with data) and summary.md; return their paths."""
    out = Path(out_dir) if out_dir else run.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fig_spec in FIGURES:
        fig = build_figure(run, fig_spec)
        if fig is None:
            continue
        path = out / fig_spec.file
        try:
            fig.savefig(path)
        finally:
            plt.close(fig)
        written.append(path)
    md = out / "summary.md"
    md.write_text(markdown_summary(run, [p.name for p in written]))
    written.append(md)
    return written


def markdown_summary(run: Run, images: list[str]) -> str:
    meta = run.meta
    versions = meta.get("versions", {})
    lines = [
        f"# benchfab run `{run.run_id}`",
        "",
        f"- spec: `{meta.get('spec_path')}` ({meta.get('spec', {}).get('name')})",
        f"- status: {meta.get('status')}; started {meta.get('started')}, ended {meta.get('ended')}",
        f"- host: {meta.get('host', {}).get('hostname')}; benchfab {versions.get('benchfab')}, "
        f"torch {versions.get('torch')}, python {versions.get('python')}",
        f"- git: {(meta.get('git') or {}).get('revision', 'n/a')}",
        "",
        "## Tests",
        "",
        "| test | workload | ranks | status | reason |",
        "|---|---|---|---|---|",
    ]
    for _, t in run.tests.sort_values("test_id").iterrows() if not run.tests.empty else []:
        reason = str(t["reason"] or "").replace("|", "\\|")
        lines.append(f"| {t['test_id']} | {t['workload']} | {t['ranks']} | {t['status']} | {reason} |")
    for family in FAMILIES:
        lines += family.report_section(run.summary)
    diagnosis = load_diagnosis(run.path)
    if diagnosis is not None:
        lines += verdict_markdown(diagnosis)
    if images:
        lines += [""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"
