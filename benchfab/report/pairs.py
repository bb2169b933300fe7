"""Node x node heatmaps of all-pairs runs (``pairs-*.png``) and the marks drawn on them
(a second pass's verdicts)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.figure
import matplotlib.patches
import matplotlib.pyplot as plt
import pandas as pd

from ..analysis import COMPARE_KEYS, pair_matrix, pair_rows, slowest_pairs
from ..diagnosis import load_diagnosis
from ..store import Run
from ..units import format_size
from ..workloads import FIGURES, FigureSpec
from .figures import rows_of

HEATMAP_ANNOTATE_MAX = 16  # nodes; beyond this the cells are too small for their numbers
SLOWEST_PAIRS = 5
MARK_COLOR = "#d62728"


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
        mine = rows_of(rows, fig_spec)
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
    ax.set_title(textwrap.fill(title, int((size + 1.5) * 11)), fontsize=9)  # wrapped to the figure's width
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
