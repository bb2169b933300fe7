"""The report's files without a cluster: verdicts.json reading, the OpenMetrics export and
report.html of the example run, and the link rate a verbs port hands the engines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import benchfab
from benchfab.errors import StoreError
from benchfab.export import openmetrics_text
from benchfab.rdma.discovery import choose_port, discover_sysfs
from benchfab.report import markdown_to_html, write_report
from benchfab.verdicts import read_verdicts
from tests.helpers import ROOT

EXAMPLE = ROOT / "results" / "example"

VERDICTS = {
    "schema": 2,
    "base": {"label": "history:5 (2 of 5 runs)", "runs": ["a", "b"]},
    "new": "example",
    "method": {"test": "history-spread", "factor": 1.1, "z": 5.0},
    "verdicts": [
        {"key": {"workload": "allreduce", "size_bytes": 8}, "key_id": "allreduce/loopback/float32/8B/1n",
         "metric": "busbw_Bps", "higher_is_better": True, "verdict": "failed", "base_median": 1.0e6,
         "new_median": None, "ratio": None, "noise": None, "cause": "test timed out <after 60 s>"},
        {"key": {"workload": "allreduce", "size_bytes": 32}, "key_id": "allreduce/loopback/float32/32B/1n",
         "metric": "busbw_Bps", "higher_is_better": True, "verdict": "better", "base_median": 1.0e6,
         "new_median": 1.3e6, "ratio": 1.3, "noise": 0.05, "cause": None},
    ],
    "damaged": [],
}
# What a comparison wrote before the noise model (schema 1): still read, without noise.
VERDICTS_1 = {**VERDICTS, "schema": 1, "method": {"test": "history-mad", "factor": 1.1, "p_threshold": 0.002},
              "verdicts": [{**{k: v for k, v in item.items() if k != "noise"}, "p_value": 0.0001}
                           for item in VERDICTS["verdicts"]]}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE, copy)
    return copy


def test_no_verdicts_file_is_none_and_a_written_one_reads_back(example: Path) -> None:
    assert read_verdicts(example) is None
    (example / "verdicts.json").write_text(json.dumps(VERDICTS))
    verdicts = read_verdicts(example)
    assert verdicts is not None and verdicts.base_runs == ("a", "b")
    assert [v.key_id for v in verdicts.regressions] == ["allreduce/loopback/float32/8B/1n"]
    assert verdicts.verdicts[1].ratio == 1.3 and verdicts.verdicts[0].new_median is None
    assert verdicts.verdicts[1].noise == 0.05
    (example / "verdicts.json").write_text(json.dumps(VERDICTS_1))
    older = read_verdicts(example)
    assert older is not None and older.verdicts[1].noise is None and older.verdicts[1].ratio == 1.3


@pytest.mark.parametrize("damage, message", [
    (lambda d: "{not json", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
    (lambda d: {**d, "schema": 3}, "schema 3, this benchfab reads schemas 1, 2"),
    (lambda d: {**d, "base": "x"}, "field base: needs a label (text) and runs (a list)"),
    (lambda d: {**d, "verdicts": [{**d["verdicts"][0], "verdict": "slower"}]}, "field verdicts[0].verdict: 'slower'"),
    (lambda d: {**d, "verdicts": [{**d["verdicts"][0], "noise": float("nan")}]},
     "field verdicts[0].noise: nan is not a finite number"),
    (lambda d: {**d, "damaged": "yes"}, "field damaged: needs a list of text"),
    (lambda d: {**d, "verdicts": [{**d["verdicts"][0], "higher_is_better": "yes"}]},
     "field verdicts[0].higher_is_better: needs true or false"),
])
def test_damaged_verdicts_name_the_field(example: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    data = damage(json.loads(json.dumps(VERDICTS)))
    (example / "verdicts.json").write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(StoreError, match="verdicts.json: ") as info:
        read_verdicts(example)
    assert message in str(info.value)


def test_openmetrics_of_a_run_without_verdicts_is_valid_for_both_parsers(example: Path) -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
    from prometheus_client.parser import text_string_to_metric_families as prometheus_text

    run = benchfab.load_run(example)
    text = openmetrics_text(run)
    families = {f.name: f for f in openmetrics(text)}
    assert "benchfab_verdict_regression" not in families and "benchfab_regressions" not in families
    busbw = families["benchfab_peak_busbw_bytes_per_second"]
    rows = run.summary[run.summary.busbw_Bps.notna()]
    expected = rows.groupby(["workload", "ranks", "in_place"])["busbw_Bps"].max()
    got = {(s.labels["workload"], int(s.labels["ranks"]), s.labels["in_place"] == "true"): s.value for s in busbw.samples}
    assert got == expected.to_dict()
    assert {s.labels["workload"] for s in families["benchfab_min_latency_seconds"].samples} == {"rdma_write_lat"}
    (ended,) = families["benchfab_run_end_timestamp_seconds"].samples
    assert ended.value == 1795770287.0  # 2026-11-27T09:04:47Z
    # The node-exporter textfile collector reads the Prometheus text format: the same
    # text parses there too (# UNIT and # EOF are comments in it).
    names = {f.name for f in prometheus_text(text)}
    assert {"benchfab_peak_busbw_bytes_per_second", "benchfab_tests"} <= names


def test_html_escapes_what_runs_wrote_and_embeds_every_figure(example: Path, tmp_path: Path) -> None:
    (example / "verdicts.json").write_text(json.dumps(VERDICTS))
    paths = write_report(benchfab.load_run(example), tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert "test timed out &lt;after 60 s&gt;" in page and "<after" not in page
    assert "<strong>failed</strong>" in page  # a regression stands out
    pngs = [p for p in paths if p.suffix == ".png"]
    assert page.count('src="data:image/png;base64,') == len(pngs) == 4
    assert 'src="' + "busbw.png" not in page  # nothing refers to a file beside it
    # The page's markup is what markdown_to_html makes of the summary, nothing else.
    assert page == markdown_to_html((tmp_path / "out" / "summary.md").read_text(), tmp_path / "out",
                                    title="benchfab run example")


def test_a_verbs_port_hands_its_rate_to_the_engines(tmp_path: Path) -> None:
    """A sysfs tree shaped like a ConnectX-7 port's: the rate file is what the kernel prints."""
    port = tmp_path / "mlx5_0" / "ports" / "1"
    (port / "gids").mkdir(parents=True)
    for name, text in {"state": "4: ACTIVE", "link_layer": "InfiniBand", "rate": "400 Gb/sec (4X NDR)", "lid": "0x12"}.items():
        (port / name).write_text(text + "\n")
    (tmp_path / "mlx5_0" / "node_guid").write_text("b8ce:f603:00a1:b2c4\n")
    choice = choose_port(discover_sysfs(tmp_path))
    assert choice.rate_gbps == 400.0 and choice.link_rate_bps == 400e9
    (port / "rate").unlink()
    assert choose_port(discover_sysfs(tmp_path)).link_rate_bps is None


FABRICS = ROOT / "results" / "fabrics"  # real imported reports (results/fabrics/SOURCES.md) and local runs


def test_published_ib_and_roce_reports_side_by_side() -> None:
    """nccl-tests all_reduce from an IB HDR cluster and from two RoCE DGX Spark nodes: one
    figure, IB as the reference; the two reports swept different sizes, and the ratio
    panel says so instead of drawing nothing."""
    import matplotlib.pyplot as plt

    from benchfab.report import NO_COMMON_SIZES, ReportInput, build_profile_figure
    from benchfab.workloads import FIGURES

    data = ReportInput((benchfab.load_run(FABRICS / "ib-hdr-allreduce"), benchfab.load_run(FABRICS / "roce-spark-allreduce-1")))
    fig = build_profile_figure(data.summary, next(f for f in FIGURES if f.file == "busbw.png"), data.subtitle)
    assert fig is not None
    try:
        values, ratio = fig.axes
        labels = [line.get_label() for line in values.get_lines()]
        assert labels[0].endswith("· ib-hdr (ib, none)") and labels[1].endswith("· roce-spark (roce, none)")
        assert [t.get_text() for t in ratio.texts] == [NO_COMMON_SIZES] and ratio.get_lines()[1:] == []
    finally:
        plt.close(fig)


def test_local_all_pairs_run_heatmap_and_slowest_pairs(tmp_path: Path) -> None:
    """results/fabrics/local-tcp-pairs: tcp between fake-cluster pods on 4 nodes and 2 leaves."""
    run = benchfab.load_run(FABRICS / "local-tcp-pairs")
    paths = write_report(run, tmp_path)
    assert {"pairs-p2p_bw-loopback-pods.png", "pairs-p2p_lat-loopback-pods.png"} <= {p.name for p in paths}
    md = (tmp_path / "summary.md").read_text()
    lat = run.summary[(run.summary.workload == "rdma_write_lat")]
    smallest = lat[lat.size_bytes == lat.size_bytes.min()]
    worst = smallest.sort_values("lat_median_s", ascending=False).iloc[0]
    a, b = worst["hosts"].split(",")
    section = md.split("Slowest pairs (highest first")[1]
    first_row = next(line for line in section.splitlines() if line.startswith("| gpu-node"))
    cells = [c.strip() for c in first_row.strip("|").split("|")]
    assert {cells[0], cells[1]} == {a, b} and cells[2] == f"{worst['lat_median_s'] * 1e6:.4g}"


def test_multi_run_tables_keep_each_run_and_profile_on_its_own_row(tmp_path: Path) -> None:
    """`benchfab report A B` of two runs that share test ids (seeded: B's 2-rank allreduce
    and tcp bandwidth test made twice as slow): each table row is one run and one profile,
    and says which, so a row never shows one run's peak beside the other's minimum time."""
    from benchfab.cli import main
    from tests.verdict_faults import copy_run, rewrite_test

    results = tmp_path / "results"
    results.mkdir()
    shutil.copytree(EXAMPLE, results / "example")
    copy_run(results, "example", "a")
    copy_run(results, "example", "b")
    for test_id in ("000-allreduce-2r", "006-tcp-write-bw"):
        rewrite_test(results, "b", test_id, slowdown=2.0)
    assert main(["report", "a", "b", "--results", str(results), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "summary.md").read_text()
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines()
            if line.startswith(("| a |", "| b |"))]
    for test_id, peak_col, avg_col in (("000-allreduce-2r", 3, 4), ("006-tcp-write-bw", 6, None)):
        mine = {r[0]: r for r in rows if r[2] == test_id}
        assert set(mine) == {"a", "b"} and {r[1] for r in mine.values()} == {"loopback"}, rows
        for run_id, row in mine.items():
            s = benchfab.load_run(results / run_id).summary
            s = s[s["test_id"] == test_id]
            if avg_col is not None:  # collectives: peak and average busbw of this run alone
                assert float(row[peak_col]) == pytest.approx(s["busbw_Bps"].max() / 1e9, abs=1e-3)
                assert float(row[avg_col]) == pytest.approx(s["busbw_Bps"].mean() / 1e9, abs=1e-3)
                assert float(row[peak_col]) >= float(row[avg_col])
            else:  # point-to-point: max BW average of this run alone (Gb/s)
                assert float(row[peak_col]) == pytest.approx(s["bw_avg_Bps"].max() * 8e-9, abs=1e-3)
        assert float(mine["a"][peak_col]) == pytest.approx(2 * float(mine["b"][peak_col]), rel=0.01)


def _verdict(key_id: str, verdict: str, ratio: float | None, higher_is_better: bool = True) -> dict[str, object]:
    return {"key": {"workload": "allreduce"}, "key_id": key_id, "metric": "busbw_Bps" if higher_is_better else "time_s",
            "higher_is_better": higher_is_better, "verdict": verdict, "base_median": 1.0,
            "new_median": None if ratio is None else ratio, "ratio": ratio, "noise": 0.01, "cause": None}


@pytest.mark.parametrize("regressed", [True, False])
def test_html_shows_figures_first_then_the_verdicts_worst_first_in_a_details_block(
        example: Path, tmp_path: Path, regressed: bool) -> None:
    items = [_verdict("same", "same", 1.0), _verdict("bw-5pct-worse", "worse", 0.95),
             _verdict("better", "better", 1.3), _verdict("bw-30pct-worse", "worse", 0.7),
             _verdict("time-50pct-worse", "worse", 1.5, higher_is_better=False), _verdict("failed", "failed", None)]
    if not regressed:
        items = [v for v in items if v["verdict"] not in ("worse", "failed")]
    (example / "verdicts.json").write_text(json.dumps({**VERDICTS, "verdicts": items}))
    write_report(benchfab.load_run(example), tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    details = page.index("<details open>" if regressed else "<details>")
    assert page.rindex("<img ") < details < page.index("<h2>Tests</h2>")
    assert f"<summary>{len(items)} key(s), worst first</summary>" in page
    block = page[details:page.index("</details>")]
    shown = [cell.split("</td>")[0] for cell in block.split("<tr><td>")[1:]]
    # compare's order of verdicts, then the largest move the wrong way first (time up 1.5x
    # is worse than bandwidth down to 0.7x, i.e. 1.43x)
    expected = (["failed", "time-50pct-worse", "bw-30pct-worse", "bw-5pct-worse"] if regressed else []) + ["better", "same"]
    assert shown == expected
    md = (tmp_path / "out" / "summary.md").read_text()  # the same order and block in summary.md
    assert md.index("## Figures") < md.index("## Verdicts") < md.index("## Tests") and md.count("</details>") == 1
