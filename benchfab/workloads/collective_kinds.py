"""One object per collective: everything benchfab does differently for it, in one place.

Each ``Collective`` says how big its buffers are and what size nccl-tests reports for
them, its bus-bandwidth factor, whether it reduces or has a root, whether it runs in
place, the torch.distributed call a rank times, the values a rank must hold after one
op (the data check), and the nccl-tests binary that measures the same thing. Every
consumer (spec rules, planner estimates, the torch runner, the nccl-tests engine and
its output reader, ``benchfab run``'s names, ``benchfab import``) asks ``COLLECTIVES``;
nothing outside this module branches on a collective's name.

Formulas follow nccl-tests (doc/PERFORMANCE.md and src/*.cu ``*GetBw``)::

    algbw = S / t                 S in bytes as nccl-tests reports it
    busbw = algbw * factor(n)

For the collectives whose input or output is the *total* buffer (all_gather,
reduce_scatter, all_to_all, gather, scatter) S is count * typesize * n; for the
others it is one rank's buffer.

Importable without torch (the spec and planner use it): the runner hands each
collective its tensors and ``torch.distributed`` (``RankOp``), and the check's
inputs and arithmetic (``CheckInputs``, implemented in collectives_torch).

To add a collective: a subclass here and one line in ``COLLECTIVES``, plus its name
in the spec's ``Workload`` Literal (tests/test_workload_families.py checks they agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class RankOp:
    """What one rank's timed op works on (built by collectives_torch.CollectiveRunner)."""

    dist: ModuleType  # torch.distributed
    send: torch.Tensor
    recv: torch.Tensor
    count: int  # elements per rank, as nccl-tests counts them
    rank: int
    nranks: int
    root: int
    redop: Any  # torch.distributed.ReduceOp of the test's op; None for a collective that reduces nothing
    in_place: bool


class CheckInputs(Protocol):
    """The data check's deterministic inputs and their arithmetic (collectives_torch)."""

    def of(self, rank: int, count: int, offset: int = 0) -> torch.Tensor:
        """Elements ``offset`` .. ``offset + count`` of rank ``rank``'s input pattern."""
        ...

    def reduced(self, values: list[torch.Tensor]) -> torch.Tensor:
        """The test's reduction of ``values``, element by element, in the test's dtype."""
        ...

    def joined(self, values: list[torch.Tensor]) -> torch.Tensor:
        """``values`` one after the other."""
        ...


class Collective:
    """The rules of one collective; a subclass per collective sets what differs."""

    name: str = ""
    nccl_name: str = ""  # the nccl-tests binary (all_reduce_perf): engine nccl-tests, import, benchfab run
    aliases: tuple[str, ...] = ()  # more names users type (allgather); the binary and its stem always work
    reduces: bool = False  # takes a reduction op (nccl-tests -o)
    rooted: bool = False  # has a root rank (nccl-tests -r)
    total_input: bool = False  # each rank's send buffer holds count * nranks elements
    total_output: bool = False  # each rank's receive buffer holds count * nranks elements
    input_from_root: bool = False  # only the root's input reaches the others (the check gives the rest zeros)
    output_on_root: bool = False  # only the root's output is defined, so only the root checks it
    copies_out_of_place: bool = False  # torch has no out-of-place form: copy, then the in-place op (timed)
    no_in_place: str = ""  # why the in-place half is not run ("": it is)
    min_ranks: int = 1
    min_ranks_reason: str = ""

    def factor(self, nranks: int) -> float:
        """nccl-tests' bus-bandwidth factor on ``nranks`` ranks (1: the bytes cross the bus once)."""
        return 1.0

    @property
    def total_size(self) -> bool:
        """Whether nccl-tests reports the total buffer (count * typesize * nranks)."""
        return self.total_input or self.total_output

    def count_for(self, size_bytes: int, typesize: int, nranks: int) -> int:
        """Elements per rank for a requested size, rounded down like nccl-tests (at least 1)."""
        per_rank = size_bytes // typesize
        if self.total_size:
            per_rank //= nranks
        return max(1, per_rank)

    def size_for(self, count: int, typesize: int, nranks: int) -> int:
        """The size nccl-tests would print for a per-rank element count."""
        return count * typesize * (nranks if self.total_size else 1)

    def busbw(self, algbw: float, nranks: int) -> float:
        return algbw * self.factor(nranks)

    def send_len(self, count: int, nranks: int) -> int:
        return count * nranks if self.total_input else count

    def recv_len(self, count: int, nranks: int) -> int:
        return count * nranks if self.total_output else count

    def method(self, in_place: bool) -> str:
        """How the op ran, as stored (``method``): so nobody mistakes copy+inplace for NCCL's out-of-place path."""
        if in_place:
            return "inplace"
        return "copy+inplace" if self.copies_out_of_place else "native"

    def nccl_tests_flags(self, op: str, root: int) -> list[str]:
        """The binary's flags this collective takes: -o for a reduction, -r for a root."""
        return (["-o", op] if self.reduces else []) + (["-r", str(root)] if self.rooted else [])

    def op(self, r: RankOp) -> Callable[[], None]:
        """The op one timed iteration runs on this rank."""
        raise NotImplementedError

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        """What rank ``rank`` must hold after one op on the check's inputs."""
        raise NotImplementedError


class AllReduce(Collective):
    name, nccl_name = "allreduce", "all_reduce_perf"
    reduces = copies_out_of_place = True

    def factor(self, nranks: int) -> float:
        return 2.0 * (nranks - 1) / nranks  # a ring reduce-scatter then all-gather

    def op(self, r: RankOp) -> Callable[[], None]:
        dist, send, recv, redop = r.dist, r.send, r.recv, r.redop
        if r.in_place:
            return lambda: dist.all_reduce(recv, op=redop)

        def copy_then_all_reduce() -> None:
            recv.copy_(send)
            dist.all_reduce(recv, op=redop)

        return copy_then_all_reduce

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.reduced([inputs.of(q, count) for q in range(nranks)])


class AllGather(Collective):
    name, nccl_name, aliases = "all_gather", "all_gather_perf", ("allgather",)
    total_output = True

    def factor(self, nranks: int) -> float:
        return (nranks - 1) / nranks  # each rank receives the other ranks' parts

    def op(self, r: RankOp) -> Callable[[], None]:
        # torch renamed the tensor-in/tensor-out collectives; use whichever exists.
        gather_into = getattr(r.dist, "all_gather_single", None) or r.dist.all_gather_into_tensor
        send, recv = r.send, r.recv
        return lambda: gather_into(recv, send)

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.joined([inputs.of(q, count) for q in range(nranks)])


class ReduceScatter(Collective):
    name, nccl_name, aliases = "reduce_scatter", "reduce_scatter_perf", ("reducescatter",)
    reduces = total_input = True

    def factor(self, nranks: int) -> float:
        return (nranks - 1) / nranks  # each rank receives the other ranks' parts

    def op(self, r: RankOp) -> Callable[[], None]:
        scatter_into = getattr(r.dist, "reduce_scatter_single", None) or r.dist.reduce_scatter_tensor
        send, recv, redop = r.send, r.recv, r.redop
        return lambda: scatter_into(recv, send, op=redop)

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.reduced([inputs.of(q, count, offset=rank * count) for q in range(nranks)])


class AllToAll(Collective):
    name, nccl_name = "all_to_all", "alltoall_perf"
    total_input = total_output = True
    no_in_place = "all_to_all has no in-place form in torch.distributed"

    def factor(self, nranks: int) -> float:
        return (nranks - 1) / nranks  # each rank receives the other ranks' parts

    def op(self, r: RankOp) -> Callable[[], None]:
        dist, send, recv = r.dist, r.send, r.recv
        return lambda: dist.all_to_all_single(recv, send)

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.joined([inputs.of(q, count, offset=rank * count) for q in range(nranks)])


class Broadcast(Collective):
    name, nccl_name = "broadcast", "broadcast_perf"
    rooted = input_from_root = copies_out_of_place = True

    def op(self, r: RankOp) -> Callable[[], None]:
        dist, send, recv, root = r.dist, r.send, r.recv, r.root
        if r.in_place:
            return lambda: dist.broadcast(recv, src=root)
        on_root = r.rank == root

        def copy_then_broadcast() -> None:
            if on_root:
                recv.copy_(send)
            dist.broadcast(recv, src=root)

        return copy_then_broadcast

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.of(root, count)


class Reduce(Collective):
    name, nccl_name = "reduce", "reduce_perf"
    reduces = rooted = output_on_root = copies_out_of_place = True

    def op(self, r: RankOp) -> Callable[[], None]:
        dist, send, recv, root, redop = r.dist, r.send, r.recv, r.root, r.redop
        if r.in_place:
            return lambda: dist.reduce(recv, dst=root, op=redop)

        def copy_then_reduce() -> None:
            # torch reduces in place; the copy keeps the send buffer intact like NCCL's out-of-place path.
            recv.copy_(send)
            dist.reduce(recv, dst=root, op=redop)

        return copy_then_reduce

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.reduced([inputs.of(q, count) for q in range(nranks)])


class Gather(Collective):
    name, nccl_name = "gather", "gather_perf"
    rooted = total_output = output_on_root = True

    def factor(self, nranks: int) -> float:
        return (nranks - 1) / nranks  # each rank receives the other ranks' parts

    def op(self, r: RankOp) -> Callable[[], None]:
        # The root's total buffer as one list of per-rank chunks (views, no copy).
        dist, send, root = r.dist, r.send, r.root
        chunks = list(r.recv.split(r.count)) if r.rank == root else None  # type: ignore[no-untyped-call]
        return lambda: dist.gather(send, gather_list=chunks, dst=root)

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.joined([inputs.of(q, count) for q in range(nranks)])


class Scatter(Collective):
    name, nccl_name = "scatter", "scatter_perf"
    rooted = total_input = input_from_root = True

    def factor(self, nranks: int) -> float:
        return (nranks - 1) / nranks  # each rank receives the other ranks' parts

    def op(self, r: RankOp) -> Callable[[], None]:
        dist, recv, root = r.dist, r.recv, r.root
        parts = list(r.send.split(r.count)) if r.rank == root else None  # type: ignore[no-untyped-call]
        return lambda: dist.scatter(recv, scatter_list=parts, src=root)

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.of(root, count, offset=rank * count)  # the root's chunk number `rank`


class SendRecv(Collective):
    """nccl-tests' ring exchange: each rank sends to rank+1 while receiving from rank-1."""

    name, nccl_name = "sendrecv", "sendrecv_perf"
    no_in_place = "sendrecv in place would receive into the buffer it is sending; run out-of-place"
    min_ranks, min_ranks_reason = 2, "sendrecv exchanges data between ranks"

    def op(self, r: RankOp) -> Callable[[], None]:
        dist, send, recv = r.dist, r.send, r.recv
        peer_to, peer_from = (r.rank + 1) % r.nranks, (r.rank - 1) % r.nranks

        def sendrecv() -> None:
            ops = [dist.P2POp(dist.isend, send, peer_to), dist.P2POp(dist.irecv, recv, peer_from)]
            for req in dist.batch_isend_irecv(ops):
                req.wait()

        return sendrecv

    def expected(self, inputs: CheckInputs, rank: int, nranks: int, count: int, root: int) -> torch.Tensor:
        return inputs.of((rank - 1) % nranks, count)  # what the previous rank sent


def _by_name(*collectives: Collective) -> dict[str, Collective]:
    return {c.name: c for c in collectives}


# The one registry, in the order the spec documents them.
COLLECTIVES: dict[str, Collective] = _by_name(
    AllReduce(),
    AllGather(),
    ReduceScatter(),
    AllToAll(),
    Broadcast(),
    Reduce(),
    Gather(),
    Scatter(),
    SendRecv(),
)


def busbw_factor(workload: str, nranks: int) -> float:
    """nccl-tests' bus-bandwidth factor for ``workload`` on ``nranks`` ranks."""
    return COLLECTIVES[workload].factor(nranks)
