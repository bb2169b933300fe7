"""nccl-tests' saved reports (the text table, or the -J JSON file) as a ``ParsedReport``.

The reading is benchfab.workloads.nccl_tests_output's (``parse_nccl_tests``, which the
``nccl-tests`` engine reads the binary's output with too); this module adds what a saved
report must state to be stored (a table header, rows, the collective, here or by
``--workload``), words the reader's errors as bad input at the file's line, and groups the
rows into one ``ParsedTest`` per data type and reduction (``-d all`` / ``-o all``).

Time is in microseconds, bandwidth in GB/s (1e9 B/s) in the report; seconds and B/s here.
"""

from __future__ import annotations

from typing import Any

from ..errors import ToolOutputError, UsageError
from ..oneoff import resolve_workload
from ..workloads.collective_kinds import COLLECTIVES
from ..workloads.nccl_tests_output import FIX_TEXT, NcclTestsRun, parse_nccl_tests, workload_of_binary
from .parsed import Missing, ParsedReport, ParsedTest, bad_input


def _not_stored(name: str, path: str, line: int | None) -> UsageError:
    return bad_input(path, line, f"{name!r} is not an nccl-tests collective benchfab stores",
                     f"benchfab stores {', '.join(c.nccl_name for c in COLLECTIVES.values())}; "
                     "give --workload with the binary that printed the report")


def collective_of(name: str, path: str) -> str:
    """benchfab's collective for ``--workload``: a binary path or name (./build/all_reduce_perf) or benchfab's."""
    workload = workload_of_binary(name)
    if workload is None:
        try:
            workload = resolve_workload(name.strip())
        except UsageError:  # reworded below, for the file
            workload = ""
    if workload not in COLLECTIVES:
        raise _not_stored(name, path, None)
    return workload


def parse(text: str, path: str, workload: str | None, max_rows: int | None = None) -> ParsedReport:
    """The report's tables; ``workload`` (a binary or benchfab name) for reports that do not name theirs;
    more than ``max_rows`` rows and per-iteration samples: refused."""
    given = collective_of(workload, path) if workload else None
    try:
        run = parse_nccl_tests(text, max_rows=max_rows)
    except ToolOutputError as exc:
        hint = f"{exc.hint} with --max-rows N" if exc.message.startswith("more than") else exc.hint
        raise bad_input(path, exc.line, exc.message, hint or FIX_TEXT) from None
    if run.binary and run.workload is None:
        raise _not_stored(run.binary, path, run.binary_line)
    named = run.workload
    if run.format == "text":
        _check_text(run, path, named, given)
    else:
        _check_json(run, path, named, given, workload)
    found = named or given or ""
    missing = [] if found else [Missing(
        "its collective (nccl-tests before 2.17 print no '# Collective test starting' line)" if run.format == "text"
        else "its collective (the JSON file has no 'args' naming its binary)", "--workload all_reduce_perf")]
    tests: dict[tuple[str, str], ParsedTest] = {}
    for row in run.rows:
        if row.time_s is None:
            continue  # N/A: a half nccl-tests did not run (the JSON file's null)
        test = tests.get((row.dtype, row.redop))
        if test is None:
            test = tests[row.dtype, row.redop] = ParsedTest(
                workload=found, binary=COLLECTIVES[found].nccl_name if found else "", family="collective", memory="cuda",
                dtype=row.dtype, redop=row.redop, root=row.root,
                # The nccl-tests engine's own rows say "nccl" (the measurement key then matches
                # a sweep's); the network NCCL chose is its own column ("IB" also for RoCE).
                transport="nccl", nccl_network=run.network)
        test.rows.append({"size_bytes": row.size_bytes, "count": row.count, "in_place": row.in_place,
                          "time_s": row.time_s, "algbw_Bps": row.algbw_Bps, "busbw_Bps": row.busbw_Bps,
                          "wrong": row.wrong, "iterations": row.iterations,
                          "method": "in-place" if row.in_place else "out-of-place", "line": row.line})
        test.raw += [{"size_bytes": row.size_bytes, "in_place": row.in_place, "iteration": i, "time_s": t}
                     for i, t in enumerate(row.per_iter_s)]
    if not tests:
        raise bad_input(path, run.header_line, "every row says N/A: the report measured nothing",
                        "give the report of a run that measured")
    return ParsedReport("nccl-tests", run.format, run.version if run.format == "text" else None, list(tests.values()),
                        hosts=run.hosts, ranks=run.nranks, facts=_facts(run), missing=missing)


def _check_text(run: NcclTestsRun, path: str, named: str | None, given: str | None) -> None:
    if run.header_line is None:
        raise bad_input(path, None, "no nccl-tests result table (no '#  size  count  type ... busbw' header line)",
                        FIX_TEXT)
    if not run.rows:
        raise bad_input(path, run.header_line, "an nccl-tests table header with no result rows under it", FIX_TEXT)
    if named is not None and given is not None and named != given:
        raise bad_input(path, None, f"--workload says {given} but the report says {named}",
                        "drop --workload, or give the file that binary printed")


def _check_json(run: NcclTestsRun, path: str, named: str | None, given: str | None, workload: str | None) -> None:
    if named and given and given != named:
        raise bad_input(path, None, f"--workload says {workload} but the file's args say {run.json_facts['args'][0]}",
                        "drop --workload, or give the file that binary wrote")
    if not run.rows:
        raise bad_input(path, None, "the JSON file's 'results' list is empty", "give the file of a run that measured")


def _facts(run: NcclTestsRun) -> dict[str, Any]:
    """What the report states beyond its rows, kept in run.json."""
    facts: dict[str, Any] = dict(run.json_facts)
    if run.nccl_version is not None or run.format == "json":  # -J always writes it
        facts["nccl_version"] = run.nccl_version
    if run.network:
        facts["nccl_network"] = run.network
    if run.ranks and run.format == "text":
        facts["devices"] = [r["name"] for r in run.ranks]
    if run.out_of_bounds is not None:
        facts["out_of_bounds"] = run.out_of_bounds
    if run.avg_busbw_Bps is not None:
        facts["avg_busbw_Bps"] = run.avg_busbw_Bps  # SI, as every stored figure (docs/UNITS.md)
    return facts
