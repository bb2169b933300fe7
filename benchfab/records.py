"""The record schema: what workers emit, what the store's tables hold, and the key
that identifies one measurement across runs.

Workers print records (``benchfab.task.format_record``); rank 0's ``result``
records become summary rows (one per size x in-place flag, built by the test's
workload family), their per-iteration times raw rows, and every test one test row.
Each TypedDict below lists its columns once: the store's column lists are read
from them, so a column is added in one place. The schema only: the rows of a test
that ended are built by ``benchfab.workloads.rows`` (and its workload family).

Schema version 1 (see benchfab.store). Columns added within version 1 are
appended at the end and read back as null from older parts: ``profile`` and
``hosts`` in summary rows (2026-12), then ``link_rate_bps``, then ``inline_size``
and ``data_check``, then ``nccl_gid_index``, ``nccl_protocols``, ``env`` (read back as
"" from older parts) and ``env_check``; ``counters`` in test rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

SCHEMA_VERSION = 1


class CollectiveResult(TypedDict):
    """A collective test's ``result`` record: one size and in-place flag, from rank 0."""

    type: str  # "result"
    test_id: str
    size_bytes: int
    count: int
    in_place: bool
    iterations: int
    time_s: float | None  # mean time per op, averaged over ranks
    algbw_Bps: float | None
    busbw_Bps: float | None
    wrong: int | None  # None when the data check is off
    method: str  # inplace | native | copy+inplace
    status: str
    reason: str
    per_iter_s: list[float]  # max over ranks


class P2PFigures(TypedDict, total=False):
    """What a point-to-point engine measures for one message size (SI units; absent
    or NaN where a figure does not apply, e.g. latency figures of a bandwidth test)."""

    workload: str  # the engine's name: rdma_write_bw, tcp_write_lat...
    transport: str
    engine: str
    memory: str
    device: str | None
    port: int
    gid_index: int | None
    link_layer: str | None
    link_rate_bps: float | None  # the port's rate (bit/s) where the engine knows it: verbs ports
    mtu: int | None
    size_bytes: int
    iterations: int
    warmup: int
    tx_depth: int
    cq_mod: int
    post_list: int
    opcode: str  # the verbs opcode the test posted: write | read | send (tcp: write)
    bidirectional: bool  # both sides posted at once (perftest -b); the figures are both directions' sum
    qps: int  # QPs per side (perftest -q)
    out_reads: int | None  # READs kept outstanding per QP (perftest -o); None: not a READ test
    elapsed_s: float
    bw_avg_Bps: float
    bw_peak_Bps: float
    msg_rate_pps: float
    lat_min_s: float
    lat_median_s: float
    lat_mean_s: float
    lat_stdev_s: float
    lat_p99_s: float
    lat_p999_s: float
    lat_max_s: float
    wrong_bytes: int | None
    # verbs: messages up to this many bytes were posted inline (perftest's "Max inline data")
    inline_size: int | None
    data_check: str  # how the bytes that arrived were checked: host | gpu-d2h | skipped
    tcp_segments: int  # tcp transport, per test: segments rank 0's network namespace sent
    tcp_retrans: int  # ... and retransmitted (loss on the path)
    role: str


# Every key an engine's record has (rdma.run_rdma_pair's contract).
P2P_RECORD_KEYS: tuple[str, ...] = tuple(P2PFigures.__annotations__)


class P2PResult(P2PFigures):
    """A point-to-point test's ``result`` record, from rank 0 (perftest's client)."""

    type: str
    test_id: str
    status: str
    reason: str
    in_place: bool  # always False: kept so every result record has the same keys
    per_iter_s: list[float]


class SummaryRow(TypedDict):
    """One row of the summary/ table: one measurement."""

    schema_version: int
    run_id: str
    test_id: str
    test_name: str
    workload: str
    collective: str  # the nccl-tests / perftest binary this row compares with
    engine: str | None
    backend: str
    transport: str | None
    fabric: str
    mode: str
    memory: str | None
    nodes: int
    ranks: int
    size_bytes: int
    count: int | None
    dtype: str
    redop: str
    root: int
    in_place: bool
    method: str | None
    iterations: int | None
    time_s: float | None
    algbw_Bps: float | None
    busbw_Bps: float | None
    wrong: int | None
    status: str
    reason: str
    # collectives: what NCCL's INFO log of rank 0 says it used (benchfab.nccllog); None without NCCL
    nccl_version: NotRequired[str | None]
    nccl_network: NotRequired[str | None]
    nccl_plugin: NotRequired[str | None]
    nccl_hcas: NotRequired[str | None]
    nccl_link_layer: NotRequired[str | None]
    nccl_merged_nics: NotRequired[bool | None]
    nccl_gdr: NotRequired[bool | None]
    nccl_channels: NotRequired[int | None]
    nccl_algorithms: NotRequired[str | None]
    # point-to-point only (perftest's figures in SI units); absent from collective rows
    bw_avg_Bps: NotRequired[float | None]
    bw_peak_Bps: NotRequired[float | None]
    msg_rate_pps: NotRequired[float | None]
    lat_min_s: NotRequired[float | None]
    lat_median_s: NotRequired[float | None]
    lat_mean_s: NotRequired[float | None]
    lat_stdev_s: NotRequired[float | None]
    lat_p99_s: NotRequired[float | None]
    lat_p999_s: NotRequired[float | None]
    lat_max_s: NotRequired[float | None]
    wrong_bytes: NotRequired[int | None]
    tcp_segments: NotRequired[int | None]  # tcp transport, per test: TCP segments rank 0's namespace sent
    tcp_retrans: NotRequired[int | None]  # ... and retransmitted meanwhile (loss on the path)
    rdma_device: NotRequired[str | None]
    port: NotRequired[int | None]
    gid_index: NotRequired[int | None]
    link_layer: NotRequired[str | None]
    mtu: NotRequired[int | None]
    tx_depth: NotRequired[int | None]
    cq_mod: NotRequired[int | None]
    post_list: NotRequired[int | None]
    # added within schema 1: null in older parts
    profile: str
    hosts: str  # the test's nodes in rank order, comma-separated: the pair or group measured
    link_rate_bps: NotRequired[float | None]  # the link's rate (bit/s) where known: "% of line rate" in reports
    inline_size: NotRequired[int | None]  # verbs: the inline threshold in bytes (perftest -I)
    data_check: NotRequired[str | None]  # point-to-point: host | gpu-d2h | skipped
    # collectives: NCCL's RoCE GID index and the protocols it chose (TUNING lines), from rank 0's log
    nccl_gid_index: NotRequired[int | None]
    nccl_protocols: NotRequired[str | None]
    # the test's own settings (env:, a sweep_env variant's), env_label's form: part of the key
    env: str
    # whether NCCL's log shows the settings took effect: honoured | changed | not checked; None: no settings
    env_check: NotRequired[str | None]


class RawRow(TypedDict):
    """One row of the raw/ table: one timed iteration (max over ranks)."""

    run_id: str
    test_id: str
    size_bytes: int
    in_place: bool
    iteration: int
    time_s: float


class TestRow(TypedDict):
    """A test's row of the tests/ table: how it ended and what it used."""

    run_id: str
    test_id: str
    test_name: str
    workload: str
    profile: str
    fabric: str
    mode: str
    ranks: int
    nodes: int
    dtype: str
    redop: str
    status: str
    reason: str
    log_tail: str
    started: float
    ended: float
    duration_s: float
    used: str  # JSON: hosts and each rank's env record
    # added within schema 1 (null in older parts and imported runs): JSON list, one entry per node
    # and source (RDMA port, interface, TCP) of the fabric counters' deltas (benchfab.counters)
    counters: NotRequired[str | None]


SUMMARY_COLUMNS: tuple[str, ...] = tuple(SummaryRow.__annotations__)
RAW_COLUMNS: tuple[str, ...] = tuple(RawRow.__annotations__)
TEST_COLUMNS: tuple[str, ...] = tuple(TestRow.__annotations__)

# The columns that say which measurement a summary row is: two rows with equal
# values are the same measurement taken twice (another run, a repeat), which is
# what comparisons across runs group by.
MEASUREMENT_KEY: tuple[str, ...] = (
    "workload", "profile", "fabric", "mode", "memory", "transport", "engine", "ranks", "nodes", "hosts",
    "dtype", "redop", "in_place", "env", "size_bytes",
)


def env_label(env: Mapping[str, str]) -> str:
    """A test's settings as the summary's ``env`` column (and so the key) holds them:
    NAME=value, sorted by name, space-separated; "" for none (and for parts written before
    the column existed, which the store reads back as "")."""
    return " ".join(f"{k}={env[k]}" for k in sorted(env))


@dataclass
class TestOutcome:
    """What happened to one test: its records and how it ended."""

    test_id: str
    status: str  # ok | failed | timeout | interrupted | skipped (could not run here; no rank started)
    reason: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)  # one per rank: what it really used
    counters: list[dict[str, Any]] = field(default_factory=list)  # the ranks' ``counters`` records
    gpu_health: list[dict[str, Any]] = field(default_factory=list)  # per node: DCGM's view (benchfab.gpuhealth)
    log_tail: str = ""
    started: float = 0.0
    ended: float = 0.0
