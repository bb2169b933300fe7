#!/usr/bin/env python3
"""benchfab's timed all-reduce loop vs a bare torch.distributed loop, same run.

Two local gloo ranks. For each message size the script alternates, in lockstep
on both ranks, (A) benchfab's own timed loop -- the CollectiveRunner code path
the worker uses, per-iteration clock reads included -- and (B) the tightest
loop one can write by hand (`t0; for: all_reduce(t); t1`). Each measurement is
the time per op averaged over ranks (nccl-tests -a 1). It prints the median of
A and B over all alternations and the ratio A/B per size. Target: <= 1.05 at
every size (goal 1.02). Not a test: ratios only mean something within one run.

    .venv/bin/python benchmarks/allreduce_overhead.py [--rounds 7] [--max-size 64M]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchfab.task import Task
from benchfab.units import format_size, parse_size
from benchfab.workloads.collectives_torch import CollectiveRunner


def iterations_for(size: int) -> int:
    # ~60 ms of work per measurement, at least 3 ops: many short alternations
    # give a steadier median on a shared machine than a few long ones.
    return max(3, min(200, int(0.06 / (0.7e-3 + size / 1.0e9))))


def rank_main(rank: int, world: int, port: int, sizes: list[int], rounds: int, pin: bool, out: mp.SimpleQueue[object]) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    cpus = sorted(os.sched_getaffinity(0))
    if pin and len(cpus) >= world:  # one core per rank: fewer outliers on an idle machine
        os.sched_setaffinity(0, {cpus[rank]})
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    device = torch.device("cpu")
    try:
        for size in sizes:
            iters = iterations_for(size)
            task = Task(test_id="bench", workload="allreduce", ranks=world, sizes=[size], dtype="float32", op="sum",
                        iterations=iters, duration=None, warmup=3, in_place=[True], check=False, root=0,
                        device="cpu", cuda_graph=0)
            runner = CollectiveRunner(task, rank, world, device)
            buf = runner.buffers(size, True)
            op = runner.make_op(buf, True)
            bare_tensor = torch.zeros_like(buf.recv)
            for _ in range(3):
                op()
                dist.all_reduce(bare_tensor)
            a_times, b_times = [], []
            for r in range(rounds):
                order = ("A", "B") if r % 2 == 0 else ("B", "A")  # alternate who goes first
                for which in order:
                    runner.barrier()
                    if which == "A":
                        per_iter = runner.time_loop(op, iters)
                        mean, _ = runner.combine(per_iter)
                        a_times.append(mean)
                    else:
                        t0 = time.perf_counter()
                        for _ in range(iters):
                            dist.all_reduce(bare_tensor)
                        t1 = time.perf_counter()
                        mean_t = torch.tensor([(t1 - t0) / iters], dtype=torch.float64)
                        dist.all_reduce(mean_t)
                        b_times.append(float(mean_t.item()) / world)
            if rank == 0:
                out.put((size, iters, a_times, b_times))
    finally:
        dist.destroy_process_group()


def harness_cost_ns(n: int = 200_000, repeats: int = 21) -> float:
    """What benchfab's loop adds per op, free of network noise: both loops around a no-op."""
    task = Task(test_id="noop", workload="allreduce", ranks=1, sizes=[8], dtype="float32", op="sum", iterations=n,
                duration=None, warmup=0, in_place=[True], check=False, root=0, device="cpu", cuda_graph=0)
    runner = CollectiveRunner(task, 0, 1, torch.device("cpu"))

    def noop() -> None:
        return None

    diffs = []
    for _ in range(repeats):
        a = sum(runner.time_loop(noop, n)) / n
        t0 = time.perf_counter()
        for _ in range(n):
            noop()
        b = (time.perf_counter() - t0) / n
        diffs.append((a - b) * 1e9)
    return statistics.median(diffs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=31, help="A/B alternations per size")
    p.add_argument("--min-size", default="8")
    p.add_argument("--max-size", default="64M")
    p.add_argument("--factor", type=int, default=8)
    p.add_argument("--pin", action="store_true", help="pin each rank to its own core")
    args = p.parse_args()
    sizes, s = [], parse_size(args.min_size)
    while s <= parse_size(args.max_size):
        sizes.append(s)
        s *= args.factor
    if sizes[-1] != parse_size(args.max_size):
        sizes.append(parse_size(args.max_size))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(rank_main, args=(2, port, sizes, args.rounds, args.pin, out), nprocs=2, join=True, start_method="spawn")
    print(f"# all-reduce float32 sum, 2 local gloo ranks, {args.rounds} A/B alternations per size, torch {torch.__version__}")
    print("# A = benchfab timed loop, B = bare torch.distributed loop; time per op averaged over ranks (us)")
    print(f"{'size':>8} {'iters':>6} {'A median':>10} {'B median':>10} {'A/B':>7}")
    worst = 0.0
    while not out.empty():
        size, iters, a, b = out.get()
        ratio = statistics.median(a) / statistics.median(b)
        worst = max(worst, ratio)
        print(f"{format_size(size):>8} {iters:>6} {statistics.median(a) * 1e6:>10.1f} {statistics.median(b) * 1e6:>10.1f} {ratio:>7.3f}")
    print(f"# worst A/B: {worst:.3f} (target <= 1.05, goal 1.02)")
    harness = harness_cost_ns()
    print(f"# harness cost per op, measured on a no-op 'collective' (A minus B, median of 21): {harness:.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
