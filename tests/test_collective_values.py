"""The collectives really compute what nccl-tests' check expects, over real gloo process groups."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchfab.task import Task
from benchfab.workloads.collective_kinds import COLLECTIVES
from benchfab.workloads.collectives_torch import CollectiveRunner, count_wrong, expected_output, pattern


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _task(workload: str, op: str, dtype: str = "float32", root: int = 0) -> Task:
    return Task(test_id="t", workload=workload, ranks=0, sizes=[4096], dtype=dtype, op=op, iterations=3,
                duration=None, warmup=1, in_place=[False, True], check=True, root=root, device="cpu", cuda_graph=0)


def _worker(rank: int, world: int, port: int, cases: list[tuple[str, str, str, int]], out: Any) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for workload, op, dtype, root in cases:
            runner = CollectiveRunner(_task(workload, op, dtype, root), rank, world, torch.device("cpu"))
            for in_place in (False, True):
                if COLLECTIVES[workload].no_in_place and in_place:
                    continue
                buf = runner.buffers(4096, in_place)
                opfn = runner.make_op(buf, in_place)
                runner.fill_check_input(buf)
                opfn()
                # Independent expectation, written out by hand for the common case.
                if workload == "allreduce" and op == "sum":
                    manual = sum(pattern(r, buf.count, op, torch.float64) for r in range(world)).to(buf.recv.dtype)
                    assert torch.equal(buf.recv, manual)
                n = buf.count
                if workload == "sendrecv":  # the ring: what the previous rank sent, by hand
                    assert torch.equal(buf.recv, pattern((rank - 1) % world, n, op, torch.float64).to(buf.recv.dtype))
                if workload == "scatter":  # the root's chunk number `rank`
                    assert torch.equal(buf.recv, pattern(root, n * world, op, torch.float64)[rank * n:(rank + 1) * n]
                                       .to(buf.recv.dtype))
                if workload == "reduce" and op == "sum" and rank == root:
                    manual = sum(pattern(r, n, op, torch.float64) for r in range(world)).to(buf.recv.dtype)
                    assert torch.equal(buf.recv, manual)
                local = 0
                if not COLLECTIVES[workload].output_on_root or rank == root:
                    exp = expected_output(workload, rank, world, n, op, buf.recv.dtype, root)
                    local = count_wrong(buf.recv, exp, op)
                out.put((rank, workload, op, dtype, in_place, local, runner.check(buf, opfn)))
    finally:
        dist.destroy_process_group()


CASES = [
    ("allreduce", "sum", "float32", 0), ("allreduce", "prod", "float32", 0), ("allreduce", "max", "int32", 0),
    ("allreduce", "min", "bfloat16", 0), ("allreduce", "avg", "float32", 0), ("allreduce", "sum", "int8", 0),
    ("all_gather", "none", "float32", 0), ("reduce_scatter", "sum", "float32", 0), ("broadcast", "none", "float16", 1),
    ("all_to_all", "none", "int64", 0), ("reduce", "sum", "float32", 1), ("reduce", "max", "bfloat16", 0),
    ("gather", "none", "int32", 1), ("scatter", "none", "float32", 1), ("sendrecv", "none", "float16", 0),
]


@pytest.mark.parametrize("world", [2, 3], ids=["2ranks", "3ranks"])
def test_collectives_compute_expected_values(world: int) -> None:
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(world, _port(), CASES, out), nprocs=world, join=True, start_method="spawn")
    results = []
    while not out.empty():
        results.append(out.get())
    expected_rows = world * sum(1 if COLLECTIVES[w].no_in_place else 2 for w, *_ in CASES)
    assert len(results) == expected_rows
    for rank, workload, op, dtype, in_place, local_wrong, global_wrong in results:
        assert local_wrong == 0, (rank, workload, op, dtype, in_place)
        assert global_wrong == 0, (rank, workload, op, dtype, in_place)


def test_count_wrong_sees_corruption() -> None:
    exp = expected_output("allreduce", 0, 4, 1000, "sum", torch.float32, 0)
    out = exp.clone()
    assert count_wrong(out, exp, "sum") == 0
    out[[3, 500, 999]] += 1
    assert count_wrong(out, exp, "sum") == 3


def test_avg_allows_two_ulp_only() -> None:
    exp = torch.full((4,), 1.5, dtype=torch.float32)
    eps = torch.finfo(torch.float32).eps
    close = exp + torch.tensor([0, eps, 2 * eps, 8 * eps]) * 1.5
    assert count_wrong(close, exp, "avg") == 1


def test_patterns_stay_exact_in_bfloat16() -> None:
    # 16 ranks of values 1..5 sum to at most 80: exact in bfloat16.
    exp = expected_output("allreduce", 0, 16, 64, "sum", torch.bfloat16, 0)
    ref = sum(pattern(r, 64, "sum", torch.float64) for r in range(16))
    assert torch.equal(exp.to(torch.float64), ref)


def test_every_collective_has_a_value_case() -> None:
    assert {w for w, *_ in CASES} == set(COLLECTIVES)
