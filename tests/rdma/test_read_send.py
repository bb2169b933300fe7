"""READ and SEND through the native loops (perftest's ib_read_* / ib_send_*), with -b and
-q, against the soft-RoCE device: the bytes move where each verb says, the directions and
QPs are the ones asked for, and a failed endpoint is not reused."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from benchfab.errors import WorkloadError
from benchfab.rdma import RECORD_KEYS, SocketExchange, run_rdma_pair
from benchfab.rdma.oob import new_test_secret
from benchfab.workloads.p2p_workloads import p2p_workload

SECRET = new_test_secret().encode()

pytestmark = pytest.mark.rdma


def _pattern(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _both(fn_a: Any, fn_b: Any) -> tuple[Any, Any]:
    """fn_b in a thread, fn_a here (the loops release the GIL); b's exception re-raised."""
    box: dict[str, Any] = {}

    def side_b() -> None:
        try:
            box["b"] = fn_b()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["b_exc"] = exc

    t = threading.Thread(target=side_b)
    t.start()
    try:
        ra = fn_a()
    finally:
        t.join(60)
    if "b_exc" in box:
        raise box["b_exc"]
    return ra, box["b"]


def _connected(make_endpoint: Any, **kw: Any) -> tuple[Any, Any]:
    a, b = make_endpoint(**kw), make_endpoint(**kw)
    a.connect(b.local_info())
    b.connect(a.local_info())
    return a, b


def _barrier() -> Any:
    """A two-party barrier for the loops' ``barrier`` argument."""
    gate = threading.Barrier(2, timeout=30)
    return gate.wait


# -- the endpoint ----------------------------------------------------------------------

def test_read_bw_copies_the_peers_send_region_with_reads_outstanding(make_endpoint: Any) -> None:
    a, b = _connected(make_endpoint)
    size = 65536
    data = _pattern(size, 1)
    b.write_local(data)  # READ's source: the peer's send region
    res = a.bw("read", size, 200, timeout_s=20)
    assert a.read_local(size) == data
    assert res["opcode"] == "read" and res["iterations"] == 200 and res["bw_avg_Bps"] > 0
    # perftest -o: the device's most, not 1 (rxe allows more than one in flight).
    assert res["out_reads"] == a.out_reads > 1
    assert not res["inline"]  # a READ sends nothing inline
    c, d = _connected(make_endpoint, out_reads=2)
    assert c.out_reads == 2
    with pytest.raises(WorkloadError, match="outstanding READs"):
        make_endpoint(out_reads=a.out_reads + 1)


def test_read_lat_is_a_whole_round_trip_per_read(make_endpoint: Any) -> None:
    a, b = _connected(make_endpoint)
    b.write_local(_pattern(4096, 2))
    res = a.lat("read", 4096, 300, True, warmup=10, timeout_s=20)
    assert a.read_local(4096) == _pattern(4096, 2)
    assert res["opcode"] == "read" and res["iterations"] == 300
    # rtt_factor 1: a sample is the whole gap between two posts, not half of it.
    gaps = np.diff(res["tposted_ns"]).astype(float) / 1e9
    assert res["lat_min_s"] == pytest.approx(gaps.min(), rel=1e-6)


def test_send_bw_receiver_keeps_its_queue_full(make_endpoint: Any) -> None:
    a, b = _connected(make_endpoint, rx_depth=16)  # far fewer receives than messages
    size, iters = 4096, 300
    a.write_local(_pattern(size, 3))
    gate = _barrier()
    ra, rb = _both(lambda: a.bw("send", size, iters, warmup=20, timeout_s=20, barrier=gate),
                   lambda: b.bw("send", size, iters, warmup=20, timeout_s=20, barrier=gate,
                                post=False, receive=True))
    assert b.read_local(size) == _pattern(size, 3)
    assert ra["iterations"] == iters and ra["bw_avg_Bps"] > 0 and ra["received"] == 0
    assert rb["received"] == iters and "bw_avg_Bps" not in rb


def test_send_lat_ping_pong_delivers_both_ways(make_endpoint: Any) -> None:
    a, b = _connected(make_endpoint)
    a.write_local(_pattern(64, 4))
    b.write_local(_pattern(64, 5))
    gate = _barrier()
    ra, rb = _both(lambda: a.lat("send", 64, 200, True, warmup=5, timeout_s=20, barrier=gate),
                   lambda: b.lat("send", 64, 200, False, warmup=5, timeout_s=20, barrier=gate))
    # Each side's last byte carries the round number (205); the rest is the peer's bytes.
    assert b.read_local(63) == _pattern(64, 4)[:63] and b.read_local(1, 63) == bytes([205])
    assert a.read_local(63) == _pattern(64, 5)[:63]
    assert 0 < ra["lat_min_s"] <= ra["lat_median_s"] and ra["lat_median_s"] == pytest.approx(
        rb["lat_median_s"], rel=0.5)


@pytest.mark.parametrize("verb", ["write", "send"])
def test_bidirectional_moves_each_sides_bytes_to_the_other(make_endpoint: Any, verb: str) -> None:
    a, b = _connected(make_endpoint)
    size = 8192
    a.write_local(_pattern(size, 6))
    b.write_local(_pattern(size, 7))
    both = verb == "send"
    gate = _barrier()
    ra, rb = _both(lambda: a.bw(verb, size, 150, timeout_s=20, barrier=gate, receive=both),
                   lambda: b.bw(verb, size, 150, timeout_s=20, barrier=gate, receive=both))
    assert b.read_local(size) == _pattern(size, 6) and a.read_local(size) == _pattern(size, 7)
    assert ra["iterations"] == rb["iterations"] == 150
    if both:
        assert ra["received"] == rb["received"] == 150


def test_several_qps_each_post_iters(make_endpoint: Any) -> None:
    a, b = _connected(make_endpoint, num_qps=3)
    info = a.local_info()
    assert len(set(info["qpns"])) == 3 == a.num_qps
    b.write_local(_pattern(4096, 8))
    res = a.bw("read", 4096, 100, timeout_s=20)
    assert res["qps"] == 3 and res["iterations"] == 300  # perftest -q: -n per QP
    assert a.read_local(4096) == _pattern(4096, 8)
    one = make_endpoint()
    with pytest.raises(WorkloadError, match="the peer has 3 QP"):
        one.connect(info)


def test_a_timed_out_endpoint_is_not_reused(make_endpoint: Any) -> None:
    a, _ = _connected(make_endpoint)  # the peer never answers the ping-pong
    t0 = time.monotonic()
    with pytest.raises(WorkloadError, match="timed out after 1 s"):
        a.lat("send", 8, 50, False, timeout_s=1.0)
    assert time.monotonic() - t0 < 5
    # Its receives are still posted: a next loop would take their late completions for
    # its own, so the endpoint refuses to run again.
    with pytest.raises(WorkloadError, match="make a new endpoint"):
        a.write_bw(8, 10)


# -- run_rdma_pair: the records ----------------------------------------------------------

def _pair(params: dict[str, Any]) -> list[dict[str, Any]]:
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=60, secret=SECRET)
    cli = SocketExchange("client", "127.0.0.1", srv.port, timeout_s=60, secret=SECRET)
    try:
        client, server = _both(lambda: run_rdma_pair("client", params, cli),
                               lambda: run_rdma_pair("server", params, srv))
    finally:
        srv.close()
        cli.close()
    assert server == []  # the client measures and returns the records, as perftest's
    return list(client)


@pytest.mark.parametrize("workload", ["rdma_read_bw", "rdma_read_lat", "rdma_send_bw", "rdma_send_lat"])
def test_each_workload_runs_and_its_bytes_arrive(rdma_device: str | None, workload: str) -> None:
    records = _pair({"workload": workload, "sizes": [8, 65536], "iterations": 100, "warmup": 5,
                     "device": rdma_device})
    assert [r["size_bytes"] for r in records] == [8, 65536]
    verb = workload.split("_")[1]
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert (r["workload"], r["opcode"], r["bidirectional"], r["qps"]) == (workload, verb, False, 1)
        assert r["wrong_bytes"] == 0 and r["data_check"] == "host" and r.get("status", "ok") == "ok"
        assert (r["out_reads"] is not None) == (verb == "read")
        assert r[p2p_workload(workload).judged.column] > 0


@pytest.mark.parametrize("workload", ["rdma_read_bw", "rdma_send_bw", "rdma_write_bw"])
def test_bidirectional_several_qps_records(rdma_device: str | None, workload: str) -> None:
    one, = _pair({"workload": workload, "sizes": [4096], "iterations": 100, "device": rdma_device})
    r, = _pair({"workload": workload, "sizes": [4096], "iterations": 100, "device": rdma_device,
                "bidirectional": True, "qps": 2})
    assert (r["bidirectional"], r["qps"], r["iterations"]) == (True, 2, 200)
    assert r["wrong_bytes"] == 0 and one["wrong_bytes"] == 0
    # -b reports both directions' sum (perftest adds the server's report): the client's own
    # messages alone give iterations / elapsed, the sum more.
    assert r["msg_rate_pps"] > r["iterations"] / r["elapsed_s"] * 1.01
