"""The native loops' hot path against a real (soft-RoCE) device: inline posting of small
messages, the tick-counter stamps turned into CLOCK_MONOTONIC_RAW ns, and the data check
that runs after the loop (benchfab.rdma.data_check), down to the records."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest

from benchfab.rdma.data_check import Regions, lat_expected, pattern

from .test_native_verbs import _both
from .test_pair_api import _pair

pytestmark = pytest.mark.rdma


def _lat(a: Any, b: Any, size: int, iters: int) -> tuple[dict[str, Any], dict[str, Any]]:
    start = threading.Barrier(2)
    return _both(lambda: a.write_lat(size, iters, False, timeout_s=20, barrier=start.wait),
                 lambda: b.write_lat(size, iters, True, timeout_s=20, barrier=start.wait))


def test_small_messages_are_posted_inline_and_arrive(make_endpoint: Any) -> None:
    """perftest's rule: inline when size <= the inline size; the bytes that were copied
    into the WQE arrive as the ones read from memory do."""
    a, b = make_endpoint(max_inline=220, tx_depth=1), make_endpoint(max_inline=220, tx_depth=1)
    assert a.max_inline == b.max_inline == 220  # rxe takes 220; never more than asked
    a.connect(b.local_info())
    b.connect(a.local_info())
    for size, inline in ((8, True), (220, True), (221, False), (4096, False)):
        Regions(a).fill_send(pattern(size))
        Regions(b).fill_send(pattern(size))
        ra, rb = _lat(a, b, size, 50)
        assert ra["inline"] is rb["inline"] is inline and ra["inline_size"] == 220
        # Each side holds the other's pattern, its last byte stamped with the last round.
        assert Regions(a).count_wrong(lat_expected(size, 50)) == 0
        assert Regions(b).count_wrong(lat_expected(size, 50)) == 0


def test_inline_bw_writes_arrive(make_endpoint: Any) -> None:
    a, b = make_endpoint(max_inline=64), make_endpoint()
    a.connect(b.local_info())
    b.connect(a.local_info())
    data = np.random.default_rng(7).integers(0, 256, 64, dtype=np.uint8).tobytes()
    a.write_local(data)
    res = a.write_bw(64, 300, cq_mod=10)
    assert res["inline"] is True and res["inline_size"] == 64
    assert b.read_local(64) == data
    assert a.write_bw(65, 10)["inline"] is False


def test_stamps_are_monotonic_raw_ns(rdma_pair: tuple[Any, Any]) -> None:
    """The loops stamp with the tick counter and convert after: every stamp must fall
    inside the CLOCK_MONOTONIC_RAW window around the call, in order."""
    from benchfab import _native

    a, b = rdma_pair
    t0 = _native.monotonic_ns()
    ra, rb = _lat(a, b, 8, 200)
    t1 = _native.monotonic_ns()
    for r in (ra, rb):
        tp = r["tposted_ns"].astype(np.int64)
        assert t0 <= tp[0] and tp[-1] <= t1
        assert np.all(np.diff(tp) > 0)
    t0 = _native.monotonic_ns()
    res = a.write_bw(4096, 400, cq_mod=16, warmup=20)
    t1 = _native.monotonic_ns()
    tp, tc = res["tposted_ns"].astype(np.int64), res["tcompleted_ns"].astype(np.int64)
    assert t0 <= tp[0] and tc[-1] <= t1
    assert np.all(np.diff(tp) >= 0) and np.all(np.diff(tc) >= 0) and np.all(tc >= tp)


_OS_CLOCK_RUN = """
import sys, numpy as np
from benchfab import _native
from benchfab.rdma.discovery import select_port
assert _native.clock_read_costs(1000)["stamps"] == "os"
pc = select_port(sys.argv[1] or None)
a = _native.RdmaEndpoint(pc.device, pc.port, pc.gid_index, buf_size=4096)
b = _native.RdmaEndpoint(pc.device, pc.port, pc.gid_index, buf_size=4096)
a.connect(b.local_info()); b.connect(a.local_info())
t0 = _native.monotonic_ns()
res = a.write_bw(512, 200, cq_mod=10)
t1 = _native.monotonic_ns()
tp, tc = res["tposted_ns"].astype(np.int64), res["tcompleted_ns"].astype(np.int64)
assert t0 <= tp[0] and tc[-1] <= t1 and np.all(tc >= tp), (t0, tp[0], tc[-1], t1)
print("ok")
"""


def test_os_stamp_clock_is_a_switch(rdma_device: str | None) -> None:
    """BENCHFAB_STAMP_CLOCK=os (the fix the loops name when tick counters disagree)
    stamps with clock_gettime; the figures mean the same."""
    env = dict(os.environ, BENCHFAB_STAMP_CLOCK="os")
    proc = subprocess.run([sys.executable, "-c", _OS_CLOCK_RUN, rdma_device or ""], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_data_check_counts_bytes_that_arrived_wrong(rdma_pair: tuple[Any, Any]) -> None:
    """The check reads what landed in the receive region, not what was sent: bytes
    changed there after the transfer are counted, for bw and for lat."""
    a, b = rdma_pair
    Regions(a).fill_send(pattern(4096))
    a.write_bw(4096, 20)
    check = Regions(b)
    assert check.check == "host" and check.count_wrong(pattern(4096)) == 0
    b.write_local(b"\x00\x01\x02", offset=1000, region="recv")
    want = pattern(4096)
    assert check.count_wrong(want) == sum(x != y for x, y in zip(b"\x00\x01\x02", want[1000:1003]))
    assert check.count_wrong(pattern(4095)) > 4000  # another size's pattern cannot pass
    Regions(a).fill_send(pattern(8))
    Regions(b).fill_send(pattern(8))
    _lat(a, b, 8, 30)
    assert Regions(b).count_wrong(lat_expected(8, 30)) == 0
    assert Regions(b).count_wrong(lat_expected(8, 31)) == 1  # the round stamp is checked too


def test_records_say_inline_size_and_data_check(rdma_device: str | None) -> None:
    _, lat = _pair({"workload": "rdma_write_lat", "sizes": [8, 4096], "iterations": 100,
                    "warmup": 5, "device": rdma_device})
    for r in lat:
        assert r["inline_size"] == 220 and r["data_check"] == "host" and r["wrong_bytes"] == 0
        assert r.get("status", "ok") == "ok"
    _, bw = _pair({"workload": "rdma_write_bw", "sizes": [64], "iterations": 100,
                   "device": rdma_device, "max_inline": 128})
    assert bw[0]["inline_size"] == 128 and bw[0]["data_check"] == "host" and bw[0]["wrong_bytes"] == 0
    _, off = _pair({"workload": "rdma_write_bw", "sizes": [64], "iterations": 50,
                    "device": rdma_device, "verify": False})
    assert off[0]["inline_size"] == 0 and off[0]["data_check"] == "skipped" and off[0]["wrong_bytes"] is None


def test_perftest_records_say_its_inline_size(rdma_device: str | None, peer_ip: str) -> None:
    import shutil
    if shutil.which("ib_write_lat") is None:
        pytest.skip("perftest is not installed")
    _, client = _pair({"workload": "rdma_write_lat", "sizes": [8], "iterations": 100, "engine": "perftest",
                       "device": rdma_device, "peer_host": peer_ip, "timeout_s": 60})
    # perftest's "Max inline data": 0 on devices it does not know (rxe), 220 on most NICs.
    assert isinstance(client[0]["inline_size"], int) and client[0]["data_check"] == "skipped"
