"""nccl-tests' output (the text table, or the ``-J`` JSON file) as benchfab rows.

``parse_nccl_tests(text)`` is the one reader: the ``nccl-tests`` engine and
``benchfab import nccl-tests FILE`` both turn a ``*_perf`` run into the same
measurements the torch engine stores (size, count, dtype, redop, root, in-place,
time, algbw, busbw, #wrong; SI units: seconds, bytes/s with nccl-tests' 1 GB/s =
1e9 B/s). Pure parsing: no torch, no I/O.

Text: the table rows (``size count type redop root`` then time / algbw / busbw /
#wrong out-of-place and in-place; older nccl-tests print no root column; a missing
half prints N/A), with the header's ``# Collective test starting: all_reduce_perf``,
``# nccl-tests version ...``, the ``#  Rank N Group G Pid P on HOST device D`` lines
and ``# Avg bus bandwidth``. JSON: file version 3 of nccl-tests' src/util.cu
(``results[]`` with ``out_of_place`` / ``in_place`` objects).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ..errors import WorkloadError
from .catalog import COLLECTIVES, NCCL_TYPE_NAMES

# nccl-tests' type names -> benchfab's (catalog.DTYPES names).
DTYPE_OF_NCCL_NAME = {v: k for k, v in NCCL_TYPE_NAMES.items()}
WORKLOAD_OF_BINARY = {c.nccl_name: name for name, c in COLLECTIVES.items()}


@dataclass(frozen=True)
class NcclTestsRow:
    """One measurement: one size, out-of-place or in-place."""

    size_bytes: int
    count: int
    dtype: str  # benchfab's name (float32, bfloat16...)
    redop: str  # "none" for collectives without one
    root: int  # -1: none
    in_place: bool
    time_s: float | None
    algbw_Bps: float | None  # noqa: N815 - the stored column's name (records.SummaryRow)
    busbw_Bps: float | None  # noqa: N815 - the stored column's name
    wrong: int | None  # None: not checked (N/A)


@dataclass
class NcclTestsRun:
    """What one ``*_perf`` output says."""

    binary: str | None = None  # all_reduce_perf ...
    workload: str | None = None  # benchfab's name of it (allreduce ...), None if unknown
    version: str | None = None  # nccl-tests' own version
    ranks: list[dict[str, Any]] = field(default_factory=list)  # {rank, group, pid, host, device}
    rows: list[NcclTestsRow] = field(default_factory=list)
    avg_busbw_Bps: float | None = None  # noqa: N815 - as the columns spell bytes/s
    out_of_bounds: int | None = None

    @property
    def nranks(self) -> int | None:
        return len(self.ranks) or None


_BINARY = re.compile(r"Collective test (?:starting|concluded): (\S+)")
_VERSION = re.compile(r"nccl-tests version (\S+)")
_RANK = re.compile(r"#\s*Rank\s+(\d+)\s+(?:Group\s+(\d+)\s+)?Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)")
_AVG = re.compile(r"# Avg bus bandwidth\s*:\s*(\S+)")
_OOB = re.compile(r"# Out of bounds values\s*:\s*(\d+)")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None  # N/A
    return value if math.isfinite(value) else None


def _half(size: int, count: int, dtype: str, redop: str, root: int, in_place: bool,
          time_us: float | None, algbw: float | None, busbw: float | None, wrong: float | None) -> NcclTestsRow:
    return NcclTestsRow(size, count, dtype, redop, root, in_place,
                        None if time_us is None else time_us * 1e-6,
                        None if algbw is None else algbw * 1e9,
                        None if busbw is None else busbw * 1e9,
                        None if wrong is None else int(wrong))


def _text_row(tokens: list[str]) -> list[NcclTestsRow]:
    """A table row: 13 cells (with root) or 12 (nccl-tests before the root column); more
    (RCCL's algo/proto/nchannels) are ignored. Not a row: []."""
    if len(tokens) < 12 or not tokens[0].isdigit() or not tokens[1].isdigit():
        return []
    with_root = len(tokens) >= 13 and re.fullmatch(r"-?\d+", tokens[4]) is not None
    head, cells = (tokens[:5], tokens[5:13]) if with_root else (tokens[:4] + ["-1"], tokens[4:12])
    size, count, type_name, redop, root = int(head[0]), int(head[1]), head[2], head[3], int(head[4])
    dtype = DTYPE_OF_NCCL_NAME.get(type_name, type_name)
    values = [_number(c) for c in cells]
    return [_half(size, count, dtype, redop, root, in_place, *values[i:i + 4])
            for i, in_place in ((0, False), (4, True))]


def _from_text(text: str) -> NcclTestsRun:
    run = NcclTestsRun()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            if run.binary is None and (m := _BINARY.search(line)):
                run.binary = m.group(1)
            if run.version is None and (m := _VERSION.search(line)):
                run.version = m.group(1)
            if m := _RANK.match(line.strip()):
                run.ranks.append({"rank": int(m.group(1)), "group": int(m.group(2) or 0), "pid": int(m.group(3)),
                                  "host": m.group(4), "device": int(m.group(5))})
            if m := _AVG.search(line):
                avg = _number(m.group(1))
                run.avg_busbw_Bps = None if avg is None else avg * 1e9
            if m := _OOB.search(line):
                run.out_of_bounds = int(m.group(1))
            continue
        run.rows.extend(_text_row(line.split()))
    return run


def _from_json(doc: dict[str, Any]) -> NcclTestsRun:
    run = NcclTestsRun()
    args = doc.get("args") or []
    if args:
        run.binary = PurePath(str(args[0])).name
    for res in doc.get("results") or []:
        size, count = int(res["size"]), int(res["count"])
        dtype = DTYPE_OF_NCCL_NAME.get(str(res.get("type")), str(res.get("type")))
        redop, root = str(res.get("redop", "none")), int(str(res.get("root", "-1")).strip() or -1)
        for key, in_place in (("out_of_place", False), ("in_place", True)):
            half = res.get(key)
            if not half:  # null: nccl-tests did not run this half
                continue
            time_us = half.get("time", half.get("cpu_time"))
            run.rows.append(_half(size, count, dtype, redop, root, in_place, time_us, half.get("alg_bw"),
                                  half.get("bus_bw"), half.get("nwrong")))
    avg = (doc.get("average_bus_bandwidth") or {}).get("bandwidth")
    run.avg_busbw_Bps = None if avg is None else float(avg) * 1e9
    oob = (doc.get("out_of_bounds") or {}).get("count")
    run.out_of_bounds = None if oob is None else int(oob)
    for dev in doc.get("devices") or []:
        run.ranks.append({"rank": dev.get("rank"), "group": dev.get("group"), "pid": dev.get("pid"),
                          "host": dev.get("hostname"), "device": dev.get("device")})
    return run


def parse_nccl_tests(text: str, binary: str | None = None) -> NcclTestsRun:
    """nccl-tests' output, text table or ``-J`` JSON (told apart by the first character).
    ``binary`` (e.g. from the file name or the command run) names the collective when
    the output does not."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"not nccl-tests JSON output: {exc}",
                                hint="pass the file nccl-tests wrote with -J, or its text output") from None
        try:
            run = _from_json(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkloadError(f"nccl-tests JSON output without the expected fields ({exc})",
                                hint="pass a file written by nccl-tests -J (JSON file version 3)") from None
    else:
        run = _from_text(text)
    run.binary = run.binary or binary
    run.workload = WORKLOAD_OF_BINARY.get(run.binary or "")
    return run
