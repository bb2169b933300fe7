"""The ``benchfab import`` command: read one saved report, store it as a run."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, get_args

from ..errors import EXIT_CODES_HELP, UsageError
from ..jsonout import with_run_document
from ..spec.fields import Fabric, Mode
from ..store import RUN_ID_RE, RunStore
from ..units import format_size, parse_size
from . import nccl_tests, perftest
from .checks import DEFAULT_MAX_BYTES, DEFAULT_MAX_ROWS, check_options, check_report, read_report
from .parsed import Missing, ParsedReport, bad_input, missing_error
from .write import ImportContext, missing_hosts, sha256_of, write_run

TOOLS = ("nccl-tests", "perftest")
FABRICS: tuple[str, ...] = get_args(Fabric)
MODES: tuple[str, ...] = get_args(Mode)

EXAMPLES = (
    "benchfab import nccl-tests all_reduce.txt --profile ib-shared --fabric ib",
    "benchfab import nccl-tests run.json --profile roce-sriov --fabric roce --mode sriov",
    "benchfab import perftest ib_write_bw.txt --profile ib-shared --hosts node-a,node-b --source https://...",
)


def add_import_parser(sub: Any) -> None:
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES) + "\n\n" + EXIT_CODES_HELP
    p = sub.add_parser("import", help="store a saved nccl-tests or perftest report as a run",
                       description="Store a saved nccl-tests (text table or -J JSON) or perftest (client output) "
                                   "report as a benchfab run, with the file's path, sha256, tool version and "
                                   "source in run.json; show, report and comparisons then treat it like a "
                                   "measured run.",
                       epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tool", choices=TOOLS, help="the tool that printed the report")
    p.add_argument("file", help="the saved report (nccl-tests: text or .json; perftest: the client's output)")
    p.add_argument("--profile", required=True, metavar="NAME", help="the profile the rows file under (e.g. ib-shared)")
    p.add_argument("--fabric", choices=FABRICS,
                   help="the fabric measured (perftest: default from its 'Link type'; nccl-tests: required)")
    p.add_argument("--mode", choices=MODES, default="none", help="how pods got the device: shared, sriov or none")
    p.add_argument("--name", metavar="NAME", help="the spec name the run files under (default: import-TOOL-PROFILE)")
    p.add_argument("--run-id", help="the run's id (default: import-<file name>-<sha256 prefix>)")
    p.add_argument("--hosts", metavar="A,B", help="the hosts measured, in rank order, when the report names none "
                   "(perftest: client,server)")
    p.add_argument("--workload", metavar="BINARY", help="nccl-tests: the binary, for reports that do not name it")
    p.add_argument("--source", metavar="URL", help="where the report was published (kept in run.json)")
    p.add_argument("--results", default="results", metavar="DIR", help="results directory (default: results)")
    p.add_argument("--max-bytes", type=_size_arg, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                   help=f"refuse a larger file (default {format_size(DEFAULT_MAX_BYTES)}; a report is a few KB)")
    p.add_argument("--max-rows", type=_rows_arg, default=DEFAULT_MAX_ROWS, metavar="N",
                   help=f"refuse a report of more rows and per-iteration samples (default {DEFAULT_MAX_ROWS})")
    p.add_argument("-o", "--output", dest="format", choices=("text", "json"), default="text",
                   help="text (default) or json: the stored run's document on stdout (as benchfab show RUN -o json)")
    p.set_defaults(func=with_run_document(cmd_import))


def _size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 64M") from None


def _rows_arg(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of rows")
    return int(text)


def parse_report(tool: str, text: str, path: str, workload: str | None, max_rows: int = DEFAULT_MAX_ROWS) -> ParsedReport:
    """The report in ``text`` (nccl-tests: its text table, or its -J JSON file), its names and
    numbers checked (importers.checks): what a stored run may hold."""
    if tool == "perftest":
        if workload:
            raise UsageError("--workload is for nccl-tests reports", hint="drop it: perftest names its test")
        report = perftest.parse(text, path, max_rows)
    else:
        report = nccl_tests.parse(text, path, workload, max_rows)
    check_report(report, path)
    return report


def _fabric(tool: str, report: ParsedReport, given: str | None, path: str) -> str | None:
    """--fabric, or what the report states (perftest's Link type); None when neither says."""
    stated = perftest.LINK_LAYERS.get(str(report.facts.get("link_type"))) if tool == "perftest" else None
    if given and stated and given != stated:
        raise bad_input(path, None, f"--fabric {given} but the report says Link type {report.facts['link_type']} "
                        f"({stated})", f"drop --fabric or give --fabric {stated}")
    return given or stated


def _ask_once(path: str, report: ParsedReport, fabric: str | None, hosts: tuple[str, ...]) -> str:
    """The fabric; or one error asking for everything the report does not say (collective,
    fabric, hosts), so that a report missing three facts costs one retry, not three."""
    lacking = list(report.missing)
    if fabric is None:
        lacking.append(Missing("which fabric it measured", "--fabric ib|roce|tcp|loopback"))
    lacking += [m for m in [missing_hosts(report, hosts)] if m is not None]
    if lacking or fabric is None:
        raise missing_error(path, lacking)
    return fabric


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    hosts = tuple(h for h in (args.hosts or "").split(",") if h)
    check_options(args.profile, args.name, hosts, args.source)
    if args.run_id is not None and not RUN_ID_RE.match(args.run_id):
        raise UsageError(f"--run-id {args.run_id!r} is not a run id", hint="use letters, digits, '-', '_' and '.'")
    data, text = read_report(path, args.max_bytes)
    report = parse_report(args.tool, text, str(path), args.workload, args.max_rows)
    fabric = _ask_once(str(path), report, _fabric(args.tool, report, args.fabric, str(path)), hosts)
    run_id = args.run_id or _default_run_id(path, data)
    ctx = ImportContext(profile=args.profile, fabric=fabric, mode=args.mode,
                        name=args.name or f"import-{args.tool}-{args.profile}", hosts=hosts, source_url=args.source)
    store = RunStore(Path(args.results), run_id)
    tests = write_run(store, report, ctx, path, data)
    args.run_path = store.path  # -o json prints its document
    rows = sum(len(t.rows) for t in report.tests)
    print(f"# imported {args.tool} {report.format} report {path} ({rows} rows, {len(tests)} test(s)) "
          f"as run {run_id}: {store.path}")
    print(f"# next: benchfab show {run_id} --results {args.results}")
    return 0


def _default_run_id(path: Path, data: bytes) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "report"
    return f"import-{stem[:80]}-{sha256_of(data)[:8]}"
