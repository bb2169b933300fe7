"""One rank of a collective test: join the torch.distributed process group, run the
collective over every size (collectives_torch.CollectiveRunner), emit rank 0's results.

Imported by the worker only for collective tests: it imports torch.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from datetime import timedelta
from typing import Any

from ..counters import CounterWatch, nccl_hcas, sources_for
from ..errors import WorkloadError
from ..records import CollectiveResult
from ..task import HOST_RANK_ENV, HOST_RANKS_ENV, Task
from .base import RankContext
from .rendezvous import listen_socket, own_address_towards


def pick_device(requested: str, local_rank: int, local_world: int) -> tuple[Any, str]:
    """(torch.device, process-group backend) for this rank.

    The local backend simulating several nodes on one host says which GPU of the host
    is this rank's (BENCHFAB_HOST_RANK of BENCHFAB_HOST_RANKS): node-local indices repeat.
    """
    import torch

    if HOST_RANK_ENV in os.environ:
        local_rank = int(os.environ[HOST_RANK_ENV])
        local_world = int(os.environ.get(HOST_RANKS_ENV, local_world))

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "cuda" and gpus < local_world:
        raise WorkloadError(
            f"device: cuda asked for {local_world} GPU(s) on this host, {gpus} visible",
            hint="use device: auto or cpu, or fewer ranks per host (two NCCL ranks cannot share one GPU)",
        )
    if requested in ("cuda", "auto") and gpus >= local_world and gpus > 0:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank), "nccl"
    return torch.device("cpu"), "gloo"


def visible_gpu_addresses() -> list[str]:
    """The PCI address of each GPU this rank sees, by CUDA index (empty without CUDA): what pairs
    a rank's GPU with its NIC in the PCIe tree (benchfab.pcitopo), for collective and point-to-point ranks."""
    try:
        import torch

        out = []
        for i in range(int(torch.cuda.device_count())):
            p = torch.cuda.get_device_properties(i)
            # Older torch builds lack the PCI fields: then the pairing falls back to local rank order.
            parts = [getattr(p, f, None) for f in ("pci_domain_id", "pci_bus_id", "pci_device_id")]
            if any(x is None for x in parts):
                return []
            out.append(f"{parts[0]:04x}:{parts[1]:02x}:{parts[2]:02x}.0")
        return out
    except Exception:  # noqa: BLE001 - no torch/CUDA: cuda_memory reports the real cause
        return []


def nic_locality(device: Any, local_rank: int) -> dict[str, Any] | None:
    """Which NIC a collective rank's GPU goes through, with their PCIe distance: the HCA nearest
    the GPU among those NCCL_IB_HCA lets NCCL use (benchfab.pcitopo.nearest_hca), not rail i by
    index; None without a GPU or an HCA. A SYS pairing is flagged (``sys_distance``)."""
    from ..pcitopo import hca_names, nearest_hca, read_topology

    topo = read_topology()
    visible = visible_gpu_addresses()
    index = device.index if device.index is not None else 0
    if device.type != "cuda" or not 0 <= index < len(visible) or not topo.hcas:
        return None
    hcas = hca_names(os.environ.get("NCCL_IB_HCA"), [h.name for h in topo.hcas])
    hca, _ = nearest_hca(topo, visible[index], hcas, local_rank)
    host_gpu = next((i for i, g in enumerate(topo.gpus) if g.address == visible[index].lower()), None)
    pairing = topo.pairing(host_gpu, hca) if hca is not None and host_gpu is not None else None
    if pairing is not None:
        pairing["gpu"] = index
    return pairing


def describe_env(device: Any, backend: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pg_backend": backend,
        "device": str(device),
        "transport": backend,
    }
    if device.type == "cuda":
        info["gpu_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        try:
            info["nccl"] = ".".join(str(x) for x in torch.cuda.nccl.version())  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001 - nccl missing from this torch build: recorded, not fatal
            info["nccl"] = None
    for key in ("NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "NCCL_IB_GID_INDEX", "GLOO_SOCKET_IFNAME", "NCCL_ALGO", "NCCL_PROTO"):
        if key in os.environ:
            info.setdefault("env", {})[key] = os.environ[key]
    return info


def run_collective(task: Task, ctx: RankContext) -> None:
    """Join the process group (rank 0 hosts the rendezvous store) and run the test."""
    import torch.distributed as dist

    rank, world = ctx.rank, ctx.world
    if task.engine == "nccl-tests":
        _run_nccl_tests(task, ctx)
        return
    device, backend = pick_device(task.device, ctx.local_rank, ctx.local_world)
    env = describe_env(device, backend)
    if device.type == "cuda":
        env["locality"] = nic_locality(device, ctx.local_rank)
        if (env["locality"] or {}).get("sys_distance"):
            ctx.log(f"WARNING: GPU {env['locality']['gpu']} and its nearest allowed HCA {env['locality']['hca']} are "
                    "SYS apart (across NUMA nodes): NCCL's traffic crosses the CPU interconnect")
    ctx.log(f"joining {backend} process group of {world} at {ctx.addr}:{ctx.port} ({device})")
    timeout = timedelta(seconds=task.rendezvous_timeout)
    dist.init_process_group(backend, store=_rendezvous_store(ctx, timeout), rank=rank, world_size=world,
                            timeout=timeout)
    try:
        ctx.emit({"type": "env", "rank": rank, "local_rank": ctx.local_rank, "local_world": ctx.local_world, **env})
        ctx.log(f"joined; running {task.workload} {task.dtype} {task.op} on {len(task.sizes)} size(s)")
        if os.environ.get("BENCHFAB_TEST_HANG") == f"{task.test_id}:{rank}":
            # Test hook: this rank never reaches its first collective, like the
            # classic NCCL hang; the others block in it until the watchdog acts.
            time.sleep(10_000)
        watch = counter_watch(ctx, nccl=backend == "nccl").start()  # outside the timed loops, once per test
        _measure(task, ctx, device)
        ctx.emit(watch.record(task.test_id, rank))
    finally:
        dist.destroy_process_group()


def _rendezvous_store(ctx: RankContext, timeout: timedelta) -> Any:
    """torch's rendezvous store; rank 0 hosts it on a listener bound to MASTER_ADDR only
    (workloads.rendezvous): torch's own listens on every interface and takes any client."""
    import torch
    from torch._C._distributed_c10d import TCPStore  # re-exported by torch.distributed, untyped there

    # The libuv store takes over a listening socket from torch 2.8 on; older ones need the classic store.
    libuv = torch.torch_version.TorchVersion(torch.__version__) >= "2.8"
    if ctx.rank != 0:
        return TCPStore(ctx.addr, ctx.port, world_size=ctx.world, is_master=False, timeout=timeout, use_libuv=libuv)
    fd = listen_socket(ctx.addr, ctx.port).detach()  # the store owns the listener from here on
    return TCPStore(ctx.addr, ctx.port, world_size=ctx.world, is_master=True, timeout=timeout,
                         wait_for_workers=False, master_listen_fd=fd, use_libuv=libuv)


def _run_nccl_tests(task: Task, ctx: RankContext) -> None:
    """engine: nccl-tests: rank 0 runs the binary for the node's ranks (-g) or, over several
    nodes, under mpirun for every rank (the other nodes' first ranks serve its launcher),
    and emits its rows."""
    from .nccl_tests_engine import run_nccl_tests
    from .nccl_tests_mpi import run_nccl_tests_over_mpi, serve_node

    over_mpi = ctx.world != ctx.local_world
    ctx.emit({"type": "env", "rank": ctx.rank, "local_rank": ctx.local_rank, "local_world": ctx.local_world,
              "host": socket.gethostname(), "pid": os.getpid(), "python": platform.python_version(),
              "engine": "nccl-tests", "transport": "nccl", "device": "cuda", "launch": "mpirun" if over_mpi else "-g"})
    timeout_s = max(60.0, task.rendezvous_timeout)
    if ctx.rank != 0:
        if over_mpi and ctx.local_rank == 0:
            serve_node(ctx, time.monotonic() + task.rendezvous_timeout)
        return  # rank 0's binary (-g) or its mpirun drives this rank's GPU too
    watch = counter_watch(ctx, nccl=True).start()
    runs = (run_nccl_tests_over_mpi(task, ctx, timeout_s) if over_mpi
            else run_nccl_tests(task, ctx.world, ctx.local_world, timeout_s))
    for run in runs:
        for row in run.rows:
            ok = row.time_s is not None
            result: CollectiveResult = {
                "type": "result", "test_id": task.test_id, "size_bytes": row.size_bytes, "count": row.count,
                "in_place": row.in_place, "iterations": task.iterations or 0, "time_s": row.time_s,
                "algbw_Bps": row.algbw_Bps, "busbw_Bps": row.busbw_Bps, "wrong": row.wrong,
                "method": "nccl-tests", "status": "ok" if ok else "skipped",
                "reason": "" if ok else "nccl-tests printed N/A", "per_iter_s": [],
            }
            ctx.emit(result)
    ctx.emit(watch.record(task.test_id, ctx.rank))
    ctx.emit({"type": "done", "test_id": task.test_id})


def counter_watch(ctx: RankContext, nccl: bool) -> CounterWatch:
    """The counters a collective rank reads around its test: NCCL's RDMA devices (NCCL_IB_HCA,
    else every device of the host), the interface carrying its address towards rank 0, and
    TCP where the data goes over sockets (gloo)."""
    hcas = nccl_hcas(os.environ.get("NCCL_IB_HCA")) if nccl else []
    address = ctx.addr if ctx.rank == 0 else own_address_towards(ctx.addr, ctx.port)
    return CounterWatch(sources_for(rdma=[(h, None) for h in hcas], address=address, tcp=not nccl))


def _measure(task: Task, ctx: RankContext, device: Any) -> None:
    from .collective_kinds import COLLECTIVES
    from .collectives_torch import CollectiveRunner

    runner = CollectiveRunner(task, ctx.rank, ctx.world, device)
    collective = COLLECTIVES[task.workload]
    for res in runner.run(ctx.log):
        if ctx.rank != 0:
            continue
        algbw = res.size_bytes / res.time_s if res.status == "ok" and res.time_s > 0 else None
        result: CollectiveResult = {
            "type": "result",
            "test_id": task.test_id,
            "size_bytes": res.size_bytes,
            "count": res.count,
            "in_place": res.in_place,
            "iterations": res.iterations,
            "time_s": res.time_s if res.status == "ok" else None,
            "algbw_Bps": algbw,
            "busbw_Bps": collective.busbw(algbw, ctx.world) if algbw is not None else None,
            "wrong": res.wrong,
            "method": res.method,
            "status": res.status,
            "reason": res.reason,
            "per_iter_s": res.per_iter_s,
        }
        ctx.emit(result)
    if ctx.rank == 0:
        ctx.emit({"type": "done", "test_id": task.test_id})
