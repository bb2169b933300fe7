"""Fabric comparisons, pair heatmaps, the HTML report (opened in a real headless Chromium)
and the OpenMetrics export, on one real all-pairs sweep of the fake cluster.

The sweep: 4 nodes on 2 leaves, two profiles (ib-shared, roce-sriov), tcp bandwidth and
latency between every pair of agent pods. The fake nodes have no RDMA device, so the
bytes go over loopback tcp whatever the profile's fabric: the profiles' curves are two
real measurements of the same kind, labelled as the spec labels them, which is what the
report draws; the numbers are never made up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import benchfab
from benchfab.analysis import (
    TAIL_LOG_RATIO,
    pair_matrix,
    pair_rows,
    profile_comparisons,
    slowest_pairs,
    topology_order,
    y_scale,
)
from benchfab.counter_evidence import moved
from benchfab.errors import StoreError
from benchfab.export import openmetrics_text
from benchfab.report import (
    FIGURES,
    Marks,
    ReportInput,
    build_profile_figure,
    draw_curves,
    draw_pair_heatmap,
    pair_maps,
    write_report,
)
from benchfab.store import RunStore
from tests.fakecluster import FakeCluster, seed_nodes
from tests.k8s.helpers import sweep

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

NODES = 4
SPEC = """\
name: fabrics
backend: kubernetes
namespace: bench
image: registry.example.com/benchfab-worker:test
profiles:
  ib-shared: {fabric: ib, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
  roce-sriov: {fabric: roce, mode: sriov, resource: nvidia.com/cx7_sriov_rdma, network: sriov-rdma-net}
nodes: {topology_key: example.com/leaf}
defaults: {warmup: 5, device: cpu, timeout: 60s, transport: tcp, profiles: [ib-shared, roce-sriov]}
kubernetes: {start_timeout: 20s}
tests:
  - {name: bw, workload: rdma_write_bw, sizes: [4K, 256K], iterations: 100, placement: {pattern: all-pairs}}
  - {name: lat, workload: rdma_write_lat, sizes: [8, 4K], iterations: 300, placement: {pattern: all-pairs}}
"""


def _figure(file: str):  # type: ignore[no-untyped-def]
    return next(f for f in FIGURES if f.file == file)


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[benchfab.Run]:
    from benchfab.native import HAVE_NATIVE

    if not HAVE_NATIVE:
        pytest.skip("benchfab._native is not built")
    tmp = tmp_path_factory.mktemp("fabrics")
    cluster = FakeCluster(tmp / "cluster").start()
    try:
        cluster.store.put("namespaces", {"metadata": {"name": "bench"}})
        seed_nodes(cluster, NODES)
        result, _, out = sweep(cluster, SPEC, tmp / "res", run_id="pairs")
        assert set(result.counts) == {"ok"}, out
    finally:
        cluster.stop()
    yield benchfab.load_run("pairs", tmp / "res")


def test_profiles_side_by_side_with_a_ratio_panel(pairs_run: benchfab.Run) -> None:
    fig = build_profile_figure(pairs_run.summary, _figure("p2p_bw.png"), "run pairs")
    assert fig is not None
    try:
        values, ratio = fig.axes  # no link rate is known over tcp: no "% of line rate" panel
        labels = [line.get_label() for line in values.get_lines()]
        # Reference first (IB before RoCE), each label naming profile, fabric and mode.
        assert labels == ["ib-shared (ib, shared)", "roce-sriov (roce, sriov)"]
        rows = pairs_run.summary[pairs_run.summary.workload == "rdma_write_bw"]
        for line, profile in zip(values.get_lines(), ("ib-shared", "roce-sriov")):
            # Each profile's curve is the median over its six pairs at each size.
            expected = rows[rows.profile == profile].groupby("size_bytes")["bw_avg_Bps"].median() * 8e-9
            assert list(line.get_xdata()) == list(expected.index)
            assert np.allclose(line.get_ydata(), expected.to_numpy())
        (ratio_line,) = [line for line in ratio.get_lines() if line.get_label().startswith("roce")]
        assert ratio_line.get_label() == "roce-sriov / ib-shared"
        ib, roce = values.get_lines()
        assert np.allclose(ratio_line.get_ydata(), np.asarray(roce.get_ydata()) / np.asarray(ib.get_ydata()))
        assert "ratio to reference" in ratio.get_ylabel()
    finally:
        plt.close(fig)


def test_latency_axis_fits_the_band_and_its_scale_follows_the_rule(pairs_run: benchfab.Run) -> None:
    fig = build_profile_figure(pairs_run.summary, _figure("p2p_lat.png"), "run pairs")
    assert fig is not None
    try:
        ax = fig.axes[0]
        lines = [v for line in ax.get_lines() for v in line.get_ydata()]
        bands = [float(p.vertices[:, 1].max()) for c in ax.collections for p in c.get_paths() if len(p.vertices)]
        assert len(ax.collections) == 2  # a p99 band per profile
        assert ax.get_yscale() == y_scale(lines, bands)
        bottom, top = ax.get_ylim()
        assert top >= max(bands) and bottom <= min(lines)
    finally:
        plt.close(fig)
    per_test = draw_curves(pairs_run.summary, _figure("p2p_lat.png"), "run pairs")  # the same rule, per test
    assert per_test is not None
    try:
        ax = per_test.axes[0]
        lines = [v for line in ax.get_lines() for v in line.get_ydata()]
        bands = [float(p.vertices[:, 1].max()) for c in ax.collections for p in c.get_paths() if len(p.vertices)]
        assert len(ax.collections) == 12 and ax.get_yscale() == y_scale(lines, bands)
        assert ax.get_ylim()[1] >= max(bands)
    finally:
        plt.close(per_test)
    # The quickstart's case: a 35 us median under a band to 1,500 us is more than a decade: log.
    assert y_scale([35, 36, 40], [1500]) == "log" and y_scale([35, 36, 40], [300]) == "linear"
    assert TAIL_LOG_RATIO == 10


def test_line_rate_panel_where_the_link_rate_is_known(pairs_run: benchfab.Run, tmp_path: Path) -> None:
    """A verbs port records its rate (link_rate_bps, from sysfs); tcp over loopback has none.
    Here the measured rows are stored again, through the store's writer, with a declared
    1 Gb/s link rate for the RoCE profile only: the panel shows that profile alone, at
    bandwidth x 8 / rate."""
    store = RunStore(tmp_path, "rated")
    store.write_meta({**pairs_run.meta, "run_id": "rated"})
    for test_id, rows in pairs_run.summary.groupby("test_id"):
        rows = rows.copy()
        rows["run_id"] = "rated"
        rows["link_rate_bps"] = 1e9 if rows["profile"].iloc[0] == "roce-sriov" else None
        test = pairs_run.tests[pairs_run.tests.test_id == test_id].iloc[0].to_dict()
        store.write_test({**test, "run_id": "rated"}, rows.to_dict("records"), [])
    rated = benchfab.load_run(tmp_path / "rated")
    fig = build_profile_figure(rated.summary, _figure("p2p_bw.png"), "run rated")
    assert fig is not None
    try:
        values, rate, _ratio = fig.axes
        assert "% of line rate" in rate.get_ylabel()
        (pct,) = rate.get_lines()
        roce = rated.summary[(rated.summary.workload == "rdma_write_bw") & (rated.summary.profile == "roce-sriov")]
        expected = roce.groupby("size_bytes")["bw_avg_Bps"].median() * 8 / 1e9 * 100
        assert np.allclose(pct.get_ydata(), expected.to_numpy())
    finally:
        plt.close(fig)


def test_pair_matrix_sorted_by_leaf_with_the_slowest_pairs(pairs_run: benchfab.Run) -> None:
    data = ReportInput((pairs_run,))
    leaf = data.leaf
    assert leaf == {f"gpu-node-{i}": f"leaf-{i % 2}" for i in range(NODES)}
    bw = pairs_run.summary[(pairs_run.summary.workload == "rdma_write_bw") & (pairs_run.summary.profile == "ib-shared")]
    matrix = pair_matrix(bw, "bw_avg_Bps", "largest", leaf)
    order = ["gpu-node-0", "gpu-node-2", "gpu-node-1", "gpu-node-3"]  # leaf-0 first, then leaf-1
    assert list(matrix.index) == order == list(matrix.columns) == topology_order(sorted(order), leaf)
    assert matrix.attrs["size_bytes"] == 256 * 1024
    largest = bw[bw.size_bytes == 256 * 1024]
    for _, row in largest.iterrows():
        a, b = row["hosts"].split(",")
        assert matrix.loc[a, b] == matrix.loc[b, a] == row["bw_avg_Bps"]
    assert matrix.isna().sum().sum() == NODES  # only the diagonal is unmeasured
    slow = slowest_pairs(matrix, higher_is_better=True, count=3)
    assert list(slow["value"]) == sorted(largest["bw_avg_Bps"])[:3]
    assert np.allclose(slow["vs_median"], slow["value"] / largest["bw_avg_Bps"].median())
    lat = pairs_run.summary[(pairs_run.summary.workload == "rdma_write_lat") & (pairs_run.summary.profile == "ib-shared")]
    lat_matrix = pair_matrix(lat, "lat_median_s", "smallest", leaf)
    assert lat_matrix.attrs["size_bytes"] == 8
    slow_lat = slowest_pairs(lat_matrix, higher_is_better=False)
    assert list(slow_lat["value"]) == sorted(lat[lat.size_bytes == 8]["lat_median_s"], reverse=True)[:5]
    # Every pair of the run was between two distinct nodes.
    assert len(pair_rows(pairs_run.summary)) == len(pairs_run.summary)


def test_heatmap_marks_nodes_and_pairs(pairs_run: benchfab.Run) -> None:
    maps = pair_maps(pairs_run.summary, ReportInput((pairs_run,)).leaf)
    assert sorted(m.file for m in maps) == ["pairs-p2p_bw-ib-shared.png", "pairs-p2p_bw-roce-sriov.png",
                                            "pairs-p2p_lat-ib-shared.png", "pairs-p2p_lat-roce-sriov.png"]
    pm = next(m for m in maps if m.file == "pairs-p2p_bw-ib-shared.png")
    fig = draw_pair_heatmap(pm.matrix, pm.title, "Gb/s", pm.fig_spec.scale, True, ReportInput((pairs_run,)).leaf,
                            marked_nodes=["gpu-node-2"], marked_pairs=[("gpu-node-0", "gpu-node-3")])
    try:
        ax = fig.axes[0]
        shown = ax.images[0].get_array()
        assert np.allclose(np.ma.filled(shown, np.nan), pm.matrix.to_numpy() * pm.fig_spec.scale, equal_nan=True)
        red = [t.get_text() for t in ax.get_yticklabels() if t.get_color() == "#d62728"]
        assert red == ["gpu-node-2 (leaf-0)"]
        assert len(ax.patches) == 2  # the marked pair, both cells
        assert len(ax.texts) == NODES * (NODES - 1)  # every measured cell carries its number
    finally:
        plt.close(fig)


def _verdicts(run: benchfab.Run) -> dict[str, object]:
    """A verdicts.json in the schema the compare work writes, with this run's own keys and medians."""
    bw = run.summary[(run.summary.workload == "rdma_write_bw") & (run.summary.size_bytes == 4096)]
    items = []
    for i, (profile, rows) in enumerate(bw.groupby("profile")):
        median = float(rows["bw_avg_Bps"].median())
        worse = i == 1
        items.append({"key": {"workload": "rdma_write_bw", "profile": profile, "size_bytes": 4096},
                      "key_id": f"rdma_write_bw/{profile}/4KiB", "metric": "bw_avg_Bps", "higher_is_better": True,
                      "verdict": "worse" if worse else "same", "base_median": median * (1.25 if worse else 1.0),
                      "new_median": median, "ratio": 0.8 if worse else 1.0, "noise": 0.04,
                      "cause": None})
    items.append({"key": {"workload": "rdma_write_lat", "profile": "ib-shared", "size_bytes": 8},
                  "key_id": "rdma_write_lat/ib-shared/8B", "metric": "lat_median_s", "higher_is_better": False,
                  "verdict": "changed", "base_median": None, "new_median": None, "ratio": None, "noise": None,
                  "cause": 'NCCL fell back to Socket (base: IB) | "quoted"'})
    return {"schema": 2, "base": {"label": "nightly-baseline", "runs": ["base-1"]}, "new": run.run_id,
            "method": {"test": "noise-band", "factor": 1.10, "z": 5.0}, "verdicts": items, "damaged": []}


@pytest.fixture(scope="module")
def report_dir(pairs_run: benchfab.Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    (pairs_run.path / "verdicts.json").write_text(json.dumps(_verdicts(pairs_run)))
    out = tmp_path_factory.mktemp("report")
    write_report(pairs_run, out, Marks(nodes=("gpu-node-2", "elsewhere"), pairs=(("gpu-node-0", "gpu-node-3"),),
                                       why="second pass: suspects"))
    return out


def test_report_writes_comparisons_heatmaps_and_verdicts(report_dir: Path) -> None:
    names = sorted(p.name for p in report_dir.iterdir())
    assert names == ["p2p_bw-profiles.png", "p2p_bw.png", "p2p_lat-profiles.png", "p2p_lat.png",
                     "pairs-p2p_bw-ib-shared.png", "pairs-p2p_bw-roce-sriov.png", "pairs-p2p_lat-ib-shared.png",
                     "pairs-p2p_lat-roce-sriov.png", "report.html", "summary.md"]
    md = (report_dir / "summary.md").read_text()
    assert "## Verdicts of `pairs` against nightly-baseline" in md
    assert "2 regression(s) in 3 key(s)" in md
    table = [line for line in md.splitlines() if line.startswith("| rdma_write_")]
    # Worst first, in compare's order of verdicts: changed, then worse, then same.
    assert table[0].startswith("| rdma_write_lat/ib-shared/8B | lat_median_s | **changed** |")
    assert table[1].startswith("| rdma_write_bw/roce-sriov/4KiB | bw_avg_Bps | **worse** |")
    assert "NCCL fell back to Socket (base: IB) \\| \"quoted\"" in md
    assert md.count("Slowest pairs (lowest first") == 2 and md.count("Slowest pairs (highest first") == 2
    # Marks reach every heatmap's section; a node that is not in the run is left out.
    assert md.count("Marked in red (second pass: suspects): nodes gpu-node-2; pairs gpu-node-0-gpu-node-3.") == 4


def test_report_html_renders_in_chromium(pairs_run: benchfab.Run, report_dir: Path, tmp_path: Path) -> None:
    """The one-file report in a real headless Chromium: no console error, every table and
    every image there and decoded, figures before the verdicts. A screenshot is kept under
    build/report-screenshot.png."""
    from tests.chromium import chromium_path, visit
    from tests.helpers import ROOT

    if chromium_path() is None:
        pytest.fail("chromium is not on PATH (fix: scripts/setup.sh installs Debian's chromium)")
    # The detector detects: a page with a console error, an exception and a missing image.
    probe = tmp_path / "probe.html"
    probe.write_text('<!DOCTYPE html><html><body><img src="nothere.png"><script>console.error("probe");'
                     "nosuchfunction();</script></body></html>")
    seen = visit(probe, tmp_path / "chromium-probe")
    assert any("probe" in e for e in seen.errors) and any("nosuchfunction" in e for e in seen.errors)
    assert any("ERR_FILE_NOT_FOUND" in e for e in seen.errors), seen.errors
    # The report, alone in a folder: nothing it shows may come from beside it.
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "report.html").write_bytes((report_dir / "report.html").read_bytes())
    seen = visit(alone / "report.html", tmp_path / "chromium-report")
    assert seen.errors == []
    facts = seen.facts
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    assert sorted(i["alt"] for i in facts["images"]) == pngs
    assert all(i["data"] and i["complete"] and i["width"] > 300 for i in facts["images"]), facts["images"]
    # tests, point-to-point, verdicts and a slowest-pairs table per heatmap; no collective ran,
    # so there is no (empty) collectives' bandwidth table. The fabric counters section always
    # shows; it is a table only when an error or congestion counter moved (on loopback TCP only
    # RetransSegs can, and only some runs retransmit), else one sentence saying none did.
    pairs = len([p for p in pngs if p.startswith("pairs-")])
    rows = pairs_run.tests.sort_values("test_id").to_dict("records")
    counter_tables = 1 if moved(rows) else 0
    assert len(facts["tables"]) == 3 + pairs + counter_tables, (facts["headings"], moved(rows))
    if not counter_tables:
        assert "No error or congestion counter moved during any test." in facts["text"]
    assert any(h.startswith("Fabric counters of") for h in facts["headings"]), facts["headings"]
    assert all(rows > 1 for rows in facts["tables"]), facts["tables"]
    assert any(h.startswith("Verdicts of pairs") for h in facts["headings"])
    # Figures first (curves, then each heatmap with its slowest pairs), the verdicts after,
    # worst first, in a block that opens and closes (open: a key regressed).
    order = facts["order"]
    assert order.index("details") > max(i for i, tag in enumerate(order) if tag == "img")
    assert order.index("img") < order.index("table")
    (verdicts,) = facts["details"]
    assert verdicts["summary"] == "3 key(s), worst first" and verdicts["open"]
    assert verdicts["verdicts"] == ["changed", "worse", "same"]
    opened, closed = verdicts["heights"]
    assert verdicts["visible"] == [True, False]
    # Closed, the block is its summary line (and the line's margins); open, it holds the table.
    assert closed < verdicts["summary_height"] + 20 and opened > closed + 50
    assert seen.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    shot = ROOT / "build" / "report-screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    shot.write_bytes(seen.screenshot)


def test_openmetrics_export_parses_and_carries_the_figures(pairs_run: benchfab.Run, report_dir: Path,
                                                          cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    out = tmp_path / "benchfab.prom"
    proc = cli("export", str(pairs_run.path), "--openmetrics", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert text.endswith("# EOF\n")
    peak = families["benchfab_peak_bw_bytes_per_second"]
    assert peak.type == "gauge" and peak.unit == "bytes_per_second"
    s = pairs_run.summary
    bw = s[s.workload == "rdma_write_bw"]
    assert len(peak.samples) == bw.groupby(["profile", "hosts"]).ngroups == 12  # 6 pairs x 2 profiles
    for sample in peak.samples:
        mine = bw[(bw.profile == sample.labels["profile"]) & (bw.hosts == sample.labels["hosts"])]
        assert sample.value == mine["bw_avg_Bps"].max()
        assert sample.labels["fabric"] in ("ib", "roce") and sample.labels["transport"] == "tcp"
    lat = families["benchfab_min_latency_seconds"]
    lat_rows = s[s.workload == "rdma_write_lat"]
    assert sorted(x.value for x in lat.samples) == sorted(lat_rows.groupby(["profile", "hosts"])["lat_median_s"].min())
    regression = {x.labels["key_id"]: (x.labels["verdict"], x.value) for x in families["benchfab_verdict_regression"].samples}
    assert regression == {"rdma_write_bw/ib-shared/4KiB": ("same", 0.0), "rdma_write_bw/roce-sriov/4KiB": ("worse", 1.0),
                          "rdma_write_lat/ib-shared/8B": ("changed", 1.0)}
    assert [x.value for x in families["benchfab_regressions"].samples] == [2.0]
    assert len(families["benchfab_verdict_ratio"].samples) == 2  # the changed key has no ratio
    assert {x.labels["status"]: x.value for x in families["benchfab_tests"].samples} == {"ok": 24.0}
    assert text == openmetrics_text(pairs_run)  # what stdout gets without -o


def test_bad_verdicts_file_is_one_line(pairs_run: benchfab.Run, report_dir: Path, cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A damaged verdicts.json: one line naming the file and the field, exit 1; the measured data stays."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(pairs_run.path, copy)
    data = _verdicts(pairs_run)
    data["verdicts"][0]["ratio"] = "fast"  # type: ignore[index]
    (copy / "verdicts.json").write_text(json.dumps(data))
    proc = cli("export", str(copy), "--openmetrics")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "verdicts.json: field verdicts[0].ratio: 'fast'" in proc.stderr
    with pytest.raises(StoreError, match=r"verdicts\[0\]\.ratio"):
        write_report(benchfab.load_run(copy), tmp_path / "r")
    assert benchfab.load_run(copy).summary.equals(pairs_run.summary)


def test_report_of_two_runs_draws_both(pairs_run: benchfab.Run, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """benchfab report A B: the runs' rows drawn together (here the run and a copy of it under another id)."""
    import shutil

    other = tmp_path / "res" / "pairs-again"
    shutil.copytree(pairs_run.path, other)
    meta = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**meta, "run_id": "pairs-again"}))
    for part in other.glob("*/*.parquet"):
        frame = pd.read_parquet(part)
        frame["run_id"] = "pairs-again"
        frame.to_parquet(part)
    (other / "verdicts.json").unlink(missing_ok=True)
    proc = cli("report", str(pairs_run.path), str(other), "--out", str(tmp_path / "both"))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "both" / "summary.md").read_text()
    # 24 rows in the tests table and 24 in the point-to-point table (a row per run, profile and test)
    assert md.startswith("# benchfab runs pairs, pairs-again") and md.count("| pairs-again |") == 48
    data = ReportInput((pairs_run, benchfab.load_run(other)))
    fig = draw_curves(data.summary, _figure("p2p_bw.png"), data.subtitle)
    assert fig is not None
    try:
        labels = [line.get_label() for line in fig.axes[0].get_lines()]
        assert len(labels) == len(set(labels)) == 24  # 12 tests in each run, each named with its run
        assert sum(label.startswith("pairs-again: ") for label in labels) == 12
    finally:
        plt.close(fig)
    (comparison,) = profile_comparisons(data.summary[data.summary.workload == "rdma_write_bw"], "bw_avg_Bps")
    # each profile's curve is now the median over both runs' pairs: the same values, twice as many rows
    assert np.allclose(comparison.curves[0].points["value"],
                       profile_comparisons(pairs_run.summary[pairs_run.summary.workload == "rdma_write_bw"],
                                           "bw_avg_Bps")[0].curves[0].points["value"])
