"""run_rdma_pair end to end: two ranks (threads here) with the socket exchange, on the
native engine and on perftest, plus discovery against the soft-RoCE device."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from benchfab.errors import WorkloadError
from benchfab.rdma import RECORD_KEYS, SocketExchange, discover, run_rdma_pair
from benchfab.rdma.oob import new_test_secret

SECRET = new_test_secret().encode()  # both ends of each exchange here share it

pytestmark = pytest.mark.rdma


def _pair(params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=60, secret=SECRET)
    cli = SocketExchange("client", "127.0.0.1", srv.port, timeout_s=60, secret=SECRET)
    box: dict[str, Any] = {}

    def server() -> None:
        try:
            box["server"] = run_rdma_pair("server", params, srv)
        except BaseException as exc:  # noqa: BLE001
            box["server_exc"] = exc

    t = threading.Thread(target=server)
    t.start()
    try:
        client = run_rdma_pair("client", params, cli)
    finally:
        t.join(120)
        srv.close()
        cli.close()
    if "server_exc" in box:
        raise box["server_exc"]
    return box["server"], client


def test_discovery_sees_the_roce_device(rdma_device: str | None, peer_ip: str) -> None:
    devs = discover()
    ports = [p for d in devs for p in d.ports if rdma_device in (None, d.name)]
    assert ports and ports[0].active
    port = ports[0]
    if port.fabric == "roce":
        from benchfab.rdma import default_gid_index
        idx = default_gid_index(port)
        gid = next(g for g in port.gids if g.index == idx)
        assert gid.type == "RoCE v2"
        if peer_ip != "127.0.0.1":
            assert gid.ipv4 == peer_ip


def test_native_bw_records(rdma_device: str | None) -> None:
    params = {"workload": "rdma_write_bw", "sizes": [8, 4096, 65536], "iterations": 200,
              "device": rdma_device, "warmup": 10}
    server, client = _pair(params)
    assert server == []
    assert [r["size_bytes"] for r in client] == [8, 4096, 65536]
    for r in client:
        assert set(RECORD_KEYS) <= set(r)
        assert r["engine"] == "native" and r["transport"] == "verbs" and r["memory"] == "host"
        assert r["wrong_bytes"] == 0
        assert r["iterations"] == 200 and r["bw_avg_Bps"] > 0
        assert r["link_layer"] in ("ib", "roce") and r["mtu"] >= 256
    # perftest's rule: cq_mod 100 up to 8 KiB, 1 above.
    assert [r["cq_mod"] for r in client] == [100, 100, 1]


def test_native_lat_records(rdma_device: str | None) -> None:
    params = {"workload": "rdma_write_lat", "sizes": [8, 4096], "iterations": 200,
              "device": rdma_device}
    server, client = _pair(params)
    assert server == []
    for r in client:
        assert 0 < r["lat_min_s"] <= r["lat_median_s"] <= r["lat_max_s"]
        assert r["tx_depth"] == 1


@pytest.mark.parametrize("workload", ["rdma_write_bw", "rdma_write_lat"])
def test_perftest_engine_records(rdma_device: str | None, peer_ip: str, workload: str) -> None:
    import shutil
    if shutil.which("ib_write_bw") is None:
        pytest.skip("perftest is not installed")
    params = {"workload": workload, "sizes": [4096], "iterations": 200, "engine": "perftest",
              "device": rdma_device, "peer_host": peer_ip, "timeout_s": 60}
    _, client = _pair(params)
    (r,) = client
    assert r["engine"] == "perftest" and r["size_bytes"] == 4096 and r["iterations"] == 200
    if workload == "rdma_write_bw":
        assert r["bw_avg_Bps"] > 0
    else:
        assert 0 < r["lat_min_s"] <= r["lat_median_s"]


def _no_peer(key: str, payload: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError(f"must fail before talking to a peer (asked {key!r})")


@pytest.mark.parametrize("memory", ["cuda", "cuda-dmabuf", "cuda-peermem"])
def test_gpu_memory_without_a_gpu_is_a_clear_error(rdma_device: str | None, memory: str) -> None:
    """A real RDMA device but no NVIDIA driver (the VM): GPU memory fails up front,
    naming the cause (both registration paths for memory: cuda), never host memory."""
    try:
        import cuda.bindings  # noqa: F401
        cause = "NVIDIA driver library (libcuda.so.1) could not be loaded"
    except ImportError:
        cause = "cuda-bindings is not installed"
    params = {"workload": "rdma_write_bw", "sizes": [4096], "memory": memory,
              "device": rdma_device}
    with pytest.raises(WorkloadError) as info:
        run_rdma_pair("client", params, _no_peer)
    message = str(info.value)
    assert cause in message and "\n" not in message, message
    if memory == "cuda":
        assert "cuda-dmabuf:" in message and "cuda-peermem:" in message


def test_perftest_engine_refuses_gpu_memory_it_cannot_use(rdma_device: str | None) -> None:
    import shutil
    if shutil.which("ib_write_bw") is None:
        pytest.skip("perftest is not installed")
    params = {"workload": "rdma_write_bw", "sizes": [4096], "memory": "cuda",
              "engine": "perftest", "device": rdma_device, "peer_host": "127.0.0.1"}
    with pytest.raises(WorkloadError, match="built without CUDA support"):
        run_rdma_pair("client", params, _no_peer)


_NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"


@pytest.fixture
def hugepages() -> Any:
    """Set the host's 2 MiB hugepage reserve for a test (root only: the VM lane runs as
    root), and put the old value back afterwards."""
    import os

    if not os.access(_NR_HUGEPAGES, os.W_OK):
        pytest.skip("cannot change vm.nr_hugepages here (not root)")
    with open(_NR_HUGEPAGES) as fh:
        old = fh.read().strip()

    def reserve(n: int) -> int:
        with open(_NR_HUGEPAGES, "w") as fh:
            fh.write(str(n))
        with open(_NR_HUGEPAGES) as fh:
            return int(fh.read())

    yield reserve
    reserve(int(old))


@pytest.mark.parametrize("engine", ["native", "perftest"])
def test_hugepages_memory_bw_and_lat(rdma_device: str | None, peer_ip: str, hugepages: Any,
                                     engine: str) -> None:
    import shutil
    if engine == "perftest" and shutil.which("ib_write_bw") is None:
        pytest.skip("perftest is not installed")
    # Two endpoints (client and server) x two 1 MiB regions: 2 pages each, and perftest's own.
    if hugepages(16) < 8:
        pytest.skip("the kernel reserved fewer than 8 hugepages")
    for workload in ("rdma_write_bw", "rdma_write_lat"):
        params = {"workload": workload, "sizes": [4096, 1 << 20] if workload == "rdma_write_bw" else [8],
                  "iterations": 100, "memory": "hugepages", "engine": engine, "device": rdma_device,
                  "peer_host": peer_ip, "timeout_s": 60}
        _, client = _pair(params)
        assert client and all(r["memory"] == "hugepages" for r in client)
        if workload == "rdma_write_bw" and engine == "native":
            assert all(r["wrong_bytes"] == 0 for r in client)  # the bytes arrived intact


def test_hugepages_not_reserved_is_a_clear_error(rdma_device: str | None, hugepages: Any) -> None:
    hugepages(0)
    params = {"workload": "rdma_write_bw", "sizes": [1 << 20], "memory": "hugepages",
              "device": rdma_device}
    with pytest.raises(WorkloadError) as info:
        run_rdma_pair("client", params, _no_peer)
    message = str(info.value)
    assert "cannot map 1 hugepage(s) of 2 MiB" in message and "vm.nr_hugepages" in message, message
