"""Point-to-point workloads (rdma_write_bw, rdma_write_lat): two ranks, perftest's
semantics, over verbs or TCP on the native engine or perftest's binaries.

The engines live in benchfab.rdma; this family says what a test of it means: its
rules (p2p_params.pair_problems), its time estimate, its summary rows, its
ib_write_bw / ib_write_lat style table and its report figures and section. What each
workload is (bandwidth or latency, its judged figure, its perftest binary, run or only
imported: rdma_read_bw, rdma_send_lat...) is one descriptor in p2p_workloads, which all
of these read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..nccllog import summary_columns
from ..records import SummaryRow, row_base
from ..tables import gbit, md_cell, num, scaled, shown
from .base import FigureSpec, JudgedMetric, Problem, RankContext, WorkloadFamily, missing_gpu
from .catalog import is_gpu_memory
from .p2p_params import PERFTEST_ITERATIONS, beyond_one_qp_one_way, pair_problems
from .p2p_workloads import P2P_WORKLOADS, p2p_names, p2p_workload

if TYPE_CHECKING:
    import pandas as pd

    from ..backends.base import TestOutcome
    from ..capabilities import HostCapabilities
    from ..costs import CostModel
    from ..planner import PlannedTest
    from ..spec import TestSpec
    from ..task import Task

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


def estimate_p2p_seconds(spec: TestSpec, costs: CostModel) -> float:
    """Rough time of a pair test: its bytes at the backend's stream rate (bandwidth) or its
    round trips (latency), per size, after its ranks started."""
    bw, lat = costs.p2p_bps(spec.transport), costs.p2p_latency_s(spec.transport)
    bw_test = p2p_workload(spec.workload).bandwidth
    iters = spec.iterations or PERFTEST_ITERATIONS[spec.workload]
    total = costs.start_s
    for size in spec.sizes:
        if spec.duration is not None:
            total += spec.duration
        elif bw_test:
            total += (iters + spec.warmup) * size / bw + 0.05
        else:
            total += (iters + spec.warmup) * 2 * (lat + size / bw)
    return total


def p2p_row(run_id: str, test: PlannedTest, rec: Mapping[str, Any], backend: str = "local") -> SummaryRow:
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
        "collective": workload.perftest_binary,
        "engine": rec.get("engine", test.spec.engine),
        "transport": transport,
        "memory": rec.get("memory", test.spec.memory),
        "count": None,
        "dtype": "none",
        "redop": "none",
        "root": -1,
        "in_place": False,
        "method": f"rdma_{workload.verb}" if transport == "verbs" else "socket_write",
        "time_s": time_s,
        "algbw_Bps": None,
        "busbw_Bps": None,
        "wrong": None,
        "rdma_device": rec.get("device"),
        **{k: rec.get(k) for k in P2P_FIELDS},
    })


def format_p2p_table(title: str, workload: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """perftest-style table: ib_write_bw (Gb/s = 1e9 bit/s, Mpps) or ib_write_lat (usec).

    A tcp bandwidth table leaves out BW peak and says so in its header (see TCP_NO_PEAK)."""
    rows = sorted(rows, key=lambda r: int(r["size_bytes"]))
    out = [f"# {title}"]
    if p2p_workload(workload).bandwidth:
        return "\n".join(out + _bw_lines(rows))
    cols = ("lat_min_s", "lat_max_s", "lat_median_s", "lat_mean_s", "lat_stdev_s", "lat_p99_s", "lat_p999_s")
    out.append("#    #bytes  #iterations  t_min[usec]  t_max[usec]  t_typical[usec]  t_avg[usec]  t_stdev[usec]"
               "  99% percentile[usec]  99.9% percentile[usec]")
    widths = (11, 11, 15, 11, 13, 20, 22)
    for r in rows:
        lat_cells = [f"{num(scaled(r.get(c), 1e6), '.2f'):>{w}}" for c, w in zip(cols, widths)]
        out.append(f"  {int(r['size_bytes']):>8}  {num(r.get('iterations'), 'd'):>11}  " + "  ".join(lat_cells))
    return "\n".join(out)


def _bw_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    out = []
    peak = all(has_meaningful_peak(r.get("transport")) for r in rows)
    if not peak:
        out.append(TCP_NO_PEAK)
        out.append("#    #bytes  #iterations  BW average[Gb/sec]  MsgRate[Mpps]")
    else:
        out.append("#    #bytes  #iterations  BW peak[Gb/sec]  BW average[Gb/sec]  MsgRate[Mpps]")
    for r in rows:
        cells = f"  {int(r['size_bytes']):>8}  {num(r.get('iterations'), 'd'):>11}  "
        if peak:
            cells += f"{gbit(r.get('bw_peak_Bps')):>15}  "
        out.append(cells + f"{gbit(r.get('bw_avg_Bps')):>18}  "
                   f"{num(scaled(r.get('msg_rate_pps'), 1e-6), '.6f'):>13}")
    return out


def p2p_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per run, profile and point-to-point test: best BW average and BW peak (Gb/s), lowest
    median latency. One row never mixes runs or profiles (analysis.TABLE_ROW).

    BW peak is NaN for tcp: send() returns once the kernel has copied the bytes, so
    perftest's per-message peak measures that copy, not the link (see TCP_NO_PEAK)."""
    import pandas as pd

    from ..analysis import TABLE_ROW, ok_rows, table_groups

    columns = [*TABLE_ROW, "workload", "transport", "engine", "max_bw_avg_Gbps", "max_bw_peak_Gbps",
               "min_lat_median_us"]
    rows = ok_rows(summary)
    if not rows.empty:
        rows = rows[rows["workload"].isin(list(P2P_WORKLOADS))]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby(table_groups(rows, ["workload", "transport", "engine"]), dropna=False, sort=True)
    table = pd.DataFrame({
        "max_bw_avg_Gbps": grouped["bw_avg_Bps"].max() * 8e-9,
        "max_bw_peak_Gbps": (grouped["bw_peak_Bps"].max() * 8e-9 if "bw_peak_Bps" in rows.columns
                             else grouped["bw_avg_Bps"].max() * float("nan")),
        "min_lat_median_us": grouped["lat_median_s"].min() * 1e6,
    }).reset_index().reindex(columns=columns)
    table.loc[table["transport"] == "tcp", "max_bw_peak_Gbps"] = float("nan")
    return table


def report_lines(summary: pd.DataFrame) -> list[str]:
    """report.md's point-to-point section, or nothing when the run has no such rows."""
    p2p = p2p_table(summary)
    if p2p.empty:
        return []
    lines = ["", "## Point-to-point (Gb/s = 1e9 bit/s; latency = half round trip; each row one test of one run "
             "on one profile)", "",
             "| run | profile | test | workload | transport | engine | max BW average (Gb/s) | max BW peak (Gb/s) "
             "| min t_typical (us) |",
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
    its GPU-NIC pairing (p2p_worker: point-to-point ranks with GPU memory)."""
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
    workloads = p2p_names(runs=True)
    aliases = {**{name: name for name in workloads}, **{P2P_WORKLOADS[name].perftest_binary: name for name in workloads}}
    imported = p2p_names(runs=False)
    figures = (
        FigureSpec("p2p_bw.png", "bw_avg_Bps", 8e-9, "BW average (Gb/s, 1e9 bit/s)",
                   "Bandwidth vs message size (perftest semantics)", p2p_names(bandwidth=True),
                   bits_per_unit=8.0, pair_at="largest",
                   export_name="benchfab_peak_bw_bytes_per_second", export_unit="bytes_per_second"),
        FigureSpec("p2p_lat.png", "lat_median_s", 1e6, "latency, half round trip (us); band: median to p99",
                   "Latency vs message size (perftest t_typical)", p2p_names(bandwidth=False), band="lat_p99_s",
                   higher_is_better=False, pair_at="smallest",
                   export_name="benchfab_min_latency_seconds", export_unit="seconds"),
    )

    def resolve(self, merged: dict[str, Any], timing_given: bool) -> None:
        if not timing_given:
            merged["iterations"] = None  # perftest's own defaults: 5000 for bw, 1000 for lat
        # One message stream between two ranks: no element type, reduction or in-place form.
        merged["dtypes"], merged["ops"], merged["in_place"] = ["none"], ["none"], [False]

    def problems(self, test: TestSpec) -> list[Problem]:
        if test.engine == "nccl-tests":
            return [Problem("engine", f"engine: nccl-tests runs collectives, not {test.workload}",
                            "use engine: native or perftest for rdma_write_*")]
        options = beyond_one_qp_one_way(test.rdma.bidirectional, test.rdma.qps, test.rdma.out_reads)
        return pair_problems(latency=not p2p_workload(test.workload).bandwidth, transport=test.transport,
                             engine=test.engine, memory=test.memory, iterations=test.iterations,
                             ranks=test.ranks, device=test.device, workload=test.workload, options=options,
                             duration=test.duration)

    def estimate_seconds(self, test: TestSpec, costs: CostModel) -> float:
        return estimate_p2p_seconds(test, costs)

    def timing_label(self, test: TestSpec) -> str:
        if test.duration is None and test.iterations is None:
            return str(PERFTEST_ITERATIONS[test.workload])  # perftest's default count
        return super().timing_label(test)

    def on_gpu(self, test: TestSpec) -> bool:
        return is_gpu_memory(test.memory)

    def host_buffer_bytes(self, test: TestSpec) -> int:
        if is_gpu_memory(test.memory):
            return 0
        # Each side registers one buffer of the size; the python engine copies it once more.
        return 2 * 2 * max(test.sizes)

    def why_unrunnable(self, test: TestSpec, host: HostCapabilities) -> str | None:
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
        from .p2p_worker import run_point_to_point

        run_point_to_point(task, ctx)

    def summary_rows(self, run_id: str, test: PlannedTest, outcome: TestOutcome, backend: str) -> list[SummaryRow]:
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
