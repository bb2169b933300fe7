"""The native verbs endpoint against a real (soft-RoCE) device: connection setup, data
integrity, the bw and lat loops, and clear errors instead of hangs."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from benchfab.errors import WorkloadError

pytestmark = pytest.mark.rdma


def _pattern(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _both(fn_a: Any, fn_b: Any) -> tuple[Any, Any]:
    """Run fn_b in a thread and fn_a here (both loops release the GIL)."""
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


def test_local_info_is_complete_and_json_friendly(make_endpoint: Any, port_choice: Any) -> None:
    ep = make_endpoint()
    info = ep.local_info()
    assert set(info) >= {"qpn", "psn", "lid", "gid", "rkey", "addr", "length", "mtu"}
    assert info["qpn"] > 0 and 0 <= info["psn"] < 1 << 24
    assert len(bytes.fromhex(info["gid"])) == 16
    assert info["length"] == 1 << 20
    assert info["mtu"] in (256, 512, 1024, 2048, 4096)
    assert ep.link_layer == port_choice.link_layer


@pytest.mark.parametrize("size", [1, 8, 4095, 4096, 65536, 1 << 20],
                         ids=["1B", "8B", "4095B", "4K", "64K", "1M"])
def test_write_bw_delivers_the_bytes(rdma_pair: tuple[Any, Any], size: int) -> None:
    a, b = rdma_pair
    data = _pattern(size, size)
    a.write_local(data)
    res = a.write_bw(size, 20, timeout_s=20)
    assert b.read_local(size) == data
    assert res["iterations"] == 20
    assert res["tposted_ns"].shape == res["tcompleted_ns"].shape == (20,)
    assert np.all(res["tcompleted_ns"] >= res["tposted_ns"])
    assert res["bw_avg_Bps"] > 0
    # The best window is at least as fast as the whole run.
    assert res["bw_peak_Bps"] >= res["bw_avg_Bps"] * (1 - 1e-9)
    assert res["msg_rate_pps"] == pytest.approx(res["bw_avg_Bps"] / size)


def test_write_bw_moderation_post_list_and_warmup(rdma_pair: tuple[Any, Any]) -> None:
    a, _ = rdma_pair
    calls: list[int] = []
    res = a.write_bw(512, 101, tx_depth=16, cq_mod=7, post_list=4, warmup=9,
                     barrier=lambda: calls.append(1))
    assert calls == [1]
    assert res["iterations"] == 101 and res["cq_mod"] == 7 and res["post_list"] == 4
    # Every WR got a completion time (a CQE covers all unsignaled WRs before it).
    assert np.all(res["tcompleted_ns"] > 0)


def test_write_bw_duration_mode_stops_on_time(rdma_pair: tuple[Any, Any]) -> None:
    a, _ = rdma_pair
    t0 = time.monotonic()
    res = a.write_bw(64, 10_000_000, cq_mod=10, duration_s=0.3)
    assert time.monotonic() - t0 < 5
    n = res["iterations"]
    assert 0 < n < 10_000_000
    assert n % 10 == 0  # ended on a signaled boundary


@pytest.mark.parametrize("size", [8, 4096], ids=["8B", "4K"])
def test_write_lat_ping_pong(rdma_pair: tuple[Any, Any], size: int) -> None:
    a, b = rdma_pair
    start = threading.Barrier(2)
    ra, rb = _both(lambda: a.write_lat(size, 300, False, timeout_s=20, barrier=start.wait),
                   lambda: b.write_lat(size, 300, True, timeout_s=20, barrier=start.wait))
    for r in (ra, rb):
        assert r["iterations"] == 300
        assert 0 < r["lat_min_s"] <= r["lat_median_s"] <= r["lat_p99_s"] <= r["lat_max_s"]
        assert r["lat_p99_s"] <= r["lat_p999_s"] <= r["lat_max_s"]
        assert r["lat_stdev_s"] >= 0
    # Both sides see the same round trips, so their medians agree closely.
    assert ra["lat_median_s"] == pytest.approx(rb["lat_median_s"], rel=0.5)


def test_bad_rkey_raises_remote_access_error(make_endpoint: Any) -> None:
    a, b = make_endpoint(), make_endpoint()
    info = b.local_info()
    info["rkey"] ^= 0x5A5A00
    a.connect(info)
    b.connect(a.local_info())
    with pytest.raises(WorkloadError) as err:
        a.write_bw(4096, 10, timeout_s=20)
    assert "remote access error" in str(err.value)
    assert err.value.status_str.startswith("remote access error")
    # The QP is now in the error state: say so instead of posting into it.
    with pytest.raises(WorkloadError, match="error state"):
        a.write_bw(4096, 10)


def test_dead_peer_bw_fails_with_retry_error(make_endpoint: Any) -> None:
    # Short RC timeout (4.096 us * 2^10 ~ 4 ms) and 2 retries keep this quick.
    a = make_endpoint(qp_timeout=10, retry_cnt=2)
    b = make_endpoint()
    a.connect(b.local_info())
    b.connect(a.local_info())
    b.close()
    t0 = time.monotonic()
    with pytest.raises(WorkloadError) as err:
        a.write_bw(4096, 50, timeout_s=15)
    assert time.monotonic() - t0 < 20
    msg = str(err.value)
    assert "retry counter exceeded" in msg or "timed out" in msg


def test_silent_peer_lat_times_out(rdma_pair: tuple[Any, Any]) -> None:
    a, _ = rdma_pair  # b never runs its loop: a waits for a write that never comes
    t0 = time.monotonic()
    with pytest.raises(WorkloadError, match="timed out after 1 s: the peer never wrote back"):
        a.write_lat(8, 100, False, timeout_s=1.0)
    assert time.monotonic() - t0 < 5


def test_size_larger_than_buffer_is_rejected(rdma_pair: tuple[Any, Any]) -> None:
    a, _ = rdma_pair
    with pytest.raises(ValueError, match="outside"):
        a.write_bw((1 << 20) + 1, 5)


def test_unknown_device_is_named(port_choice: Any) -> None:
    from benchfab import _native
    with pytest.raises(WorkloadError, match="not found"):
        _native.RdmaEndpoint("nosuchdev0", 1, port_choice.gid_index)


def test_external_memory_paths_fail_clearly(port_choice: Any, tmp_path: Any) -> None:
    """No GPU here: the dma-buf and peer-memory registrations must fail with the call
    and the likely cause in the message (rxe cannot register either)."""
    from benchfab import _native
    with open(tmp_path / "not-a-dmabuf", "wb+") as fh:
        with pytest.raises(WorkloadError, match="ibv_reg_dmabuf_mr") as err:
            _native.RdmaEndpoint(port_choice.device, port_choice.port, port_choice.gid_index,
                                 4096, dmabuf_fd=fh.fileno(), ext_addr=0x7F0000000000,
                                 ext_length=8192, memory="cuda-dmabuf")
        assert "dma-buf" in str(err.value)
    with pytest.raises(WorkloadError, match="external .device. pointer") as err:
        _native.RdmaEndpoint(port_choice.device, port_choice.port, port_choice.gid_index,
                             4096, ext_addr=0x1000, ext_length=8192, memory="cuda-peermem")
    assert "nvidia-peermem" in str(err.value)
