"""Every point-to-point workload is judged, tabled, drawn and exported by its one descriptor
(benchfab.workloads.p2p_workloads): issue #21, item 2; and run, estimated and translated
from perftest's flags by it, with no module deciding by a workload's name (#23, item 2). Real perftest reports (the published
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
from benchfab.costs import pod_costs
from benchfab.errors import WorkloadError
from benchfab.export import openmetrics_text
from benchfab.oneoff import build
from benchfab.rdma.params import RdmaParams
from benchfab.workloads import FIGURES, family_of
from benchfab.workloads.p2p_workloads import P2P_WORKLOADS, p2p_workload
from benchfab.workloads.point_to_point import POINT_TO_POINT, estimate_p2p_seconds, format_p2p_table
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


# A decision on a point-to-point workload's name outside its descriptor: a comparison with
# one of the names (rdma_write_bw, tcp_write_lat, write_bw, ib_read_lat) or a kind ("bw"),
# the old constants, or a test of a name's prefix or suffix (endswith("_bw")).
_P2P_NAME = r"""["'](?:(?:rdma|tcp|ib)_)?(?:write|read|send)_(?:bw|lat)["']"""
_P2P_DECISION = re.compile(
    rf"""(==|!=|\bin\s*[(\[{{])\s*(["'][\w-]+["']\s*,\s*)*{_P2P_NAME}"""
    r"""|\bBANDWIDTH_WORKLOAD\b|\bLATENCY_WORKLOAD\b"""
    r"""|(?:==|!=)\s*["'](?:bw|lat)["']"""
    r"""|(?:ends|starts)with\(\s*\(?\s*["'](?:_bw|_lat|tcp_|rdma_|ib_)["']""")


def test_no_module_decides_by_a_point_to_point_name() -> None:
    found = []
    for path in sorted((ROOT / "benchfab").rglob("*.py")):
        if path.name == "p2p_workloads.py":  # the descriptors themselves
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _P2P_DECISION.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "ask the workload's descriptor (p2p_workload(name)) instead:\n" + "\n".join(found)


def test_the_point_to_point_scan_sees_a_decision() -> None:
    # The pattern above must catch the shapes it forbids (else the test cannot fail).
    for line in ('if spec.workload == "rdma_write_bw":', "bw = w == BANDWIDTH_WORKLOAD", 'if p.test != "write_lat":',
                 "if name in ('rdma_read_bw', 'ib_send_lat'):", 'if workload.endswith("_bw"):',
                 'if str(value).startswith("tcp_"):', 'if head["kind"] == "bw":', 'x = t == LATENCY_WORKLOAD'):
        assert _P2P_DECISION.search(line), line
    assert not _P2P_DECISION.search('workload: "rdma_write_bw"')
    assert not _P2P_DECISION.search('find_binary("write_bw")')


@pytest.mark.parametrize("name", [n for n, w in P2P_WORKLOADS.items() if w.runs])
def test_perftest_defaults_and_estimates_come_from_the_descriptor(name: str) -> None:
    w = P2P_WORKLOADS[name]
    params = RdmaParams.from_mapping({"workload": name})
    assert params.workload is w and params.test == w.test
    assert (params.iters(), params.effective_tx_depth(), params.effective_max_inline()) == (
        w.default_iterations, w.default_tx_depth, w.default_max_inline)
    if w.over_tcp:
        assert RdmaParams.from_mapping({"workload": w.record_name("tcp")}).transport == "tcp"
    else:  # its tcp record name says a transport that does not run it: refused, with the fix
        with pytest.raises(WorkloadError, match=f"tcp transport runs .* only, not {name}"):
            RdmaParams.from_mapping({"workload": w.record_name("tcp")})
    spec, _, _ = build(w.perftest_binary, [])  # benchfab run ib_..., no flags
    (test,) = spec.resolved_tests()
    assert test.workload == name and test.sizes == [w.default_size]
    costs = pod_costs(100e9)
    messages = w.default_iterations + test.warmup
    bps, lat = costs.p2p_bps(test.transport), costs.p2p_latency_s(test.transport)
    streamed = messages * w.default_size / bps + 0.05
    waited = messages * 2 * (lat + w.default_size / bps)
    assert estimate_p2p_seconds(test, costs) == pytest.approx(costs.start_s + (streamed if w.bandwidth else waited))
