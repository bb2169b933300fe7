"""The point-to-point workloads, one descriptor each: THE table every consumer reads.

What a workload is (its verbs opcode; a bandwidth or a latency test), which figure a
comparison judges and in which direction, which perftest binary it mirrors and that
binary's defaults (iterations, message size, TX depth, inline size), how long it takes
(the estimate), which figure of the report draws it, and whether benchfab runs it or only
imports its reports: all of it is here, once. The spec's rules, the planner's estimate, the
worker, the engines (benchfab.rdma), the summary rows and perftest-style tables,
``benchfab run``, ``benchfab import``, ``benchfab compare``, the report and the export ask a
descriptor (``p2p_workload(name)``) instead of testing a workload's name, so a workload
added here is judged, estimated, run and drawn right everywhere at once. A new native one
(``rdma_atomic_bw``, say) is its row with ``runs=True``, what its opcode means for the
engines and rules (one_sided, posts_receives, over_tcp...), and its loop in the engines.

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

# The report's figures (point_to_point.PointToPoint.figures): each workload is drawn in one.
BANDWIDTH_FIGURE = "p2p_bw.png"
LATENCY_FIGURE = "p2p_lat.png"

# perftest's defaults (perftest_parameters.h): DEF_ITERS_WB (write bw) and DEF_ITERS;
# DEF_SIZE_BW and DEF_SIZE_LAT; DEF_TX_BW, and one message in flight for a latency test;
# DEF_INLINE_WRITE for write_lat, DEF_INLINE_SEND_RC_UC for send_lat (bandwidth tests and
# READ post nothing inline unless -I says so).
_ITERATIONS_WRITE_BW, _ITERATIONS = 5000, 1000
_SIZE = {"bw": 65536, "lat": 2}
_TX_DEPTH = {"bw": 128, "lat": 1}
_INLINE = {("write", "lat"): 220, ("send", "lat"): 236}


@dataclass(frozen=True)
class P2PWorkload:
    """One point-to-point workload: what it measures and how every consumer treats it."""

    name: str  # the workload as specs and stored rows name it: rdma_write_bw
    verb: Verb
    kind: Kind
    perftest_binary: str  # the perftest binary its rows compare with: ib_write_bw
    runs: bool  # benchfab's engines run it (a spec may name it); False: rows only come from imports
    default_iterations: int  # perftest's -n default
    default_size: int  # perftest's -s default (benchfab run without -s / -a)
    default_tx_depth: int  # perftest's -t default; a latency test has one message in flight, always
    default_max_inline: int  # perftest's -I default: messages up to this many bytes are posted inline
    figure: str  # the report figure that draws its rows (FigureSpec.file)

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
    def bandwidth_flags(self) -> bool:
        """perftest's -t (TX depth), -Q (CQ moderation), -l (post list), -b (both directions)
        and -q (QPs) apply: a bandwidth test's; a latency test has one message in flight on
        one QP, each signaled."""
        return self.bandwidth

    @property
    def one_sided(self) -> bool:
        """The peer's CPU takes no part in the transfer (READ): its side of the test only
        serves the memory, unless both directions run (-b). perftest's -o (outstanding
        READs) applies to these only."""
        return self.verb == "read"

    @property
    def posts_receives(self) -> bool:
        """The receiving side posts one receive per message (SEND): its loop needs the
        message count, so a bandwidth test runs by iterations, not duration."""
        return self.verb == "send"

    @property
    def over_tcp(self) -> bool:
        """The tcp transport runs it (the WRITE loops over a socket)."""
        return self.verb == "write"

    @property
    def rtt_factor(self) -> int:
        """Round trips per latency sample over this: a ping-pong's round trip is two
        messages (perftest halves it), a READ's one (perftest reports it whole)."""
        return 1 if self.one_sided else 2

    @property
    def latency_initiator(self) -> Literal["server", "client"]:
        """Who posts first in the latency test: the server in ib_write_lat, the client in
        ib_send_lat (and ib_read_lat, where only the client posts)."""
        return "server" if self.verb == "write" else "client"

    def record_name(self, transport: str) -> str:
        """What an engine's record calls the test over ``transport``: rdma_write_bw over verbs,
        tcp_write_bw over tcp (the same workload)."""
        return f"{'tcp' if transport == 'tcp' else 'rdma'}_{self.test}"

    def method(self, transport: str) -> str:
        """The summary row's ``method``: the opcode over verbs (rdma_write), a socket's over tcp."""
        return f"rdma_{self.verb}" if transport == "verbs" else f"socket_{self.verb}"

    def estimate_seconds(self, size: int, messages: int, stream_bps: float, latency_s: float) -> float:
        """Rough time of one size: a bandwidth test streams its bytes (plus its set-up), a
        latency test waits for each round trip."""
        if self.bandwidth:
            return messages * size / stream_bps + 0.05
        return messages * 2 * (latency_s + size / stream_bps)


def _one(verb: Verb, kind: Kind, runs: bool) -> P2PWorkload:
    return P2PWorkload(
        name=f"rdma_{verb}_{kind}", verb=verb, kind=kind, perftest_binary=f"ib_{verb}_{kind}", runs=runs,
        default_iterations=_ITERATIONS_WRITE_BW if (verb, kind) == ("write", "bw") else _ITERATIONS,
        default_size=_SIZE[kind], default_tx_depth=_TX_DEPTH[kind], default_max_inline=_INLINE.get((verb, kind), 0),
        figure=BANDWIDTH_FIGURE if kind == "bw" else LATENCY_FIGURE,
    )


# The table, in the order specs and help list the workloads: what benchfab runs first.
P2P_WORKLOADS: dict[str, P2PWorkload] = {w.name: w for w in (
    _one("write", "bw", runs=True),
    _one("write", "lat", runs=True),
    _one("read", "bw", runs=True),
    _one("read", "lat", runs=True),
    _one("send", "bw", runs=True),
    _one("send", "lat", runs=True),
)}

# Other names of a runnable workload: an engine's record name over tcp (tcp_write_bw) or
# verbs (rdma_write_bw), and the engines' test name (write_bw).
_OTHER_NAMES: dict[str, P2PWorkload] = {
    name: w for w in P2P_WORKLOADS.values() if w.runs
    for name in (w.record_name("verbs"), w.record_name("tcp"), w.test)
}


def p2p_workload(name: str) -> P2PWorkload:
    """The descriptor of a point-to-point workload (or an engine's record or test name for it)."""
    found = P2P_WORKLOADS.get(name) or _OTHER_NAMES.get(name)
    if found is None:
        raise WorkloadError(f"unknown point-to-point workload {name!r}", hint=f"one of {', '.join(P2P_WORKLOADS)}")
    return found


def p2p_names(*, bandwidth: bool | None = None, runs: bool | None = None, figure: str | None = None) -> tuple[str, ...]:
    """The workload names whose descriptors match: bandwidth or latency tests, run or
    imported, drawn in ``figure``."""
    return tuple(w.name for w in P2P_WORKLOADS.values()
                 if (bandwidth is None or w.bandwidth == bandwidth) and (runs is None or w.runs == runs)
                 and (figure is None or w.figure == figure))


def perftest_binaries(*, runs: bool | None = None) -> dict[str, str]:
    """workload -> the perftest binary it mirrors (those benchfab runs, imports, or all)."""
    return {w.name: w.perftest_binary for w in P2P_WORKLOADS.values() if runs is None or w.runs == runs}


def p2p_by_title(verb: str, kind: str) -> P2PWorkload:
    """The workload a perftest report's title names ("RDMA_Read BW Test": read, bw)."""
    for w in P2P_WORKLOADS.values():
        if (w.verb, w.kind) == (verb, kind):
            return w
    raise WorkloadError(f"no point-to-point workload for perftest's {verb} {kind} test",
                        hint=f"one of {', '.join(w.perftest_binary for w in P2P_WORKLOADS.values())}")


def runnable_patterns(prefix: str = "rdma") -> str:
    """The runnable workloads as help and errors name them: rdma_write_* (ib_write_* with
    prefix "ib"), one pattern per verbs opcode benchfab runs."""
    verbs = dict.fromkeys(w.verb for w in P2P_WORKLOADS.values() if w.runs)
    return ", ".join(f"{prefix}_{verb}_*" for verb in verbs)
