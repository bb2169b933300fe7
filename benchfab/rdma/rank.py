"""One rank of a point-to-point test: the engines' side of the point-to-point family
(benchfab.workloads.point_to_point), which the worker hands to the family's run_worker
(RankContext.run_pair): the engines sit above the families in the layers.

No process group: the two ranks exchange connection data (QPN, PSN, GID, rkey,
address) over one TCP connection to rank 0 at MASTER_ADDR:MASTER_PORT, which is
reachable the same way locally and between pods.
"""

from __future__ import annotations

import os
import platform
import socket
from typing import Any, cast

from ..counters import CounterWatch, read_tcp, sources_for
from ..errors import WorkloadError
from ..records import P2PResult
from ..task import Task
from ..workloads.base import RankContext
from ..workloads.catalog import is_gpu_memory
from ..workloads.collective_worker import visible_gpu_addresses
from ..workloads.p2p_workloads import p2p_workload
from ..workloads.rendezvous import listen_socket, own_address_towards


def _default_gpu(local_rank: int, hca: str | None) -> tuple[int, dict[str, Any] | None]:
    """The GPU a point-to-point rank uses for memory unless rdma.cuda_device says: the one
    of the GPUs it sees nearest to its HCA in the PCIe tree (benchfab.pcitopo), else its
    local index over them; and that pairing's locality (None where unknown)."""
    from ..pcitopo import nearest_visible_gpu, read_topology

    visible = visible_gpu_addresses()
    topo = read_topology()
    gpu, _ = nearest_visible_gpu(topo, hca, visible, local_rank)
    return gpu, _locality(topo, visible, gpu, hca)


def _nearest_gpu(hca: str | None) -> int | None:
    """The host's GPU nearest this rank's HCA in the PCIe tree (per rail: the GPU that rail
    serves); None where there is no HCA or GPU, or the tree cannot be read."""
    if not hca:
        return None
    from ..pcitopo import read_topology

    try:
        return read_topology().nearest_gpu(hca)
    except OSError:
        return None


def _locality(topo: Any, visible: list[str], gpu: int, hca: str | None) -> dict[str, Any] | None:
    """(GPU, HCA) pairing of a rank with its distance class; a SYS pairing is flagged."""
    if not hca or not 0 <= gpu < len(visible):
        return None
    host_index = next((i for i, g in enumerate(topo.gpus) if g.address == visible[gpu].lower()), None)
    if host_index is None:
        return None
    pairing: dict[str, Any] | None = topo.pairing(host_index, hca)
    if pairing is not None:
        pairing["gpu"] = gpu
    return pairing


def _exchange(rank: int, addr: str, port: int, timeout: float, ctx: RankContext) -> Any:
    """The authenticated out-of-band channel: rank 0 listens on the address the test
    uses (MASTER_ADDR), rank 1 connects to it; both hold the test's secret."""
    from .oob import SocketExchange, secret_from_env

    secret = secret_from_env()
    if rank != 0:
        return SocketExchange("client", addr, port, timeout, secret=secret)
    # MASTER_ADDR only (POD_IP when it is a name of another address), never every interface:
    # the secret decides who the peer is, the address who can even try (workloads.rendezvous).
    return SocketExchange("server", addr, port, timeout, secret=secret, listener=listen_socket(addr, port, 64))


def run_point_to_point(task: Task, ctx: RankContext) -> None:
    """rdma_write_bw / rdma_write_lat: rank 0 measures (perftest's client), rank 1 serves."""
    from . import run_rdma_pair

    rank, addr, port = ctx.rank, ctx.addr, ctx.port
    if ctx.world != 2:
        raise WorkloadError(f"{task.workload} needs exactly 2 ranks, got {ctx.world}")
    role = "client" if rank == 0 else "server"
    timeout = max(10.0, task.rendezvous_timeout)
    exchange = _exchange(rank, addr, port, timeout, ctx)
    # Rank 0 (the measuring client) must reach rank 1's tcp/perftest server: rank 1
    # tells it the address it uses towards rank 0, which is right locally and in pods.
    # In a pod the test network is the secondary interface (BENCHFAB_NET_IP, set by the
    # Kubernetes backend from Multus' network-status), not the pod IP the rendezvous uses.
    net_ip = os.environ.get("BENCHFAB_NET_IP") or None
    announced = (net_ip or own_address_towards(addr, port)) if rank == 1 else None
    hello = exchange("worker-hello", {"host": announced} if rank == 1 else {})
    peer_host = os.environ.get("BENCHFAB_PEER_HOST") or (hello.get("host") if rank == 0 else None) or addr
    params = _engine_params(task, ctx, timeout, peer_host, net_ip)
    if announced:
        params["listen_host"] = announced  # the tcp data port listens where rank 0 was told to connect, only
    locality = params.pop("locality", None)  # recorded, not an engine parameter
    ctx.emit({"type": "env", "rank": rank, "host": socket.gethostname(), "pid": os.getpid(),
              "python": platform.python_version(), "transport": task.transport, "engine": task.engine,
              "memory": task.memory, "role": role, "device": "cuda" if is_gpu_memory(task.memory) else "host",
              "rdma_device": task.rdma.get("device"), "cuda_device": params.get("cuda_device"),
              "peer_host": peer_host if rank == 0 else None, "net_ip": net_ip,
              "locality": locality, "nearest_gpu": _nearest_gpu(params.get("device"))})
    if locality and locality.get("sys_distance"):
        ctx.log(f"WARNING: GPU {locality['gpu']} and {locality['hca']} are SYS apart (across NUMA nodes): "
                "GPUDirect RDMA over SYS is known to halve bandwidth; set rdma.cuda_device to a nearer GPU")
    ctx.log(f"{role}: {task.workload} over {task.transport} ({task.engine}), {len(task.sizes)} size(s)")
    watch = _counter_watch(task, params, peer_host, port).start()  # outside the timed loops, once per test
    before = tcp_counters() if task.transport == "tcp" else None
    try:
        records = run_rdma_pair(role, params, exchange)
    finally:
        close = getattr(exchange, "close", None)
        if close is not None:
            close()
    ctx.emit(watch.record(task.test_id, rank))
    if rank == 0:
        after = tcp_counters() if before is not None else None
        if before is not None and after is not None:
            # Per test (every size ran on the one connection): what this rank's network
            # namespace sent and retransmitted meanwhile, where the connection's own counts
            # (tcp_transport.connection_counters) are missing. Loss on the path shows here.
            for rec in records:
                if rec.get("tcp_segments") is None:
                    rec["tcp_segments"], rec["tcp_retrans"] = after[0] - before[0], after[1] - before[1]
        _emit_results(task, records, ctx)


def tcp_counters() -> tuple[int, int] | None:
    """(segments sent, segments retransmitted) by TCP in this network namespace, from
    /proc/net/snmp (a pod's own namespace in a pod; None where it cannot be read)."""
    tcp = read_tcp()
    return (tcp["OutSegs"], tcp["RetransSegs"]) if "OutSegs" in tcp and "RetransSegs" in tcp else None


def _counter_watch(task: Task, params: dict[str, Any], peer_host: str, port: int) -> CounterWatch:
    """The counters this rank reads around its test: over tcp, the interface carrying its
    address towards the peer and TCP; over verbs, the RDMA port the engine will pick."""
    if task.transport == "tcp":
        local = params.get("listen_host") or params.get("prefer_ip") or own_address_towards(peer_host, port)
        return CounterWatch(sources_for(address=str(local), tcp=True))
    from .discovery import select_port
    from .params import RdmaParams

    try:
        p = RdmaParams.from_mapping(params)
        choice = select_port(p.device, p.port if p.device else None, p.gid_index, p.prefer_ip)  # as the engines do
    except WorkloadError:
        return CounterWatch([])  # the engine fails on the same and says why
    return CounterWatch(sources_for(rdma=[(choice.device, choice.port)]))


def _engine_params(task: Task, ctx: RankContext, timeout: float, peer_host: str,
                   net_ip: str | None) -> dict[str, Any]:
    """The engine's parameters (params.RdmaParams.from_mapping reads them)."""
    params: dict[str, Any] = {
        "workload": task.workload,
        "sizes": task.sizes,
        "iterations": task.iterations,
        "warmup": task.warmup,
        "duration_s": task.duration or 0.0,
        "transport": task.transport,
        "engine": task.engine,
        "memory": task.memory,
        "verify": task.check,
        "timeout_s": timeout,
        "peer_host": peer_host,
        "keep_raw": True,
        **{k: v for k, v in task.rdma.items() if v is not None},
    }
    if params.get("device") is None and os.environ.get("BENCHFAB_NET_HCA"):
        params["device"] = os.environ["BENCHFAB_NET_HCA"]
    if net_ip:
        params["prefer_ip"] = net_ip
    if is_gpu_memory(task.memory):
        from ..pcitopo import read_topology

        if params.get("cuda_device") is None:
            params["cuda_device"], params["locality"] = _default_gpu(ctx.local_rank, params.get("device"))
        else:
            params["locality"] = _locality(read_topology(), visible_gpu_addresses(), int(params["cuda_device"]),
                                           params.get("device"))
    return params


def _emit_results(task: Task, records: list[dict[str, Any]], ctx: RankContext) -> None:
    """Rank 0's result records, with per-iteration times made from the raw stamps."""
    from .stats import bw_per_iteration_s

    workload = p2p_workload(task.workload)
    for rec in records:
        completed = rec.pop("raw_tcompleted_ns", None)
        posted = rec.pop("raw_tposted_ns", None)
        if not workload.bandwidth:
            # One round per sample; a ping-pong's halved, a READ's whole, like perftest.
            samples = [d / workload.rtt_factor for d in _deltas(posted)]
        elif completed is not None:
            # Unsignaled writes carry their completion's stamp: use the CQE group ends.
            samples = bw_per_iteration_s(completed, int(rec.get("cq_mod") or 1)).tolist()
        else:
            samples = []
        result = cast(P2PResult, {"type": "result", "test_id": task.test_id, "status": "ok", "reason": "",
                                  "in_place": False, "per_iter_s": samples, **_clean(rec)})
        ctx.emit(result)
    ctx.emit({"type": "done", "test_id": task.test_id})


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    # NaN is not JSON; absent figures travel as null.
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}


def _deltas(stamps_ns: Any) -> list[float]:
    """Seconds between consecutive nanosecond timestamps."""
    if stamps_ns is None:
        return []
    stamps = [int(x) for x in stamps_ns]
    return [(b - a) * 1e-9 for a, b in zip(stamps, stamps[1:])]


