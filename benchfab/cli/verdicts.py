"""compare and baseline: runs judged against a run, a named baseline or their history
(benchfab.compare); the judging options and the --junit writer sweep shares."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import COMPARE_EXIT_CODES, StoreError, UsageError
from .common import RESULTS_HELP, RUN_HELP, command, output_arg, positive, print_json


def parse_base(text: str, results: str) -> Any:
    from ..compare import parse_base as parse

    return parse(text, Path(results))


def judge(base: Any, new: Path, results: Path, args: argparse.Namespace) -> int:
    """Compare, print in the chosen format, save verdicts.json + JUnit beside the new run (and
    --junit FILE); the exit code is 1 on a regression."""
    from ..compare import RENDERERS, Method, Scope, run_comparison, save
    from ..untrusted import for_terminal

    comparison = run_comparison(base, new, results, Method(factor=args.factor, z=args.noise_z),
                                Scope(any_host=args.any_host, any_spec=args.any_spec))
    try:
        comparison.expectations = judge_expectations(new, getattr(args, "expect_file", None),
                                                     save=getattr(args, "save", True))
    except StoreError as exc:  # NEW's tables cannot be read: damaged, as the comparison says of either side
        if str(exc) not in comparison.damaged:
            comparison.damaged.append(str(exc))
    fmt = getattr(args, "output", None) or "table"
    text = RENDERERS[fmt](comparison)
    # Keys hold names from specs and imported reports: no control character reaches the terminal raw.
    print(text if fmt in ("json", "junit") else "\n".join(for_terminal(line) for line in text.split("\n")))
    if getattr(args, "save", True):
        for path in save(comparison, new):
            print(f"# wrote {path}", file=sys.stderr)
    if args.junit:
        write_junit(Path(args.junit), new, comparison)
    return comparison.exit_code


def load_expect(args: argparse.Namespace) -> Any:
    """--expect FILE read and validated before anything runs (bad input: exit 2); None without it."""
    from ..spec.expect_file import load_expect_file

    args.expect_file = load_expect_file(args.expect) if getattr(args, "expect", None) else None
    return args.expect_file


def judge_expectations(run_path: Path, extra: Any, save: bool = True) -> Any:
    """The run judged against its spec's expectations and ``extra`` (--expect FILE), saved as
    expectations.json beside it (``save``); None when there are none."""
    from ..compare.expectations import judge_run, save_expectations

    result = judge_run(run_path, extra)
    if result is not None and save:
        print(f"# wrote {save_expectations(result, run_path)}", file=sys.stderr)
    return result


def print_expectations(result: Any) -> None:
    from ..compare.expectations import render_lines
    from ..untrusted import for_terminal

    if result is not None:
        print("\n".join(for_terminal(line) for line in render_lines(result)))


def write_junit(path: Path, run_path: Path, comparison: Any = None, expectations: Any = None) -> None:
    """--junit FILE: the comparison's testsuite (and its expectations'), or the expectations'
    alone, and, when the run had a second pass, its verdicts' testsuite, in one file written
    atomically (nothing without any)."""
    from ..compare.expectations import junit_suite as expectations_suite
    from ..compare.outputs import suites as comparison_suites
    from ..diagnosis import junit_suite as diagnosis_suite
    from ..diagnosis import load_diagnosis
    from ..junit import document
    from ..store import atomic_write_bytes

    suites = [] if comparison is None else comparison_suites(comparison)
    if comparison is None and expectations is not None:
        suites.append(expectations_suite(expectations))
    if (diagnosis := load_diagnosis(run_path)) is not None:
        suites.append(diagnosis_suite(diagnosis))
    if suites:
        atomic_write_bytes(path, document(suites).encode())


def judging_args(p: argparse.ArgumentParser) -> None:
    from ..compare import DEFAULT_FACTOR, NOISE_Z

    g = p.add_argument_group("judging (docs/COMPARE.md: the noise model)")
    g.add_argument("--factor", type=positive(float, 1.0), default=DEFAULT_FACTOR,
                   help=f"minimum effect: a key is worse or better only when its figure moved by this factor "
                        f"(default {DEFAULT_FACTOR}, asv's)")
    g.add_argument("--noise-z", type=positive(float, 0.0), default=NOISE_Z, metavar="Z",
                   help=f"and by more than Z standard deviations of the runs' noise (within each run: repeats or "
                        f"blocks of iterations; between runs: the spread of every key, or of the history) "
                        f"(default {NOISE_Z:g})")
    g.add_argument("--any-host", action="store_true",
                   help="history: also use earlier runs measured on other machines (left out by default)")
    g.add_argument("--any-spec", action="store_true",
                   help="history: also use earlier runs of another text of the spec of the same name")
    g.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML to FILE")
    expect_arg(g)


def expect_arg(p: Any) -> None:
    p.add_argument("--expect", metavar="FILE",
                   help="also judge the run against the expectations in FILE (shared by specs; docs/SPEC.md, "
                        "Expectations): a figure below them is a below-expectation verdict, exit 1")


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
    from ..store import resolve_run_path

    base = parse_base(base_text, args.results)
    load_expect(args)
    return judge(base, resolve_run_path(new_text, results), results, args)


def cmd_baseline_set(args: argparse.Namespace) -> int:
    from ..compare import set_baseline

    entry = set_baseline(Path(args.results), args.run, args.name, force=args.force)
    print(f"baseline {args.name} -> run {entry['run']} ({entry['spec_hash'][:19]}...) in {args.results}/baselines.json")
    return 0


def cmd_baseline_list(args: argparse.Namespace) -> int:
    from ..compare import read_baselines

    baselines = read_baselines(Path(args.results))
    if args.output == "json":
        print_json(baselines)
        return 0
    if not baselines:
        print(f"no baselines in {args.results}/ (set one: benchfab baseline set RUN --name NAME)")
        return 0
    print(f"{'name':<24} {'run':<48} {'spec':<16} set")
    for name, entry in baselines.items():
        print(f"{name:<24} {entry.get('run', ''):<48} {entry.get('spec_name') or '':<16} {entry.get('set', '')}")
    return 0


def add_verdict_commands(sub: Any) -> None:
    """compare and baseline: runs judged against a run, a named baseline or their history."""
    from ..compare import FORMATS

    c = command(sub, "compare", "judge a run against a base run, a named baseline or its history, per measurement "
                "key, against the runs' noise: better/worse/same/new/missing/removed/failed/changed (exit 1 on "
                "worse, failed, changed, missing, or a damaged store)",
                "benchfab compare nightly-good latest", "benchfab compare --history 7 latest -o junit > verdicts.xml",
                "benchfab compare 20261201-0312 latest --factor 1.05 -o markdown", exit_codes=COMPARE_EXIT_CODES)
    c.add_argument("runs", nargs="*", metavar="BASE NEW",
                   help="BASE: run id, prefix, 'latest', a baseline name or history:N; NEW: a run (default with "
                        "--history: latest)")
    c.add_argument("--history", type=positive(int, 1), metavar="N",
                   help="compare NEW with the last N complete runs of the same spec (median, MAD band, step detector)")
    c.add_argument("-o", "--output", choices=FORMATS, default="table", help="what to print (default: table)")
    c.add_argument("--save", action="store_true", help="write verdicts.json and verdicts.junit.xml into NEW's directory")
    c.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    judging_args(c)
    c.set_defaults(func=cmd_compare)

    b = command(sub, "baseline", "name a run as a baseline, or list the names (a pointer and the spec hash, "
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
    output_arg(bl)
    bl.set_defaults(func=cmd_baseline_list)
