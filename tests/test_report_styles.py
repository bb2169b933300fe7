"""Report figures with many curves, their y axes, and the tcp BW peak, on stored runs.

The runs are written through the real store (RunStore.write_test) from the example
run's rows, so the report reads them exactly as it reads a sweep's results.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.collections import LineCollection

import benchfab
from benchfab.analysis import LOG_Y_RATIO, p2p_table, y_scale
from benchfab.report import FIGURES, build_figure, curve_style, draw_curves, write_report
from benchfab.report.figures import LOG_MARGIN, SINGLE_SIZE_MARKER
from benchfab.store import RunStore
from benchfab.workloads.point_to_point import TCP_NO_PEAK, format_p2p_table
from tests.helpers import ROOT

EXAMPLE = ROOT / "results" / "example"
N_TESTS = 12  # more than matplotlib's 10-colour cycle


def _store_copies(store: RunStore, example: benchfab.Run, template: str, copies: list[tuple[str, dict]]) -> None:
    """Store one test per (test_id, column overrides), copied from the example's test ``template``."""
    rows = example.summary[example.summary.test_id == template]
    test_row = example.tests[example.tests.test_id == template].iloc[0].to_dict()
    for test_id, overrides in copies:
        summary = rows.copy()
        summary["run_id"] = store.run_id
        summary["test_id"] = test_id
        for col, value in overrides.items():
            summary[col] = value(summary) if callable(value) else value
        store.write_test({**test_row, "run_id": store.run_id, "test_id": test_id}, summary.to_dict("records"), [])


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> benchfab.Run:
    """12 collectives (both in-place flags: 24 busbw curves), 12 verbs bandwidth tests
    wobbling 12 -> 21 -> 15 Gb/s, and the example's tcp bandwidth test."""
    example = benchfab.load_run(EXAMPLE)
    root = tmp_path_factory.mktemp("runs")
    store = RunStore(root, "many-curves")
    store.write_meta({**example.meta, "run_id": "many-curves"})
    _store_copies(store, example, "000-allreduce-2r",
                  [(f"{i:03d}-allreduce", {"busbw_Bps": lambda s, i=i: s["busbw_Bps"] * (1 + 0.05 * i)})
                   for i in range(N_TESTS)])
    bw_rows = example.summary[example.summary.test_id == "006-tcp-write-bw"]
    wobble = [12e9 / 8, 21e9 / 8, 15e9 / 8, 18e9 / 8, 20e9 / 8][: len(bw_rows)]
    _store_copies(store, example, "006-tcp-write-bw",
                  [(f"{100 + i:03d}-verbs-bw", {"transport": "verbs", "bw_avg_Bps": [w * (1 + 0.02 * i) for w in wobble],
                                                 "bw_peak_Bps": [w * (1.1 + 0.02 * i) for w in wobble]})
                   for i in range(N_TESTS)])
    _store_copies(store, example, "006-tcp-write-bw", [("200-tcp-bw", {})])
    return benchfab.load_run(root / "many-curves")


def _figure(run: benchfab.Run, file: str) -> plt.Figure:
    fig = build_figure(run, next(f for f in FIGURES if f.file == file))
    assert fig is not None
    return fig


@pytest.mark.parametrize("file, curves", [("busbw.png", 2 * N_TESTS), ("p2p_bw.png", N_TESTS + 1)])
def test_every_curve_has_its_own_style(many: benchfab.Run, file: str, curves: int) -> None:
    fig = _figure(many, file)
    try:
        lines = fig.axes[0].get_lines()
        styles = [(line.get_color(), line.get_marker(), line.get_linestyle()) for line in lines]
        assert len(lines) == curves
        assert len(set(styles)) == len(styles), styles
        # The legend names each curve once, with the style it is drawn in.
        legend = fig.axes[0].get_legend()
        assert len(legend.get_lines()) == curves
    finally:
        plt.close(fig)


def test_curve_styles_stay_distinct_well_past_the_colour_cycle() -> None:
    styles = [curve_style(i, in_place) for i in range(140) for in_place in (False, True)]
    assert len(set(styles)) == len(styles)
    # Neighbouring tests differ in colour and in marker, not only in one of them.
    for i in range(139):
        (c1, m1, _), (c2, m2, _) = curve_style(i), curve_style(i + 1)
        assert c1 != c2 and m1 != m2


def test_p2p_bandwidth_axis_starts_at_zero(many: benchfab.Run) -> None:
    fig = _figure(many, "p2p_bw.png")
    try:
        ax = fig.axes[0]
        assert ax.get_yscale() == "linear"
        bottom, top = ax.get_ylim()
        assert bottom == 0 and top >= max(v for line in ax.get_lines() for v in line.get_ydata())
    finally:
        plt.close(fig)


def test_busbw_over_decades_is_log_and_by_the_same_rule(many: benchfab.Run) -> None:
    fig = _figure(many, "busbw.png")
    try:
        ax = fig.axes[0]
        values = [v for line in ax.get_lines() for v in line.get_ydata()]
        assert max(values) / min(v for v in values if v > 0) > LOG_Y_RATIO  # 8 B ... 8 MB: decades
        assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    finally:
        plt.close(fig)
    assert y_scale([12, 21, 15]) == "linear" and y_scale([0.001, 1.0]) == "log" and y_scale([1, 100]) == "linear"


def test_tcp_bandwidth_has_no_peak_column(many: benchfab.Run) -> None:
    rows = many.summary[many.summary.test_id == "200-tcp-bw"].to_dict("records")
    # The stored tcp peak really is far above the average: the reason it is not shown.
    assert max(r["bw_peak_Bps"] / r["bw_avg_Bps"] for r in rows) > 2
    tcp = format_p2p_table("200-tcp-bw", "rdma_write_bw", rows)
    assert "BW peak" not in tcp.splitlines()[2] and TCP_NO_PEAK in tcp and "BW average[Gb/sec]" in tcp
    assert len(tcp.splitlines()[-1].split()) == 4  # bytes, iterations, BW average, MsgRate
    verbs = format_p2p_table("100-verbs-bw", "rdma_write_bw",
                             many.summary[many.summary.test_id == "100-verbs-bw"].to_dict("records"))
    assert "BW peak[Gb/sec]" in verbs and TCP_NO_PEAK not in verbs
    table = p2p_table(many.summary).set_index("test_id")
    assert pd.isna(table.loc["200-tcp-bw", "max_bw_peak_Gbps"])
    assert table.loc["100-verbs-bw", "max_bw_peak_Gbps"] == pytest.approx(21 * 1.1)


def test_report_of_many_curves(many: benchfab.Run, tmp_path: Path) -> None:
    paths = write_report(many, tmp_path)
    assert sorted(p.name for p in paths) == ["busbw.png", "p2p_bw.png", "report.html", "summary.md", "time.png"]
    md = (tmp_path / "summary.md").read_text()
    p2p_lines = [line for line in md.splitlines() if "| rdma_write_bw | tcp |" in line or "| rdma_write_bw | verbs |" in line]
    # columns: run, profile, test, workload, transport, engine, BW average, BW peak, t_typical
    tcp_line = next(line for line in p2p_lines if line.split("|")[3].strip() == "200-tcp-bw")
    assert tcp_line.split("|")[1].strip() == many.run_id and tcp_line.split("|")[8].strip() == "-"  # max BW peak
    verbs_line = next(line for line in p2p_lines if line.split("|")[3].strip() == "100-verbs-bw")
    assert float(verbs_line.split("|")[8]) == pytest.approx(21 * 1.1, rel=1e-3)
    assert "left out (-) for tcp" in md


def test_a_log_axis_spans_the_data_not_the_decades_around_it(many: benchfab.Run) -> None:
    fig = _figure(many, "busbw.png")
    try:
        ax = fig.axes[0]
        drawn = [float(y) for line in ax.get_lines() for y in line.get_ydata() if y > 0]
        low, high = ax.get_ylim()
        assert ax.get_yscale() == "log"
        assert low == pytest.approx(min(drawn) / LOG_MARGIN) and high == pytest.approx(max(drawn) * LOG_MARGIN)
    finally:
        plt.close(fig)


def test_labels_say_what_in_words_and_in_place_differs_by_line_and_marker(many: benchfab.Run) -> None:
    fig = _figure(many, "busbw.png")
    try:
        ax = fig.axes[0]
        assert ax.get_xlabel().startswith("message size (bytes")
        assert ax.get_ylabel().startswith("bus bandwidth (GB/s)")
        lines = {line.get_label(): line for line in ax.get_lines()}
        out, inp = lines["000-allreduce (gloo, out-of-place)"], lines["000-allreduce (gloo, in-place)"]
        assert (out.get_linestyle(), inp.get_linestyle()) == ("-", "--")
        assert out.get_markerfacecolor() == out.get_color() and inp.get_markerfacecolor() == "white"
        assert ax.get_legend().get_title().get_text() == "solid, filled: out-of-place\ndashed, hollow: in-place"
    finally:
        plt.close(fig)


def test_titles_stay_inside_the_figure(many: benchfab.Run) -> None:
    """A report of many runs: the subtitle names them all, wrapped, in a smaller font than the title."""
    fig = draw_curves(many.summary, next(f for f in FIGURES if f.file == "p2p_bw.png"),
                      "runs " + ", ".join(f"20261204-0{i}00-nightly-ib-vs-roce" for i in range(8)))
    assert fig is not None
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        (subtitle,) = ax.texts
        width = fig.bbox.width
        for text in (ax.title, subtitle):
            box = text.get_window_extent()
            assert box.x0 >= 0 and box.x1 <= width, (text.get_text(), box, width)
        assert subtitle.get_fontsize() < ax.title.get_fontsize() and "\n" in subtitle.get_text()
        assert not ax.title.get_window_extent().overlaps(subtitle.get_window_extent())
    finally:
        plt.close(fig)


def test_a_latency_measured_at_one_size_shows_its_tail(tmp_path: Path) -> None:
    """A single-size latency test: a large marker and a bar from median to p99 (a shaded
    area one size wide is a hairline)."""
    example = benchfab.load_run(EXAMPLE)
    store = RunStore(tmp_path, "one-size")
    store.write_meta({**example.meta, "run_id": "one-size"})
    one = example.summary[example.summary.test_id == "007-tcp-write-lat"].iloc[:1].copy()
    one["run_id"], one["lat_median_s"], one["lat_p99_s"] = "one-size", 30e-6, 45e-6
    test_row = example.tests[example.tests.test_id == "007-tcp-write-lat"].iloc[0].to_dict()
    store.write_test({**test_row, "run_id": "one-size"}, one.to_dict("records"), [])
    fig = _figure(benchfab.load_run(tmp_path / "one-size"), "p2p_lat.png")
    try:
        ax = fig.axes[0]
        (line,) = ax.get_lines()
        assert line.get_markersize() == SINGLE_SIZE_MARKER
        (bar,) = [c for c in ax.collections if isinstance(c, LineCollection)]
        (x0, y0), (x1, y1) = bar.get_segments()[0]
        assert x0 == x1 == one["size_bytes"].iloc[0] and (y0, y1) == pytest.approx((30.0, 45.0))
        assert bar.get_linewidth()[0] >= 4  # points: a bar, not a hairline
        assert ax.get_ylim()[1] >= 45.0
    finally:
        plt.close(fig)
