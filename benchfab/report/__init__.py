"""``benchfab report RUN [RUN...]``: PNG curves, summary.md and a self-contained
report.html of one run or several.

The package: figures.py draws the curves, pairs.py the heatmaps, markdown.py writes
summary.md, html_page.py turns it into report.html, and write_report (here) writes them all.

Figures (each workload family declares its FigureSpecs; figures.py and pairs.py draw them):
- per test: the figure's column vs message size, log2 size axis with binary labels,
  one line per test (solid with filled markers out-of-place, dashed with hollow ones
  in-place; the legend says so); a tail band, or a bar with a cap at a single size;
- per profile (``*-profiles.png``, when two or more profiles measured the same key):
  one curve per profile, its tail band, the % of line rate where the link's rate is
  known, and a ratio panel against the reference profile (RoCE / IB, SR-IOV / shared);
- per node pair (``pairs-*.png``, all-pairs runs on three nodes or more): a node x
  node heatmap at the largest size (bandwidth) or the smallest (latency), nodes by
  topology label, the slowest pairs listed under it in summary.md.
Units are in the axis labels, in words, as benchfab.units names them (docs/UNITS.md):
GB/s and Gb/s are decimal (1e9), as nccl-tests and perftest print them.

Every figure follows the same two rules:
- y axis: linear from zero, or log (fitted to the values drawn) when the values span more than
  ``analysis.LOG_Y_RATIO`` (100x), or a tail band reaches more than
  ``analysis.TAIL_LOG_RATIO`` (10x) above the lowest line point; a linear axis
  that starts near the data makes a 12 -> 21 -> 15 Gb/s wobble look like a collapse.
- styles: each test gets a (colour, marker) pair that no other test of the
  figure has (10 colours x 7 markers, periods coprime: 70 distinct pairs, then
  a second pair of line styles: 140 tests), so curves stay apart beyond
  matplotlib's 10-colour cycle.
"""


from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

# Files only; never needs a display. A backend the user chose is kept: Jupyter's kernel sets
# MPLBACKEND to its inline backend, so a notebook shows the figures these functions draw.
# Here, before any module of the package imports pyplot.
if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.figure
import matplotlib.pyplot as plt

from ..errors import UsageError
from ..store import Run
from ..workloads import FIGURES
from .figures import (
    LEGEND_INSIDE_MAX,
    LINESTYLES,
    MARKERS,
    NO_COMMON_SIZES,
    PALETTE,
    PANEL_HEIGHTS,
    build_figure,
    build_profile_figure,
    curve_style,
    draw_curves,
    profile_figure_file,
)
from .html_page import markdown_to_html
from .inputs import ReportInput
from .markdown import markdown_report, markdown_summary, verdict_lines
from .pairs import MARK_COLOR, Marks, PairMap, draw_pair_heatmap, pair_maps, second_pass_marks

__all__ = [
    "FIGURES",
    "LEGEND_INSIDE_MAX",
    "LINESTYLES",
    "MARKERS",
    "MARK_COLOR",
    "NO_COMMON_SIZES",
    "PALETTE",
    "PANEL_HEIGHTS",
    "Marks",
    "PairMap",
    "ReportInput",
    "build_figure",
    "build_profile_figure",
    "curve_style",
    "draw_curves",
    "draw_pair_heatmap",
    "markdown_report",
    "markdown_summary",
    "markdown_to_html",
    "pair_maps",
    "profile_figure_file",
    "report_dir",
    "second_pass_marks",
    "verdict_lines",
    "write_report",
]


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
