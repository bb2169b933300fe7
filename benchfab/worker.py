"""``python -m benchfab.worker``: one rank of one test.

The same entry point runs as a local subprocess (the embedded default) and in a
Kubernetes pod. It runs the workload the way its family does (a collective joins
the test's process group, a point-to-point pair meets over one TCP connection;
benchfab.workloads) and prints records as prefixed JSON lines on stdout
(see ``benchfab.task``). Only rank 0 prints results; every rank prints an
``env`` record saying what it really used, and an ``error`` record if it fails.
Exit codes: 0 ok, 1 workload failure, 2 bad arguments.

``--serve`` keeps the process for many tests (the Kubernetes agent's rank workers,
issue #27): it imports ahead what ``--preload``'s workload family needs (torch for a
collective) and then runs one test per line read on stdin, ``{"seq", "task", "env"}``,
where ``env`` holds only what changes between the tests of a pod (RANK, MASTER_PORT,
the test's secret...; ``TEST_ENV_KEYS``): anything else in the environment (NCCL_*,
CUDA_VISIBLE_DEVICES) is read once per process by the libraries, so a worker is only
given tests with the environment it was started with. After each test it prints a
``{"type": "worker", "event": "finished", "seq", "code", "reusable"}`` record and waits
for the next one, or exits when it is not ``reusable``: after a failure (what it left
behind is unknown) or once it has touched a GPU (CUDA context, NCCL's per-process state
and registered memory are not carried into another test).
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import BenchfabError
from .task import TEST_SECRET_ENV, Task, format_record

if TYPE_CHECKING:
    from .workloads import RankContext


# What the tests a pod runs one after another may differ in: handed to a serving worker with
# each test. Everything else in its environment was fixed when it started.
TEST_ENV_KEYS = frozenset({"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                           "MASTER_PORT", TEST_SECRET_ENV})


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
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--task", help="the test as JSON (benchfab.task.Task)")
    how.add_argument("--serve", action="store_true",
                     help='run the tests read from stdin, one {"seq", "task", "env"} JSON per line')
    p.add_argument("--preload", default="", help="with --serve: import what this workload needs before the first test")
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


# A serving worker reads the node's GPU health again only after this long: the exporter's
# read can take its whole 3 s timeout where a firewall drops it, which per test would cost
# more than the measurement; faults DCGM sees (XIDs, ECC) stay for minutes, not a test.
HEALTH_REUSE_S = 60.0
_health: tuple[float, dict[str, Any]] | None = None  # (when read, NodeHealth.to_json())


def _record_gpu_health(rank: int) -> None:
    """What DCGM says about this node's GPUs, once per test from the node's first rank (the
    quick diagnostic itself runs once an hour per node: benchfab.gpuhealth caches it)."""
    import socket
    import tempfile
    from pathlib import Path

    from .gpuhealth import collect

    global _health
    if _health is None or time.monotonic() - _health[0] > HEALTH_REUSE_S:
        _health = (time.monotonic(), collect(cache=Path(tempfile.gettempdir()) / "benchfab-dcgm-diag.json").to_json())
    emit({"type": "gpu_health", "rank": rank, "host": socket.gethostname(), "health": _health[1]})


def _run_pair(task: Task, ctx: RankContext) -> None:
    """A point-to-point rank, on the engines (imported only by a rank that runs one)."""
    from .rdma.rank import run_point_to_point

    run_point_to_point(task, ctx)


def run_one(task_json: str, args: argparse.Namespace) -> tuple[int, Task | None]:
    """One test, as ``main`` runs it, and the task as read (None: unreadable). The code:
    0 ok, 1 the workload failed (one error record), 2 bad task."""
    try:
        task = Task.from_json(task_json)
    except (ValueError, TypeError) as exc:
        print(f"benchfab.worker: bad --task: {exc}", file=sys.stderr)
        return 2, None
    try:
        run(task, args.rank, args.world_size, args.local_rank, args.local_world_size, args.master_addr, args.master_port)
    except Exception as exc:  # noqa: BLE001 - any failure becomes one record the controller can show
        emit({"type": "error", "rank": args.rank, "message": f"{type(exc).__name__}: {exc}".splitlines()[0][:500]})
        if isinstance(exc, BenchfabError):
            # An expected failure whose message says what to fix: no traceback in the log tail.
            print(f"benchfab.worker: rank {args.rank}: {exc}", file=sys.stderr)
        else:
            traceback.print_exc()
        return 1, task
    return 0, task


def preload(workload: str) -> None:
    """Import what ``workload``'s ranks need, so that the first test does not wait for it.
    A module that fails to import is left to the test, which then says why."""
    from .workloads import family_of

    try:
        modules = family_of(workload).worker_modules
    except BenchfabError:
        return
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - e.g. no native extension: the test reports it
            pass


def reusable_after(task: Task | None, code: int) -> bool:
    """Whether this process may run another test: ``task`` passed and touched no GPU."""
    if code != 0 or task is None:
        return False
    from .workloads.catalog import is_gpu_memory

    if is_gpu_memory(task.memory):
        return False
    torch = sys.modules.get("torch")
    return not (torch is not None and torch.cuda.is_initialized())


def serve(args: argparse.Namespace) -> int:
    """``--serve``: run the tests read from stdin until it closes or one leaves us unusable."""
    if args.preload:
        preload(args.preload)
    emit({"type": "worker", "event": "waiting", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            order = json.loads(line)
            seq, task_json, test_env = int(order["seq"]), str(order["task"]), dict(order.get("env") or {})
        except (ValueError, TypeError, KeyError) as exc:
            print(f"benchfab.worker: unreadable order on stdin ignored: {exc}", file=sys.stderr, flush=True)
            continue
        for key in TEST_ENV_KEYS:  # the last test's values go; what this test sets comes in
            os.environ.pop(key, None)
        os.environ.update({str(k): str(v) for k, v in test_env.items() if k in TEST_ENV_KEYS})
        code, task = run_one(task_json, _args(["--task", task_json]))
        reusable = reusable_after(task, code)
        emit({"type": "worker", "event": "finished", "seq": seq, "code": code, "reusable": reusable})
        if not reusable:
            break
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # threads a test left (a vetting connection, a counter reader) must not hold the exit


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    args = _args(argv)
    if args.serve:
        return serve(args)
    return run_one(args.task, args)[0]


if __name__ == "__main__":
    sys.exit(main())
