"""Parts of benchfab.rdma that need no RDMA device: the perftest formulas, the
perftest output parser, the out-of-band exchange and the TCP loops on loopback."""

from __future__ import annotations

import math
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchfab.errors import WorkloadError
from benchfab.rdma import SocketExchange, run_rdma_pair, stats
from benchfab.rdma import perftest as pt
from benchfab.rdma.discovery import GidEntry, RdmaDevice, RdmaPort, choose_port
from benchfab.rdma.oob import new_test_secret
from benchfab.rdma.params import RdmaParams, make_record

SECRET = new_test_secret().encode()  # both ends of each exchange here share it

DATA = Path(__file__).parent / "data"


def _brute_peak(tp: np.ndarray, tc: np.ndarray) -> float:
    n = len(tp)
    return min((tc[j] - tp[i]) / (j - i + 1) for i in range(n) for j in range(i, n))


@pytest.mark.parametrize("seed", range(30))
def test_peak_search_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    tp = np.cumsum(rng.integers(1, 200, n)).astype(np.uint64) + 10**12
    tc = np.maximum.accumulate(tp + rng.integers(0, 3000, n).astype(np.uint64))
    assert stats.min_mean_interval_ns(tp, tc) == pytest.approx(_brute_peak(tp, tc), rel=1e-12)


def test_bw_figures_follow_perftest() -> None:
    tp = np.array([0, 10, 20, 30], dtype=np.uint64)
    tc = np.array([100, 100, 100, 140], dtype=np.uint64)   # cq_mod-style shared stamps
    f = stats.bw_figures(tp, tc, 1000)
    assert f["bw_avg_Bps"] == pytest.approx(1000 * 4 / 140e-9)
    assert f["msg_rate_pps"] == pytest.approx(4 / 140e-9)
    # best window: i=0..j=2 -> 100/3 ns per message
    assert f["bw_peak_Bps"] == pytest.approx(1000 / (100 / 3 * 1e-9))


def test_lat_figures_follow_perftest() -> None:
    rtts = [10, 12, 11, 13, 50, 11, 12, 1000, 11]        # ns round trips
    tp = np.concatenate([[0], np.cumsum(rtts)]).astype(np.uint64)
    f = stats.lat_figures(tp)
    d = sorted(x / 2e9 for x in rtts)                     # half RTT, seconds
    m = len(d) - 2                                        # top 2 dropped
    assert f["lat_min_s"] == d[0]
    assert f["lat_max_s"] == d[m]                         # second largest sample
    assert f["lat_median_s"] == pytest.approx((d[m // 2] + d[m // 2 - 1]) / 2)  # m even
    assert f["lat_mean_s"] == pytest.approx(sum(d[:m]) / m)
    assert f["lat_p99_s"] == d[math.ceil(m * 0.99)]
    assert f["iterations"] == 10


def test_cq_mod_rule_matches_perftest() -> None:
    p = RdmaParams()
    assert [p.effective_cq_mod(s) for s in (8, 8192, 8193)] == [100, 100, 1]
    assert RdmaParams(cq_mod=500).effective_cq_mod(1 << 20) == 128   # capped at tx_depth
    assert RdmaParams(post_list=4).effective_cq_mod(8) == 4
    assert RdmaParams(test="write_lat").iters() == 1000 and RdmaParams().iters() == 5000


def test_params_from_worker_dict() -> None:
    p = RdmaParams.from_mapping({"workload": "rdma_write_lat", "size": 8, "foo": 1})
    assert p.test == "write_lat" and p.sizes == (8,) and p.extra == {"foo": 1}
    with pytest.raises(WorkloadError, match="latency test polls the receive buffer"):
        RdmaParams.from_mapping({"workload": "rdma_write_lat", "memory": "cuda"})
    with pytest.raises(WorkloadError, match="unknown rdma workload"):
        RdmaParams.from_mapping({"workload": "rdma_atomic_bw"})


def test_read_and_send_params_follow_perftest() -> None:
    read = RdmaParams.from_mapping({"workload": "rdma_read_bw", "bidirectional": True, "qps": 4, "out_reads": 8})
    assert (read.test, read.iters(), read.effective_tx_depth(), read.effective_max_inline()) == ("read_bw", 1000, 128, 0)
    assert RdmaParams(test="send_lat").effective_max_inline() == 236  # DEF_INLINE_SEND_RC_UC
    assert RdmaParams(test="read_lat").effective_max_inline() == 0  # a READ sends nothing inline
    rec = make_record(read, {"out_reads": 8})
    assert (rec["opcode"], rec["bidirectional"], rec["qps"], rec["out_reads"]) == ("read", True, 4, 8)
    refused: dict[str, dict[str, Any]] = {
        "only": {"workload": "rdma_send_lat", "bidirectional": True},
        "issues no READs": {"workload": "rdma_write_bw", "out_reads": 4},
        "tcp transport runs rdma_write_bw / rdma_write_lat only": {"workload": "rdma_read_bw", "transport": "tcp"},
        "needs a message count": {"workload": "rdma_send_bw", "duration_s": 2.0},
    }
    for message, mapping in refused.items():
        with pytest.raises(WorkloadError, match=message):
            RdmaParams.from_mapping(mapping)


def test_perftest_command_lines_for_read_and_send() -> None:
    common = dict(binary="ib_read_bw", device="rxe0", port=1, gid_index=1, size=4096, iters=100, server_host="h")
    args = pt.build_args("read_bw", **common, bidirectional=True, qps=2, out_reads=8)  # type: ignore[arg-type]
    assert args[args.index("-q") + 1] == "2" and args[args.index("-o") + 1] == "8" and "-b" in args
    lat = pt.build_args("send_lat", **common, bidirectional=True, qps=2)  # type: ignore[arg-type]
    assert "-b" not in lat and "-q" not in lat and "-o" not in lat  # latency tests have neither


def test_parse_perftest_bw_report() -> None:
    rows = pt.parse_bw((DATA / "ib_write_bw_client.txt").read_text())
    assert len(rows) == 1
    r = rows[0]
    assert r["size_bytes"] == 65536 and r["iterations"] == 200
    assert r["bw_avg_Bps"] > 0 and r["msg_rate_pps"] > 0
    assert r["msg_rate_pps"] * 65536 == pytest.approx(r["bw_avg_Bps"], rel=0.05)


def test_parse_perftest_lat_report() -> None:
    text = (DATA / "ib_write_lat_client.txt").read_text()
    (r,) = pt.parse_lat(text)
    assert r["size_bytes"] == 8 and r["iterations"] == 200
    assert 0 < r["lat_min_s"] <= r["lat_median_s"] <= r["lat_max_s"]
    head = pt.parse_header(text)
    assert head["link_type"] == "Ethernet" and head["mtu"] == 1024
    assert head["inline_size"] == 0  # " Max inline data : 0[B]" (perftest on rxe)


def test_parse_gbits_units() -> None:
    text = (" #bytes     #iterations    BW peak[Gb/sec]    BW average[Gb/sec]   MsgRate[Mpps]\n"
            " 65536      5000             390.12             389.50               0.742900\n")
    (r,) = pt.parse_bw(text)
    assert r["bw_avg_Bps"] == pytest.approx(389.50 * 125e6)


def test_build_args_is_a_plain_argument_list() -> None:
    args = pt.build_args("write_bw", binary="ib_write_bw", device="mlx5_0", port=1,
                         gid_index=3, size=4096, iters=5000, server_host="10.0.0.1",
                         tx_depth=128, cq_mod=100)
    assert args[0] == "ib_write_bw" and args[-1] == "10.0.0.1"
    assert ["-x", "3"] == args[args.index("-x"):args.index("-x") + 2]
    assert "-Q" in args and "-n" in args and "-I" not in args  # perftest picks its inline size
    lat = pt.build_args("write_lat", binary="ib_write_lat", device="mlx5_0", port=1, gid_index=-1,
                        size=8, iters=1000, server_host=None, inline_size=0)
    assert ["-I", "0"] == lat[lat.index("-I"):lat.index("-I") + 2] and "-x" not in lat


def test_data_check_pattern_counts_and_path() -> None:
    """The data check's arithmetic, and which path a buffer takes (no device needed)."""
    from benchfab.rdma.cuda_memory import CudaBuffer
    from benchfab.rdma.data_check import Regions, lat_expected, pattern, wrong_bytes

    p8 = pattern(8)
    assert len(p8) == 8 and pattern(8) == p8 and pattern(9)[:8] != p8
    assert lat_expected(8, 300)[:7] == p8[:7] and lat_expected(8, 300)[7] == 300 & 0xFF
    assert wrong_bytes(p8, p8) == 0
    assert wrong_bytes(bytes([p8[0] ^ 0xFF]) + p8[1:], p8) == 1
    assert wrong_bytes(p8[:5], p8) == 3  # bytes that never arrived count as wrong
    assert Regions(ep=None).check == "host"
    assert Regions(ep=None, gpu=CudaBuffer(addr=0, length=0, device=0)).check == "gpu-d2h"


_HELP_CUDA = "      --use_cuda=<cuda device id> Use CUDA specific device for GPUDirect RDMA testing\n"
_HELP_DMABUF = "      --use_cuda_dmabuf Use CUDA DMA-BUF for GPUDirect RDMA testing\n"


@pytest.mark.parametrize("memory, help_text, flags, label", [
    ("host", "", [], "host"),
    ("cuda", _HELP_CUDA + _HELP_DMABUF, ["--use_cuda=1", "--use_cuda_dmabuf"], "cuda-dmabuf"),
    ("cuda", _HELP_CUDA, ["--use_cuda=1"], "cuda-peermem"),
    ("cuda-peermem", _HELP_CUDA + _HELP_DMABUF, ["--use_cuda=1"], "cuda-peermem"),
    ("cuda-dmabuf", _HELP_CUDA + _HELP_DMABUF, ["--use_cuda=1", "--use_cuda_dmabuf"], "cuda-dmabuf"),
])
def test_perftest_gpu_flags_follow_what_the_binary_offers(memory: str, help_text: str,
                                                         flags: list[str], label: str) -> None:
    assert pt.cuda_flags("ib_write_bw", memory, 1, help_text=help_text) == (flags, label)


def test_perftest_without_dmabuf_refuses_cuda_dmabuf() -> None:
    with pytest.raises(WorkloadError, match="without CUDA DMA-BUF support"):
        pt.cuda_flags("ib_write_bw", "cuda-dmabuf", 0, help_text=_HELP_CUDA)


def test_perftest_built_without_cuda_refuses_gpu_memory() -> None:
    """The installed perftest (Debian's is built without CUDA): asked for GPU memory it
    must fail up front, never measure host memory under a GPU label."""
    try:
        binary = pt.find_binary("write_bw")
    except WorkloadError:
        pytest.skip("perftest is not installed")
    if "--use_cuda" in pt._help_text(binary):
        pytest.skip("this perftest was built with CUDA")
    with pytest.raises(WorkloadError, match="built without CUDA support") as info:
        pt.cuda_flags(binary, "cuda", 0)
    assert "engine: native" in str(info.value) and "\n" not in str(info.value)


def _roce_port(dev: str, ip: str, state: str = "ACTIVE") -> RdmaPort:
    mapped = "0000:0000:0000:0000:0000:ffff:" + "".join(f"{int(o):02x}" for o in ip.split("."))
    mapped = mapped[:-4] + ":" + mapped[-4:]
    gids = (GidEntry(0, "fe80:0000:0000:0000:0202:00ff:fe00:0001", "IB/RoCE v1", "eth0"),
            GidEntry(1, "fe80:0000:0000:0000:0202:00ff:fe00:0001", "RoCE v2", "eth0"),
            GidEntry(2, mapped, "IB/RoCE v1", "eth0"), GidEntry(3, mapped, "RoCE v2", "eth0"))
    return RdmaPort(dev, 1, state, "Ethernet", "200 Gb/sec", 0, 4096, gids)


def _devices() -> list[RdmaDevice]:
    ib = RdmaDevice("mlx5_9", None, (RdmaPort("mlx5_9", 1, "ACTIVE", "InfiniBand", None, 7, 4096, ()),))
    return [RdmaDevice("mlx5_0", None, (_roce_port("mlx5_0", "10.0.0.1"),)),
            RdmaDevice("mlx5_1", None, (_roce_port("mlx5_1", "10.0.1.1"),)), ib]


def test_port_choice_follows_the_test_networks_address() -> None:
    devs = _devices()
    assert _devices()[1].ports[0].gids[3].ipv4 == "10.0.1.1"
    # Default: the first ACTIVE port, its RoCE v2 IPv4 GID.
    c = choose_port(devs)
    assert (c.device, c.port, c.gid_index) == ("mlx5_0", 1, 3)
    # A pod's net1 address picks the NIC that carries it and its RoCE v2 GID.
    c = choose_port(devs, prefer_ip="10.0.1.1")
    assert (c.device, c.gid_index, c.link_layer) == ("mlx5_1", 3, "roce")
    assert choose_port(devs, prefer_ip="10.0.1.1", gid_index=2).gid_index == 2  # explicit wins
    assert choose_port(devs, device="mlx5_0", prefer_ip="10.0.1.1").device == "mlx5_0"
    assert choose_port(devs, prefer_ip="192.0.2.9").device == "mlx5_0"  # on no GID: defaults
    assert choose_port(devs, device="mlx5_9", prefer_ip="10.0.1.1").gid_index == -1  # IB: LID
    down = [RdmaDevice("mlx5_1", None, (_roce_port("mlx5_1", "10.0.1.1", "DOWN"),))]
    with pytest.raises(WorkloadError, match="no ACTIVE RDMA port among mlx5_1:1=DOWN"):
        choose_port(down, prefer_ip="10.0.1.1")


def test_exchange_times_out_when_nobody_connects() -> None:
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=0.3, secret=SECRET)
    with pytest.raises(WorkloadError, match="no authenticated peer connected"):
        srv("hello", {})
    srv.close()


def test_exchange_detects_out_of_step_peers() -> None:
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=5, secret=SECRET)
    cli = SocketExchange("client", "127.0.0.1", srv.port, timeout_s=5, secret=SECRET)
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.setdefault("r", srv("a", {"x": 1})))
    t.start()
    assert cli("a", {"y": 2}) == {"x": 1}
    t.join()
    assert box["r"] == {"y": 2}

    def server_side() -> None:
        try:
            srv("b", {})
        except WorkloadError as exc:  # the server notices too
            box["srv_exc"] = exc

    t = threading.Thread(target=server_side)
    t.start()
    with pytest.raises(WorkloadError, match="out of step"):
        cli("c", {})
    t.join()
    assert "out of step" in str(box["srv_exc"])
    srv.close()
    cli.close()


@pytest.mark.parametrize("engine", ["native", "python"])
@pytest.mark.parametrize("workload", ["tcp_write_bw", "tcp_write_lat"])
def test_tcp_pair_on_loopback(engine: str, workload: str) -> None:
    if engine == "native":
        pytest.importorskip("benchfab._native")
    srv = SocketExchange("server", "127.0.0.1", 0, secret=SECRET)
    cli = SocketExchange("client", "127.0.0.1", srv.port, secret=SECRET)
    params = {"workload": workload, "sizes": [8, 65536], "iterations": 200,
              "peer_host": "127.0.0.1", "engine": engine, "warmup": 5}
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.setdefault("s", run_rdma_pair("server", params, srv)))
    t.start()
    recs = run_rdma_pair("client", params, cli)
    t.join(60)
    assert box["s"] == []
    assert [r["size_bytes"] for r in recs] == [8, 65536]
    for r in recs:
        assert r["transport"] == "tcp" and r["engine"] == engine
        if workload == "tcp_write_bw":
            assert r["bw_avg_Bps"] > 0
        else:
            assert 0 < r["lat_median_s"] < 0.1


def _stray_wrong_token(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"\x00" * 16)
        assert s.recv(1) == b""  # the server closed it


def _stray_silent_then_gone(port: int) -> None:
    socket.create_connection(("127.0.0.1", port)).close()


def test_tcp_data_connection_takes_only_the_peer_with_the_token(capfd: pytest.CaptureFixture[str]) -> None:
    """The tcp data port is announced to the authenticated peer only, but anything can
    connect to it: here two strays connect before the real client does (one with a
    wrong token, one that closes without a word). The server drops and names both,
    then measures with the real client."""
    srv = SocketExchange("server", "127.0.0.1", 0, secret=SECRET)
    cli = SocketExchange("client", "127.0.0.1", srv.port, secret=SECRET)

    def client_exchange(key: str, payload: dict[str, Any]) -> dict[str, Any]:
        got = cli(key, payload)
        if key == "tcp-listen":
            _stray_wrong_token(int(got["port"]))
            _stray_silent_then_gone(int(got["port"]))
        return got

    params = {"workload": "tcp_write_lat", "sizes": [8], "iterations": 50, "peer_host": "127.0.0.1",
              "engine": "python", "warmup": 2}
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.setdefault("s", run_rdma_pair("server", params, srv)))
    t.start()
    recs = run_rdma_pair("client", params, client_exchange)
    t.join(60)
    assert box["s"] == [] and [r["size_bytes"] for r in recs] == [8]
    err = capfd.readouterr().err
    assert err.count("benchfab: tcp data: ignored a connection from 127.0.0.1") == 2, err
    assert "it sent another token" in err and "it did not send the token" in err


def test_tcp_data_connection_without_the_peer_times_out() -> None:
    """Only strays connect: the server gives up at its deadline with a clear error."""
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=5, secret=SECRET)
    cli = SocketExchange("client", "127.0.0.1", srv.port, timeout_s=5, secret=SECRET)
    params = {"workload": "tcp_write_lat", "sizes": [8], "iterations": 10, "peer_host": "127.0.0.1",
              "engine": "python", "timeout_s": 2}
    box: dict[str, Any] = {}

    def server() -> None:
        try:
            run_rdma_pair("server", params, srv)
        except WorkloadError as exc:
            box["exc"] = exc

    t = threading.Thread(target=server)
    t.start()
    info = cli("tcp-listen", {})
    _stray_wrong_token(int(info["port"]))
    t.join(30)
    assert "no peer connected with this test's token within 2 s" in str(box["exc"])
    srv.close()
    cli.close()


def test_tcp_silent_peer_times_out() -> None:
    native = pytest.importorskip("benchfab._native")
    a, b = socket.socketpair()
    with pytest.raises(WorkloadError, match="timed out"):
        native.tcp_write_lat(a.fileno(), 8, 10, False, timeout_s=0.3)
    a.close()
    b.close()


def test_bw_per_iteration_uses_cqe_group_ends() -> None:
    # cq_mod 3: WRs 0-2 completed at 30, 3-5 at 60, 6 (last, signaled) at 70.
    tc = np.array([30, 30, 30, 60, 60, 60, 70], dtype=np.uint64)
    got = stats.bw_per_iteration_s(tc, 3)
    assert got == pytest.approx([10e-9, 10e-9])
