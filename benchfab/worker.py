"""``python -m benchfab.worker``: one rank of one test.

The same entry point runs as a local subprocess (the embedded default) and in a
Kubernetes pod. It joins the test's process group (rank 0 hosts the rendezvous
store), runs the workload and prints records as prefixed JSON lines on stdout
(see ``benchfab.task``). Only rank 0 prints results; every rank prints an
``env`` record saying what it really used, and an ``error`` record if it fails.
Exit codes: 0 ok, 1 workload failure, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import signal
import socket
import sys
import time
import traceback
from datetime import timedelta
from typing import Any

from .errors import BenchfabError
from .task import Task, format_record


def emit(record: dict[str, Any]) -> None:
    print(format_record(record), flush=True)


def log(rank: int, message: str) -> None:
    """A human line in the rank's log: the watchdog shows the last ones when a test hangs."""
    print(f"{time.strftime('%H:%M:%S')} rank {rank}: {message}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL us if the controller dies, so no rank is ever orphaned."""
    if sys.platform != "linux" or "BENCHFAB_PARENT_PID" not in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1  # noqa: N806 - the constant's name in <sys/prctl.h>
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        return
    # The parent may have died between fork and prctl.
    if os.getppid() != int(os.environ["BENCHFAB_PARENT_PID"]):
        os._exit(1)


def _args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m benchfab.worker", description=__doc__)
    p.add_argument("--task", required=True, help="the test as JSON (benchfab.task.Task)")
    p.add_argument("--rank", type=int, default=int(env.get("RANK", "0")))
    p.add_argument("--world-size", type=int, default=int(env.get("WORLD_SIZE", "1")))
    p.add_argument("--local-rank", type=int, default=int(env.get("LOCAL_RANK", "0")))
    p.add_argument("--local-world-size", type=int, default=int(env.get("LOCAL_WORLD_SIZE", "1")))
    p.add_argument("--master-addr", default=env.get("MASTER_ADDR", "127.0.0.1"))
    p.add_argument("--master-port", type=int, default=int(env.get("MASTER_PORT", "29500")))
    return p.parse_args(argv)


def pick_device(requested: str, local_rank: int, local_world: int) -> tuple[Any, str]:
    """(torch.device, process-group backend) for this rank."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "cuda" and gpus < local_world:
        from .errors import WorkloadError

        raise WorkloadError(
            f"device: cuda asked for {local_world} GPU(s) on this host, {gpus} visible",
            hint="use device: auto or cpu, or fewer ranks per host (two NCCL ranks cannot share one GPU)",
        )
    if requested in ("cuda", "auto") and gpus >= local_world and gpus > 0:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank), "nccl"
    return torch.device("cpu"), "gloo"


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


def _default_gpu(local_rank: int) -> int:
    """The GPU a point-to-point rank uses for memory: cuda unless rdma.cuda_device says:
    its local index over the GPUs it sees (in a pod that is usually the one it got)."""
    try:
        import torch

        count = int(torch.cuda.device_count())  # NVML only: no CUDA context is made
    except Exception:  # noqa: BLE001 - no torch/CUDA: cuda_memory reports the real cause
        count = 0
    return local_rank % count if count > 0 else 0


def run_point_to_point(task: Task, rank: int, world: int, addr: str, port: int, local_rank: int = 0) -> None:
    """rdma_write_bw / rdma_write_lat: rank 0 measures (perftest's client), rank 1 serves.

    No process group: the two ranks exchange connection data (QPN, PSN, GID, rkey,
    address) over one TCP connection to rank 0 at MASTER_ADDR:MASTER_PORT, which is
    reachable the same way locally and between pods.
    """
    from .errors import WorkloadError
    from .rdma import SocketExchange, run_rdma_pair
    from .rdma.stats import bw_per_iteration_s
    from .workloads.catalog import is_gpu_memory

    if world != 2:
        raise WorkloadError(f"{task.workload} needs exactly 2 ranks, got {world}")
    role = "client" if rank == 0 else "server"
    timeout = max(10.0, task.rendezvous_timeout)
    exchange = SocketExchange("server", "0.0.0.0", port, timeout) if rank == 0 else SocketExchange("client", addr, port, timeout)
    # Rank 0 (the measuring client) must reach rank 1's tcp/perftest server: rank 1
    # tells it the address it uses towards rank 0, which is right locally and in pods.
    # In a pod the test network is the secondary interface (BENCHFAB_NET_IP, set by the
    # Kubernetes backend from Multus' network-status), not the pod IP the rendezvous uses.
    net_ip = os.environ.get("BENCHFAB_NET_IP") or None
    hello = exchange("worker-hello", {"host": net_ip or _own_address_towards(addr, port)} if rank == 1 else {})
    peer_host = os.environ.get("BENCHFAB_PEER_HOST") or (hello.get("host") if rank == 0 else None) or addr
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
    on_gpu = is_gpu_memory(task.memory)
    if on_gpu and params.get("cuda_device") is None:
        params["cuda_device"] = _default_gpu(local_rank)
    emit({"type": "env", "rank": rank, "host": socket.gethostname(), "pid": os.getpid(), "python": platform.python_version(),
          "transport": task.transport, "engine": task.engine, "memory": task.memory, "role": role,
          "device": "cuda" if on_gpu else "host", "rdma_device": task.rdma.get("device"),
          "cuda_device": params.get("cuda_device"), "peer_host": peer_host if rank == 0 else None,
          "net_ip": net_ip})
    log(rank, f"{role}: {task.workload} over {task.transport} ({task.engine}), {len(task.sizes)} size(s)")
    try:
        records = run_rdma_pair(role, params, exchange)
    finally:
        close = getattr(exchange, "close", None)
        if close is not None:
            close()
    if rank != 0:
        return
    for rec in records:
        completed = rec.pop("raw_tcompleted_ns", None)
        posted = rec.pop("raw_tposted_ns", None)
        if task.workload == "rdma_write_lat":
            samples = [d / 2 for d in _deltas(posted)]  # one RTT per sample; half reported, like perftest
        elif completed is not None:
            # Unsignaled writes carry their completion's stamp: use the CQE group ends.
            samples = bw_per_iteration_s(completed, int(rec.get("cq_mod") or 1)).tolist()
        else:
            samples = []
        emit({"type": "result", "test_id": task.test_id, "status": "ok", "reason": "", "in_place": False,
              "per_iter_s": samples, **_clean(rec)})
    emit({"type": "done", "test_id": task.test_id})


def _own_address_towards(addr: str, port: int) -> str:
    """The local IP the kernel would use to reach addr (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((addr, port))
            return str(probe.getsockname()[0])
    except OSError:
        return socket.gethostbyname(socket.gethostname())


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    # NaN is not JSON; absent figures travel as null.
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}


def _deltas(stamps_ns: Any) -> list[float]:
    """Seconds between consecutive nanosecond timestamps."""
    if stamps_ns is None:
        return []
    stamps = [int(x) for x in stamps_ns]
    return [(b - a) * 1e-9 for a, b in zip(stamps, stamps[1:])]


def run(task: Task, rank: int, world: int, local_rank: int, local_world: int, addr: str, port: int) -> None:
    from .workloads.catalog import is_point_to_point

    if is_point_to_point(task.workload):
        run_point_to_point(task, rank, world, addr, port, local_rank)
        return
    import torch.distributed as dist

    from .workloads.catalog import COLLECTIVES
    from .workloads.collectives import CollectiveRunner

    device, backend = pick_device(task.device, local_rank, local_world)
    env = describe_env(device, backend)
    log(rank, f"joining {backend} process group of {world} at {addr}:{port} ({device})")
    dist.init_process_group(
        backend,
        init_method=f"tcp://{addr}:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=task.rendezvous_timeout),
    )
    try:
        emit({"type": "env", "rank": rank, **env})
        log(rank, f"joined; running {task.workload} {task.dtype} {task.op} on {len(task.sizes)} size(s)")
        if os.environ.get("BENCHFAB_TEST_HANG") == f"{task.test_id}:{rank}":
            # Test hook: this rank never reaches its first collective, like the
            # classic NCCL hang; the others block in it until the watchdog acts.
            time.sleep(10_000)
        runner = CollectiveRunner(task, rank, world, device)
        collective = COLLECTIVES[task.workload]
        for res in runner.run(lambda msg: log(rank, msg)):
            if rank != 0:
                continue
            algbw = res.size_bytes / res.time_s if res.status == "ok" and res.time_s > 0 else None
            emit({
                "type": "result",
                "test_id": task.test_id,
                "size_bytes": res.size_bytes,
                "count": res.count,
                "in_place": res.in_place,
                "iterations": res.iterations,
                "time_s": res.time_s if res.status == "ok" else None,
                "algbw_Bps": algbw,
                "busbw_Bps": collective.busbw(algbw, world) if algbw is not None else None,
                "wrong": res.wrong,
                "method": res.method,
                "status": res.status,
                "reason": res.reason,
                "per_iter_s": res.per_iter_s,
            })
        if rank == 0:
            emit({"type": "done", "test_id": task.test_id})
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    args = _args(argv)
    try:
        task = Task.from_json(args.task)
    except (ValueError, TypeError) as exc:
        print(f"benchfab.worker: bad --task: {exc}", file=sys.stderr)
        return 2
    try:
        run(task, args.rank, args.world_size, args.local_rank, args.local_world_size, args.master_addr, args.master_port)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one record the controller can show
        emit({"type": "error", "rank": args.rank, "message": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]})
        if isinstance(exc, BenchfabError):
            # An expected failure whose message says what to fix: no traceback in the log tail.
            print(f"benchfab.worker: rank {args.rank}: {exc}", file=sys.stderr)
        else:
            traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
