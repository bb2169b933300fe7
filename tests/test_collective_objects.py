"""One object per collective: nothing outside benchfab/workloads/collective_kinds.py decides
by a collective's name, and a collective defined elsewhere runs, is timed and is checked
by the torch runner through its object alone."""

from __future__ import annotations

import os
import re
import socket
import typing
from collections.abc import Callable
from typing import Any

import pytest

from benchfab.spec import Workload
from benchfab.workloads import WORKLOADS
from benchfab.workloads.collective_kinds import COLLECTIVES, CheckInputs, Collective, RankOp
from tests.helpers import ROOT

# A decision on a collective's name: `x == "allreduce"`, `x in ("gather", ...)`, `x != 'reduce'`.
_NAMES = "|".join(sorted(COLLECTIVES, key=len, reverse=True))
_DECISION = re.compile(rf"""(==|!=|\bin\s*[(\[{{])\s*(["'][\w-]+["']\s*,\s*)*["']({_NAMES})["']""")


def test_no_module_decides_by_a_collective_name() -> None:
    found = []
    for path in sorted((ROOT / "benchfab").rglob("*.py")):
        if path.name == "collective_kinds.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _DECISION.search(line) and not line.lstrip().startswith(">>>"):  # a docstring's example query
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "decide through the Collective object instead:\n" + "\n".join(found)


def test_the_scan_sees_a_decision() -> None:
    # The pattern above must catch the shapes it forbids (else the test cannot fail).
    for line in ('if kind == "allreduce":', "if w in ('gather', 'scatter'):", 'x != "sendrecv"',
                 'if kind in ["all_to_all"]:'):
        assert _DECISION.search(line), line
    assert not _DECISION.search('workload: "allreduce"')


def test_the_registry_is_the_spec_literal_and_each_object_is_complete() -> None:
    assert set(COLLECTIVES) <= set(typing.get_args(Workload)) and set(COLLECTIVES) <= set(WORKLOADS)
    binaries = [c.nccl_name for c in COLLECTIVES.values()]
    assert len(set(binaries)) == len(binaries) and all(b.endswith("_perf") for b in binaries)
    for name, c in COLLECTIVES.items():
        assert c.name == name
        assert type(c).op is not Collective.op and type(c).expected is not Collective.expected, name
        assert c.factor(2) > 0 and (c.min_ranks == 1 or c.min_ranks_reason)


class ReduceThenBroadcast(Collective):
    """A toy: all-reduce as a reduce to rank 0 followed by a broadcast from it."""

    name, nccl_name = "reduce_broadcast", "reduce_broadcast_perf"
    reduces = copies_out_of_place = True

    def factor(self, nranks: int) -> float:
        return 2.0

    def op(self, r: RankOp) -> Callable[[], None]:
        dist, send, recv, redop = r.dist, r.send, r.recv, r.redop

        def run() -> None:
            if not r.in_place:
                recv.copy_(send)
            dist.reduce(recv, dst=0, op=redop)
            dist.broadcast(recv, src=0)

        return run

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> Any:
        return inputs.reduced([inputs.of(q, count) for q in range(nranks)])


def _toy_rank(rank: int, world: int, port: int, out: Any) -> None:
    import torch
    import torch.distributed as dist

    from benchfab.task import Task
    from benchfab.workloads.collectives_torch import CollectiveRunner

    COLLECTIVES["reduce_broadcast"] = ReduceThenBroadcast()  # the one registry line, in this rank's process
    os.environ["BENCHFAB_TEST_CORRUPT"] = "corrupt:1"  # rank 1's result of test "corrupt" is off by one element
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for test_id in ("clean", "corrupt"):
            task = Task(test_id=test_id, workload="reduce_broadcast", ranks=world, sizes=[64, 4096], dtype="int32",
                        op="sum", iterations=3, duration=None, warmup=1, in_place=[False, True], check=True, root=0,
                        device="cpu", cuda_graph=0)
            runner = CollectiveRunner(task, rank, world, torch.device("cpu"))
            out.put([(test_id, r.size_bytes, r.in_place, r.status, r.wrong, r.method) for r in runner.run()])
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_a_collective_defined_elsewhere_runs_and_is_checked() -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    mp.start_processes(_toy_rank, args=(2, port, out), nprocs=2, join=True, start_method="spawn")
    rows = [row for _ in range(4) for row in out.get()]  # 2 ranks x 2 tests
    assert {(size, in_place) for _, size, in_place, *_ in rows} == {(64, False), (64, True), (4096, False), (4096, True)}
    assert {status for *_, status, _, _ in rows} == {"ok"}
    assert {method for *_, method in rows} == {"copy+inplace", "inplace"}
    # The object's check finds nothing wrong, and counts the one element rank 1 corrupted, on every row.
    assert {(test, wrong) for test, _, _, _, wrong, _ in rows} == {("clean", 0), ("corrupt", 1)}
