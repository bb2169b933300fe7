"""nccl-tests-style text tables of one test's results.

Columns and units follow all_reduce_perf's output: size (B), count (elements),
type, redop, root, then out-of-place and in-place time (us), algbw and busbw
(GB/s, 1 GB = 1e9 B) and #wrong. Missing halves print N/A like nccl-tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

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


# Why a tcp table has no BW peak: send() returns once the kernel has copied the
# bytes into its socket buffer, not when they reach the peer, so the shortest
# per-message interval measures memcpy (5-24x the wire rate in the example run).
# BW average stays: its clock stops at the receiver's ack, after the last byte.
TCP_NO_PEAK = ("# tcp: no BW peak column (send() returns when the kernel has copied the bytes, not when they "
               "arrive); BW average is timed to the receiver's ack")


def has_meaningful_peak(transport: Any) -> bool:
    """BW peak is perftest's per-message rate: real for verbs, a memcpy rate for tcp."""
    return str(transport) != "tcp"


def format_p2p_table(title: str, workload: str, rows: Iterable[dict[str, Any]]) -> str:
    """perftest-style table: ib_write_bw (Gb/s = 1e9 bit/s, Mpps) or ib_write_lat (usec).

    A tcp bandwidth table leaves out BW peak and says so in its header (see TCP_NO_PEAK)."""
    rows = sorted(rows, key=lambda r: int(r["size_bytes"]))
    out = [f"# {title}"]
    if workload == "rdma_write_bw":
        peak = all(has_meaningful_peak(r.get("transport")) for r in rows)
        if not peak:
            out.append(TCP_NO_PEAK)
            out.append("#    #bytes  #iterations  BW average[Gb/sec]  MsgRate[Mpps]")
        else:
            out.append("#    #bytes  #iterations  BW peak[Gb/sec]  BW average[Gb/sec]  MsgRate[Mpps]")
        for r in rows:
            cells = f"  {int(r['size_bytes']):>8}  {_num(r.get('iterations'), 'd'):>11}  "
            if peak:
                cells += f"{_gbit(r.get('bw_peak_Bps')):>15}  "
            out.append(cells + f"{_gbit(r.get('bw_avg_Bps')):>18}  "
                       f"{_num(_scaled(r.get('msg_rate_pps'), 1e-6), '.6f'):>13}")
        return "\n".join(out)
    cols = ("lat_min_s", "lat_max_s", "lat_median_s", "lat_mean_s", "lat_stdev_s", "lat_p99_s", "lat_p999_s")
    out.append("#    #bytes  #iterations  t_min[usec]  t_max[usec]  t_typical[usec]  t_avg[usec]  t_stdev[usec]"
               "  99% percentile[usec]  99.9% percentile[usec]")
    widths = (11, 11, 15, 11, 13, 20, 22)
    for r in rows:
        lat_cells = [f"{_num(_scaled(r.get(c), 1e6), '.2f'):>{w}}" for c, w in zip(cols, widths)]
        out.append(f"  {int(r['size_bytes']):>8}  {_num(r.get('iterations'), 'd'):>11}  " + "  ".join(lat_cells))
    return "\n".join(out)


def _scaled(value: Any, factor: float) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value) * factor


def _gbit(bytes_per_s: Any) -> str:
    return _num(_scaled(bytes_per_s, 8e-9), ".2f")
