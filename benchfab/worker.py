"""``python -m benchfab.worker``: one rank of one test.

The same entry point runs as a local subprocess (the embedded default) and in a
Kubernetes pod. It runs the workload the way its family does (a collective joins
the test's process group, a point-to-point pair meets over one TCP connection;
benchfab.workloads) and prints records as prefixed JSON lines on stdout
(see ``benchfab.task``). Only rank 0 prints results; every rank prints an
``env`` record saying what it really used, and an ``error`` record if it fails.
Exit codes: 0 ok, 1 workload failure, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import BenchfabError
from .task import Task, format_record

if TYPE_CHECKING:
    from .workloads import RankContext


def emit(record: Mapping[str, Any]) -> None:
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
        PR_SET_PDEATHSIG = 1  # noqa: N806 - the kernel constant's own name
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


def run(task: Task, rank: int, world: int, local_rank: int, local_world: int, addr: str, port: int) -> None:
    """Run one rank of ``task`` the way its workload family does."""
    from .workloads import RankContext, family_of

    ctx = RankContext(rank, world, local_rank, local_world, addr, port, emit, lambda message: log(rank, message),
                      run_pair=_run_pair)
    if task.device != "cpu" and local_rank == 0:
        _record_gpu_health(rank)
    family_of(task.workload).run_worker(task, ctx)


def _record_gpu_health(rank: int) -> None:
    """What DCGM says about this node's GPUs, once per test from the node's first rank (the
    quick diagnostic itself runs once an hour per node: benchfab.gpuhealth caches it)."""
    import socket
    import tempfile
    from pathlib import Path

    from .gpuhealth import collect

    health = collect(cache=Path(tempfile.gettempdir()) / "benchfab-dcgm-diag.json")
    emit({"type": "gpu_health", "rank": rank, "host": socket.gethostname(), "health": health.to_json()})


def _run_pair(task: Task, ctx: RankContext) -> None:
    """A point-to-point rank, on the engines (imported only by a rank that runs one)."""
    from .rdma.rank import run_point_to_point

    run_point_to_point(task, ctx)


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
