"""Parameters of one RDMA/TCP point-to-point test, as both sides of the engines read them,
and the records the engines produce.

Defaults follow perftest so that a benchfab number and an ib_{write,read,send}_{bw,lat}
number mean the same thing; they are the workload's descriptor's
(benchfab.workloads.p2p_workloads: iterations, TX depth, inline size), and the rules the
spec applies (benchfab.workloads.p2p_rules.pair_problems) are checked here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from benchfab.errors import WorkloadError
from benchfab.records import P2P_RECORD_KEYS
from benchfab.workloads.catalog import Memory, Transport
from benchfab.workloads.p2p_rules import beyond_one_qp_one_way, pair_problems
from benchfab.workloads.p2p_workloads import P2P_WORKLOADS, P2PWorkload, p2p_workload

# The spec offers native and perftest; "python" is refused by rdma.run_rdma_pair with its fix.
Engine = Literal["native", "perftest", "python"]

# perftest: DEF_CQ_MOD, MSG_SIZE_CQ_MOD_LIMIT (the bandwidth tests' CQ moderation).
CQ_MOD = 100
CQ_MOD_SIZE_LIMIT = 8192

# The tests the engines run (RdmaParams.test): those of the runnable workloads.
TESTS: tuple[str, ...] = tuple(w.test for w in P2P_WORKLOADS.values() if w.runs)

# What RdmaParams.from_mapping takes as ``workload``: a runnable workload, an engine's
# record name for it (tcp_write_bw) or the engines' test name (write_bw); a record name
# over tcp also says the transport.
_WORKLOAD_ALIASES: dict[str, tuple[str, str | None]] = {
    **{w.name: (w.test, None) for w in P2P_WORKLOADS.values() if w.runs},
    **{w.test: (w.test, None) for w in P2P_WORKLOADS.values() if w.runs},
    **{w.record_name("tcp"): (w.test, "tcp") for w in P2P_WORKLOADS.values() if w.runs},
}


@dataclass(frozen=True)
class RdmaParams:
    """Everything both sides of one test must agree on (plus where to find the peer)."""

    test: str = "write_bw"  # the engines' name of a runnable workload (one of TESTS)
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
                kw["test"], transport = _WORKLOAD_ALIASES[value]
                if transport is not None:
                    kw.setdefault("transport", transport)
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
        if self.test not in TESTS:
            raise WorkloadError(f"rdma test {self.test!r} is not one of {', '.join(TESTS)}")
        if self.transport not in get_args(Transport):
            raise WorkloadError(f"transport {self.transport!r} is not verbs or tcp")
        if self.engine not in get_args(Engine):
            raise WorkloadError(f"engine {self.engine!r} is not native, perftest or python")
        if self.memory not in get_args(Memory):
            raise WorkloadError(f"memory {self.memory!r} is not one of {', '.join(get_args(Memory))}")
        if not self.sizes or any(s < 1 for s in self.sizes):
            raise WorkloadError(f"message sizes must be >= 1 byte, got {list(self.sizes)}")
        problems = pair_problems(self.workload, transport=self.transport, engine=self.engine,
                                 memory=self.memory, iterations=self.iterations, options=self.verbs_options(),
                                 duration=self.duration_s or None)
        if problems:
            raise WorkloadError(problems[0].message, hint=problems[0].hint)

    @property
    def workload(self) -> P2PWorkload:
        """The descriptor of the test: what it measures and perftest's defaults for it."""
        return p2p_workload(self.test)

    def verbs_options(self) -> dict[str, Any]:
        """The perftest options beyond one QP in one direction that this test sets."""
        return beyond_one_qp_one_way(self.bidirectional, self.qps, self.out_reads)

    def iters(self) -> int:
        if self.iterations is not None:
            return int(self.iterations)
        return self.workload.default_iterations

    def effective_tx_depth(self) -> int:
        if not self.workload.bandwidth_flags:
            return self.workload.default_tx_depth  # one message in flight, whatever tx_depth says
        return int(self.tx_depth or self.workload.default_tx_depth)

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
        return self.workload.default_max_inline


RECORD_KEYS = P2P_RECORD_KEYS


def make_record(p: RdmaParams, figures: Mapping[str, Any], **context: Any) -> dict[str, Any]:
    """One tidy row: every key of RECORD_KEYS present (NaN where it does not apply)."""
    rec: dict[str, Any] = {k: math.nan for k in RECORD_KEYS}
    rec.update({
        "workload": p.workload.record_name(p.transport),
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
