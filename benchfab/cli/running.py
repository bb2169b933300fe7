"""sweep, diagnose, run and import: the commands that run tests (or store a saved report as a run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import DIAGNOSE_EXIT_CODES, UsageError
from .common import (
    RESULTS_HELP,
    RUN_HELP,
    backend_for,
    cluster_args,
    command,
    output_arg,
    print_json,
    text_to_stderr,
    with_run_document,
)
from .marks import apply_args, apply_run, check_appliable
from .verdicts import (
    expect_arg,
    judge,
    judge_expectations,
    judging_args,
    load_expect,
    parse_base,
    print_expectations,
    write_junit,
)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..backends.registry import load_spec
    from ..runmeta import load_resume
    from ..sweep import run_sweep

    # Checked before anything runs: a baseline that does not exist is bad input (exit 2).
    base = parse_base(args.baseline, args.results or _spec_results(args)) if args.baseline else None
    extra = load_expect(args)
    if args.resume:
        results = Path(args.results or "results")
        spec, text = load_resume(results, args.resume)
        if args.spec:
            given = Path(args.spec).read_text(encoding="utf-8") if Path(args.spec).exists() else None
            if given != text:
                raise UsageError(f"{args.spec} differs from the spec run {args.resume!r} was started with",
                                 hint="resume without SPEC to use the stored spec, or start a new run")
        _check_sweep_apply(spec, args)
        result = run_sweep(spec, text, results_dir=str(results), run_id=args.resume, resume=True,
                           progress=not args.no_progress, backend=backend_for(spec, args))
    else:
        if not args.spec:
            raise UsageError("benchfab sweep needs a SPEC or --resume RUN_ID", hint="e.g. benchfab sweep jobs/local.yaml")
        spec = load_spec(args.spec)
        text = Path(args.spec).read_text(encoding="utf-8")
        _check_sweep_apply(spec, args)
        result = run_sweep(spec, text, results_dir=args.results, run_id=args.run_id, progress=not args.no_progress,
                           backend=backend_for(spec, args))
    args.run_path = result.path  # -o json prints its document (jsonout.with_run_document)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items())) or "nothing to do"
    print(f"# run {result.run_id}: {counts}. Results: {result.path}")
    print(f"# next: benchfab report {result.run_id}" + (f" --results {args.results}" if args.results else ""))
    if result.not_ok and args.allow_failures:
        print(f"# {result.not_ok} test(s) not ok; " + ("--allow-failures accepts them, not the second pass's "
              "verdicts: exit 1" if result.faults else "exit 0 because of --allow-failures"), file=sys.stderr)
    if args.apply_verdicts:
        apply_run(result.path, args, sys.stdout, after_sweep=True)
    code = result.exit_code(args.allow_failures)
    if base is not None:
        code = max(code, judge(base, result.path, result.path.parent, args))
    else:
        expected = judge_expectations(result.path, extra)
        print_expectations(expected)
        code = max(code, expected.exit_code if expected is not None else 0)
        if args.junit:
            write_junit(Path(args.junit), result.path, expectations=expected)
    return code


def _check_sweep_apply(spec: Any, args: argparse.Namespace) -> None:
    """--apply-verdicts: refused before anything runs unless the sweep has a second pass on Kubernetes."""
    if not args.apply_verdicts:
        return
    from ..secondpass import second_pass_entries

    check_appliable(spec, "--apply-verdicts")
    if not second_pass_entries(spec):
        raise UsageError("--apply-verdicts applies the second pass's verdicts, and no test of this spec has "
                         "placement: {second_pass: true}",
                         hint="add second_pass: true to an all-pairs test's placement, or drop --apply-verdicts")


def _spec_results(args: argparse.Namespace) -> str:
    """The results directory a sweep will use: --results, the spec's, or the resumed run's."""
    if args.spec and Path(args.spec).exists() and not args.resume:
        from ..backends.registry import load_spec

        return str(load_spec(args.spec).results_dir)
    return "results"


def cmd_diagnose(args: argparse.Namespace) -> int:
    from ..runmeta import load_resume
    from ..store import resolve_run_path
    from ..sweep import diagnose_run

    path = resolve_run_path(args.run, args.results)
    spec, _text = load_resume(path.parent, path.name, purpose="diagnose")
    extra = load_expect(args)
    if args.apply_verdicts:
        check_appliable(spec, "--apply")
    as_json = args.output == "json"
    with text_to_stderr(as_json):
        result = diagnose_run(str(path), str(path.parent), progress=not args.no_progress,
                              backend=backend_for(spec, args))
        print(f"# {result.faults} verdict(s) stored in {path / 'diagnosis.json'}")
        expected = judge_expectations(path, extra)
        print_expectations(expected)
        if args.apply_verdicts:
            apply_run(path, args, sys.stdout)
        if args.junit:
            write_junit(Path(args.junit), path, expectations=expected)
    code = max(result.exit_code(), expected.exit_code if expected is not None else 0)
    if as_json:
        from ..diagnosis import load_diagnosis

        found = load_diagnosis(path)
        print_json({"run_id": path.name, "path": str(path), "exit_code": code,
                    "diagnosis": found.to_json() if found else None,
                    "expectations": expected.to_dict() if expected is not None else None})
    return code


def add_sweep_commands(sub: Any) -> None:
    """sweep and run: the commands that run tests."""
    s = command(sub, "sweep", "run a sweep spec: tables on stdout, progress and ETA on stderr, results stored",
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
    judging_args(s)
    apply_args(s, "--apply-verdicts", "after the second pass, write its verdicts onto the nodes: label "
               "benchfab.io/verdict, a NoSchedule taint for node-level faults, ok on nodes measured clean "
               "(needs the benchfab-verdicts ClusterRole: render --apply-verdicts)")
    cluster_args(s)
    s.set_defaults(func=with_run_document(cmd_sweep))

    dg = command(sub, "diagnose", "second pass for a stored run: find suspect nodes and links, retest them against "
                 "known-good nodes and rerun the links, print and store verdicts (dead, bad-node, lossy-node, bad-gpu, "
                 "bad-link, lossy-link) with what to do (printed, never run); exit 1 when a verdict names a "
                 "fault or a retest is not ok, as sweep",
                 "benchfab diagnose latest", "benchfab diagnose 20261201-0312 --kubeconfig ~/.kube/config",
                 exit_codes=DIAGNOSE_EXIT_CODES)
    dg.add_argument("run", help=RUN_HELP)
    dg.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    dg.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    dg.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML to FILE: a failing "
                    "testcase per verdict, a passing one per node judged fine")
    expect_arg(dg)
    output_arg(dg)
    apply_args(dg, "--apply", "write the verdicts onto the nodes: label benchfab.io/verdict, a NoSchedule taint for "
               "node-level faults, ok on nodes measured clean; never a cordon or drain (needs the benchfab-verdicts "
               "ClusterRole: render --apply-verdicts)")
    cluster_args(dg)
    dg.set_defaults(func=cmd_diagnose)

    from ..oneoff import add_run_parser  # benchfab run: one test from nccl-tests / perftest flags

    add_run_parser(sub)

    from ..importers import add_import_parser  # benchfab import: a saved nccl-tests / perftest report

    add_import_parser(sub)
