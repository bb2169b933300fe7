"""pandas views of stored results: curves per message size, and labels for them.

Pure functions over DataFrames from ``benchfab.load_run`` / ``load_runs``; no I/O.
"""

from __future__ import annotations

import pandas as pd

from .units import format_size
from .workloads import family_of
from .workloads.point_to_point import p2p_table

__all__ = ["LOG_Y_RATIO", "bandwidth_table", "curve_label", "curves", "ok_rows", "p2p_table", "size_ticks", "y_scale"]

CURVE_KEYS = ["run_id", "test_id", "workload", "ranks", "dtype", "redop", "transport", "fabric", "mode", "in_place"]


def ok_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows with a real measurement."""
    if summary.empty:
        return summary
    return summary[(summary["status"] == "ok") & summary["time_s"].notna()]


def curves(summary: pd.DataFrame, column: str = "time_s") -> dict[tuple[object, ...], pd.DataFrame]:
    """One curve (rows sorted by size) per test and in-place flag, over rows where ``column`` is known."""
    rows = ok_rows(summary)
    if not rows.empty and column in rows.columns:
        rows = rows[rows[column].notna()]
    if rows.empty:
        return {}
    keys = [k for k in CURVE_KEYS if k in rows.columns]
    return {
        key if isinstance(key, tuple) else (key,): group.sort_values("size_bytes")
        for key, group in rows.groupby(keys, dropna=False, sort=True)
    }


def curve_label(curve: pd.DataFrame) -> str:
    first = curve.iloc[0]
    return family_of(str(first["workload"])).curve_label({str(k): v for k, v in first.items()})


def size_ticks(sizes: list[int]) -> tuple[list[int], list[str]]:
    """Power-of-two ticks spanning the sizes, with binary labels (8B, 1K, 64M); at most 13."""
    if not sizes:
        return [], []
    lo = max(0, (min(sizes)).bit_length() - 1)
    hi = (max(sizes) - 1).bit_length() if max(sizes) > 1 else 0
    step = max(1, -(-(hi - lo) // 12))
    ticks = [1 << e for e in range(lo, hi + 1, step)]
    return ticks, [format_size(t) for t in ticks]


def bandwidth_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Peak and average bus bandwidth per test (GB/s), and total wrong elements."""
    rows = ok_rows(summary)
    if not rows.empty:
        rows = rows[rows["busbw_Bps"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=["test_id", "peak_busbw_GBps", "avg_busbw_GBps", "min_time_us", "wrong"])
    grouped = rows.groupby("test_id")
    table = pd.DataFrame({
        "peak_busbw_GBps": grouped["busbw_Bps"].max() / 1e9,
        "avg_busbw_GBps": grouped["busbw_Bps"].mean() / 1e9,
        "min_time_us": grouped["time_s"].min() * 1e6,
        "wrong": grouped["wrong"].sum(min_count=1),
    })
    return table.reset_index()


# One rule for every figure's y axis: linear from zero, so that a 12 -> 21 -> 15 Gb/s
# wobble looks like the 30 % it is; log only when the values span more than two
# decades (busbw from 8 B to 1 GB, time per op), where a linear axis would flatten
# everything but the largest sizes into the floor.
LOG_Y_RATIO = 100.0


def y_scale(values: list[float]) -> str:
    """'log' when max/min of the positive values exceeds LOG_Y_RATIO, else 'linear' (from 0)."""
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > LOG_Y_RATIO:
        return "log"
    return "linear"
