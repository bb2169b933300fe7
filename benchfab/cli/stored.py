"""runs, show, report and export: what was stored, read back as tables, figures, HTML and
OpenMetrics text."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import REPORT_EXIT_CODES
from .common import RESULTS_HELP, RUN_HELP, command, output_arg, print_json


def cmd_runs(args: argparse.Namespace) -> int:
    from ..errors import StoreError
    from ..runlock import run_status
    from ..store import check_run, list_runs
    from ..untrusted import for_terminal

    runs = list_runs(args.results)
    if args.output == "json":
        listed: list[dict[str, Any]] = []
        for path in runs:
            try:
                meta = check_run(path)
            except StoreError as exc:
                listed.append({"run_id": path.name, "status": "damaged", "error": str(exc)})
                continue
            listed.append({"run_id": path.name, "status": run_status(path, meta), "started": meta.get("started"),
                           "ended": meta.get("ended"), "spec_name": (meta.get("spec") or {}).get("name"),
                           "counts": meta.get("counts") or {}, "planned_tests": len(meta.get("planned_tests") or [])})
        print_json(listed)
        return 0
    if not runs:
        print(f"no runs in {for_terminal(args.results)}/")
        return 0
    print(f"{'run id':<48} {'status':<12} {'started':<21} tests")
    for path in runs:
        name = for_terminal(path.name)
        try:
            meta = check_run(path)
        except StoreError as exc:
            # Listed, not hidden: the user should learn that a run is unreadable, and why.
            print(f"{name:<48} {'damaged':<12} {'':<21} -")
            print(f"benchfab: warning: {for_terminal(exc)}", file=sys.stderr)
            continue
        counts = meta.get("counts") or {}
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or f"{len(meta.get('planned_tests', []))} planned"
        print(for_terminal(f"{name:<48} {run_status(path, meta):<12} {meta.get('started', ''):<21} {summary}"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..store import check_run, read_table, resolve_run_path, summary_chunks

    # A test at a time, never the whole run (nor its raw samples): bounded memory for big runs.
    path = resolve_run_path(args.run, args.results)
    check_run(path)
    tests = read_table(path, "tests")
    if args.output == "json":
        _show_json(path, summary_chunks(path, tests))
    else:
        _show_tables(tests, summary_chunks(path, tests))
    return 0


def _show_tables(tests: Any, chunks: Any) -> None:
    from ..counter_evidence import show_lines
    from ..tables import missing, shown
    from ..untrusted import for_terminal
    from ..workloads.rows import format_results

    status_of = dict(zip(tests["test_id"], tests["status"])) if not tests.empty else {}
    for chunk in chunks:
        first = chunk.rows.iloc[0]
        title = f"{first['test_id']}: {first['workload']}, {first['ranks']} ranks, {shown(first['transport'])}"
        if isinstance(first.get("env"), str) and first["env"]:  # the test's own NCCL settings, and NCCL's verdict on them
            title += f", {first['env']} ({shown(first.get('env_check'))})"
        if missing(first["transport"]):  # its ranks were stopped (an interrupt, a timeout) before they said
            title += (" (-: its ranks were stopped before they reported the transport; the test is "
                      f"{status_of.get(first['test_id'], 'not ok')})")
        records = [{str(k): v for k, v in r.items()} for r in chunk.rows.to_dict("records")]
        table = format_results(title, str(first["workload"]), str(first["dtype"]), str(first["redop"]),
                               int(first["root"]), records).split("\n")
        if not chunk.first:  # a further chunk of a big test: its rows, not its header again
            table = [line for line in table if not line.startswith("#")]
        print("\n".join(for_terminal(line) for line in table))
        if chunk.last:
            print()
    bad = tests[tests["status"] != "ok"] if not tests.empty else tests
    for _, t in bad.sort_values("test_id").iterrows():
        print(for_terminal(f"# {t['test_id']}: {t['status']}: {t['reason']}"))
    rows = tests.sort_values("test_id").to_dict("records") if "counters" in tests.columns else []
    for line in show_lines(rows):
        print(for_terminal(line))


def _show_json(path: Path, chunks: Any) -> None:
    """show -o json: the run document (docs/JSON.md) with its summary rows written a chunk at a
    time, last, so a big run is never held whole (pandas writes NaN as null, numpy scalars as numbers)."""
    import json

    from ..jsonout import run_document

    head = json.dumps(run_document(path, with_summary=False), indent=2)
    sys.stdout.write(head[:-2] + ',\n  "summary": [')
    sep = ""
    for chunk in chunks:
        body = chunk.rows.to_json(orient="records")[1:-1]
        if body:
            sys.stdout.write(sep + body)
            sep = ","
    sys.stdout.write("]\n}\n")


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report
    from ..store import load_run

    runs = [load_run(run, args.results) for run in args.runs]
    for path in write_report(runs, Path(args.out) if args.out else None):
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import openmetrics_text
    from ..store import atomic_write_bytes, load_run

    text = openmetrics_text(load_run(args.run, args.results))
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        # Atomic: the textfile collector never reads a half-written file.
        atomic_write_bytes(Path(args.output), text.encode())
        print(args.output)
    return 0


def add_results_commands(sub: Any) -> None:
    """runs and show: the stored runs and their tables."""
    r = command(sub, "runs", "list stored runs with their status and test counts",
                "benchfab runs", "benchfab runs --results /data/benchfab")
    r.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    output_arg(r)
    r.set_defaults(func=cmd_runs)

    sh = command(sub, "show", "print a stored run's tables again, and why each test that was not ok was not",
                 "benchfab show latest", "benchfab show 20261201-0312")
    sh.add_argument("run", help=RUN_HELP)
    sh.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    output_arg(sh)
    sh.set_defaults(func=cmd_show)


def add_report_commands(sub: Any) -> None:
    """report and export: a stored run's figures, summary and HTML, and its OpenMetrics text."""
    rp = command(sub, "report", "write a run's PNG curves, summary.md and a self-contained report.html into "
                 "<run>/report/; several runs (or profiles) are drawn side by side with ratio panels",
                 "benchfab report latest", "benchfab report latest --out /tmp/report",
                 "benchfab report RUN_IB RUN_ROCE --out /tmp/ib-vs-roce", exit_codes=REPORT_EXIT_CODES)
    rp.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP + "; several are drawn together")
    rp.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    rp.add_argument("--out", metavar="DIR", help="where to write (default: one run's own report/; several runs: "
                    "results/reports/RUN1+RUN2..., never a run's own report/)")
    rp.set_defaults(func=cmd_report)

    ex = command(sub, "export", "print a run's verdicts (verdicts.json, when a comparison wrote it) and key "
                 "figures (peak bandwidth, minimum latency per measurement) as OpenMetrics text",
                 "benchfab export latest --openmetrics",
                 "benchfab export latest --openmetrics -o /var/lib/node_exporter/textfile/benchfab.prom")
    ex.add_argument("run", help=RUN_HELP)
    ex.add_argument("--openmetrics", action="store_true", required=True,
                    help="OpenMetrics text format (the one format; required so that others can be added)")
    ex.add_argument("-o", "--output", metavar="FILE", help="write to FILE atomically (default: stdout)")
    ex.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    ex.set_defaults(func=cmd_export)
