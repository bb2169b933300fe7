"""Point-to-point workloads (rdma_write_bw, rdma_write_lat): two ranks, perftest's
semantics, over verbs or TCP on the native engine or perftest's binaries.

The engines live in benchfab.rdma; this family says what a test of it means: its
rules (p2p_rules.pair_problems), its time estimate, its summary rows, its
ib_write_bw / ib_write_lat style table and its report figures and section. What each
workload is (bandwidth or latency, its judged figure, its perftest binary, run or only
imported: rdma_read_bw, rdma_send_lat...) is one descriptor in p2p_workloads, which all
of these read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..errors import WorkloadError
from ..nccllog import summary_columns
from ..records import SummaryRow
from ..tables import md_cell, num, shown
from ..units import LINK_BANDWIDTH, MESSAGE_RATE, TIME
from .base import FigureSpec, JudgedMetric, Problem, RankContext, WorkloadFamily, missing_gpu, row_base
from .catalog import is_gpu_memory
from .p2p_rules import beyond_one_qp_one_way, pair_problems
from .p2p_workloads import BANDWIDTH_FIGURE, LATENCY_FIGURE, P2P_WORKLOADS, p2p_names, p2p_workload, runnable_patterns

if TYPE_CHECKING:
    import pandas as pd

    from ..costs import CostModel
    from ..records import TestOutcome
    from ..task import Task
    from .base import HostView, PlannedView, TestView

# Summary columns copied from the engine's record as they are.
P2P_FIELDS = ("bw_avg_Bps", "bw_peak_Bps", "msg_rate_pps", "lat_min_s", "lat_median_s", "lat_mean_s",
              "lat_stdev_s", "lat_p99_s", "lat_p999_s", "lat_max_s", "wrong_bytes", "port", "gid_index",
              "link_layer", "mtu", "tx_depth", "cq_mod", "post_list", "link_rate_bps", "tcp_segments", "tcp_retrans",
              "inline_size", "data_check")

# Why a tcp table has no BW peak: send() returns once the kernel has copied the
# bytes into its socket buffer, not when they reach the peer, so the shortest
# per-message interval measures memcpy (5-24x the wire rate in the example run).
# BW average stays: its clock stops at the receiver's ack, after the last byte.
TCP_NO_PEAK = ("# tcp: no BW peak column (send() returns when the kernel has copied the bytes, not when they "
               "arrive); BW average is timed to the receiver's ack")


def has_meaningful_peak(transport: Any) -> bool:
    """BW peak is perftest's per-message rate: real for verbs, a memcpy rate for tcp."""
    return str(transport) != "tcp"


def estimate_p2p_seconds(spec: TestView, costs: CostModel) -> float:
    """Rough time of a pair test: its bytes at the backend's stream rate (bandwidth) or its
    round trips (latency), per size, after its ranks started."""
    bw, lat = costs.p2p_bps(spec.transport), costs.p2p_latency_s(spec.transport)
    workload = p2p_workload(spec.workload)
    iters = spec.iterations or workload.default_iterations
    total = costs.start_s
    for size in spec.sizes:
        if spec.duration is not None:
            total += spec.duration
        else:
            total += workload.estimate_seconds(size, iters + spec.warmup, bw, lat)
    return total


def p2p_row(run_id: str, test: PlannedView, rec: Mapping[str, Any], backend: str = "local") -> SummaryRow:
    """One rdma_write_bw / rdma_write_lat size. time_s is the time per message:
    elapsed / iterations for bandwidth, the median half round trip for latency."""
    iters = rec.get("iterations")
    elapsed = rec.get("elapsed_s")
    workload = p2p_workload(test.spec.workload)
    if workload.bandwidth:
        time_s = elapsed / iters if elapsed and iters else None
    else:
        time_s = rec.get("lat_median_s")
    transport = rec.get("transport", test.spec.transport)
    return cast(SummaryRow, {
        **row_base(run_id, test, rec, backend),
        **summary_columns(None),  # no NCCL in a verbs / tcp pair: the nccl_* columns are null
        "env_check": None,  # nor NCCL settings to check
        "collective": workload.perftest_binary,
        "engine": rec.get("engine", test.spec.engine),
        "transport": transport,
        "memory": rec.get("memory", test.spec.memory),
        "count": None,
        "dtype": "none",
        "redop": "none",
        "root": -1,
        "in_place": False,
        "method": workload.method(str(transport)),
        "time_s": time_s,
        "algbw_Bps": None,
        "busbw_Bps": None,
        "wrong": None,
        "rdma_device": rec.get("device"),
        **{k: rec.get(k) for k in P2P_FIELDS},
    })


def format_p2p_table(title: str, workload: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """perftest-style table: ib_write_bw (Gb/s = 1e9 bit/s, Mpps) or ib_write_lat (usec), in
    perftest's own header spellings (Gb/sec, usec: the units of benchfab.units).

    A tcp bandwidth table leaves out BW peak and says so in its header (see TCP_NO_PEAK)."""
    rows = sorted(rows, key=lambda r: int(r["size_bytes"]))
    out = [f"# {title}"]
    if p2p_workload(workload).bandwidth:
        return "\n".join(out + _bw_lines(rows))
    cols = ("lat_min_s", "lat_max_s", "lat_median_s", "lat_mean_s", "lat_stdev_s", "lat_p99_s", "lat_p999_s")
    names = ("t_min", "t_max", "t_typical", "t_avg", "t_stdev", "99% percentile", "99.9% percentile")
    out.append("#    #bytes  #iterations  " + "  ".join(f"{n}[{TIME.perftest}]" for n in names))
    widths = (11, 11, 15, 11, 13, 20, 22)
    for r in rows:
        lat_cells = [f"{TIME.number(r.get(c), 'N/A'):>{w}}" for c, w in zip(cols, widths)]
        out.append(f"  {int(r['size_bytes']):>8}  {num(r.get('iterations'), 'd'):>11}  " + "  ".join(lat_cells))
    return "\n".join(out)


def _bw_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    peak = all(has_meaningful_peak(r.get("transport")) for r in rows)
    bw, rate = f"[{LINK_BANDWIDTH.perftest}]", f"MsgRate[{MESSAGE_RATE.perftest}]"
    if not peak:
        out.append(TCP_NO_PEAK)
        out.append(f"#    #bytes  #iterations  BW average{bw}  {rate}")
    else:
        out.append(f"#    #bytes  #iterations  BW peak{bw}  BW average{bw}  {rate}")
    for r in rows:
        cells = f"  {int(r['size_bytes']):>8}  {num(r.get('iterations'), 'd'):>11}  "
        if peak:
            cells += f"{LINK_BANDWIDTH.number(r.get('bw_peak_Bps'), 'N/A'):>15}  "
        out.append(cells + f"{LINK_BANDWIDTH.number(r.get('bw_avg_Bps'), 'N/A'):>18}  "
                   f"{MESSAGE_RATE.number(r.get('msg_rate_pps'), 'N/A'):>13}")
    return out


def p2p_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per run, profile and point-to-point test: best BW average and BW peak (Gb/s), lowest
    median latency. One row never mixes runs or profiles (frames.TABLE_ROW).

    BW peak is NaN for tcp: send() returns once the kernel has copied the bytes, so
    perftest's per-message peak measures that copy, not the link (see TCP_NO_PEAK)."""
    import pandas as pd

    from .frames import TABLE_ROW, ok_rows, table_groups

    columns = [*TABLE_ROW, "workload", "transport", "engine", "max_bw_avg_Gbps", "max_bw_peak_Gbps",
               "min_lat_median_us"]
    rows = ok_rows(summary)
    if not rows.empty:
        rows = rows[rows["workload"].isin(list(P2P_WORKLOADS))]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby(table_groups(rows, ["workload", "transport", "engine"]), dropna=False, sort=True)
    table = pd.DataFrame({
        "max_bw_avg_Gbps": grouped["bw_avg_Bps"].max() * LINK_BANDWIDTH.per_si,
        "max_bw_peak_Gbps": (grouped["bw_peak_Bps"].max() * LINK_BANDWIDTH.per_si if "bw_peak_Bps" in rows.columns
                             else grouped["bw_avg_Bps"].max() * float("nan")),
        "min_lat_median_us": grouped["lat_median_s"].min() * TIME.per_si,
    }).reset_index().reindex(columns=columns)
    table.loc[table["transport"] == "tcp", "max_bw_peak_Gbps"] = float("nan")
    return table


def report_lines(summary: pd.DataFrame) -> list[str]:
    """report.md's point-to-point section, or nothing when the run has no such rows."""
    p2p = p2p_table(summary)
    if p2p.empty:
        return []
    head = (LINK_BANDWIDTH.header("max BW average"), LINK_BANDWIDTH.header("max BW peak"), TIME.header("min t_typical"))
    lines = ["", f"## Point-to-point ({LINK_BANDWIDTH.meaning}; latency = half round trip; each row one test of one "
             "run on one profile)", "",
             f"| run | profile | test | workload | transport | engine | {' | '.join(head)} |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in p2p.iterrows():
        peak = shown(r["max_bw_peak_Gbps"], ".3f") if p2p_workload(str(r["workload"])).bandwidth else "-"
        lines.append(f"| {md_cell(r['run_id'])} | {md_cell(r['profile'])} | {md_cell(r['test_id'])} "
                     f"| {md_cell(r['workload'])} | {md_cell(r['transport'])} | {md_cell(r['engine'])} "
                     f"| {shown(r['max_bw_avg_Gbps'], '.3f')} | {peak} "
                     f"| {shown(r['min_lat_median_us'], '.2f')} |")
    figures = ["max_bw_avg_Gbps", "max_bw_peak_Gbps", "min_lat_median_us"]
    if not p2p[figures].isna().any(axis=None):
        return lines
    return lines + ["", '"-": not measured. A bandwidth test measures no latency and a latency test no bandwidth. '
                    "BW peak is perftest's best per-message rate; it is left out (-) for tcp, where send() returns "
                    "once the kernel has copied the bytes, not when they arrive, "
                    "and where an imported report gives none."]


SYS_WARNING = ("GPUDirect RDMA over SYS is known to halve bandwidth or worse "
               "(fix: set rdma.cuda_device to a GPU nearer the HCA, or the HCA nearer the GPU)")


def rank_pairings(used: Any) -> list[tuple[int, Mapping[str, Any]]]:
    """(rank, locality) of each rank of a stored test's ``used`` (JSON text) that recorded
    its GPU-NIC pairing (rdma.rank: point-to-point ranks with GPU memory)."""
    import json

    try:
        ranks = json.loads(used).get("ranks") if isinstance(used, str) else None
    except ValueError:
        return []
    found: list[tuple[int, Mapping[str, Any]]] = []
    for i, env in enumerate(ranks if isinstance(ranks, list) else []):
        locality = env.get("locality") if isinstance(env, dict) else None
        if isinstance(locality, dict) and locality.get("distance"):
            found.append((int(env.get("rank", i)), locality))
    return found


def locality_lines(run_id: str, tests: pd.DataFrame) -> list[str]:
    """The report's GPU-NIC locality section of one run: each recorded (GPU, HCA) pairing
    with its distance class, and a WARNING line per SYS pairing; nothing without pairings."""
    if tests.empty or "used" not in tests.columns:
        return []
    table: list[str] = []
    warnings: list[str] = []
    for _, t in tests.sort_values("test_id").iterrows():
        for rank, loc in rank_pairings(t["used"]):
            sys_apart = bool(loc.get("sys_distance")) or loc.get("distance") == "SYS"
            distance = f"**{loc['distance']}**" if sys_apart else str(loc["distance"])
            table.append(f"| {md_cell(run_id)} | {md_cell(t['test_id'])} | {rank} | {md_cell(loc.get('gpu'))} "
                         f"({md_cell(loc.get('gpu_pci'))}) | {md_cell(loc.get('hca'))} ({md_cell(loc.get('hca_pci'))}) "
                         f"| {distance} |")  # our own markup (bold SYS)
            if sys_apart:
                warnings.append(f"- **WARNING**: {run_id} {t['test_id']} rank {rank}: GPU {loc.get('gpu')} and "
                                f"{loc.get('hca')} are SYS apart (across NUMA nodes): {SYS_WARNING}.")
    if not table:
        return []
    return (["", f"## GPU-NIC locality of `{run_id}` (nvidia-smi topo -m classes: PIX nearest, SYS farthest)", "",
             "| run | test | rank | GPU | HCA | distance |", "|---|---|---|---|---|---|", *table]
            + (["", *warnings] if warnings else []))


class PointToPoint(WorkloadFamily):
    point_to_point = True
    workloads = p2p_names(runs=True)
    aliases = {**{name: name for name in workloads}, **{P2P_WORKLOADS[name].perftest_binary: name for name in workloads}}
    imported = p2p_names(runs=False)
    # the engines above this layer, by name (numpy and the native extension come with them)
    worker_modules = ("benchfab.rdma.rank", "benchfab.rdma.tcp_transport", "benchfab.rdma.verbs_transport",
                      "benchfab.counters")
    figures = (
        FigureSpec(BANDWIDTH_FIGURE, "bw_avg_Bps", LINK_BANDWIDTH.per_si, f"average bandwidth ({LINK_BANDWIDTH.name})",
                   "Bandwidth vs message size (perftest semantics)", p2p_names(figure=BANDWIDTH_FIGURE),
                   bits_per_unit=8.0, pair_at="largest",
                   export_name="benchfab_peak_bw_bytes_per_second", export_unit="bytes_per_second"),
        FigureSpec(LATENCY_FIGURE, "lat_median_s", TIME.per_si,
                   f"latency, half round trip ({TIME.name}); band: median to 99th percentile",
                   "Latency vs message size (perftest t_typical)", p2p_names(figure=LATENCY_FIGURE), band="lat_p99_s",
                   higher_is_better=False, pair_at="smallest",
                   export_name="benchfab_min_latency_seconds", export_unit="seconds"),
    )

    def resolve(self, merged: dict[str, Any], timing_given: bool) -> None:
        if not timing_given:
            merged["iterations"] = None  # perftest's own defaults: 5000 for bw, 1000 for lat
        # One message stream between two ranks: no element type, reduction or in-place form.
        merged["dtypes"], merged["ops"], merged["in_place"] = ["none"], ["none"], [False]

    def problems(self, test: TestView) -> list[Problem]:
        if test.engine == "nccl-tests":
            return [Problem("engine", f"engine: nccl-tests runs collectives, not {test.workload}",
                            f"use engine: native or perftest for {runnable_patterns()}")]
        options = beyond_one_qp_one_way(test.rdma.bidirectional, test.rdma.qps, test.rdma.out_reads)
        return pair_problems(p2p_workload(test.workload), transport=test.transport,
                             engine=test.engine, memory=test.memory, iterations=test.iterations,
                             ranks=test.ranks, device=test.device, options=options, duration=test.duration)

    def estimate_seconds(self, test: TestView, costs: CostModel) -> float:
        return estimate_p2p_seconds(test, costs)

    def timing_label(self, test: TestView) -> str:
        if test.duration is None and test.iterations is None:
            return str(p2p_workload(test.workload).default_iterations)  # perftest's default count
        return super().timing_label(test)

    def on_gpu(self, test: TestView) -> bool:
        return is_gpu_memory(test.memory)

    def host_buffer_bytes(self, test: TestView) -> int:
        if is_gpu_memory(test.memory):
            return 0
        # Each side registers one buffer of the size; the python engine copies it once more.
        return 2 * 2 * max(test.sizes)

    def why_unrunnable(self, test: TestView, host: HostView) -> str | None:
        gpu = missing_gpu(test, host)
        if gpu is not None:
            return gpu
        if test.engine == "native" and not host.native:
            return ("the compiled hot path benchfab._native is not built "
                    "(fix: install libibverbs-dev and rerun scripts/setup.sh, or pip install -e . again)")
        if test.transport != "verbs":
            return None
        if not host.rdma_devices:
            return ("it needs an RDMA device and this host has none with an ACTIVE port (/sys/class/infiniband) "
                    "(fix: run it on a host with a ConnectX NIC, or in scripts/softroce-vm.sh; transport: tcp needs none)")
        wanted = test.rdma.device
        if wanted is not None and wanted not in host.rdma_devices:
            return (f"rdma.device {wanted} is not on this host (ACTIVE: {', '.join(host.rdma_devices)}) "
                    f"(fix: set rdma.device to one of them, or null for the first ACTIVE one)")
        binary = p2p_workload(test.workload).perftest_binary
        if test.engine == "perftest" and binary not in host.perftest:
            return f"engine: perftest needs {binary} on PATH (fix: apt install perftest, or use engine: native)"
        return None

    def run_worker(self, task: Task, ctx: RankContext) -> None:
        if ctx.run_pair is None:  # only a worker process runs a rank; it always hands the engines in
            raise WorkloadError(f"{task.workload}: this process has no point-to-point engines",
                                hint="run ranks with python -m benchfab.worker")
        ctx.run_pair(task, ctx)

    def summary_rows(self, run_id: str, test: PlannedView, outcome: TestOutcome, backend: str) -> list[SummaryRow]:
        return [p2p_row(run_id, test, rec, backend) for rec in outcome.results]

    def format_table(self, title: str, workload: str, dtype: str, redop: str, root: int,
                     rows: Sequence[Mapping[str, Any]]) -> str:
        return format_p2p_table(title, workload, rows)

    def judged_metric(self, workload: str) -> JudgedMetric:
        return p2p_workload(workload).judged

    def curve_label(self, first: Mapping[str, Any]) -> str:
        return f"{first['test_id']} ({first['transport']}, {first['engine']}, {first['memory']})"

    def report_section(self, summary: pd.DataFrame) -> list[str]:
        return report_lines(summary)


POINT_TO_POINT = PointToPoint()
