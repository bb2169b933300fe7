"""The point-to-point workloads, one descriptor each: THE table every consumer reads.

Whether a workload is a bandwidth or a latency test, which figure a comparison judges and
in which direction, which perftest binary it mirrors and whether benchfab runs it or only
imports its reports: all of it is here, once. The summary rows, the perftest-style tables,
``benchfab compare``, the report's figures and tables and the OpenMetrics export ask a
descriptor (``p2p_workload(name)``) instead of testing a workload's name, so a workload
added here (an imported ``ib_send_lat``, say) is judged on the right figure and drawn in the
right figure everywhere at once.

Pure data: no I/O, no heavy imports (the spec loader and ``benchfab plan`` read it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import WorkloadError
from .base import JudgedMetric

Verb = Literal["write", "read", "send"]  # the verbs opcode (perftest's title: RDMA_Write, RDMA_Read, Send)
Kind = Literal["bw", "lat"]

# perftest's headline figures: BW average for a bandwidth test, t_typical (the median
# half round trip) for a latency test. A bandwidth row has no latency figures (NaN) and a
# latency row no bandwidth: judging one on the other's column judges nothing.
BANDWIDTH_JUDGED = JudgedMetric("bw_avg_Bps", higher_is_better=True)
LATENCY_JUDGED = JudgedMetric("lat_median_s", higher_is_better=False, of_times="median")


@dataclass(frozen=True)
class P2PWorkload:
    """One point-to-point workload: what it measures and how every consumer treats it."""

    name: str  # the workload as specs and stored rows name it: rdma_write_bw
    verb: Verb
    kind: Kind
    perftest_binary: str  # the perftest binary its rows compare with: ib_write_bw
    runs: bool  # benchfab's engines run it (a spec may name it); False: rows only come from imports
    default_iterations: int  # perftest's default count (DEF_ITERS_WB for write bw, DEF_ITERS otherwise)

    @property
    def bandwidth(self) -> bool:
        """A bandwidth test (many messages in flight, BW average) rather than a latency test."""
        return self.kind == "bw"

    @property
    def judged(self) -> JudgedMetric:
        """The summary column ``benchfab compare`` judges, and whether higher is better."""
        return BANDWIDTH_JUDGED if self.bandwidth else LATENCY_JUDGED

    @property
    def test(self) -> str:
        """The engines' name for the test (RdmaParams.test): write_bw, write_lat."""
        return f"{self.verb}_{self.kind}"

    @property
    def rtt_factor(self) -> int:
        """Round trips per latency sample over this: a ping-pong's round trip is two
        messages (perftest halves it), a READ's one (perftest reports it whole)."""
        return 1 if self.verb == "read" else 2

    @property
    def one_sided(self) -> bool:
        """The peer's CPU takes no part in the transfer (READ): its side of the test only
        serves the memory, unless both directions run (-b)."""
        return self.verb == "read"

    def record_name(self, transport: str) -> str:
        """What an engine's record calls the test over ``transport``: rdma_write_bw over verbs,
        tcp_write_bw over tcp (the same workload)."""
        return f"{'tcp' if transport == 'tcp' else 'rdma'}_{self.test}"


def _one(verb: Verb, kind: Kind, runs: bool) -> P2PWorkload:
    binary = f"ib_{verb}_{kind}"
    iterations = 5000 if (verb, kind) == ("write", "bw") else 1000
    return P2PWorkload(f"rdma_{verb}_{kind}", verb, kind, binary, runs, iterations)


# The table, in the order specs and help list the workloads: what benchfab runs first.
P2P_WORKLOADS: dict[str, P2PWorkload] = {w.name: w for w in (
    _one("write", "bw", runs=True),
    _one("write", "lat", runs=True),
    _one("read", "bw", runs=True),
    _one("read", "lat", runs=True),
    _one("send", "bw", runs=True),
    _one("send", "lat", runs=True),
)}

# An engine's record names the test over tcp tcp_write_bw / tcp_write_lat: the same workloads.
_BY_RECORD_NAME: dict[str, P2PWorkload] = {
    w.record_name(transport): w for w in P2P_WORKLOADS.values() if w.runs for transport in ("verbs", "tcp")
}


def p2p_workload(name: str) -> P2PWorkload:
    """The descriptor of a point-to-point workload (or an engine's record name for it)."""
    found = P2P_WORKLOADS.get(name) or _BY_RECORD_NAME.get(name)
    if found is None:
        raise WorkloadError(f"unknown point-to-point workload {name!r}", hint=f"one of {', '.join(P2P_WORKLOADS)}")
    return found


def p2p_names(*, bandwidth: bool | None = None, runs: bool | None = None) -> tuple[str, ...]:
    """The workload names whose descriptors match: bandwidth or latency tests, run or imported."""
    return tuple(w.name for w in P2P_WORKLOADS.values()
                 if (bandwidth is None or w.bandwidth == bandwidth) and (runs is None or w.runs == runs))
