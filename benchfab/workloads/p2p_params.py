"""Parameters of one RDMA/TCP point-to-point test, the rules they obey, and the
records the engines (benchfab.rdma) produce.

Defaults follow perftest so that a benchfab number and an ib_write_bw / ib_write_lat
number mean the same thing: write_bw 5000 iterations, tx_depth 128, cq_mod 100 (capped
at tx_depth, 1 above 8 KiB unless given); write_lat 1000 iterations, 1 outstanding,
inline up to 220 B.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from benchfab.errors import WorkloadError
from benchfab.records import P2P_RECORD_KEYS

from .base import Problem
from .catalog import Memory, Transport, is_gpu_memory
from .p2p_workloads import P2P_WORKLOADS, P2PWorkload, p2p_workload

Test = Literal["write_bw", "write_lat", "read_bw", "read_lat", "send_bw", "send_lat"]
# The spec offers native and perftest; "python" is refused by rdma.run_rdma_pair with its fix.
Engine = Literal["native", "perftest", "python"]

# Views of the one table of point-to-point workloads (p2p_workloads.P2P_WORKLOADS), for the
# code that asks only one question of it. The perftest binary each workload mirrors: those
# benchfab runs, and those whose saved reports only ``benchfab import perftest`` stores.
PERFTEST_BINARY: dict[str, str] = {w.name: w.perftest_binary for w in P2P_WORKLOADS.values() if w.runs}
PERFTEST_IMPORTED: dict[str, str] = {w.name: w.perftest_binary for w in P2P_WORKLOADS.values() if not w.runs}
BANDWIDTH_WORKLOAD = "rdma_write_bw"
LATENCY_WORKLOAD = "rdma_write_lat"

# perftest's default iteration counts, used when a point-to-point test gives neither
# iterations nor duration.
PERFTEST_ITERATIONS: dict[str, int] = {name: P2P_WORKLOADS[name].default_iterations for name in PERFTEST_BINARY}

# perftest: DEF_ITERS_WB, DEF_ITERS, DEF_TX_BW, DEF_TX_LAT, DEF_CQ_MOD,
# MSG_SIZE_CQ_MOD_LIMIT, DEF_INLINE_WRITE.
BW_ITERS = PERFTEST_ITERATIONS[BANDWIDTH_WORKLOAD]
LAT_ITERS = PERFTEST_ITERATIONS[LATENCY_WORKLOAD]
BW_TX_DEPTH = 128
CQ_MOD = 100
CQ_MOD_SIZE_LIMIT = 8192
LAT_INLINE = 220
# perftest DEF_INLINE_SEND_RC_UC: send_lat's inline size (READ posts nothing inline).
SEND_LAT_INLINE = 236

# What RdmaParams.from_mapping takes as ``workload``: a runnable workload, an engine's
# record name for it (tcp_write_bw) or the engines' test name (write_bw).
_WORKLOAD_ALIASES = {
    **{w.name: w.test for w in P2P_WORKLOADS.values() if w.runs},
    **{w.test: w.test for w in P2P_WORKLOADS.values() if w.runs},
    **{w.record_name("tcp"): w.test for w in P2P_WORKLOADS.values() if w.runs},
}


@dataclass(frozen=True)
class RdmaParams:
    """Everything both sides of one test must agree on (plus where to find the peer)."""

    test: Test = "write_bw"
    sizes: tuple[int, ...] = (65536,)
    iterations: int | None = None     # None: perftest's default for the test
    warmup: int = 0
    tx_depth: int | None = None       # None: 128 for bw, 1 for lat
    cq_mod: int | None = None         # None: perftest's rule (see effective_cq_mod)
    post_list: int = 1
    duration_s: float = 0.0           # > 0: bw runs for this long (iterations = capacity)
    transport: Transport = "verbs"
    engine: Engine = "native"
    memory: Memory = "host"
    device: str | None = None         # None: first device with an ACTIVE port
    port: int = 1
    gid_index: int | None = None      # None: RoCE v2 IPv4 GID on Ethernet, none on IB
    mtu: int = 0                      # 0: the port's active MTU
    max_inline: int | None = None     # None: 220 write_lat, 236 send_lat, 0 otherwise (perftest)
    bidirectional: bool = False       # bw: both sides post at once (perftest -b)
    qps: int = 1                      # bw: QPs per side, posted round robin (perftest -q)
    out_reads: int | None = None      # READs outstanding per QP; None: the device's most (perftest -o)
    timeout_s: float = 30.0
    peer_host: str | None = None      # tcp / perftest: the server's address (client side)
    listen_host: str = "0.0.0.0"      # tcp server bind address
    tcp_port: int = 0                 # tcp server port (0: ephemeral, sent via exchange)
    perftest_port: int = 18515
    perftest_bin_dir: str | None = None
    cuda_device: int = 0
    prefer_ip: str | None = None      # the test network's address: pick the port/GID that has it
    verify: bool = True               # check the bytes that arrived (GPU memory: copied to the host)
    keep_raw: bool = False            # attach per-iteration timestamps to records
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> RdmaParams:
        """Build from the worker's dict; accepts ``workload`` (rdma_write_bw...) for
        ``test`` and ``size`` for a one-element ``sizes``. Unknown keys go to ``extra``."""
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in params.items():
            if key == "workload":
                if value not in _WORKLOAD_ALIASES:
                    raise WorkloadError(f"unknown rdma workload {value!r}",
                                        hint=f"one of {sorted(_WORKLOAD_ALIASES)}")
                kw["test"] = _WORKLOAD_ALIASES[value]
                if str(value).startswith("tcp_"):
                    kw.setdefault("transport", "tcp")
            elif key == "size":
                kw["sizes"] = (int(value),)
            elif key == "sizes":
                kw["sizes"] = tuple(int(s) for s in value)
            elif key in known:
                kw[key] = value
            else:
                extra[key] = value
        kw["extra"] = extra
        p = cls(**kw)
        p.validate()
        return p

    def validate(self) -> None:
        """The value checks a dict from outside the spec needs, then the same rules the
        spec applies (pair_problems); the first broken one is raised."""
        if self.test not in get_args(Test):
            raise WorkloadError(f"rdma test {self.test!r} is not one of {', '.join(get_args(Test))}")
        if self.transport not in get_args(Transport):
            raise WorkloadError(f"transport {self.transport!r} is not verbs or tcp")
        if self.engine not in get_args(Engine):
            raise WorkloadError(f"engine {self.engine!r} is not native, perftest or python")
        if self.memory not in get_args(Memory):
            raise WorkloadError(f"memory {self.memory!r} is not one of {', '.join(get_args(Memory))}")
        if not self.sizes or any(s < 1 for s in self.sizes):
            raise WorkloadError(f"message sizes must be >= 1 byte, got {list(self.sizes)}")
        problems = pair_problems(latency=not self.workload.bandwidth, transport=self.transport, engine=self.engine,
                                 memory=self.memory, iterations=self.iterations, workload=self.workload.name,
                                 options=self.verbs_options(), duration=self.duration_s or None)
        if problems:
            raise WorkloadError(problems[0].message, hint=problems[0].hint)

    @property
    def workload(self) -> P2PWorkload:
        """The test's descriptor (p2p_workloads): its verb, bandwidth or latency."""
        return p2p_workload(f"rdma_{self.test}")

    def verbs_options(self) -> dict[str, Any]:
        """The perftest options beyond one QP in one direction that this test sets."""
        return beyond_one_qp_one_way(self.bidirectional, self.qps, self.out_reads)

    def iters(self) -> int:
        if self.iterations is not None:
            return int(self.iterations)
        return self.workload.default_iterations

    def effective_tx_depth(self) -> int:
        if not self.workload.bandwidth:
            return 1
        return int(self.tx_depth or BW_TX_DEPTH)

    def effective_cq_mod(self, size: int) -> int:
        """perftest: 100 unless given; forced to 1 above 8 KiB when not given; capped at
        tx_depth. With post_list > 1 and no -Q, cq_mod = post_list."""
        depth = self.effective_tx_depth()
        if self.cq_mod is not None:
            return max(1, min(int(self.cq_mod), depth))
        if self.post_list > 1:
            return min(self.post_list, depth)
        if size > CQ_MOD_SIZE_LIMIT:
            return 1
        return min(CQ_MOD, depth)

    def effective_max_inline(self) -> int:
        if self.max_inline is not None:
            return int(self.max_inline)
        if self.workload.bandwidth or self.workload.verb == "read":
            return 0
        return SEND_LAT_INLINE if self.workload.verb == "send" else LAT_INLINE


RECORD_KEYS = P2P_RECORD_KEYS


def beyond_one_qp_one_way(bidirectional: bool | None, qps: int | None, out_reads: int | None) -> dict[str, Any]:
    """The perftest options (-b, -q, -o) a test sets beyond one QP in one direction."""
    found: dict[str, Any] = {}
    if bidirectional:
        found["bidirectional"] = True
    if qps is not None and qps != 1:
        found["qps"] = qps
    if out_reads is not None:
        found["out_reads"] = out_reads
    return found


def pair_problems(*, latency: bool, transport: str, engine: str, memory: str, iterations: int | None,
                  ranks: int | None = None, device: str | None = None, workload: str = LATENCY_WORKLOAD,
                  options: Mapping[str, Any] | None = None, duration: float | None = None) -> list[Problem]:
    """The rules of a point-to-point test, for the spec (which knows ranks and device)
    and for RdmaParams (which does not). ``workload`` names the test in messages;
    ``options`` are the verbs options it sets beyond perftest's defaults (bidirectional,
    qps, out_reads)."""
    found: list[Problem] = []
    verb = p2p_workload(workload).verb
    for key in options or {}:
        if latency and key in ("bidirectional", "qps"):
            found.append(Problem(f"rdma.{key}", f"{workload} runs one QP in a ping-pong: {key} applies to the "
                                 "bandwidth tests only", f"drop rdma.{key}", ("workload",)))
        if key == "out_reads" and verb != "read":
            found.append(Problem("rdma.out_reads", f"{workload} issues no READs: out_reads applies to "
                                 "rdma_read_bw / rdma_read_lat", "drop rdma.out_reads", ("workload",)))
    if transport == "tcp" and verb != "write":
        found.append(Problem("transport", f"the tcp transport runs the write tests only, not {workload}",
                             "use transport: verbs", ("workload",)))
    if verb == "send" and not latency and duration is not None:
        found.append(Problem("duration", f"{workload}: the receiving side posts one receive per message, so it "
                             "needs a message count", "give iterations instead of duration", ("workload",)))
    if ranks is not None and ranks != 2:
        found.append(Problem("ranks", f"{workload} runs between exactly 2 ranks, not {ranks}", "set ranks: 2",
                             ("workload",)))
    if latency and is_gpu_memory(memory):
        found.append(Problem("memory", "the latency test polls the receive buffer with the CPU, which GPU memory "
                             "does not allow", f"use memory: host for {workload}", ("workload",)))
    if transport == "tcp" and memory != "host":
        found.append(Problem("memory", "the tcp transport sends from plain host memory only",
                             "use memory: host or transport: verbs", ("workload", "transport")))
    if device == "cpu" and is_gpu_memory(memory):
        found.append(Problem("device", f"memory: {memory} needs a GPU but device is cpu",
                             "set device: auto or cuda, or memory: host", ("workload", "memory")))
    if engine == "perftest" and transport == "tcp":
        found.append(Problem("engine", "perftest runs over verbs only", "use engine: native for transport: tcp",
                             ("workload", "transport")))
    if iterations is not None and iterations < 5:
        found.append(Problem("iterations", "perftest's loops need at least 5 iterations", "use iterations: 5 or more",
                             ("workload", "duration")))
    return found


def make_record(p: RdmaParams, figures: Mapping[str, Any], **context: Any) -> dict[str, Any]:
    """One tidy row: every key of RECORD_KEYS present (NaN where it does not apply)."""
    rec: dict[str, Any] = {k: math.nan for k in RECORD_KEYS}
    rec.update({
        "workload": f"{'tcp' if p.transport == 'tcp' else 'rdma'}_{p.test}",
        "opcode": p.workload.verb, "bidirectional": p.bidirectional, "qps": p.qps, "out_reads": None,
        "transport": p.transport, "engine": p.engine, "memory": p.memory,
        "device": p.device, "port": p.port, "gid_index": p.gid_index,
        "link_layer": None, "mtu": p.mtu or None, "warmup": p.warmup,
        "tx_depth": p.effective_tx_depth(), "post_list": p.post_list,
        "wrong_bytes": None, "inline_size": None, "data_check": "skipped", "role": "client",
    })
    rec.update(context)
    for k, v in figures.items():
        if k in RECORD_KEYS:
            rec[k] = v
    if p.keep_raw:
        for k in ("tposted_ns", "tcompleted_ns"):
            if k in figures:
                rec[f"raw_{k}"] = figures[k]
    return rec
