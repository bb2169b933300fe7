"""nccl-tests' output (the text table, or the ``-J`` JSON file) as benchfab rows.

``parse_nccl_tests(text)`` is the one reader of it: the ``nccl-tests`` engine
(nccl_tests_engine, what the binary just printed) and ``benchfab import nccl-tests
FILE`` (benchfab.importers.nccl_tests, a saved report) both turn a ``*_perf`` run
into the measurements the torch engine stores (size, count, dtype, redop, root,
in-place, time, algbw, busbw, #wrong; SI units: seconds, bytes/s with nccl-tests'
1 GB/s = 1e9 B/s). Pure parsing: no torch, no I/O. What the output cannot mean is a
``ToolOutputError`` naming the line; what a caller needs beyond that (a header, a
named collective) is the caller's rule.

Text (``src/util.cu`` writeResultHeader / writeBenchmarkLine*): a header line naming the
columns (size, count, type, redop, root, then time algbw busbw #wrong for out-of-place and
again for in-place; with ``-I 1`` per-iteration columns follow each half; ``-C`` prints
``cputime``; releases before 2.10 print ``error`` (the largest difference, not a count)
instead of ``#wrong`` and no root), one row per size (and data type / reduction with
``-d all`` / ``-o all``; a half not run prints N/A), then ``# Out of bounds values`` and
``# Avg bus bandwidth``. ``#  Rank N Group G Pid P on HOST device D ...`` lines name the
ranks' hosts; ``# nccl-tests version`` (2.17 on) and ``# Collective test starting:
all_reduce_perf`` the release and the binary; ``warmup iters: W iters: N`` the iterations
timed; NCCL_DEBUG=INFO's ``NCCL version`` and ``Using network IB`` NCCL's. Lines that
``mpirun --tag-output`` prefixes with ``[1,0]<stdout>:`` are read without the prefix. Rows
posted without their header are read in the default layout (13 cells, or 12 without root).

JSON (``-J FILE.json``, file version 3): ``args`` (argv, whose first entry is the binary),
``nccl_version``, ``config`` (iterations, ``devices``: rank, hostname...), ``results``
(size, count, type, redop, root, ``out_of_place`` / ``in_place``: time in us, alg_bw,
bus_bw in GB/s, nwrong; null: that half was not run; with ``-I 1`` also
``*_per_iter.times_us``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ..errors import ToolOutputError
from .catalog import NCCL_TYPE_NAMES
from .collective_kinds import COLLECTIVES

# nccl-tests' type names -> benchfab's (catalog.DTYPES names).
DTYPE_OF_NCCL_NAME = {v: k for k, v in NCCL_TYPE_NAMES.items()}
WORKLOAD_OF_BINARY = {c.nccl_name: name for name, c in COLLECTIVES.items()}
FIX_TEXT = "give the output of an nccl-tests binary as it printed it (all_reduce_perf ...), or its -J JSON file"
FIX_JSON = "give the file nccl-tests -J wrote, unedited"


@dataclass(frozen=True)
class NcclTestsRow:
    """One measurement: one size, out-of-place or in-place."""

    size_bytes: int
    count: int
    dtype: str  # benchfab's name (float32, bfloat16...)
    redop: str  # "none" for collectives without one
    root: int  # -1: none
    in_place: bool
    time_s: float | None  # None: nccl-tests printed N/A (the half was not run)
    algbw_Bps: float | None  # noqa: N815 - the stored column's name (records.SummaryRow)
    busbw_Bps: float | None  # noqa: N815 - the stored column's name
    wrong: int | None  # None: not checked (N/A), or a release that printed the largest error instead
    iterations: int | None = None  # the iterations timed ("iters: N", -J's actual_iterations)
    per_iter_s: tuple[float, ...] = ()  # -J with -I 1: each iteration's time
    line: int | None = field(default=None, compare=False)  # the text line it came from (None: JSON)


@dataclass
class NcclTestsRun:
    """What one ``*_perf`` output says."""

    format: str = "text"  # or "json"
    binary: str | None = None  # all_reduce_perf ... as the output (or the caller) names it
    binary_line: int | None = None  # the text line that named it
    workload: str | None = None  # benchfab's name of it (allreduce ...), None if unknown
    version: str | None = None  # nccl-tests' own version (the text's first line)
    nccl_version: str | int | None = None  # NCCL's (NCCL_DEBUG=INFO's line; -J: the number)
    network: str | None = None  # NCCL's network (NCCL_DEBUG=INFO: IB, Socket)
    ranks: list[dict[str, Any]] = field(default_factory=list)  # {rank, group, pid, host, device, name}
    header_line: int | None = None  # the table header's line; None: no header (rows in the default layout)
    rows: list[NcclTestsRow] = field(default_factory=list)
    avg_busbw_Bps: float | None = None  # noqa: N815 - as the columns spell bytes/s
    out_of_bounds: int | None = None
    json_facts: dict[str, Any] = field(default_factory=dict)  # -J: json_version, args, started, ended

    @property
    def nranks(self) -> int | None:
        return len(self.ranks) or None

    @property
    def hosts(self) -> list[str]:
        """The ranks' hosts in rank order."""
        return [str(r["host"]) for r in sorted(self.ranks, key=lambda r: int(r["rank"]))]


def workload_of_binary(name: str) -> str | None:
    """benchfab's collective for a binary path or name nccl-tests reports (./build/all_reduce_perf_mpi)."""
    return WORKLOAD_OF_BINARY.get(PurePath(name).name.removesuffix("_mpi"))


_TAG = re.compile(r"^\[\d+,\d+\]<std(?:out|err)>:")  # mpirun --tag-output
_VERSION = re.compile(r"^#\s*nccl-tests version (\S+)")
_NETWORK = re.compile(r"NCCL INFO Using network (\S+)")
_NCCL_VERSION = re.compile(r"\bNCCL version (\S+)")
_BINARY = re.compile(r"^#\s*Collective test (?:starting|concluded):\s*(\S+)")
_ITERS = re.compile(r"warmup iters:\s*(\d+)\s+iters:\s*(\d+)")
_RANK = re.compile(r"^#\s*Rank\s+(\d+)\s+(?:Group\s+(\d+)\s+)?Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)\s*(.*)$")
_OUT_OF_BOUNDS = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)")
_AVG_BUSBW = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*(\S+)")
_TIME_COLUMNS = ("time", "cputime")
_HALF = ["time", "algbw", "busbw", "#wrong"]
_INTEGER = re.compile(r"-?\d+")

_Header = tuple[list[str], list[list[str]]]  # the prefix columns (size count type redop root), the two halves'


def _number(cell: str, line: int, what: str) -> float | None:
    """A numeric cell; N/A (and inf/nan) is None."""
    if cell == "N/A":
        return None
    try:
        value = float(cell)
    except ValueError:
        raise ToolOutputError(f"{what} must be a number, not {cell!r}", line=line, hint=FIX_TEXT) from None
    return value if math.isfinite(value) else None


def _columns(header: str, line: int) -> _Header:
    names = [n for n in header.lstrip("#").split() if n != "timestamp"]
    starts = [i for i, n in enumerate(names) if n in _TIME_COLUMNS]
    if len(starts) != 2 or names[0] != "size":
        raise ToolOutputError("not an nccl-tests table header (expected size, count, type, ..., then time algbw "
                              "busbw #wrong for out-of-place and for in-place)", line=line, hint=FIX_TEXT)
    return names[:starts[0]], [names[starts[0]:starts[1]], names[starts[1]:]]


def _default_columns(cells: list[str]) -> _Header | None:
    """The layout of a row posted without its header: 13 cells (with root) or 12 (nccl-tests
    before the root column); more (RCCL's algo/proto/nchannels) are ignored. Not a row: None."""
    if len(cells) < 12 or not cells[1].isdigit():
        return None
    with_root = len(cells) >= 13 and _INTEGER.fullmatch(cells[4]) is not None
    return ["size", "count", "type", "redop", *(["root"] if with_root else [])], [_HALF, _HALF]


def _row(cells: list[str], header: _Header, line: int, iterations: int | None) -> list[NcclTestsRow]:
    """A table row's out-of-place and in-place measurements."""
    prefix, halves = header
    need = len(prefix) + len(halves[0]) + len(halves[1])
    if len(cells) < need:
        raise ToolOutputError(f"a table row with {len(cells)} of the header's {need} columns", line=line,
                              hint="give the whole row as nccl-tests printed it (was the output cut short?)")
    head = dict(zip(prefix, cells))
    try:
        size, count, root = int(head["size"]), int(head["count"]), int(head.get("root", "-1"))
    except (KeyError, ValueError):
        raise ToolOutputError("size, count and root must be whole numbers", line=line, hint=FIX_TEXT) from None
    type_name = head.get("type", "none")
    dtype, redop = DTYPE_OF_NCCL_NAME.get(type_name, type_name), head.get("redop", "none")
    rows, at = [], len(prefix)
    for in_place, names in ((False, halves[0]), (True, halves[1])):
        half = dict(zip(names, cells[at:at + len(names)]))
        at += len(names)
        time_cell = half.get("time", half.get("cputime", "N/A"))
        time_us = _number(time_cell, line, "time")
        algbw, busbw = _number(half.get("algbw", "N/A"), line, "algbw"), _number(half.get("busbw", "N/A"), line, "busbw")
        # "error" (before 2.10) is the largest difference, not a count of wrong elements: not kept as one
        wrong = _number(half.get("#wrong", "N/A"), line, "#wrong")
        rows.append(NcclTestsRow(size, count, dtype, redop, root, in_place,
                                 None if time_us is None else time_us * 1e-6,
                                 None if algbw is None else algbw * 1e9, None if busbw is None else busbw * 1e9,
                                 None if wrong is None else int(wrong), iterations, (), line))
    return rows


def _too_many(max_rows: int, line: int | None) -> ToolOutputError:
    return ToolOutputError(f"more than {max_rows} rows (result rows and per-iteration samples)", line=line,
                           hint="split the report, or raise the cap")


def _from_text(text: str, max_rows: int | None) -> NcclTestsRun:
    run = NcclTestsRun()
    header: _Header | None = None
    iterations: int | None = None
    seen: dict[tuple[str, str, int], int] = {}  # (dtype, redop, size) -> its line
    for line, raw_line in enumerate(text.splitlines(), 1):
        s = _TAG.sub("", raw_line).strip()
        if m := _VERSION.match(s):
            run.version = run.version or m.group(1)
        elif m := _NCCL_VERSION.search(s):
            run.nccl_version = m.group(1)
        elif m := _NETWORK.search(s):
            run.network = m.group(1)
        elif m := _BINARY.match(s):
            if run.binary is None:
                run.binary, run.binary_line = m.group(1), line
        elif m := _RANK.match(s):
            if all(r["rank"] != int(m.group(1)) for r in run.ranks):
                run.ranks.append({"rank": int(m.group(1)), "group": int(m.group(2) or 0), "pid": int(m.group(3)),
                                  "host": m.group(4), "device": int(m.group(5)), "name": " ".join(m.group(6).split())})
        elif m := _OUT_OF_BOUNDS.match(s):
            run.out_of_bounds = int(m.group(1))
        elif m := _AVG_BUSBW.match(s):
            avg = _number(m.group(1), line, "the average bus bandwidth")
            run.avg_busbw_Bps = None if avg is None else avg * 1e9
        elif s.startswith("#") and "size" in s.split() and "busbw" in s:
            header, run.header_line = _columns(s, line), line
        elif s and s.split()[0].isdigit():
            cells = s.split()
            layout = header or _default_columns(cells)
            if layout is None:
                continue  # a line of digits that is no row (rows without a header are read leniently)
            for row in _row(cells, layout, line, iterations):
                key = (row.dtype, row.redop, row.size_bytes)
                if seen.setdefault(key, line) != line:
                    raise ToolOutputError(f"size {row.size_bytes} ({row.dtype}, {row.redop}) appears twice (line "
                                          f"{seen[key]} too): two runs in one file?", line=line,
                                          hint="split the file, one run each, and read each")
                run.rows.append(row)
            if max_rows is not None and len(run.rows) > max_rows:
                raise _too_many(max_rows, line)
        if m := _ITERS.search(s):
            iterations = int(m.group(2))
    return run


def _from_json(text: str, max_rows: int | None) -> NcclTestsRun:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolOutputError(f"not nccl-tests JSON output (not valid JSON: {exc.msg})", line=exc.lineno,
                              hint="give the file nccl-tests -J wrote, whole, or its text output") from None
    except RecursionError:
        raise ToolOutputError("not nccl-tests JSON output (nested deeper than any -J file)", hint=FIX_JSON) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ToolOutputError("a JSON file without the 'results' list nccl-tests -J writes", hint=FIX_JSON)
    args = doc.get("args") if isinstance(doc.get("args"), list) else []
    config = _object(doc.get("config"))
    run = NcclTestsRun(format="json", binary=PurePath(str(args[0])).name if args else None,
                       nccl_version=doc.get("nccl_version"),
                       json_facts={"json_version": doc.get("version"), "args": args,
                                   "started": doc.get("start_time"), "ended": doc.get("end_time")})
    samples = 0
    for i, res in enumerate(doc["results"]):
        if not isinstance(res, dict) or "size" not in res:
            raise ToolOutputError(f"results[{i}] has no size", hint=FIX_JSON)
        try:
            rows = _json_rows(res, config)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ToolOutputError(f"results[{i}] is not what nccl-tests -J writes ({type(exc).__name__}: {exc})",
                                  hint=FIX_JSON) from None
        run.rows += rows
        samples += sum(1 + len(r.per_iter_s) for r in rows)
        if max_rows is not None and samples > max_rows:
            raise _too_many(max_rows, None)
    devices = config.get("devices") or doc.get("devices") or []
    try:
        run.ranks = [{"rank": int(d.get("rank", i)), "group": d.get("group"), "pid": d.get("pid"),
                      "host": str(d.get("hostname", "")), "device": d.get("device"), "name": d.get("name")}
                     for i, d in enumerate(devices) if isinstance(d, dict)]
    except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise ToolOutputError(f"config.devices is not what nccl-tests -J writes ({exc})", hint=FIX_JSON) from None
    avg = _object(doc.get("average_bus_bandwidth")).get("bandwidth")
    if isinstance(avg, (int, float)) and not isinstance(avg, bool) and abs(avg) < 1e300:
        run.avg_busbw_Bps = float(avg) * 1e9
    if isinstance(oob := _object(doc.get("out_of_bounds")).get("count"), int):
        run.out_of_bounds = oob
    return run


def _object(value: Any) -> dict[str, Any]:
    """A JSON object the file may leave out (or null): {} then."""
    return value if isinstance(value, dict) else {}


def _json_rows(res: dict[str, Any], config: dict[str, Any]) -> list[NcclTestsRow]:
    """One result object's out-of-place and in-place rows, with their per-iteration times."""
    size, count = int(res["size"]), int(res.get("count", 0))
    type_name = str(res.get("type", "none"))
    dtype, redop = DTYPE_OF_NCCL_NAME.get(type_name, type_name), str(res.get("redop", "none"))
    root = int(str(res.get("root", "-1")).strip() or -1)
    iterations = res.get("actual_iterations", config.get("iterations"))
    rows = []
    for in_place, key in ((False, "out_of_place"), (True, "in_place")):
        half = res.get(key)
        if not isinstance(half, dict):
            continue  # null: that half was not run
        wrong = half.get("nwrong")
        time_us = half["time"] if "time" in half else half["cpu_time"]
        per_iter = res.get(f"{key}_per_iter") or {}
        rows.append(NcclTestsRow(size, count, dtype, redop, root, in_place, float(time_us) * 1e-6,
                                 float(half["alg_bw"]) * 1e9, float(half["bus_bw"]) * 1e9,
                                 None if wrong is None else int(wrong),
                                 None if iterations is None else int(iterations),
                                 tuple(float(t) * 1e-6 for t in per_iter.get("times_us") or [])))
    return rows


def parse_nccl_tests(text: str, binary: str | None = None, *, max_rows: int | None = None) -> NcclTestsRun:
    """nccl-tests' output, text table or ``-J`` JSON (told apart by the first character).
    ``binary`` (e.g. from the command run) names the collective when the output does not;
    ``max_rows`` caps the rows and per-iteration samples read (a ToolOutputError past it)."""
    stripped = text.lstrip()
    run = _from_json(stripped, max_rows) if stripped.startswith("{") else _from_text(text, max_rows)
    run.binary = run.binary or binary
    run.workload = workload_of_binary(run.binary) if run.binary else None
    return run
