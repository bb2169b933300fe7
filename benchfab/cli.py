"""The ``benchfab`` command: one subcommand per ``_command(...)`` below (``benchfab --help``
lists them all, README's "The CLI" shows each with an example).

Errors are one line (what, where, how to fix); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import (
    COMPARE_EXIT_CODES,
    DIAGNOSE_EXIT_CODES,
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    REPORT_EXIT_CODES,
    BenchfabError,
    UsageError,
    host_error,
)
from .units import format_duration, format_size


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    # SIGTERM (kubectl delete, systemd, CI cancel) takes the same clean-up
    # path as Ctrl-C: ranks killed, partial results stored, run marked.
    raise KeyboardInterrupt


def cmd_validate(args: argparse.Namespace) -> int:
    from .backends.registry import load_spec

    if args.output == "json":
        from .jsonout import validate_json

        return validate_json(args.spec, load_spec)
    spec = load_spec(args.spec)
    tests = spec.resolved_tests()
    print(f"{args.spec}: ok ({len(tests)} test entries, backend {spec.backend})")
    return 0


def _cluster(args: argparse.Namespace) -> Any:
    from .backends.kubernetes.client import ClusterOptions

    return ClusterOptions(kubeconfig=getattr(args, "kubeconfig", None), context=getattr(args, "context", None),
                          namespace=getattr(args, "namespace", None))


def _backend_for(spec: Any, args: argparse.Namespace) -> Any:
    """The spec's backend; one that reaches a cluster takes --kubeconfig/--context/--namespace."""
    from .backends.registry import make_backend

    return make_backend(spec, _cluster(args))


def cmd_plan(args: argparse.Namespace) -> int:
    from .backends.registry import load_spec
    from .sweep import make_plan
    from .workloads import family_of

    spec = load_spec(args.spec)
    notes: list[str] = []
    where = ""
    if spec.backend == "kubernetes":
        # --nodes: offline; else the cluster; with no kubeconfig anywhere, offline on made-up nodes (noted).
        from .backends.kubernetes.render import find_nodes, plan_on

        found = find_nodes(spec, args.nodes, _cluster(args))
        plan = plan_on(spec, found)
        notes, where = list(found.notes), f", placed {found.where}"
    elif args.nodes:
        raise UsageError(f"--nodes is for backend: kubernetes specs; {args.spec} uses backend {spec.backend}",
                         hint="leave --nodes out: the local backend runs every rank on this host")
    else:
        plan = make_plan(spec, _backend_for(spec, args))
    if args.output == "json":
        _print_json({"spec": args.spec, "backend": spec.backend, "estimate_s": plan.estimate_s,
                     "notes": notes + list(plan.notes), "tests": [_planned_json(rnd.index, t) for rnd in plan.rounds
                                                                  for t in rnd.tests]})
        return 0
    print(f"# plan for {args.spec}: {len(plan.tests)} test(s) in {len(plan.rounds)} round(s), "
          f"estimated {format_duration(plan.estimate_s)} on backend {spec.backend}{where}")
    for note in notes + list(plan.notes):
        print(f"# note: {note}")
    for line in plan.left_out_lines():
        print(f"# {line}")
    print(f"{'round':>5}  {'test id':<40} {'workload':<15} {'ranks':>5} {'sizes':<22} {'iters':>8} "
          f"{'in-place':<9} {'estimate':>9} {'timeout':>8}")
    for rnd in plan.rounds:
        for t in rnd.tests:
            s = t.spec
            sizes = f"{format_size(min(s.sizes))}..{format_size(max(s.sizes))} ({len(s.sizes)})"
            iters = family_of(s.workload).timing_label(s)
            place = "/".join("in" if p else "out" for p in s.in_place)
            print(f"{rnd.index:>5}  {t.test_id:<40} {s.workload:<15} {s.ranks:>5} {sizes:<22} {iters:>8} "
                  f"{place:<9} {format_duration(t.estimate_s):>9} {format_duration(t.timeout_s):>8}")
    return 0


def _print_json(data: Any) -> None:
    from .jsonout import print_json

    print_json(data)


def _text_to_stderr(enabled: bool) -> Any:
    from .jsonout import text_to_stderr

    return text_to_stderr(enabled)


def _with_run_document(command: Any) -> Any:
    from .jsonout import with_run_document

    return with_run_document(command)


def _planned_json(round_index: int, t: Any) -> dict[str, Any]:
    s = t.spec
    return {"round": round_index, "test_id": t.test_id, "name": s.name, "workload": s.workload, "profile": t.profile_name,
            "ranks": s.ranks, "hosts": list(t.hosts), "sizes": list(s.sizes), "in_place": list(s.in_place),
            "dtype": t.dtype, "redop": t.op, "estimate_s": t.estimate_s, "timeout_s": t.timeout_s}


def cmd_sweep(args: argparse.Namespace) -> int:
    from .backends.registry import load_spec
    from .runmeta import load_resume
    from .sweep import run_sweep

    # Checked before anything runs: a baseline that does not exist is bad input (exit 2).
    base = _parse_base(args.baseline, args.results or _spec_results(args)) if args.baseline else None
    if args.resume:
        results = Path(args.results or "results")
        spec, text = load_resume(results, args.resume)
        if args.spec:
            given = Path(args.spec).read_text(encoding="utf-8") if Path(args.spec).exists() else None
            if given != text:
                raise UsageError(f"{args.spec} differs from the spec run {args.resume!r} was started with",
                                 hint="resume without SPEC to use the stored spec, or start a new run")
        result = run_sweep(spec, text, results_dir=str(results), run_id=args.resume, resume=True,
                           progress=not args.no_progress, backend=_backend_for(spec, args))
    else:
        if not args.spec:
            raise UsageError("benchfab sweep needs a SPEC or --resume RUN_ID", hint="e.g. benchfab sweep jobs/local.yaml")
        spec = load_spec(args.spec)
        text = Path(args.spec).read_text(encoding="utf-8")
        result = run_sweep(spec, text, results_dir=args.results, run_id=args.run_id, progress=not args.no_progress,
                           backend=_backend_for(spec, args))
    args.run_path = result.path  # -o json prints its document (jsonout.with_run_document)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items())) or "nothing to do"
    print(f"# run {result.run_id}: {counts}. Results: {result.path}")
    print(f"# next: benchfab report {result.run_id}" + (f" --results {args.results}" if args.results else ""))
    if result.not_ok and args.allow_failures:
        print(f"# {result.not_ok} test(s) not ok; " + ("--allow-failures accepts them, not the second pass's "
              "verdicts: exit 1" if result.faults else "exit 0 because of --allow-failures"), file=sys.stderr)
    code = result.exit_code(args.allow_failures)
    if base is not None:
        code = max(code, _judge(base, result.path, result.path.parent, args))
    elif args.junit:
        _write_junit(Path(args.junit), result.path)
    return code


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .runmeta import load_resume
    from .store import resolve_run_path
    from .sweep import diagnose_run

    path = resolve_run_path(args.run, args.results)
    spec, _text = load_resume(path.parent, path.name, purpose="diagnose")
    as_json = args.output == "json"
    with _text_to_stderr(as_json):
        result = diagnose_run(str(path), str(path.parent), progress=not args.no_progress,
                              backend=_backend_for(spec, args))
        print(f"# {result.faults} verdict(s) stored in {path / 'diagnosis.json'}")
        if args.junit:
            _write_junit(Path(args.junit), path)
    code = result.exit_code()
    if as_json:
        from .diagnosis import load_diagnosis

        found = load_diagnosis(path)
        _print_json({"run_id": path.name, "path": str(path), "exit_code": code,
                     "diagnosis": found.to_json() if found else None})
    return code


def cmd_runs(args: argparse.Namespace) -> int:
    from .errors import StoreError
    from .runlock import run_status
    from .store import check_run, list_runs
    from .untrusted import for_terminal

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
        _print_json(listed)
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
    from .store import check_run, read_table, resolve_run_path, summary_chunks

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
    from .tables import missing, shown
    from .untrusted import for_terminal
    from .workloads.rows import format_results

    status_of = dict(zip(tests["test_id"], tests["status"])) if not tests.empty else {}
    for chunk in chunks:
        first = chunk.rows.iloc[0]
        title = f"{first['test_id']}: {first['workload']}, {first['ranks']} ranks, {shown(first['transport'])}"
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


def _show_json(path: Path, chunks: Any) -> None:
    """show -o json: the run document (docs/JSON.md) with its summary rows written a chunk at a
    time, last, so a big run is never held whole (pandas writes NaN as null, numpy scalars as numbers)."""
    import json

    from .jsonout import run_document

    head = json.dumps(run_document(path, with_summary=False), indent=2)
    sys.stdout.write(head[:-2] + ',\n  "summary": [')
    sep = ""
    for chunk in chunks:
        body = chunk.rows.to_json(orient="records")[1:-1]
        if body:
            sys.stdout.write(sep + body)
            sep = ","
    sys.stdout.write("]\n}\n")


def cmd_devices(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from .rdma.discovery import default_gid_index, discover

    devices = discover()
    if args.output == "json":
        data = [asdict(d) for d in devices]
        for dev, entry in zip(devices, data):
            for port, pentry in zip(dev.ports, entry["ports"]):
                pentry["fabric"] = port.fabric
                pentry["default_gid_index"] = _default_gid(default_gid_index, port)
        print(json.dumps(data, indent=2))
        return 0
    if not devices:
        print("no RDMA devices (no /sys/class/infiniband entries; is an RDMA driver such as mlx5_ib or rdma_rxe loaded?)")
        return 0
    print(f"{'device':<12} {'port':>4} {'state':<8} {'link layer':<11} {'fabric':<6} {'rate':<24} {'mtu':>5} {'lid':>5}  default GID")
    for dev in devices:
        for port in dev.ports:
            gid_index = _default_gid(default_gid_index, port)
            gid = next((g for g in port.gids if g.index == gid_index), None)
            gid_text = "-" if gid is None else f"[{gid.index}] {gid.gid} ({gid.type or '?'}{', ' + gid.ipv4 if gid.ipv4 else ''})"
            print(f"{dev.name:<12} {port.port:>4} {port.state:<8} {port.link_layer:<11} {port.fabric:<6} "
                  f"{port.rate or '-':<24} {port.active_mtu or '-':>5} {port.lid:>5}  {gid_text}")
            if args.gids:
                for g in port.gids:
                    print(f"{'':<12} {'':>4}   gid[{g.index}] {g.gid} {g.type or ''} {g.ndev or ''} {g.ipv4 or ''}")
    return 0


def _default_gid(pick: Any, port: Any) -> int | None:
    # IB ports route by LID and have no default GID; a RoCE port without an IPv4 v2 GID neither.
    if port.fabric != "roce":
        return None
    try:
        return int(pick(port))
    except BenchfabError:
        return None


# -- report and export: pictures, HTML and OpenMetrics of stored runs ---------------------


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report
    from .store import load_run

    runs = [load_run(run, args.results) for run in args.runs]
    for path in write_report(runs, Path(args.out) if args.out else None):
        print(path)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import openmetrics_text
    from .store import atomic_write_bytes, load_run

    text = openmetrics_text(load_run(args.run, args.results))
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        # Atomic: the textfile collector never reads a half-written file.
        atomic_write_bytes(Path(args.output), text.encode())
        print(args.output)
    return 0


def _add_report_commands(sub: Any) -> None:
    """report and export: a stored run's figures, summary and HTML, and its OpenMetrics text."""
    rp = _command(sub, "report", "write a run's PNG curves, summary.md and a self-contained report.html into "
                  "<run>/report/; several runs (or profiles) are drawn side by side with ratio panels",
                  "benchfab report latest", "benchfab report latest --out /tmp/report",
                  "benchfab report RUN_IB RUN_ROCE --out /tmp/ib-vs-roce", exit_codes=REPORT_EXIT_CODES)
    rp.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP + "; several are drawn together")
    rp.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    rp.add_argument("--out", metavar="DIR", help="where to write (default: one run's own report/; several runs: "
                    "results/reports/RUN1+RUN2..., never a run's own report/)")
    rp.set_defaults(func=cmd_report)

    ex = _command(sub, "export", "print a run's verdicts (verdicts.json, when a comparison wrote it) and key "
                  "figures (peak bandwidth, minimum latency per measurement) as OpenMetrics text",
                  "benchfab export latest --openmetrics",
                  "benchfab export latest --openmetrics -o /var/lib/node_exporter/textfile/benchfab.prom")
    ex.add_argument("run", help=RUN_HELP)
    ex.add_argument("--openmetrics", action="store_true", required=True,
                    help="OpenMetrics text format (the one format; required so that others can be added)")
    ex.add_argument("-o", "--output", metavar="FILE", help="write to FILE atomically (default: stdout)")
    ex.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    ex.set_defaults(func=cmd_export)


def cmd_render(args: argparse.Namespace) -> int:
    from .backends.kubernetes.render import render
    from .backends.registry import load_spec
    from .errors import UsageError as _Usage

    spec = load_spec(args.spec)
    if spec.backend != "kubernetes":
        raise _Usage(f"{args.spec} uses backend {spec.backend}; render prints Kubernetes manifests",
                     hint="set backend: kubernetes in the spec")
    text, notes = render(spec, args.run_id or f"render-{spec.name}", args.nodes, _cluster(args),
                         profile=args.profile, source=args.spec)
    for note in notes:  # stdout stays pure YAML for kubectl apply -f -
        print(f"benchfab: note: {note}", file=sys.stderr)
    sys.stdout.write(text)
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    from .backends.kubernetes.preflight import run_preflight
    from .backends.registry import load_spec

    spec = load_spec(args.spec) if args.spec else None
    return run_preflight(spec, _cluster(args), sys.stdout, as_json=args.output == "json")


def _output_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="text (default) or json")


def _cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (backend: kubernetes), like kubectl")
    g.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    g.add_argument("--context", help="kubeconfig context")
    g.add_argument("-n", "--namespace", help="namespace for the pods (default: the spec's, then the context's)")


def _command(sub: Any, name: str, what: str, *examples: str, exit_codes: str = EXIT_CODES_HELP) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does, shows examples and lists the exit codes
    (``exit_codes``: the command's own, where 1 means something of its own)."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) + "\n\n" + exit_codes
    parser: argparse.ArgumentParser = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".",
                                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


RESULTS_HELP = "results directory (default: results)"
RUN_HELP = "run id, unique prefix, directory or 'latest'"
OFFLINE_HELP = ("kubernetes specs: place offline on N made-up nodes or on these node names instead of reading "
                "the cluster (tests that do not fit are left out with a note); without --nodes and without "
                "any kubeconfig: offline on as many nodes as the spec's largest test needs")


def _add_spec_commands(sub: Any) -> None:
    """init, validate, plan, render and preflight: the commands that write or read a spec without running it."""
    from .examples import add_init_parser  # benchfab init: the example specs that ship with benchfab

    add_init_parser(sub)
    v = _command(sub, "validate", "check a sweep spec: every problem, one line each (file:line, field, fix)",
                 "benchfab validate jobs/local.yaml")
    v.add_argument("spec", help="the sweep spec (YAML), e.g. jobs/local.yaml")
    _output_arg(v)
    v.set_defaults(func=cmd_validate)

    pl = _command(sub, "plan", "show the tests a sweep would run, its rounds, time estimate and timeouts",
                  "benchfab plan jobs/local.yaml", "benchfab plan jobs/ib-vs-roce.yaml --nodes 8")
    pl.add_argument("spec", help="the sweep spec (YAML)")
    pl.add_argument("--nodes", metavar="N|A,B,...", help=OFFLINE_HELP)
    _output_arg(pl)
    _cluster_args(pl)
    pl.set_defaults(func=cmd_plan)

    rd = _command(sub, "render", "print the Kubernetes manifests of a sweep (kubectl apply -f - accepts them)",
                  "benchfab render jobs/ib-vs-roce.yaml --nodes a,b",
                  "benchfab render jobs/ib-vs-roce.yaml --profile ib-shared --nodes 8 | kubectl apply -f -")
    rd.add_argument("spec", help="a sweep spec with backend: kubernetes")
    rd.add_argument("--nodes", metavar="N|A,B,...", help=OFFLINE_HELP)
    rd.add_argument("--profile", metavar="NAME",
                    help="only this profile's pods (a sweep runs profiles one after another: apply one at a time)")
    rd.add_argument("--run-id", help="run id used in names and labels (default: render-<spec name>)")
    _cluster_args(rd)
    rd.set_defaults(func=cmd_render)

    pf = _command(sub, "preflight", "check the Network Operator setup a sweep needs: pass/warn/fail with fixes "
                  "(exit 1 on a fail)", "benchfab preflight jobs/ib-vs-roce.yaml --context my-cluster")
    pf.add_argument("spec", nargs="?", help="a spec: its profiles' resources and networks are checked too")
    _output_arg(pf)
    _cluster_args(pf)
    pf.set_defaults(func=cmd_preflight)


def _add_sweep_commands(sub: Any) -> None:
    """sweep and run: the commands that run tests."""
    s = _command(sub, "sweep", "run a sweep spec: tables on stdout, progress and ETA on stderr, results stored",
                 "benchfab sweep jobs/local.yaml", "benchfab sweep --resume RUN_ID",
                 "benchfab sweep jobs/nightly.yaml --context my-cluster --no-progress")
    s.add_argument("spec", nargs="?", help="the sweep spec (YAML); optional with --resume")
    s.add_argument("--resume", metavar="RUN_ID", help="finish an interrupted run; tests already ok are skipped")
    s.add_argument("--results", metavar="DIR", help="results directory (default: the spec's results_dir)")
    s.add_argument("--run-id", help="name the run (default: UTC time + spec name)")
    s.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    s.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even if a test failed, timed out or was skipped (what was measured is stored either "
                        "way); a verdict (second pass, --baseline regression) still exits 1")
    # Failing on a test that is not ok is the default now; --strict stays accepted for old cron jobs.
    s.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)
    s.add_argument("--baseline", metavar="NAME|RUN|history:N",
                   help="after the sweep, compare the run with this baseline, run or the last N comparable runs: "
                        "the verdicts are printed and saved beside the run, and a regression exits 1")
    # dest "format": "output" is the comparison's format (--baseline), which stays a table here
    s.add_argument("-o", "--output", dest="format", choices=("text", "json"), default="text",
                   help="text (default: tables on stdout) or json: one document of the run on stdout, "
                        "the tables on stderr")
    _judging_args(s)
    _cluster_args(s)
    s.set_defaults(func=_with_run_document(cmd_sweep))

    dg = _command(sub, "diagnose", "second pass for a stored run: find suspect nodes and links, retest them against "
                  "known-good nodes and rerun the links, print and store verdicts (dead, bad-node, lossy-node, "
                  "bad-link, lossy-link) with what to do (printed, never run); exit 1 when a verdict names a "
                  "fault or a retest is not ok, as sweep",
                  "benchfab diagnose latest", "benchfab diagnose 20261201-0312 --kubeconfig ~/.kube/config",
                  exit_codes=DIAGNOSE_EXIT_CODES)
    dg.add_argument("run", help=RUN_HELP)
    dg.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    dg.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    dg.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML to FILE: a failing "
                    "testcase per verdict, a passing one per node judged fine")
    _output_arg(dg)
    _cluster_args(dg)
    dg.set_defaults(func=cmd_diagnose)

    from .oneoff import add_run_parser  # benchfab run: one test from nccl-tests / perftest flags

    add_run_parser(sub)

    from .importers import add_import_parser  # benchfab import: a saved nccl-tests / perftest report

    add_import_parser(sub)


def _add_results_commands(sub: Any) -> None:
    """runs, show and devices: stored runs and this host's devices."""
    r = _command(sub, "runs", "list stored runs with their status and test counts",
                 "benchfab runs", "benchfab runs --results /data/benchfab")
    r.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    _output_arg(r)
    r.set_defaults(func=cmd_runs)

    sh = _command(sub, "show", "print a stored run's tables again, and why each test that was not ok was not",
                  "benchfab show latest", "benchfab show 20261201-0312")
    sh.add_argument("run", help=RUN_HELP)
    sh.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    _output_arg(sh)
    sh.set_defaults(func=cmd_show)

    dv = _command(sub, "devices", "list this host's RDMA devices, ports, link layers (ib/roce), rates and GIDs",
                  "benchfab devices", "benchfab devices --gids -o json")
    _output_arg(dv)
    dv.add_argument("--json", dest="output", action="store_const", const="json", help="the same as -o json")
    dv.add_argument("--gids", action="store_true", help="print every GID table entry")
    dv.set_defaults(func=cmd_devices)


# -- verdicts: compare, baseline (benchfab.compare) -------------------------------------


def _spec_results(args: argparse.Namespace) -> str:
    """The results directory a sweep will use: --results, the spec's, or the resumed run's."""
    if args.spec and Path(args.spec).exists() and not args.resume:
        from .backends.registry import load_spec

        return str(load_spec(args.spec).results_dir)
    return "results"


def _parse_base(text: str, results: str) -> Any:
    from .compare import parse_base

    return parse_base(text, Path(results))


def _judge(base: Any, new: Path, results: Path, args: argparse.Namespace) -> int:
    """Compare, print in the chosen format, save verdicts.json + JUnit beside the new run (and
    --junit FILE); the exit code is 1 on a regression."""
    from .compare import RENDERERS, Method, Scope, run_comparison, save
    from .untrusted import for_terminal

    comparison = run_comparison(base, new, results, Method(factor=args.factor, z=args.noise_z),
                                Scope(any_host=args.any_host, any_spec=args.any_spec))
    fmt = getattr(args, "output", None) or "table"
    text = RENDERERS[fmt](comparison)
    # Keys hold names from specs and imported reports: no control character reaches the terminal raw.
    print(text if fmt in ("json", "junit") else "\n".join(for_terminal(line) for line in text.split("\n")))
    if getattr(args, "save", True):
        for path in save(comparison, new):
            print(f"# wrote {path}", file=sys.stderr)
    if args.junit:
        _write_junit(Path(args.junit), new, comparison)
    return comparison.exit_code


def _write_junit(path: Path, run_path: Path, comparison: Any = None) -> None:
    """--junit FILE: the comparison's testsuite and, when the run had a second pass, its
    verdicts' testsuite, in one file written atomically (nothing without either)."""
    from .compare.outputs import junit_suite as comparison_suite
    from .diagnosis import junit_suite as diagnosis_suite
    from .diagnosis import load_diagnosis
    from .junit import document
    from .store import atomic_write_bytes

    suites = [] if comparison is None else [comparison_suite(comparison)]
    if (diagnosis := load_diagnosis(run_path)) is not None:
        suites.append(diagnosis_suite(diagnosis))
    if suites:
        atomic_write_bytes(path, document(suites).encode())


def _positive(kind: type, minimum: float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum:g}")
        return value
    return parse


def _judging_args(p: argparse.ArgumentParser) -> None:
    from .compare import DEFAULT_FACTOR, NOISE_Z

    g = p.add_argument_group("judging (docs/COMPARE.md: the noise model)")
    g.add_argument("--factor", type=_positive(float, 1.0), default=DEFAULT_FACTOR,
                   help=f"minimum effect: a key is worse or better only when its figure moved by this factor "
                        f"(default {DEFAULT_FACTOR}, asv's)")
    g.add_argument("--noise-z", type=_positive(float, 0.0), default=NOISE_Z, metavar="Z",
                   help=f"and by more than Z standard deviations of the runs' noise (within each run: repeats or "
                        f"blocks of iterations; between runs: the spread of every key, or of the history) "
                        f"(default {NOISE_Z:g})")
    g.add_argument("--any-host", action="store_true",
                   help="history: also use earlier runs measured on other machines (left out by default)")
    g.add_argument("--any-spec", action="store_true",
                   help="history: also use earlier runs of another text of the spec of the same name")
    g.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML to FILE")


def cmd_compare(args: argparse.Namespace) -> int:
    results = Path(args.results)
    if args.history is not None:
        if len(args.runs) > 1:
            raise UsageError("--history N compares one run with its history: give only NEW",
                             hint="e.g. benchfab compare --history 7 latest")
        base_text, new_text = f"history:{args.history}", (args.runs or ["latest"])[0]
    elif len(args.runs) != 2:
        raise UsageError("benchfab compare needs BASE and NEW (or --history N [NEW])",
                         hint="e.g. benchfab compare nightly-baseline latest")
    else:
        base_text, new_text = args.runs
    from .store import resolve_run_path

    base = _parse_base(base_text, args.results)
    return _judge(base, resolve_run_path(new_text, results), results, args)


def cmd_baseline_set(args: argparse.Namespace) -> int:
    from .compare import set_baseline

    entry = set_baseline(Path(args.results), args.run, args.name, force=args.force)
    print(f"baseline {args.name} -> run {entry['run']} ({entry['spec_hash'][:19]}...) in {args.results}/baselines.json")
    return 0


def cmd_baseline_list(args: argparse.Namespace) -> int:
    from .compare import read_baselines

    baselines = read_baselines(Path(args.results))
    if args.output == "json":
        _print_json(baselines)
        return 0
    if not baselines:
        print(f"no baselines in {args.results}/ (set one: benchfab baseline set RUN --name NAME)")
        return 0
    print(f"{'name':<24} {'run':<48} {'spec':<16} set")
    for name, entry in baselines.items():
        print(f"{name:<24} {entry.get('run', ''):<48} {entry.get('spec_name') or '':<16} {entry.get('set', '')}")
    return 0


def _add_verdict_commands(sub: Any) -> None:
    """compare and baseline: runs judged against a run, a named baseline or their history."""
    from .compare import FORMATS

    c = _command(sub, "compare", "judge a run against a base run, a named baseline or its history, per measurement "
                 "key, against the runs' noise: better/worse/same/new/missing/removed/failed/changed (exit 1 on "
                 "worse, failed, changed, missing, or a damaged store)",
                 "benchfab compare nightly-good latest", "benchfab compare --history 7 latest -o junit > verdicts.xml",
                 "benchfab compare 20261201-0312 latest --factor 1.05 -o markdown", exit_codes=COMPARE_EXIT_CODES)
    c.add_argument("runs", nargs="*", metavar="BASE NEW",
                   help="BASE: run id, prefix, 'latest', a baseline name or history:N; NEW: a run (default with "
                        "--history: latest)")
    c.add_argument("--history", type=_positive(int, 1), metavar="N",
                   help="compare NEW with the last N complete runs of the same spec (median, MAD band, step detector)")
    c.add_argument("-o", "--output", choices=FORMATS, default="table", help="what to print (default: table)")
    c.add_argument("--save", action="store_true", help="write verdicts.json and verdicts.junit.xml into NEW's directory")
    c.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    _judging_args(c)
    c.set_defaults(func=cmd_compare)

    b = _command(sub, "baseline", "name a run as a baseline, or list the names (a pointer and the spec hash, "
                 "never a copy of the data)", "benchfab baseline set latest --name good-ib",
                 "benchfab baseline list -o json")
    bsub = b.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    bs = bsub.add_parser("set", help="point NAME at RUN", description="Point NAME at RUN in results/baselines.json.")
    bs.add_argument("run", help=RUN_HELP)
    bs.add_argument("--name", required=True, help="the baseline's name, e.g. good-ib")
    bs.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    bs.add_argument("--force", action="store_true", help="name a run that is not complete (running, abandoned, "
                    "failed, interrupted) anyway")
    bs.set_defaults(func=cmd_baseline_set)
    bl = bsub.add_parser("list", help="list the baselines", description="List the baselines in results/baselines.json.")
    bl.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    _output_arg(bl)
    bl.set_defaults(func=cmd_baseline_list)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchfab", description="Benchmark the fabric of GPU clusters.",
                                epilog="benchfab COMMAND --help describes each command.\n\n" + EXIT_CODES_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"benchfab {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_spec_commands(sub)
    _add_sweep_commands(sub)
    _add_results_commands(sub)
    _add_report_commands(sub)
    _add_verdict_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps
    # an inherited SIG_IGN, so `benchfab sweep ... &` then `kill -INT` did nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.func(args))
    except BenchfabError as exc:
        return _report(exc, args.debug)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return 0
        return _report(host_error(exc), args.debug)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print("\nbenchfab: interrupted; every rank was stopped and the results so far are stored "
              "(benchfab runs; resume with benchfab sweep --resume RUN_ID)", file=sys.stderr)
        return EXIT_INTERRUPTED


def _report(exc: BenchfabError, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    from .untrusted import for_terminal

    for line in str(exc).split("\n"):  # a spec with several problems: one line each
        print(f"benchfab: error: {for_terminal(line)}", file=sys.stderr)  # names quoted from files stay inert
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
