"""The ``benchfab run`` command: the workload's name, its family's flags, the spec
text and its errors reworded to name the flag, then an ordinary sweep."""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from ..errors import EXIT_CODES_HELP, SpecError, UsageError
from ..jsonout import print_json, run_document, text_to_stderr
from ..workloads import FAMILIES
from ..workloads.collective_kinds import COLLECTIVES
from ..workloads.p2p_workloads import P2P_WORKLOADS, perftest_binaries
from ..yamlpos import plain_yaml
from .common import SOURCE, Translation
from .nccl_tests import collective_parser, translate_collective
from .perftest import p2p_parser, translate_p2p

# -- workload names ----------------------------------------------------------

# benchfab's names, the nccl-tests binaries (all_reduce_perf...) and their stems, perftest's binaries.
WORKLOAD_ALIASES: dict[str, str] = {alias: name for family in FAMILIES for alias, name in family.aliases.items()}


def resolve_workload(name: str) -> str:
    """benchfab's workload for a name the user typed (benchfab's, nccl-tests' or perftest's)."""
    key = name.strip()
    found = WORKLOAD_ALIASES.get(key)
    if found:
        return found
    known = sorted(WORKLOAD_ALIASES)
    close = difflib.get_close_matches(key, known, n=1)
    raise UsageError(f"unknown workload {name!r}",
                     hint=f"did you mean {close[0]}?" if close else
                     f"use one of {', '.join(sorted(COLLECTIVES))}, {', '.join(perftest_binaries(runs=True))} "
                     "(or a nccl-tests / perftest binary name such as all_reduce_perf, ib_write_bw)")


# -- the spec text ----------------------------------------------------------


def spec_text(t: Translation, command: list[str]) -> str:
    """The one-test sweep spec, as YAML, headed by the command it came from."""
    doc = {
        "name": f"run-{t.workload}",
        "description": "benchfab " + shlex.join(command),
        "backend": "local",
        "tests": [t.test],
    }
    body = plain_yaml(doc, sort_keys=False, default_flow_style=None, width=10_000)
    return (f"# benchfab {shlex.join(command)}\n"
            "# The same test as a sweep spec: benchfab sweep FILE runs it.\n" + body)


def _reword(exc: SpecError, t: Translation) -> SpecError:
    """The spec's own error, pointed at the flag that set the field (when one did)."""
    fieldpath = exc.field or ""
    prefix = exc.source or "<spec>"
    if exc.line is not None:
        prefix += f":{exc.line}"
    prefix += f": {fieldpath}: " if fieldpath else ": "
    message = exc.message[len(prefix):] if exc.message.startswith(prefix) else exc.message
    path = fieldpath.removeprefix("tests[0].").removeprefix("tests[0]")
    parts = re.sub(r"\[\d+\]", "", path).split(".") if path else []  # dtypes[1] -> dtypes
    for cut in range(len(parts), 0, -1):
        flag = t.origin.get(".".join(parts[:cut]))
        if flag:
            return SpecError(message, source=SOURCE, field=f"{flag} ({path})", hint=exc.hint)
    return exc


# -- the command ------------------------------------------------------------


def parse(workload_name: str, flags: list[str]) -> tuple[Translation, argparse.Namespace]:
    workload = resolve_workload(workload_name)
    prog = f"benchfab run {workload_name}"
    collective = workload in COLLECTIVES
    parser = collective_parser(prog) if collective else p2p_parser(prog)
    ns, extra = parser.parse_known_args(flags)
    if extra:
        _unknown(extra[0], parser, "nccl-tests" if collective else "perftest")
    translate: Callable[[str, argparse.Namespace], Translation] = translate_collective if collective else translate_p2p
    return translate(workload, ns), ns


def _unknown(arg: str, parser: argparse.ArgumentParser, tool: str) -> None:
    if not arg.startswith("-"):
        hint = ("benchfab runs both sides on this host: drop the server name" if tool == "perftest"
                else "flags only after the workload, e.g. -b 8 -e 1M")
        raise UsageError(f"unexpected argument {arg!r}", hint=hint)
    flag = arg.split("=", 1)[0]
    known = [o for a in parser._actions for o in a.option_strings]  # noqa: SLF001 (argparse has no public list)
    close = difflib.get_close_matches(flag, known, n=1) if flag.startswith("--") else []
    raise UsageError(f"unknown flag {flag} for {tool}-style {parser.prog}",
                     hint=f"did you mean {close[0]}?" if close else f"see {parser.prog} --help")


RUN_ONLY_FLAGS = {"--print-spec": False, "--no-progress": False, "--allow-failures": False,
                  "--results": True, "--run-id": True, "--output": True}  # flag -> takes a value


def shaping_flags(flags: list[str]) -> list[str]:
    """The flags that shape the test (what the spec's header repeats), without run-only ones."""
    out: list[str] = []
    skip = False
    for arg in flags:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in RUN_ONLY_FLAGS:
            skip = RUN_ONLY_FLAGS[name] and "=" not in arg
            continue
        out.append(arg)
    return out


def build(workload_name: str, flags: list[str]) -> tuple[Any, str, argparse.Namespace]:
    """(validated SweepSpec, its YAML text, parsed flags) for ``benchfab run WORKLOAD FLAGS``."""
    from ..backends.registry import load_spec_text

    t, ns = parse(workload_name, flags)
    text = spec_text(t, ["run", workload_name, *shaping_flags(flags)])
    try:
        spec = load_spec_text(text, source=SOURCE)
    except SpecError as exc:
        raise _reword(exc, t) from None
    return spec, text, ns


def cmd_run(args: argparse.Namespace) -> int:
    from ..sweep import run_sweep

    spec, text, ns = build(args.workload, list(args.flags))
    if ns.print_spec:
        print(text, end="")
        return 0
    with text_to_stderr(ns.output == "json"):
        result = run_sweep(spec, text, results_dir=ns.results, run_id=ns.run_id, progress=not ns.no_progress)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items())) or "nothing to do"
        print(f"# run {result.run_id}: {counts}. Results: {result.path}")
        print(f"# next: benchfab report {result.run_id}" + (f" --results {ns.results}" if ns.results else ""))
    if result.not_ok and ns.allow_failures:
        print(f"# {result.not_ok} test(s) not ok; exit 0 because of --allow-failures", file=sys.stderr)
    code = result.exit_code(ns.allow_failures)  # the rule benchfab sweep uses
    if ns.output == "json":
        print_json({**run_document(result.path), "exit_code": code})
    return code


EPILOG = textwrap.fill("Collectives (nccl-tests flags): " + ", ".join(COLLECTIVES) + ", or "
                       + ", ".join(c.nccl_name for c in COLLECTIVES.values()) + ".", 80) + "\n" + textwrap.fill(
    "Point-to-point (perftest flags): " + ", ".join(perftest_binaries(runs=True)) + ", or "
    + ", ".join(perftest_binaries(runs=True).values()) + "; --transport tcp runs "
    + ", ".join(w.name for w in P2P_WORKLOADS.values() if w.runs and w.over_tcp) + " over a socket.", 80) + """

  benchfab run allreduce -b 8 -e 128M -f 2 -g 2
  benchfab run rdma_write_bw -d rxe0 -s 64K -n 5000
  benchfab run ib_read_bw -d rxe0 -b -q 4 -s 64K
  benchfab run ib_write_lat --transport tcp -a --print-spec > lat.yaml

Each is stored as a one-test run (benchfab show / report / load_run); --print-spec
prints the equivalent sweep spec and exits. `benchfab run WORKLOAD --help` lists
that family's flags.

""" + EXIT_CODES_HELP


def add_run_parser(sub: Any) -> None:
    """The ``run`` subcommand; the workload's own flags are parsed by ``cmd_run``."""
    r = sub.add_parser("run", help="one test from nccl-tests / perftest flags, without a spec",
                       description="Run one test from nccl-tests or perftest flags, without writing a spec.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("workload", help=f"allreduce ... sendrecv, {', '.join(perftest_binaries(runs=True))} "
                   "(or the tools' binary names)")
    r.add_argument("flags", nargs=argparse.REMAINDER, help="the tool's flags plus --print-spec, --results, --run-id, "
                   "--no-progress (see benchfab run WORKLOAD --help)")
    r.set_defaults(func=cmd_run)
