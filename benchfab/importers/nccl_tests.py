"""nccl-tests' reports: the text table every binary prints, and the JSON file of ``-J``.

Text (``src/util.cu`` writeResultHeader / writeBenchmarkLine*): a header line naming the
columns (size, count, type, redop, root, then time algbw busbw #wrong for out-of-place and
again for in-place; with ``-I 1`` four per-iteration columns follow each half; releases
before 2.10 print ``error`` (the largest difference) instead of ``#wrong`` and no root),
one row per size (and data type / reduction with ``-d all`` / ``-o all``), then
``# Out of bounds values`` and ``# Avg bus bandwidth``. ``#  Rank N ... on HOST`` lines
name the ranks' hosts; ``# nccl-tests version`` (2.17 on) and ``# Collective test
starting: all_reduce_perf`` the release and the binary. Lines that ``mpirun
--tag-output`` prefixes with ``[1,0]<stdout>:`` are read without the prefix.

JSON (``-J FILE.json``, file version 3): ``args`` (argv, whose first entry is the binary),
``nccl_version``, ``config`` (iterations, ``devices``: rank, hostname...), ``results``
(size, count, type, redop, root, ``out_of_place`` / ``in_place``: time in us, alg_bw,
bus_bw in GB/s, nwrong; with ``-I 1`` also ``*_per_iter.times_us``, kept as raw rows).

Time is in microseconds, bandwidth in GB/s (1e9 B/s), as nccl-tests prints them.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePath
from typing import Any

from ..errors import UsageError
from ..oneoff import NCCL_DTYPES, resolve_workload
from ..workloads.catalog import COLLECTIVES
from .parsed import ParsedReport, ParsedTest, bad_input

_TAG = re.compile(r"^\[\d+,\d+\]<std(?:out|err)>:")  # mpirun --tag-output
_VERSION = re.compile(r"^#\s*nccl-tests version (\S+)")
_NETWORK = re.compile(r"NCCL INFO Using network (\S+)")  # NCCL_DEBUG=INFO: IB or Socket
_NCCL_VERSION = re.compile(r"\bNCCL version (\S+)")
_STARTING = re.compile(r"^#\s*Collective test starting:\s*(\S+)")
_ITERS = re.compile(r"warmup iters:\s*(\d+)\s+iters:\s*(\d+)")
_RANK = re.compile(r"^#\s*Rank\s+(\d+)\s+(?:Group\s+\d+\s+)?Pid\s+\d+\s+on\s+(\S+)\s+device\s+(\d+)\s*(.*)$")
_OUT_OF_BOUNDS = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s*(\S*)")
_AVG_BUSBW = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*([0-9.eE+-]+)")
_TIME_COLUMNS = ("time", "cputime")
_FIX_TABLE = "give the output of an nccl-tests binary as it printed it (all_reduce_perf ...), or its -J JSON file"


def collective_of(name: str, path: str, line: int | None) -> str:
    """benchfab's collective for a binary path or name nccl-tests reports (./build/all_reduce_perf)."""
    stem = PurePath(name).name.removesuffix("_mpi")
    try:
        workload = resolve_workload(stem)
    except UsageError:  # reworded below, for the file
        workload = ""
    if workload not in COLLECTIVES:
        raise bad_input(path, line, f"{name!r} is not an nccl-tests collective benchfab stores",
                        f"benchfab stores {', '.join(c.nccl_name for c in COLLECTIVES.values())}; "
                        "give --workload with the binary that printed the report")
    return workload


def _transport(network: str | None) -> str | None:
    """NCCL's network as benchfab's collective rows name it ("ib" also for RoCE: NCCL's IB verbs)."""
    return network.lower() if network else None


def _dtype(name: str) -> str:
    return NCCL_DTYPES.get(name, name)


def parse_text(text: str, path: str, workload: str | None) -> ParsedReport:
    """The report's tables; ``workload`` (a binary or benchfab name) for reports that do not name theirs."""
    workload = collective_of(workload, path, None) if workload else None
    lines = [_TAG.sub("", line) for line in text.splitlines()]
    facts: dict[str, Any] = {}
    version = None
    named: str | None = None
    iterations: int | None = None
    ranks: dict[int, str] = {}
    header: tuple[int, list[str], list[list[str]]] | None = None  # line, prefix columns, halves
    tests: dict[tuple[str, str], ParsedTest] = {}
    seen: dict[tuple[str, str, int], int] = {}
    for lineno, line in enumerate(lines, 1):
        s = line.strip()
        if m := _VERSION.match(s):
            version = m.group(1)
        elif m := _NCCL_VERSION.search(s):
            facts["nccl_version"] = m.group(1)
        elif m := _NETWORK.search(s):
            facts["nccl_network"] = m.group(1)
        elif m := _STARTING.match(s):
            named = collective_of(m.group(1), path, lineno)
        elif m := _RANK.match(s):
            ranks[int(m.group(1))] = m.group(2)
            facts.setdefault("devices", []).append(" ".join(m.group(4).split()))
        elif m := _OUT_OF_BOUNDS.match(s):
            facts["out_of_bounds"] = int(m.group(1))
        elif m := _AVG_BUSBW.match(s):
            facts["avg_busbw_GBps"] = float(m.group(1))
        elif s.startswith("#") and "size" in s.split() and "busbw" in s:
            header = (lineno, *_columns(s, path, lineno))
        elif header is not None and s and s.split()[0].isdigit():
            _row(s, lineno, header, path, tests, seen, iterations)
        if m := _ITERS.search(s):
            iterations = int(m.group(2))
    if header is None:
        raise bad_input(path, None, "no nccl-tests result table (no '#  size  count  type ... busbw' header line)",
                        _FIX_TABLE)
    if not tests:
        raise bad_input(path, header[0], "an nccl-tests table header with no result rows under it", _FIX_TABLE)
    if named is None and workload is None:
        raise bad_input(path, None, "the report does not name its collective (nccl-tests before 2.17 print no "
                        "'# Collective test starting' line)", "give --workload all_reduce_perf (the binary that printed it)")
    if named is not None and workload is not None and named != workload:
        raise bad_input(path, None, f"--workload says {workload} but the report says {named}",
                        "drop --workload, or give the file that binary printed")
    hosts = [ranks[r] for r in sorted(ranks)]
    found = named or workload or ""
    for test in tests.values():
        test.workload, test.binary = found, COLLECTIVES[found].nccl_name
        test.transport = _transport(facts.get("nccl_network"))
    return ParsedReport("nccl-tests", "text", version, list(tests.values()), hosts=hosts,
                        ranks=len(ranks) or None, facts=facts)


def _columns(header: str, path: str, lineno: int) -> tuple[list[str], list[list[str]]]:
    """The prefix columns (size count type redop root) and the two halves' columns."""
    names = [n for n in header.lstrip("#").split() if n != "timestamp"]
    starts = [i for i, n in enumerate(names) if n in _TIME_COLUMNS]
    if len(starts) != 2 or names[0] != "size":
        raise bad_input(path, lineno, "not an nccl-tests table header (expected size, count, type, ..., then time "
                        "algbw busbw #wrong for out-of-place and for in-place)", _FIX_TABLE)
    return names[:starts[0]], [names[starts[0]:starts[1]], names[starts[1]:]]


def _row(s: str, lineno: int, header: tuple[int, list[str], list[list[str]]], path: str,
         tests: dict[tuple[str, str], ParsedTest], seen: dict[tuple[str, str, int], int], iterations: int | None) -> None:
    _, prefix, halves = header
    cells = s.split()
    need = len(prefix) + len(halves[0]) + len(halves[1])
    if len(cells) < need:
        raise bad_input(path, lineno, f"a table row with {len(cells)} of the header's {need} columns",
                        "give the whole row as nccl-tests printed it (was the output cut short?)")
    head = dict(zip(prefix, cells))
    try:
        size, count = int(head["size"]), int(head["count"])
    except (KeyError, ValueError):
        raise bad_input(path, lineno, "size and count must be whole numbers", _FIX_TABLE) from None
    dtype, redop = _dtype(head.get("type", "none")), head.get("redop", "none")
    key = (dtype, redop)
    test = tests.get(key)
    if test is None:  # workload and binary are set once the whole file is read
        test = tests[key] = ParsedTest(workload="", binary="", family="collective", memory="cuda", dtype=dtype,
                                       redop=redop, root=int(head.get("root", -1)))
    if (dtype, redop, size) in seen:
        raise bad_input(path, lineno, f"size {size} ({dtype}, {redop}) appears twice (line {seen[dtype, redop, size]} "
                        "too): two runs in one file?", "split the file, one run each, and import each")
    seen[dtype, redop, size] = lineno
    at = len(prefix)
    for in_place, names in ((False, halves[0]), (True, halves[1])):
        half = dict(zip(names, cells[at:at + len(names)]))
        at += len(names)
        test.rows.append(_half(half, size, count, in_place, iterations, path, lineno))


def _half(half: dict[str, str], size: int, count: int, in_place: bool, iterations: int | None,
          path: str, lineno: int) -> dict[str, Any]:
    try:
        time_us = float(half.get("time", half.get("cputime", "nan")))
        algbw, busbw = float(half["algbw"]), float(half["busbw"])
    except (KeyError, ValueError):
        raise bad_input(path, lineno, "time, algbw and busbw must be numbers", _FIX_TABLE) from None
    wrong_cell = half.get("#wrong")  # "error" (before 2.10) is the largest difference, not a count
    wrong = int(float(wrong_cell)) if wrong_cell not in (None, "N/A") else None
    return {"size_bytes": size, "count": count, "in_place": in_place, "time_s": time_us * 1e-6,
            "algbw_Bps": algbw * 1e9, "busbw_Bps": busbw * 1e9, "wrong": wrong, "iterations": iterations,
            "method": "in-place" if in_place else "out-of-place"}


def parse_json(text: str, path: str, workload: str | None) -> ParsedReport:
    """The results of an nccl-tests -J file (per-iteration times, with -I 1, as raw rows)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_input(path, exc.lineno, f"not valid JSON ({exc.msg})", "give the file nccl-tests -J wrote, whole") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise bad_input(path, None, "a JSON file without the 'results' list nccl-tests -J writes",
                        "give the file nccl-tests -J wrote")
    args = doc.get("args") or []
    named = collective_of(str(args[0]), path, None) if args else None
    name = named or (collective_of(workload, path, None) if workload else None)
    if named and workload and collective_of(workload, path, None) != named:
        raise bad_input(path, None, f"--workload says {workload} but the file's args say {args[0]}",
                        "drop --workload, or give the file that binary wrote")
    if name is None:
        raise bad_input(path, None, "the JSON file has no 'args' naming its binary", "give --workload all_reduce_perf")
    config = doc.get("config") or {}
    devices = config.get("devices") or []
    ranks = {int(d.get("rank", i)): str(d.get("hostname", "")) for i, d in enumerate(devices) if isinstance(d, dict)}
    tests: dict[tuple[str, str], ParsedTest] = {}
    for i, res in enumerate(doc["results"]):
        if not isinstance(res, dict) or "size" not in res:
            raise bad_input(path, None, f"results[{i}] has no size", "give the file nccl-tests -J wrote")
        dtype, redop = _dtype(str(res.get("type", "none"))), str(res.get("redop", "none"))
        test = tests.get((dtype, redop))
        if test is None:
            test = tests[dtype, redop] = ParsedTest(workload=name, binary=COLLECTIVES[name].nccl_name,
                                                    family="collective", memory="cuda", dtype=dtype, redop=redop,
                                                    root=int(str(res.get("root", "-1")).strip() or -1))
        try:
            _json_halves(res, test, config)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_input(path, None, f"results[{i}] is not what nccl-tests -J writes ({type(exc).__name__}: {exc})",
                            "give the file nccl-tests -J wrote, unedited") from None
    if not tests:
        raise bad_input(path, None, "the JSON file's 'results' list is empty", "give the file of a run that measured")
    # The file says its format's version, not the nccl-tests release (the text report's first line does).
    facts: dict[str, Any] = {"json_version": doc.get("version"), "nccl_version": doc.get("nccl_version"), "args": args,
                             "started": doc.get("start_time"), "ended": doc.get("end_time")}
    if isinstance(doc.get("average_bus_bandwidth"), dict):
        facts["avg_busbw_GBps"] = doc["average_bus_bandwidth"].get("bandwidth")
    if isinstance(doc.get("out_of_bounds"), dict):
        facts["out_of_bounds"] = doc["out_of_bounds"].get("count")
    return ParsedReport("nccl-tests", "json", None, list(tests.values()),
                        hosts=[ranks[r] for r in sorted(ranks)], ranks=len(ranks) or None, facts=facts)


def _json_halves(res: dict[str, Any], test: ParsedTest, config: dict[str, Any]) -> None:
    """One result object's out-of-place and in-place rows (and per-iteration times) into ``test``."""
    size = int(res["size"])
    for in_place, key in ((False, "out_of_place"), (True, "in_place")):
        half = res.get(key)
        if not isinstance(half, dict):
            continue  # null: that half was not run
        wrong = half.get("nwrong")
        time_us = half["time"] if "time" in half else half["cpu_time"]
        test.rows.append({
            "size_bytes": size, "count": int(res.get("count", 0)), "in_place": in_place,
            "time_s": float(time_us) * 1e-6,
            "algbw_Bps": float(half["alg_bw"]) * 1e9, "busbw_Bps": float(half["bus_bw"]) * 1e9,
            "wrong": int(wrong) if wrong is not None else None,
            "iterations": res.get("actual_iterations", config.get("iterations")),
            "method": "in-place" if in_place else "out-of-place"})
        per_iter = res.get(f"{key}_per_iter") or {}
        for it, t_us in enumerate(per_iter.get("times_us") or []):
            test.raw.append({"size_bytes": size, "in_place": in_place, "iteration": it, "time_s": float(t_us) * 1e-6})
