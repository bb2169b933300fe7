"""Collective workloads (allreduce, all_gather, reduce_scatter, broadcast, all_to_all,
reduce, gather, scatter, sendrecv) over torch.distributed, with nccl-tests semantics.

The family object: rules, time estimate, summary rows, the all_reduce_perf style
table and the report's bandwidth figures and section. The measuring code is in
collectives_torch (the runner) and collective_worker (one rank), both importing
torch, so they are imported only by a worker that runs a collective.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..nccllog import setting_check, summary_columns
from ..records import SummaryRow
from ..tables import md_cell, shown
from ..units import BUS_BANDWIDTH, TIME
from .base import FigureSpec, JudgedMetric, Problem, RankContext, WorkloadFamily, missing_gpu, row_base
from .catalog import NCCL_TYPE_NAMES
from .collective_kinds import COLLECTIVES
from .p2p_workloads import runnable_patterns

if TYPE_CHECKING:
    import pandas as pd

    from ..costs import CostModel
    from ..records import TestOutcome
    from ..task import Task
    from .base import HostView, PlannedView, TestView

WIDTHS = [12, 12, 10, 7, 6, 11, 9, 9, 8, 11, 9, 9, 8]


def estimate_op_seconds(workload: str, size_bytes: int, nranks: int, costs: CostModel, on_gpu: bool = False) -> float:
    """Rough time of one collective op: the bytes it moves over the bus at the backend's rates."""
    return costs.op_seconds(size_bytes * COLLECTIVES[workload].factor(max(nranks, 2)), nranks, on_gpu)


def root_of(workload: str, root: int) -> int:
    """The root a row shows: the test's for rooted collectives, -1 (none) otherwise."""
    return root if COLLECTIVES[workload].rooted else -1


def collective_rows(run_id: str, test: PlannedView, outcome: TestOutcome, backend: str = "local") -> list[SummaryRow]:
    env0 = next((e for e in outcome.env if e.get("rank") == 0), outcome.env[0] if outcome.env else {})
    device = str(env0.get("device", ""))
    collective = COLLECTIVES[test.spec.workload]
    found = env0.get("nccl")
    nccl = summary_columns(found)
    # describe_env records torch's NCCL version as text here until the log's parse replaces it
    env_check, why = setting_check(test.spec.env, found if isinstance(found, dict) else None)
    changed = f"NCCL ignored a setting: {why}" if env_check == "changed" else ""
    return [
        cast(SummaryRow, {
            **row_base(run_id, test, rec, backend),
            **nccl,
            "env_check": env_check,
            "collective": collective.nccl_name,
            "engine": "nccl-tests" if test.spec.engine == "nccl-tests" else "torch",
            "transport": env0.get("transport"),
            "memory": "cuda" if device.startswith("cuda") else "host",
            "count": rec["count"],
            "dtype": test.dtype,
            "redop": test.op,
            "root": root_of(test.spec.workload, test.spec.root),
            "in_place": rec["in_place"],
            "method": rec.get("method"),
            "time_s": rec.get("time_s"),
            "algbw_Bps": rec.get("algbw_Bps"),
            "busbw_Bps": rec.get("busbw_Bps"),
            "wrong": rec.get("wrong"),
            **({"reason": "; ".join(x for x in (rec.get("reason"), changed) if x)} if changed else {}),
        })
        for rec in outcome.results
    ]


def _half(row: Mapping[str, Any] | None) -> list[str]:
    if row is None or row.get("status") != "ok":
        return ["N/A"] * 4
    wrong = row.get("wrong")
    return [
        TIME.number(row.get("time_s"), "N/A"),
        BUS_BANDWIDTH.number(row.get("algbw_Bps"), "N/A"),
        BUS_BANDWIDTH.number(row.get("busbw_Bps"), "N/A"),
        "N/A" if wrong is None or (isinstance(wrong, float) and wrong != wrong) else str(int(wrong)),
    ]


def format_nccl_table(title: str, dtype: str, redop: str, root: int, rows: Sequence[Mapping[str, Any]]) -> str:
    """all_reduce_perf's table: size (B), count (elements), type, redop, root, then
    out-of-place and in-place time (us), algbw and busbw (GB/s, 1 GB = 1e9 B) and
    #wrong. Missing halves print N/A like nccl-tests."""
    by_size: dict[int, dict[bool, Mapping[str, Any]]] = {}
    counts: dict[int, int] = {}
    for row in rows:
        size = int(row["size_bytes"])
        by_size.setdefault(size, {})[bool(row["in_place"])] = row
        counts[size] = int(row["count"])
    head1 = ["", "", "", "", "", "out-of-place", "", "", "", "in-place", "", "", ""]
    head2 = ["size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong"]
    time, bw = f"({TIME.name})", f"({BUS_BANDWIDTH.name})"
    head3 = ["(B)", "(elements)", "", "", "", time, bw, bw, "", time, bw, bw, ""]

    def line(cells: list[str], prefix: str = " ") -> str:
        return prefix + "".join(c.rjust(w) for c, w in zip(cells, WIDTHS))

    out = [f"# {title}", line(head1, "#"), line(head2, "#"), line(head3, "#")]
    type_name = NCCL_TYPE_NAMES.get(dtype, dtype)
    for size in sorted(by_size):
        halves = by_size[size]
        cells = [str(size), str(counts[size]), type_name, redop, str(root)]
        cells += _half(halves.get(False)) + _half(halves.get(True))
        out.append(line(cells))
    return "\n".join(out)


def bandwidth_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per run, profile and test: peak and average bus bandwidth (GB/s), the minimum time
    per op (us) and total wrong elements."""
    import pandas as pd

    from .frames import TABLE_ROW, ok_rows, table_groups

    rows = ok_rows(summary)
    if not rows.empty:
        rows = rows[rows["busbw_Bps"].notna()]
    columns = [*TABLE_ROW, "peak_busbw_GBps", "avg_busbw_GBps", "min_time_us", "wrong"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    grouped = rows.groupby(table_groups(rows), dropna=False, sort=True)
    table = pd.DataFrame({
        "peak_busbw_GBps": grouped["busbw_Bps"].max() * BUS_BANDWIDTH.per_si,
        "avg_busbw_GBps": grouped["busbw_Bps"].mean() * BUS_BANDWIDTH.per_si,
        "min_time_us": grouped["time_s"].min() * TIME.per_si,
        "wrong": grouped["wrong"].sum(min_count=1),
    })
    return table.reset_index().reindex(columns=columns)


def report_lines(summary: pd.DataFrame) -> list[str]:
    """report.md's bandwidth section, or nothing when the run has no collective rows."""
    table = bandwidth_table(summary)
    if table.empty:
        return []
    head = (BUS_BANDWIDTH.header("peak busbw"), BUS_BANDWIDTH.header("avg busbw"), TIME.header("min time"))
    lines = ["", f"## Bandwidth ({BUS_BANDWIDTH.meaning}; each row one test of one run on one profile)", "",
             f"| run | profile | test | {' | '.join(head)} | #wrong |", "|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        lines.append(f"| {md_cell(r['run_id'])} | {md_cell(r['profile'])} | {md_cell(r['test_id'])} | {r['peak_busbw_GBps']:.3f} "
                     f"| {r['avg_busbw_GBps']:.3f} | {r['min_time_us']:.1f} | {shown(r['wrong'], '.0f')} |")
    if table["wrong"].isna().any():
        lines += ["", '#wrong "-": no data check (the test ran with `check: false`, or its imported report has no #wrong).']
    return lines + engine_agreement_lines(summary)


def engine_agreement_lines(summary: pd.DataFrame) -> list[str]:
    """report.md's torch vs nccl-tests table: the same measurement (workload, profile, ranks,
    dtype, redop, size, in-place) by both engines, and nccl-tests' busbw over torch's."""
    if "engine" not in summary or not {"torch", "nccl-tests"} <= set(summary["engine"].dropna()):
        return []
    ok = summary[(summary["status"] == "ok") & summary["busbw_Bps"].notna()]
    key = ["workload", "profile", "ranks", "dtype", "redop", "size_bytes", "in_place"]
    key = [k for k in key if k in ok]
    both = ok.pivot_table(index=key, columns="engine", values="busbw_Bps", aggfunc="max").dropna()
    if both.empty:
        return []
    engines = f"{BUS_BANDWIDTH.header('torch')} | {BUS_BANDWIDTH.header('nccl-tests')}"
    out = ["", f"## Engines side by side (busbw, {BUS_BANDWIDTH.name})", "", "| " + " | ".join(key) + f" | {engines} | nccl-tests / torch |",
           "|" + "---|" * (len(key) + 3)]
    for idx, r in both.iterrows():
        cells = [str(x) for x in (idx if isinstance(idx, tuple) else (idx,))]
        out.append("| " + " | ".join(cells) + f" | {BUS_BANDWIDTH.number(r['torch'])} | {BUS_BANDWIDTH.number(r['nccl-tests'])} | "
                   f"{r['nccl-tests'] / r['torch']:.2f} |")
    return out


def _aliases() -> dict[str, str]:
    # benchfab's names, the nccl-tests binaries (all_reduce_perf...) and their stems.
    found: dict[str, str] = {}
    for name, coll in COLLECTIVES.items():
        found[name] = name
        found[coll.nccl_name] = name  # all_reduce_perf
        found[coll.nccl_name.removesuffix("_perf")] = name  # all_reduce, alltoall
        found.update(dict.fromkeys(coll.aliases, name))  # allgather
    return found


class Collectives(WorkloadFamily):
    workloads = tuple(COLLECTIVES)
    aliases = _aliases()
    worker_modules = ("torch", "torch.distributed", "benchfab.workloads.collective_worker")
    figures = (
        FigureSpec("busbw.png", "busbw_Bps", BUS_BANDWIDTH.per_si, f"bus bandwidth ({BUS_BANDWIDTH.name})",
                   "Bus bandwidth vs message size", tuple(COLLECTIVES), bits_per_unit=8.0, pair_at="largest",
                   export_name="benchfab_peak_busbw_bytes_per_second", export_unit="bytes_per_second"),
        FigureSpec("time.png", "time_s", TIME.per_si, f"time per operation ({TIME.name})", "Time per op vs message size",
                   tuple(COLLECTIVES),
                   higher_is_better=False, pair_at="smallest",
                   export_name="benchfab_min_time_seconds", export_unit="seconds"),
    )

    def resolve(self, merged: dict[str, Any], timing_given: bool) -> None:
        if not COLLECTIVES[merged["workload"]].reduces:
            merged["ops"] = ["none"]
        merged["in_place"] = sorted(merged["in_place"])  # out-of-place first, as nccl-tests prints

    def problems(self, test: TestView) -> list[Problem]:
        if COLLECTIVES[test.workload].rooted and test.root >= test.ranks:
            return [Problem("root", f"root {test.root} does not exist with {test.ranks} ranks",
                            f"use a root below {test.ranks}", ("workload", "ranks"))]
        if test.engine == "perftest":
            return [Problem("engine", f"engine: perftest runs {runnable_patterns()}, not {test.workload}",
                            "use engine: native (torch.distributed) or nccl-tests for collectives")]
        collective = COLLECTIVES[test.workload]
        if test.ranks < collective.min_ranks:
            return [Problem("ranks", f"{collective.min_ranks_reason} and needs at least {collective.min_ranks}",
                            f"set ranks: {collective.min_ranks} or more", ("workload",))]
        return []

    def estimate_seconds(self, test: TestView, costs: CostModel) -> float:
        total = costs.start_s + costs.torch_start_s
        for size in test.sizes:
            op_s = estimate_op_seconds(test.workload, size, test.ranks, costs, self.on_gpu(test))
            for _ in test.in_place:
                timed = test.duration if test.duration is not None else (test.iterations or 0) * op_s
                extra_ops = test.warmup + (1 if test.check else 0) + 4  # barrier + combine + check sync
                total += timed + extra_ops * op_s
        return total

    def on_gpu(self, test: TestView) -> bool:
        return test.device != "cpu"

    def ranks_per_pod(self, test: TestView) -> int:
        # Like a training job: one pod per node owns its gpus_per_node GPUs and rails, so
        # NCCL uses NVLink/P2P and shared memory inside the node and the NICs between
        # nodes. Per-rail groups (placement.rails) keep one pod per (GPU, rail) slot.
        p = test.placement
        return 1 if p.rails else (p.gpus_per_node or 1)

    def why_unrunnable(self, test: TestView, host: HostView) -> str | None:
        if test.engine == "nccl-tests":
            from .nccl_tests_engine import binary_path

            if binary_path(test.workload) is None:
                return (f"engine: nccl-tests needs {COLLECTIVES[test.workload].nccl_name} (fix: run it in the worker "
                        "image, which builds nccl-tests, set BENCHFAB_NCCL_TESTS_DIR, or use engine: native)")
            if host.gpus < test.ranks:
                return f"engine: nccl-tests needs {test.ranks} GPU(s) on this host, one per rank; it has {host.gpus}"
        if test.device == "cuda" and host.gpus < test.ranks:
            return (f"device: cuda needs {test.ranks} GPU(s), one per rank, and this host has {host.gpus} "
                    "(fix: run it on a GPU host, or set device: auto to use gloo on the CPU)")
        return missing_gpu(test, host)

    def host_buffer_bytes(self, test: TestView) -> int:
        if test.device == "cuda":
            return 0
        # Each rank holds its input, its output and the expected values of the check,
        # none larger than the reported size (all_gather's output is the total).
        return test.ranks * 3 * max(test.sizes)

    def run_worker(self, task: Task, ctx: RankContext) -> None:
        from .collective_worker import run_collective

        run_collective(task, ctx)

    def summary_rows(self, run_id: str, test: PlannedView, outcome: TestOutcome, backend: str) -> list[SummaryRow]:
        return collective_rows(run_id, test, outcome, backend)

    def format_table(self, title: str, workload: str, dtype: str, redop: str, root: int,
                     rows: Sequence[Mapping[str, Any]]) -> str:
        return format_nccl_table(title, dtype, redop, root_of(workload, root), rows)

    def table_footer(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        oks = [r for r in rows if r.get("status") == "ok" and r.get("busbw_Bps") is not None]
        if not oks:
            return []
        avg = sum(r["busbw_Bps"] for r in oks) / len(oks)
        wrong = sum(int(r["wrong"] or 0) for r in oks)
        return [f"# Out of bounds values : {wrong} {'OK' if wrong == 0 else 'FAILED'}",
                f"# Avg bus bandwidth    : {BUS_BANDWIDTH.number(avg, digits='.4g')} {BUS_BANDWIDTH.name}"]

    def judged_metric(self, workload: str) -> JudgedMetric:
        return JudgedMetric("busbw_Bps", higher_is_better=True)  # nccl-tests' figure of merit

    def curve_label(self, first: Mapping[str, Any]) -> str:
        place = "in-place" if bool(first["in_place"]) else "out-of-place"
        return f"{first['test_id']} ({first['transport']}, {place})"

    def report_section(self, summary: pd.DataFrame) -> list[str]:
        return report_lines(summary)


COLLECTIVE = Collectives()
