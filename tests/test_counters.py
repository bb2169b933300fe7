"""The fabric counter reader against sysfs trees built from the kernel's real counter names
(the IBA port counters every PMA-capable NIC exposes; mlx5's hw_counters, congestion ones on
RoCE only; rxe's hw_counters and no port counters), and the counters read as evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchfab import counters
from benchfab.counter_evidence import cite, errors_without_slowdown, markdown_lines, show_lines
from benchfab.counters import CounterWatch, Source, deltas, nccl_hcas, read, stored_entries
from benchfab.faults import Finding

# drivers/infiniband/core/sysfs.c: the PMA port counters (ports/N/counters/)
IBA_PORT = ["symbol_error", "link_error_recovery", "link_downed", "port_rcv_errors", "port_rcv_remote_physical_errors",
            "port_rcv_switch_relay_errors", "port_xmit_discards", "port_xmit_constraint_errors",
            "port_rcv_constraint_errors", "local_link_integrity_errors", "excessive_buffer_overrun_errors",
            "VL15_dropped", "port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets",
            "port_xmit_wait", "unicast_xmit_packets", "unicast_rcv_packets", "multicast_xmit_packets",
            "multicast_rcv_packets"]
# drivers/infiniband/hw/mlx5/counters.c: q counters, out-of-sequence, retransmission, extended errors
MLX5_HW = ["rx_write_requests", "rx_read_requests", "rx_atomic_requests", "out_of_buffer", "out_of_sequence",
           "duplicate_request", "rnr_nak_retry_err", "packet_seq_err", "implied_nak_seq_err", "local_ack_timeout_err",
           "resp_local_length_error", "resp_cqe_error", "req_cqe_error", "req_remote_invalid_request",
           "req_remote_access_errors", "resp_remote_access_errors", "resp_cqe_flush_error", "req_cqe_flush_error"]
# ... and its congestion counters, on an Ethernet (RoCE) port only
MLX5_CONG = ["rp_cnp_ignored", "rp_cnp_handled", "np_ecn_marked_roce_packets", "np_cnp_sent"]
# drivers/infiniband/sw/rxe/rxe_hw_counters.c
RXE_HW = ["sent_pkts", "rcvd_pkts", "duplicate_request", "out_of_seq_request", "rcvd_rnr_err", "send_rnr_err",
          "rcvd_seq_err", "ack_deferred", "retry_exceeded_err", "retry_rnr_exceeded_err", "completer_retry_err",
          "send_err", "link_downed", "rdma_sends", "rdma_recvs"]


def make_port(root: Path, dev: str, port: int, port_counters: list[str], hw: list[str], value: int = 0) -> Path:
    base = root / "class" / "infiniband" / dev / "ports" / str(port)
    for folder, names in (("counters", port_counters), ("hw_counters", hw)):
        if names:
            (base / folder).mkdir(parents=True, exist_ok=True)
            for n in names:
                (base / folder / n).write_text(f"{value}\n")
    if hw:
        (base / "hw_counters" / "lifespan").write_text("10\n")
    return base


def bump(base: Path, folder: str, name: str, by: int) -> None:
    f = base / folder / name
    f.write_text(f"{int(f.read_text()) + by}\n")


def test_mlx5_ib_port_deltas_and_the_roce_only_counters_not_exposed(tmp_path: Path) -> None:
    base = make_port(tmp_path, "mlx5_3", 1, IBA_PORT, MLX5_HW, value=7)
    src = [Source("rdma", "mlx5_3", 1)]
    before = read(src, tmp_path)
    bump(base, "counters", "port_rcv_errors", 1204)
    bump(base, "counters", "port_xmit_data", 10**9)
    bump(base, "hw_counters", "out_of_sequence", 3)
    [entry] = deltas(before, read(src, tmp_path))
    assert entry["deltas"]["port_rcv_errors"] == 1204 and entry["deltas"]["out_of_sequence"] == 3
    assert entry["deltas"]["symbol_error"] == 0  # exposed and still: 0
    assert "lifespan" not in entry["deltas"]  # the cache setting, not a counter
    assert set(entry["not_exposed"]) == {"np_cnp_sent", "rp_cnp_handled", "np_ecn_marked_roce_packets"}
    assert counters.error_deltas(entry) == {"port_rcv_errors": 1204, "out_of_sequence": 3}


def test_mlx5_roce_exposes_every_watched_counter(tmp_path: Path) -> None:
    make_port(tmp_path, "mlx5_0", 1, IBA_PORT, MLX5_HW + MLX5_CONG)
    src = [Source("rdma", "mlx5_0", 1)]
    [entry] = deltas(read(src, tmp_path), read(src, tmp_path))
    assert entry["not_exposed"] == []
    assert set(entry["deltas"]) == set(IBA_PORT + MLX5_HW + MLX5_CONG)


def test_rxe_has_no_port_counters_they_are_not_exposed_never_zero(tmp_path: Path) -> None:
    base = make_port(tmp_path, "rxe0", 1, [], RXE_HW)
    src = counters.sources_for(rdma=[("rxe0", None)], sys_root=tmp_path)  # every port of the device
    assert src == [Source("rdma", "rxe0", 1)]
    before = read(src, tmp_path)
    bump(base, "hw_counters", "sent_pkts", 500)
    bump(base, "hw_counters", "rcvd_seq_err", 2)
    [entry] = deltas(before, read(src, tmp_path))
    assert "symbol_error" not in entry["deltas"] and "port_rcv_errors" not in entry["deltas"]
    assert {"symbol_error", "port_rcv_errors", "port_xmit_wait"} <= set(entry["not_exposed"])
    assert "link_downed" not in entry["not_exposed"]  # rxe counts that one in hw_counters
    assert counters.error_deltas(entry) == {"rcvd_seq_err": 2}  # sent_pkts is traffic


def test_a_counter_that_went_down_is_a_reset_not_a_negative_delta(tmp_path: Path) -> None:
    base = make_port(tmp_path, "mlx5_1", 1, IBA_PORT, [], value=1000)
    src = [Source("rdma", "mlx5_1", 1)]
    before = read(src, tmp_path)
    bump(base, "counters", "symbol_error", -990)  # perfquery -R, or a driver reload
    [entry] = deltas(before, read(src, tmp_path))
    assert entry["reset"] == ["symbol_error"] and "symbol_error" not in entry["deltas"]
    assert all(v >= 0 for v in entry["deltas"].values())


def test_unreadable_files_and_missing_devices_are_not_exposed(tmp_path: Path) -> None:
    base = make_port(tmp_path, "mlx5_2", 1, ["symbol_error", "port_rcv_errors"], [])
    (base / "counters" / "port_rcv_errors").write_text("N/A (no PMA)\n")
    snap = read([Source("rdma", "mlx5_2", 1), Source("rdma", "mlx5_9", 1), Source("net", "eth7")], tmp_path)
    assert snap[Source("rdma", "mlx5_2", 1)] == {"symbol_error": 0}
    assert snap[Source("rdma", "mlx5_9", 1)] == {} and snap[Source("net", "eth7")] == {}


def test_tcp_and_netdev_counters(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    snmp = tmp_path / "net" / "snmp"
    head = "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab " \
           "InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n"
    snmp.write_text("Ip: Forwarding\nIp: 1\n" + head + "Tcp: 1 200 120000 -1 5 5 0 0 4 100 100 0 0 0 0\n")
    stats = tmp_path / "class" / "net" / "eth1" / "statistics"
    stats.mkdir(parents=True)
    for n in ("rx_errors", "rx_dropped", "tx_packets"):
        (stats / n).write_text("0\n")
    src = [Source("tcp", "tcp"), Source("net", "eth1")]
    before = read(src, tmp_path, tmp_path)
    snmp.write_text("Ip: Forwarding\nIp: 1\n" + head + "Tcp: 1 200 120000 -1 5 5 0 0 1 900 1000 37 0 0 0\n")
    (stats / "rx_dropped").write_text("4\n")
    by_kind = {e["kind"]: e for e in deltas(before, read(src, tmp_path, tmp_path))}
    assert by_kind["tcp"]["deltas"]["RetransSegs"] == 37 and by_kind["tcp"]["deltas"]["OutSegs"] == 900
    assert by_kind["tcp"]["reset"] == []  # CurrEstab went 4 -> 1: a gauge, not read
    assert by_kind["net"]["deltas"]["rx_dropped"] == 4
    assert set(by_kind["net"]["not_exposed"]) == {"tx_errors", "tx_dropped", "rx_crc_errors", "rx_missed_errors"}


def test_nccl_ib_hca_selection(tmp_path: Path) -> None:
    for dev in ("mlx5_0", "mlx5_1", "mlx5_10", "mlx5_2"):
        make_port(tmp_path, dev, 1, ["symbol_error"], [])
    assert nccl_hcas(None, tmp_path) == ["mlx5_0", "mlx5_1", "mlx5_10", "mlx5_2"]
    assert nccl_hcas("mlx5_1:1", tmp_path) == ["mlx5_1", "mlx5_10"]  # a prefix, as NCCL reads it
    assert nccl_hcas("=mlx5_1:1", tmp_path) == ["mlx5_1"]
    assert nccl_hcas("^mlx5_0,mlx5_2", tmp_path) == ["mlx5_1", "mlx5_10"]


def test_watch_record_and_the_stored_entries(tmp_path: Path) -> None:
    base = make_port(tmp_path, "mlx5_3", 1, IBA_PORT, MLX5_HW)
    watch = CounterWatch([Source("rdma", "mlx5_3", 1)], tmp_path, tmp_path).start()
    bump(base, "counters", "symbol_error", 5)
    rec = watch.record("000-x", 1)
    assert rec["type"] == "counters" and rec["sources"][0]["deltas"]["symbol_error"] == 5
    # Two ranks per node reading the same NIC are counted once; the node is the test's host by rank.
    recs = [{**rec, "rank": r} for r in range(4)]
    stored = stored_entries(recs, ["gpu-01", "gpu-07"], 4)
    assert stored is not None and [(e["node"], e["rank"]) for e in stored] == [("gpu-01", 0), ("gpu-07", 2)]
    assert stored_entries([], ["a"], 1) is None  # no rank reported: not recorded, not "nothing moved"


def _row(test_id: str, node_deltas: dict[tuple[str, str], dict[str, int]]) -> dict[str, object]:
    return {"test_id": test_id, "counters": json.dumps(
        [{"node": n, "rank": 0, "kind": "rdma", "device": d, "port": 1, "deltas": v, "reset": [], "not_exposed": []}
         for (n, d), v in node_deltas.items()])}


def test_verdicts_cite_their_counters_and_fine_tests_with_errors_are_warned() -> None:
    rows = [_row(f"00{i}-bw", {("gpu-07", "mlx5_3"): {"port_rcv_errors": 400 + i, "port_xmit_data": 9},
                               (f"gpu-0{i}", "mlx5_3"): {"port_rcv_errors": 0}}) for i in (1, 2, 3)]
    rows.append(_row("004-bw", {("gpu-04", "mlx5_3"): {"symbol_error": 2}, ("gpu-05", "mlx5_3"): {"np_cnp_sent": 50}}))
    rows.append(_row("005-bw", {("gpu-05", "mlx5_3"): {"np_cnp_sent": 50}}))
    f = Finding("bad-node", ("gpu-07",), "median bandwidth 0.41x", tuple({"test_id": f"00{i}-bw"} for i in (1, 2, 3)))
    cited = cite(f, rows)
    assert cited.why == "median bandwidth 0.41x; counters: port_rcv_errors +1,206 on gpu-07 mlx5_3 during 3 tests"
    quiet = cite(Finding("bad-link", ("gpu-04", "gpu-05"), "slow", ({"test_id": "005-bw"},)), rows)
    assert quiet.why.endswith("counters: no error counter moved in its 1 test(s)")  # CNPs are congestion
    assert cite(Finding("dead", ("gpu-09",), "never started", ({"test_id": "009-bw"},)), rows).why == "never started"
    warned = errors_without_slowdown({"004-bw": ("gpu-04", "gpu-05"), "005-bw": ("gpu-05", "gpu-06")}, rows)
    assert [(w.test_id, w.why) for w in warned] == [("004-bw", "errors without slowdown: symbol_error +2 on gpu-04 mlx5_3")]
    md = "\n".join(markdown_lines("r1", rows))
    assert "| gpu-07 | mlx5_3 | port_rcv_errors | error | +1,206 | 3 |" in md
    assert "| gpu-05 | mlx5_3 | np_cnp_sent | congestion | +100 | 2 |" in md and "port_xmit_data" not in md
    assert show_lines([rows[3]])[1:] == ["# 004-bw: symbol_error +2 on gpu-04 mlx5_3",
                                         "# 004-bw: np_cnp_sent +50 on gpu-05 mlx5_3 (congestion)"]
    assert show_lines([{"test_id": "x", "counters": None}]) == []  # not recorded: nothing said
    nothing_read = [{"test_id": "009-bw", "counters": "[]"}]  # its ranks found no source to read
    assert cite(Finding("bad-link", ("a", "b"), "slow", ({"test_id": "009-bw"},)), nothing_read).why == "slow"


@pytest.mark.slow
def test_a_local_sweep_stores_counters_and_show_report_json_carry_them(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("name: c\ntests:\n  - name: bw\n    workload: rdma_write_bw\n    transport: tcp\n"
                      "    sizes: [64K]\n    iterations: 200\n")
    assert cli("sweep", str(spec), "--results", str(tmp_path), "--run-id", "c1", "--no-progress").returncode == 0
    shown = cli("show", "c1", "--results", str(tmp_path), "-o", "json")
    [test] = json.loads(shown.stdout)["tests"]
    by_kind = {e["kind"]: e for e in test["counters"]}
    # Real counters of this host's loopback and TCP: the 200 x 64 KiB went through them.
    assert by_kind["tcp"]["deltas"]["OutSegs"] > 0 and by_kind["net"]["device"] == "lo"
    assert by_kind["net"]["deltas"]["tx_bytes"] >= 200 * 65536
    assert "# fabric counters of 1 test(s)" in cli("show", "c1", "--results", str(tmp_path)).stdout
    assert cli("report", "c1", "--results", str(tmp_path)).returncode == 0
    assert "## Fabric counters of `c1`" in (tmp_path / "c1" / "report" / "summary.md").read_text()


def test_diagnosis_keeps_prints_and_reloads_its_warnings(tmp_path: Path) -> None:
    from benchfab.counter_evidence import CounterWarning
    from benchfab.diagnosis import Diagnosis, load_diagnosis, verdict_markdown, verdict_table, write_diagnosis

    w = CounterWarning("004-bw", ("gpu-04", "gpu-05"), "errors without slowdown: symbol_error +2 on gpu-04 mlx5_3")
    d = Diagnosis("r", {}, warnings=[w])
    assert not d.has_faults  # a warning leaves the exit code alone
    assert "# WARNING 004-bw (gpu-04-gpu-05): errors without slowdown: symbol_error +2" in verdict_table(d)
    assert any("**warning** 004-bw" in line for line in verdict_markdown(d))
    write_diagnosis(tmp_path, d)
    assert json.loads((tmp_path / "diagnosis.json").read_text())["warnings"][0]["kind"] == "errors-without-slowdown"
    loaded = load_diagnosis(tmp_path)
    assert loaded is not None and loaded.warnings == [w]
