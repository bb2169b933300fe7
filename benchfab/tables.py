"""nccl-tests-style text tables of one test's results.

Columns and units follow all_reduce_perf's output: size (B), count (elements),
type, redop, root, then out-of-place and in-place time (us), algbw and busbw
(GB/s, 1 GB = 1e9 B) and #wrong. Missing halves print N/A like nccl-tests.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

NCCL_TYPE_NAMES = {
    "float32": "float", "float64": "double", "float16": "half", "bfloat16": "bfloat16",
    "int8": "int8", "uint8": "uint8", "int32": "int32", "int64": "int64",
}


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "N/A"
    return format(value, fmt)


def _half(row: dict[str, Any] | None) -> list[str]:
    if row is None or row.get("status") != "ok":
        return ["N/A"] * 4
    wrong = row.get("wrong")
    return [
        _num(row["time_s"] * 1e6 if row.get("time_s") is not None else None, ".2f"),
        _num(row["algbw_Bps"] / 1e9 if row.get("algbw_Bps") is not None else None, ".3f"),
        _num(row["busbw_Bps"] / 1e9 if row.get("busbw_Bps") is not None else None, ".3f"),
        "N/A" if wrong is None or (isinstance(wrong, float) and math.isnan(wrong)) else str(int(wrong)),
    ]


WIDTHS = [12, 12, 10, 7, 6, 11, 9, 9, 8, 11, 9, 9, 8]


def format_table(title: str, dtype: str, redop: str, root: int, rows: Iterable[dict[str, Any]]) -> str:
    by_size: dict[int, dict[bool, dict[str, Any]]] = {}
    counts: dict[int, int] = {}
    for row in rows:
        size = int(row["size_bytes"])
        by_size.setdefault(size, {})[bool(row["in_place"])] = row
        counts[size] = int(row["count"])
    head1 = ["", "", "", "", "", "out-of-place", "", "", "", "in-place", "", "", ""]
    head2 = ["size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong"]
    head3 = ["(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", ""]

    def line(cells: list[str], prefix: str = " ") -> str:
        return prefix + "".join(c.rjust(w) for c, w in zip(cells, WIDTHS))

    out = [f"# {title}", line(head1, "#"), line(head2, "#"), line(head3, "#")]
    type_name = NCCL_TYPE_NAMES.get(dtype, dtype)
    for size in sorted(by_size):
        halves = by_size[size]
        cells = [str(size), str(counts[size]), type_name, redop, str(root)]
        cells += _half(halves.get(False)) + _half(halves.get(True))
        out.append(line(cells))
    return "\n".join(out)
