"""pandas views of stored results: curves per message size, and labels for them.

Pure functions over DataFrames from ``benchfab.load_run`` / ``load_runs``; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .records import MEASUREMENT_KEY
from .units import format_size
from .workloads import family_of
from .workloads.collectives import bandwidth_table
from .workloads.frames import TABLE_ROW, ok_rows, table_groups
from .workloads.point_to_point import p2p_table

__all__ = ["COMPARE_KEYS", "LOG_Y_RATIO", "TABLE_ROW", "TAIL_LOG_RATIO", "Comparison", "ProfileCurve", "bandwidth_table",
           "curve_label", "curves", "ok_rows", "p2p_table", "pair_matrix", "pair_rows", "profile_comparisons",
           "profile_order", "size_ticks", "slowest_pairs", "table_groups", "topology_order", "y_scale"]

CURVE_KEYS = ["run_id", "test_id", "workload", "ranks", "dtype", "redop", "transport", "fabric", "mode", "in_place"]


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


# One rule for every figure's y axis: linear from zero, so that a 12 -> 21 -> 15 Gb/s
# wobble looks like the 30 % it is; log only when the values span more than two
# decades (busbw from 8 B to 1 GB, time per op), where a linear axis would flatten
# everything but the largest sizes into the floor.
LOG_Y_RATIO = 100.0
# A tail band (median to p99) is drawn above its line: when the band's top exceeds the
# lowest line point by more than a decade, a linear axis from zero puts that line in the
# bottom tenth of the figure (the quickstart run: median 35 us under a band to 1,500 us),
# so a band switches to log one decade sooner than lines alone.
TAIL_LOG_RATIO = 10.0


def y_scale(values: list[float], band_tops: list[float] | None = None) -> str:
    """The y axis for what a figure draws: 'log' when max/min of the positive line values
    exceeds LOG_Y_RATIO, or the band tops reach more than TAIL_LOG_RATIO x the lowest line
    value; else 'linear' (from 0)."""
    positive = [v for v in values if v > 0]
    if not positive:
        return "linear"
    low = min(positive)
    if max(positive) / low > LOG_Y_RATIO:
        return "log"
    tops = [v for v in band_tops or [] if v > 0]
    if tops and max(tops) / low > TAIL_LOG_RATIO:
        return "log"
    return "linear"


# -- fabric comparisons ---------------------------------------------------------
#
# Curves that differ only in their profile (and so in fabric and mode) are the same
# measurement on another fabric: a comparison groups by records.MEASUREMENT_KEY less
# the profile's columns, the node pair (the median over pairs is the profile's curve)
# and the size (the curve's x axis).
PROFILE_COLUMNS = ("profile", "fabric", "mode")
COMPARE_KEYS: tuple[str, ...] = tuple(k for k in MEASUREMENT_KEY if k not in (*PROFILE_COLUMNS, "hosts", "size_bytes"))

# The reference of a ratio panel: the established fabric and the simpler mode, so that
# the ratios read RoCE / IB and SR-IOV / shared, as the comparisons are asked.
FABRIC_RANK = {"ib": 0, "roce": 1}
MODE_RANK = {"shared": 0, "none": 0}


def profile_order(profiles: pd.DataFrame) -> list[str]:
    """Profile names, reference first: IB before RoCE before the rest, shared before SR-IOV, then by name.

    ``profiles``: rows with the PROFILE_COLUMNS (one per profile is enough)."""
    first = profiles.drop_duplicates("profile")
    ranked = sorted(first.itertuples(index=False),
                    key=lambda r: (FABRIC_RANK.get(str(r.fabric), 9), MODE_RANK.get(str(r.mode), 9), str(r.profile)))
    return [str(r.profile) for r in ranked]


@dataclass(frozen=True)
class ProfileCurve:
    """One profile's curve of a comparison: per size, the median over the profile's
    tests, node pairs and runs (band and link rate likewise)."""

    profile: str
    fabric: str
    mode: str
    points: pd.DataFrame  # size_bytes, value, band (NaN without one), link_rate_bps (NaN where unknown)

    @property
    def label(self) -> str:
        return f"{self.profile} ({self.fabric}, {self.mode})"


@dataclass(frozen=True)
class Comparison:
    """The profiles' curves of one comparison group (COMPARE_KEYS), reference first."""

    key: dict[str, object]
    curves: tuple[ProfileCurve, ...]

    @property
    def label(self) -> str:
        k = self.key
        parts = [str(k.get("workload")), f"{k.get('ranks')} ranks"]
        parts += [str(k[c]) for c in ("transport", "engine", "memory") if _known(k.get(c))]
        parts += [str(k[c]) for c in ("dtype", "redop") if _known(k.get(c)) and k[c] != "none"]
        if k.get("in_place") is True:
            parts.append("in-place")
        return " ".join(parts)

    def ratios(self) -> list[tuple[ProfileCurve, pd.Series]]:
        """Each other profile's value / the reference's, at the sizes both measured."""
        ref = self.curves[0].points.set_index("size_bytes")["value"]
        out = []
        for curve in self.curves[1:]:
            mine = curve.points.set_index("size_bytes")["value"]
            both = mine.index.intersection(ref.index)
            out.append((curve, (mine[both] / ref[both]).sort_index()))
        return out


def _known(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)


def profile_comparisons(summary: pd.DataFrame, column: str, band: str | None = None) -> list[Comparison]:
    """Every comparison group measured on more than one profile, its curves reference first."""
    rows = ok_rows(summary)
    if rows.empty or column not in rows.columns or "profile" not in rows.columns:
        return []
    rows = rows[rows[column].notna() & rows["profile"].notna()]
    if rows.empty or rows["profile"].nunique() < 2:
        return []
    rows = rows.assign(_band=rows[band] if band and band in rows.columns else float("nan"),
                       _rate=rows["link_rate_bps"] if "link_rate_bps" in rows.columns else float("nan"))
    rows = rows.astype({"_band": float, "_rate": float})
    keys = [k for k in COMPARE_KEYS if k in rows.columns]
    found = []
    for key, group in rows.groupby(keys, dropna=False, sort=True):
        if group["profile"].nunique() < 2:
            continue
        order = profile_order(group)
        curves = []
        for name in order:
            mine = group[group["profile"] == name]
            points = (mine.groupby("size_bytes")
                      .agg(value=(column, "median"), band=("_band", "median"), link_rate_bps=("_rate", "median"))
                      .reset_index().sort_values("size_bytes"))
            first = mine.iloc[0]
            curves.append(ProfileCurve(name, str(first["fabric"]), str(first["mode"]), points))
        values = key if isinstance(key, tuple) else (key,)
        found.append(Comparison(dict(zip(keys, values)), tuple(curves)))
    return found


# -- pair matrices ----------------------------------------------------------------


def pair_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Ok rows measured between exactly two distinct nodes (all-pairs, ring, retest rounds)."""
    rows = ok_rows(summary)
    if rows.empty or "hosts" not in rows.columns:
        return rows.iloc[0:0] if not rows.empty else rows
    hosts = rows["hosts"].fillna("").astype(str).str.split(",")
    return rows[hosts.map(lambda h: len(h) == 2 and h[0] != h[1] and all(h))]


def topology_order(nodes: list[str], leaf: dict[str, str | None] | None = None) -> list[str]:
    """Nodes sorted by topology label (leaf switch) when known, then by name: pairs within
    a leaf sit in blocks on the diagonal, cross-leaf pairs off it."""
    labels = leaf or {}
    return sorted(nodes, key=lambda n: (labels.get(n) is None, str(labels.get(n) or ""), n))


def pair_matrix(summary: pd.DataFrame, column: str, at: str = "largest",
                leaf: dict[str, str | None] | None = None) -> pd.DataFrame:
    """Node x node matrix of ``column`` at the largest (bandwidth) or smallest (latency) size.

    One cell per pair (both orders: a pair measures the link between the two), the median
    over repeats and runs; NaN where a pair was not measured. Rows and columns in
    ``topology_order``. ``summary``: the rows of one workload and profile."""
    rows = pair_rows(summary)
    if not rows.empty:
        rows = rows[rows[column].notna()]
    if rows.empty:
        return pd.DataFrame(dtype=float)
    size = rows["size_bytes"].max() if at == "largest" else rows["size_bytes"].min()
    rows = rows[rows["size_bytes"] == size]
    pairs = rows["hosts"].astype(str).str.split(",")
    cells = pd.DataFrame({"a": pairs.str[0], "b": pairs.str[1], "value": rows[column].astype(float)})
    both = pd.concat([cells, cells.rename(columns={"a": "b", "b": "a"})], ignore_index=True)
    nodes = topology_order(sorted(set(both["a"])), leaf)
    matrix = both.groupby(["a", "b"])["value"].median().unstack().reindex(index=nodes, columns=nodes)
    matrix.attrs["size_bytes"] = int(size)
    return matrix


def slowest_pairs(matrix: pd.DataFrame, higher_is_better: bool, count: int = 5) -> pd.DataFrame:
    """The ``count`` worst pairs of a pair matrix: node_a, node_b, value, and its ratio to the
    median pair (below 1 is worse for bandwidth, above 1 for latency)."""
    columns = ["node_a", "node_b", "value", "vs_median"]
    if matrix.empty:
        return pd.DataFrame(columns=columns)
    nodes = list(matrix.index)
    cells = [(a, b, float(matrix.loc[a, b])) for i, a in enumerate(nodes) for b in nodes[i + 1:]
             if pd.notna(matrix.loc[a, b])]
    if not cells:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(cells, columns=columns[:3])
    median = float(table["value"].median())
    table["vs_median"] = table["value"] / median if median else float("nan")
    table = table.sort_values("value", ascending=higher_is_better, kind="stable")
    return table.head(count).reset_index(drop=True)
