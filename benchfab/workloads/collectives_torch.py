"""Collectives over torch.distributed with nccl-tests semantics.

For each message size and each in-place flag a worker:
  1. allocates send/receive buffers for that size,
  2. runs ``warmup`` untimed ops, then a barrier,
  3. times ``iterations`` back-to-back ops (host clock around each op on CPU;
     CUDA events on GPU, optionally replaying a captured CUDA graph),
  4. averages the time per op across ranks (nccl-tests ``-a 1``) and keeps the
     per-iteration times as the max over ranks (nccl-tests ``-I``),
  5. if ``check`` is on, re-initialises the inputs with a deterministic pattern,
     runs one more op and counts wrong elements, summed over ranks.

torch.distributed has no out-of-place all_reduce or broadcast; their
out-of-place form copies the send buffer into the receive buffer and then runs
the in-place op, and the copy is inside the timed region. The record says so
(``method``), so nobody mistakes it for NCCL's native out-of-place path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import WorkloadError
from ..task import Task
from .catalog import DTYPES
from .collective_kinds import COLLECTIVES, RankOp

# benchfab's dtype names are torch's: one list (catalog.DTYPES) for both.
TORCH_DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPES}

_REDUCE_OPS = {
    "sum": dist.ReduceOp.SUM,
    "prod": dist.ReduceOp.PRODUCT,
    "max": dist.ReduceOp.MAX,
    "min": dist.ReduceOp.MIN,
    "avg": dist.ReduceOp.AVG,
}


@dataclass
class Buffers:
    send: torch.Tensor
    recv: torch.Tensor
    count: int  # elements per rank, as nccl-tests counts them
    shared: bool = False  # in place: send and recv are (parts of) one buffer


@dataclass
class SizeResult:
    size_bytes: int
    count: int
    in_place: bool
    iterations: int
    time_s: float  # mean time per op, averaged over ranks
    per_iter_s: list[float]  # per-iteration time, max over ranks
    wrong: int | None  # None when the check is off
    method: str
    status: str = "ok"
    reason: str = ""


def pattern(rank: int, n: int, op: str, dtype: torch.dtype, offset: int = 0) -> torch.Tensor:
    """Deterministic input of rank ``rank``: small integers exact in every dtype.

    Values stay small so that sums and products over a few dozen ranks are still
    exactly representable in bfloat16, which makes the check exact like nccl-tests'.
    """
    idx = torch.arange(offset, offset + n, dtype=torch.int64)
    if op == "prod":
        vals = 1 + (idx + rank) % 2
    elif op in ("max", "min"):
        vals = (idx * 7 + rank * 13) % 31
    else:
        vals = (idx + 3 * rank) % 5 + 1
    return vals.to(dtype)


def _reduce(values: list[torch.Tensor], op: str, dtype: torch.dtype) -> torch.Tensor:
    stacked = torch.stack([v.to(torch.float64) for v in values])
    if op == "sum":
        out = stacked.sum(0)
    elif op == "prod":
        out = stacked.prod(0)
    elif op == "max":
        out = stacked.max(0).values
    elif op == "min":
        out = stacked.min(0).values
    elif op == "avg":
        out = stacked.sum(0) / len(values)
    else:
        raise WorkloadError(f"unknown reduction {op!r}")
    if not dtype.is_floating_point:
        # Integer collectives wrap around like the hardware does.
        return stacked.to(torch.int64).sum(0).to(dtype) if op == "sum" else out.to(torch.int64).to(dtype)
    return out.to(dtype)


@dataclass(frozen=True)
class _Inputs:
    """The check's inputs for one reduction op and dtype (collective_kinds.CheckInputs)."""

    op: str
    dtype: torch.dtype

    def of(self, rank: int, count: int, offset: int = 0) -> torch.Tensor:
        return pattern(rank, count, self.op, self.dtype, offset)

    def reduced(self, values: list[torch.Tensor]) -> torch.Tensor:
        return _reduce(values, self.op, self.dtype)

    def joined(self, values: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(values)


def expected_output(workload: str, rank: int, nranks: int, count: int, op: str, dtype: torch.dtype, root: int) -> torch.Tensor:
    """What rank ``rank`` must hold after one op on the ``pattern`` inputs."""
    collective = COLLECTIVES.get(workload)
    if collective is None:
        raise WorkloadError(f"unknown collective {workload!r}")
    return collective.expected(_Inputs(op, dtype), rank, nranks, count, root)


def count_wrong(output: torch.Tensor, expected: torch.Tensor, op: str) -> int:
    """Elements that differ. Exact, except float ``avg`` which allows 2 ulp (as nccl-tests)."""
    out = output.detach().to("cpu")
    if op == "avg" and out.dtype.is_floating_point:
        eps = torch.finfo(out.dtype).eps
        tol = 2 * eps * expected.to(torch.float64).abs().clamp_min(1.0)
        bad = (out.to(torch.float64) - expected.to(torch.float64)).abs() > tol
    elif op == "avg":
        bad = (out.to(torch.int64) - expected.to(torch.int64)).abs() > 1
    else:
        bad = out != expected
    return int(bad.sum().item())


class CollectiveRunner:
    """Runs one Task's collective on an initialised process group."""

    def __init__(self, task: Task, rank: int, nranks: int, device: torch.device) -> None:
        if task.workload not in COLLECTIVES:
            raise WorkloadError(f"{task.workload!r} is not a collective")
        if task.dtype not in TORCH_DTYPES:
            raise WorkloadError(f"unsupported dtype {task.dtype!r}")
        self.task = task
        self.rank = rank
        self.nranks = nranks
        self.device = device
        self.collective = COLLECTIVES[task.workload]
        self.dtype = TORCH_DTYPES[task.dtype]
        self.typesize = DTYPES[task.dtype]
        self.op = task.op
        self.is_cuda = device.type == "cuda"

    # -- buffers and ops ---------------------------------------------------

    def buffers(self, size_bytes: int, in_place: bool) -> Buffers:
        """Send and receive buffers; in place (nccl-tests' layout) the smaller one is this
        rank's slot of the larger, or both are one buffer when they are the same size."""
        c = self.collective
        n = c.count_for(size_bytes, self.typesize, self.nranks)
        send_len, recv_len = c.send_len(n, self.nranks), c.recv_len(n, self.nranks)

        def zeros(length: int) -> torch.Tensor:
            return torch.zeros(length, dtype=self.dtype, device=self.device)

        mine = slice(self.rank * n, (self.rank + 1) * n)
        if not in_place:
            return Buffers(zeros(send_len), zeros(recv_len), n)
        if recv_len > send_len:  # all_gather, gather: the input is this rank's slot of the output
            recv = zeros(recv_len)
            return Buffers(recv[mine], recv, n, shared=True)
        if send_len > recv_len:  # reduce_scatter, scatter: the output is this rank's slot of the input
            send = zeros(send_len)
            return Buffers(send, send[mine], n, shared=True)
        buf = zeros(send_len)
        return Buffers(buf, buf, n, shared=True)

    def method(self, in_place: bool) -> str:
        return self.collective.method(in_place)

    def make_op(self, buf: Buffers, in_place: bool) -> Callable[[], None]:
        return self.collective.op(RankOp(dist, buf.send, buf.recv, buf.count, self.rank, self.nranks, self.task.root,
                                         _REDUCE_OPS.get(self.op), in_place))

    def fill_check_input(self, buf: Buffers) -> None:
        """This rank's check input in the send buffer (zeros off the root where only the
        root's input counts), and a zeroed receive buffer when it is a buffer of its own."""
        c = self.collective
        data = pattern(self.rank, c.send_len(buf.count, self.nranks), self.op, self.dtype)
        if c.input_from_root and self.rank != self.task.root:
            data = torch.zeros_like(data)
        buf.send.copy_(data.to(self.device))
        if not buf.shared:
            buf.recv.zero_()

    # -- timing ------------------------------------------------------------

    def barrier(self) -> None:
        # An all-reduce of one element works on every backend and device,
        # unlike dist.barrier() which guesses the device on NCCL.
        t = torch.zeros(1, device=self.device)
        dist.all_reduce(t)
        if self.is_cuda:
            torch.cuda.synchronize(self.device)

    def time_loop(self, op: Callable[[], None], iters: int) -> list[float]:
        """Per-iteration seconds on this rank for ``iters`` back-to-back ops."""
        if self.is_cuda:
            return self._time_loop_cuda(op, iters)
        clock = time.perf_counter_ns
        stamps = [0] * (iters + 1)
        stamps[0] = clock()
        for i in range(1, iters + 1):
            op()
            stamps[i] = clock()
        return [(stamps[i + 1] - stamps[i]) * 1e-9 for i in range(iters)]

    def _time_loop_cuda(self, op: Callable[[], None], iters: int) -> list[float]:
        stream = torch.cuda.current_stream(self.device)
        if self.task.cuda_graph:
            graph = torch.cuda.CUDAGraph()
            side = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
            side.wait_stream(stream)
            with torch.cuda.stream(side):
                op()  # NCCL wants one eager op on the capture stream before capture
            stream.wait_stream(side)
            with torch.cuda.graph(graph):
                for _ in range(iters):
                    op()
            torch.cuda.synchronize(self.device)
            replays = self.task.cuda_graph
            events = [torch.cuda.Event(enable_timing=True) for _ in range(replays + 1)]  # type: ignore[no-untyped-call]
            events[0].record(stream)
            for r in range(replays):
                graph.replay()
                events[r + 1].record(stream)
            torch.cuda.synchronize(self.device)
            per_replay = [events[r].elapsed_time(events[r + 1]) * 1e-3 / iters for r in range(replays)]
            return per_replay  # one sample per replay: mean op time inside that replay
        events = [torch.cuda.Event(enable_timing=True) for _ in range(iters + 1)]  # type: ignore[no-untyped-call]
        events[0].record(stream)
        for i in range(iters):
            op()
            events[i + 1].record(stream)
        torch.cuda.synchronize(self.device)
        return [events[i].elapsed_time(events[i + 1]) * 1e-3 for i in range(iters)]

    def _agree_iterations(self, op: Callable[[], None]) -> int:
        """Fixed count, or (duration mode) rank 0's estimate broadcast to all ranks."""
        if self.task.iterations is not None:
            return self.task.iterations
        assert self.task.duration is not None
        probe = max(1, min(10, self.task.warmup or 3))
        samples = self.time_loop(op, probe)
        per_op = max(sum(samples) / len(samples), 1e-7)
        n = torch.tensor([int(self.task.duration / per_op) or 1], dtype=torch.int64, device=self.device)
        dist.broadcast(n, src=0)
        return int(max(1, min(n.item(), 10_000_000)))

    def combine(self, per_iter: list[float]) -> tuple[float, list[float]]:
        """(mean time per op averaged over ranks, per-iteration max over ranks)."""
        local = torch.tensor(per_iter, dtype=torch.float64, device=self.device)
        mean = torch.tensor([float(sum(per_iter) / len(per_iter))], dtype=torch.float64, device=self.device)
        dist.all_reduce(mean, op=dist.ReduceOp.SUM)
        dist.all_reduce(local, op=dist.ReduceOp.MAX)
        return float(mean.item()) / self.nranks, local.cpu().tolist()

    def check(self, buf: Buffers, op: Callable[[], None]) -> int:
        self.fill_check_input(buf)
        self.barrier()
        op()
        if self.is_cuda:
            torch.cuda.synchronize(self.device)
        if os.environ.get("BENCHFAB_TEST_CORRUPT") == f"{self.task.test_id}:{self.rank}":
            # Test hook: this rank's result is off by one element, as after a bad link.
            buf.recv.view(-1)[0] += 1
        mine = 0
        if not self.collective.output_on_root or self.rank == self.task.root:
            expected = expected_output(
                self.task.workload, self.rank, self.nranks, buf.count, self.op, self.dtype, self.task.root
            )
            mine = count_wrong(buf.recv, expected, self.op)
        wrong = torch.tensor([mine], dtype=torch.int64, device=self.device)
        dist.all_reduce(wrong, op=dist.ReduceOp.SUM)
        return int(wrong.item())

    def run_size(self, size_bytes: int, in_place: bool) -> SizeResult:
        buf = self.buffers(size_bytes, in_place)
        size = self.collective.size_for(buf.count, self.typesize, self.nranks)
        method = self.method(in_place)
        if in_place and self.collective.no_in_place:
            return SizeResult(size, buf.count, True, 0, float("nan"), [], None, method,
                              status="skipped", reason=self.collective.no_in_place)
        op = self.make_op(buf, in_place)
        for _ in range(self.task.warmup):
            op()
        iters = self._agree_iterations(op)
        self.barrier()
        per_iter = self.time_loop(op, iters)
        mean, per_iter_max = self.combine(per_iter)
        wrong = self.check(buf, op) if self.task.check else None
        return SizeResult(size, buf.count, in_place, iters, mean, per_iter_max, wrong, method)

    def run(self, log: Callable[[str], None] = lambda msg: None) -> Iterator[SizeResult]:
        """Out-of-place first, then in-place, size by size (the nccl-tests row order)."""
        seen: set[int] = set()
        for size in self.task.sizes:
            count = self.collective.count_for(size, self.typesize, self.nranks)
            if count in seen:  # two requested sizes that round to the same count
                continue
            seen.add(count)
            for in_place in sorted(self.task.in_place):
                log(f"size {size} B {'in-place' if in_place else 'out-of-place'}: start")
                yield self.run_size(size, in_place)
