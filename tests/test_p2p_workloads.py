"""Every point-to-point workload is judged, tabled, drawn and exported by its one descriptor
(benchfab.workloads.p2p_workloads): issue #21, item 2. Real perftest reports (the published
ib_read_bw of results/fabrics/sources, the soft-RoCE ib_write_lat of tests/rdma/data) are
imported as each of the six workloads (their title line names the verb), together with a
copy whose every figure is 30 % worse (a seeded fault)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import benchfab
from benchfab.cli import main
from benchfab.compare import run_comparison
from benchfab.export import openmetrics_text
from benchfab.workloads import FIGURES, family_of
from benchfab.workloads.p2p_workloads import P2P_WORKLOADS, p2p_workload
from benchfab.workloads.point_to_point import POINT_TO_POINT, format_p2p_table
from tests.helpers import ROOT

SOURCES = {"bw": ROOT / "results" / "fabrics" / "sources" / "ucx-8852-ib-read-bw.txt",
           "lat": ROOT / "tests" / "rdma" / "data" / "ib_write_lat_client.txt"}
TITLES = {"write": "RDMA_Write", "read": "RDMA_Read", "send": "Send"}
ROW = re.compile(r"^\s*\d+\s+\d+\s+\d")


def report_as(name: str, worse: float = 1.0) -> str:
    """A real perftest report retitled as workload ``name``; with ``worse`` > 1 every figure
    of every row made that much worse (bandwidths divided, times multiplied)."""
    w = P2P_WORKLOADS[name]
    text = SOURCES[w.kind].read_text()
    text = re.sub(r"(RDMA_Write|RDMA_Read|Send) (BW|Latency) Test", f"{TITLES[w.verb]} \\2 Test", text, count=1)
    scale = 1 / worse if w.bandwidth else worse
    lines = []
    for line in text.splitlines():
        if ROW.match(line):
            size, iters, *figures = line.split()
            line = " " + "   ".join([size, iters, *(f"{float(f) * scale:.6f}" for f in figures)])
        lines.append(line)
    return "\n".join(lines) + "\n"


def _import(results: Path, name: str, run_id: str, worse: float = 1.0) -> None:
    report = results.parent / f"{run_id}.txt"
    report.write_text(report_as(name, worse))
    assert main(["import", "perftest", str(report), "--profile", "p", "--hosts", "a,b",
                 "--results", str(results), "--run-id", run_id]) == 0


def test_one_descriptor_per_workload_and_every_consumer_reads_it() -> None:
    for name, w in P2P_WORKLOADS.items():
        assert family_of(name) is POINT_TO_POINT and p2p_workload(name) is w
        judged = POINT_TO_POINT.judged_metric(name)
        assert judged == w.judged
        assert (judged.column, judged.higher_is_better) == (("bw_avg_Bps", True) if w.bandwidth else ("lat_median_s", False))
        (figure,) = [f for f in FIGURES if name in f.workloads]  # drawn in exactly one figure, and exported by it
        assert figure.file == ("p2p_bw.png" if w.bandwidth else "p2p_lat.png") and figure.column == judged.column
        assert w.perftest_binary == f"ib_{w.verb}_{w.kind}" and w.runs
    assert p2p_workload("tcp_write_bw") is P2P_WORKLOADS["rdma_write_bw"]  # an engine's record name
    assert POINT_TO_POINT.workloads == tuple(P2P_WORKLOADS)  # what a spec may run: all of them


@pytest.mark.parametrize("name", list(P2P_WORKLOADS))
def test_a_30_percent_worse_import_is_worse_on_its_own_figure(tmp_path: Path, name: str) -> None:
    results = tmp_path / "results"
    _import(results, name, "base")
    _import(results, name, "slow", worse=1 / 0.7)
    c = run_comparison("base", "slow", results)
    judged = P2P_WORKLOADS[name].judged
    assert c.verdicts and {v.verdict for v in c.verdicts} == {"worse"} and c.exit_code == 1
    assert {v.metric for v in c.verdicts} == {judged.column}
    for v in c.verdicts:
        assert v.ratio == pytest.approx(0.7 if judged.higher_is_better else 1 / 0.7, rel=2e-3)
    table = format_p2p_table("t", name, benchfab.load_run(results / "base").summary.to_dict("records"))
    assert ("BW average" in table) == P2P_WORKLOADS[name].bandwidth


def test_imported_read_and_send_runs_are_drawn_tabled_and_exported(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for name in P2P_WORKLOADS:
        _import(results, name, name)
    assert main(["report", *P2P_WORKLOADS, "--results", str(results), "--out", str(tmp_path / "report")]) == 0
    report = tmp_path / "report"
    assert (report / "p2p_bw.png").is_file() and (report / "p2p_lat.png").is_file()
    summary = (report / "summary.md").read_text()
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in summary.splitlines()
            if line.startswith("| rdma_")]
    for name, w in P2P_WORKLOADS.items():
        (cells,) = [r for r in rows if r[0] == name and r[3] == name]  # run, profile, test, workload, ...
        bw, lat = cells[6], cells[8]
        assert (bw != "-", lat != "-") == (w.bandwidth, not w.bandwidth)  # BW average or t_typical, never neither
        text = openmetrics_text(benchfab.load_run(results / name))
        gauge = "benchfab_peak_bw_bytes_per_second" if w.bandwidth else "benchfab_min_latency_seconds"
        assert re.search(rf'^{gauge}{{run_id="{name}",workload="{name}",', text, re.M), (name, text)
