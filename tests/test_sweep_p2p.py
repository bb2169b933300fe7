"""End to end: point-to-point workloads (tcp transport on loopback) mixed with a collective."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchfab
from benchfab.native import HAVE_NATIVE

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not HAVE_NATIVE, reason="benchfab._native is not built")]

SPEC = """\
name: mixed
tests:
  - name: bw
    workload: rdma_write_bw
    transport: tcp
    sizes: [4K, 64K]
    iterations: 200
  - name: lat
    workload: rdma_write_lat
    transport: tcp
    sizes: [8, 4K]
    iterations: 100
  - name: ar
    sizes: [8, 64K]
    iterations: 3
"""


def test_mixed_sweep_stores_and_reports_both_kinds(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli("sweep", str(write_spec(SPEC)), "--results", str(tmp_path), "--run-id", "m1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "BW average[Gb/sec]" in proc.stdout and "t_typical[usec]" in proc.stdout and "busbw" in proc.stdout
    run = benchfab.load_run("m1", tmp_path)
    assert set(run.tests["status"]) == {"ok"}, run.tests[["test_id", "reason"]]
    s = run.summary.set_index(["workload", "size_bytes"])
    bw = s.loc["rdma_write_bw"]
    assert list(bw.index) == [4096, 65536]
    assert (bw["bw_avg_Bps"] > 0).all() and (bw["bw_peak_Bps"] >= bw["bw_avg_Bps"] * 0.99).all()
    assert (bw["iterations"] == 200).all() and (bw["transport"] == "tcp").all()
    # perftest: MsgRate = iterations / elapsed; BW average = size x MsgRate
    assert bw["bw_avg_Bps"].to_numpy() == pytest.approx((bw.index.to_numpy() * bw["msg_rate_pps"]).to_numpy(), rel=1e-6)
    lat = s.loc["rdma_write_lat"]
    assert (lat["lat_min_s"] <= lat["lat_median_s"]).all() and (lat["lat_median_s"] <= lat["lat_p99_s"]).all()
    assert (lat["lat_p99_s"] <= lat["lat_max_s"]).all()
    assert (lat["time_s"] == lat["lat_median_s"]).all()
    raw = run.raw[run.raw["test_id"] == "001-lat"]
    assert len(raw[raw["size_bytes"] == 8]) >= 90  # one half-RTT sample per iteration
    ar = s.loc["allreduce"]
    assert (ar["wrong"] == 0).all() and ar["busbw_Bps"].notna().all()
    report = cli("report", "m1", "--results", str(tmp_path))
    assert report.returncode == 0, report.stderr
    for name in ("busbw.png", "time.png", "p2p_bw.png", "p2p_lat.png", "summary.md"):
        assert (tmp_path / "m1" / "report" / name).exists()


def test_point_to_point_needs_two_ranks(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    proc = cli("validate", str(write_spec("tests:\n  - {workload: rdma_write_bw, ranks: 3}\n")))
    assert proc.returncode == 2 and "exactly 2 ranks" in proc.stderr
    proc = cli("validate", str(write_spec("tests:\n  - {workload: rdma_write_lat, memory: cuda}\n")))
    assert proc.returncode == 2 and "memory: host" in proc.stderr
