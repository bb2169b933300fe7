"""The measurement key (records.MEASUREMENT_KEY) as comparisons use it: every row of
a run grouped by it, rows whose key is incomplete set aside and reported, a short
id per key, and what each key measured beyond its key columns (its fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..records import MEASUREMENT_KEY
from ..runlock import holder
from ..store import atomic_write_bytes, read_columns, read_meta
from ..units import format_size
from ..untrusted import regular_file_problem
from ..workloads import family_of
from .noise import log_units, log_values

Key = tuple[Any, ...]  # the MEASUREMENT_KEY values of one measurement, in that order

# Per-row figures a comparison reads besides the key: the judged metrics of every
# family, the data check, and the point-to-point test's device settings.
SUMMARY_READ = ("test_id", "test_name", "status", "reason", "busbw_Bps", "bw_avg_Bps", "lat_median_s", "wrong", "wrong_bytes",
                "rdma_device", "gid_index", "link_layer", "mtu", "env_check")
_INTEGER_KEYS = {"ranks", "nodes", "size_bytes"}


def key_dict(key: Key) -> dict[str, Any]:
    return dict(zip(MEASUREMENT_KEY, key))


def key_id(key: Key) -> str:
    """A short, stable, readable id, e.g. allreduce/ib-shared[ib:shared]/nccl/cuda/float32.sum/8MiB/2r2n/out/a,b
    (a test's settings appended: .../a,b/env:NCCL_ALGO=Ring NCCL_PROTO=LL). Every key column is in
    it, so two keys never share an id; a key without settings keeps the id it had before them."""
    k = key_dict(key)
    place = "in" if k["in_place"] else "out"
    env = f"/env:{k['env']}" if k.get("env") else ""
    return (f"{k['workload']}/{k['profile']}[{k['fabric']}:{k['mode']}]/{k['transport']}.{k['engine']}/{k['memory']}/"
            f"{k['dtype']}.{k['redop']}/{format_size(k['size_bytes'])}/{k['ranks']}r{k['nodes']}n/{place}/{k['hosts']}"
            f"{env}")


def incomplete_mask(summary: pd.DataFrame) -> pd.Series:
    """Rows that lack a key column's value: never grouped with others (which key would they be?)."""
    mask = pd.Series(False, index=summary.index)
    for column in MEASUREMENT_KEY:
        mask |= summary[column].isna()
    return mask


@dataclass
class KeyData:
    """One key's rows in one run (several with repeats of a test)."""

    ok: bool = True
    reason: str = ""
    metric: str = ""
    higher_is_better: bool = True
    of_times: str = "mean"  # how the judged figure is made from iteration times (JudgedMetric.of_times)
    median: float | None = None  # of the judged metric over the key's rows
    # The log figure of each independent-enough unit of this run (benchfab.compare.noise):
    # each repeat's, or each block of consecutive iterations'; empty when neither is known.
    units: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    unit_kind: str = ""  # "repeats", "blocks" or "" (none)
    test_name: str = ""  # the spec entry that measured it (the first row's)
    wrong: int = 0
    measured: dict[str, Any] = field(default_factory=dict)  # what was used: NCCL network, HCA, GID...


@dataclass
class RunData:
    """A stored run as a comparison reads it: per key, its KeyData."""

    run_id: str
    meta: dict[str, Any]
    keys: dict[Key, KeyData]
    incomplete: list[dict[str, Any]]


@dataclass
class _Grouped:
    """A run's summary rows with complete keys, each row's key index, and per key the
    aggregates (vectorised: a history reads a hundred runs of ten thousand rows)."""

    run_id: str
    meta: dict[str, Any]
    rows: pd.DataFrame  # complete rows; column "key_index"
    keys: list[Key]
    first: pd.DataFrame  # the first row of each key, in key order
    median: npt.NDArray[np.float64]
    rows_per_key: npt.NDArray[np.int64]
    ok: npt.NDArray[np.bool_]
    wrong: npt.NDArray[np.int64]
    incomplete: list[dict[str, Any]]


def _group(path: Path, tests: pd.DataFrame | None) -> _Grouped:
    meta = read_meta(path)
    run_id = str(meta.get("run_id") or path.name)
    summary = read_columns(path, "summary", list(dict.fromkeys(MEASUREMENT_KEY + SUMMARY_READ)))
    bad = incomplete_mask(summary)
    incomplete = [{"run": run_id, "test_id": str(r["test_id"]), "size_bytes": r["size_bytes"],
                   "missing": [c for c in MEASUREMENT_KEY if pd.isna(r[c])]}
                  for r in summary[bad].to_dict("records")]
    rows = summary[~bad].reset_index(drop=True)
    columns = [rows[c].astype("int64").tolist() if c in _INTEGER_KEYS else
               rows[c].astype(bool).tolist() if c == "in_place" else rows[c].astype(str).tolist()
               for c in MEASUREMENT_KEY]
    index: dict[Key, int] = {}
    rows["key_index"] = [index.setdefault(k, len(index)) for k in zip(*columns)] if len(rows) else []
    value = pd.Series(np.nan, index=rows.index)
    for workload in rows["workload"].unique():
        metric = family_of(str(workload)).judged_metric(str(workload)).column
        mask = rows["workload"] == workload
        value[mask] = rows.loc[mask, metric].astype("float64")
    ok = rows["status"] == "ok"
    if tests is not None and not tests.empty:
        test_ok = rows["test_id"].map(dict(zip(tests["test_id"], tests["status"] == "ok")))
        ok &= test_ok.fillna(True).astype(bool)
    wrong = rows["wrong"].fillna(0).astype("int64") + rows["wrong_bytes"].fillna(0).astype("int64")
    frame = pd.DataFrame({"key_index": rows["key_index"], "value": value, "ok": ok, "wrong": wrong})
    grouped = frame.groupby("key_index", sort=True)
    return _Grouped(run_id, meta, rows, list(index), rows.drop_duplicates("key_index").sort_values("key_index"),
                    grouped["value"].median().to_numpy(dtype=np.float64), grouped.size().to_numpy(dtype=np.int64),
                    grouped["ok"].all().to_numpy(dtype=bool),
                    grouped["wrong"].sum().to_numpy(dtype=np.int64), incomplete)


# A history reads the same earlier runs night after night: each complete run's key ->
# median table is kept beside its tables, stamped with what it was computed from (every
# summary/ and tests/ part's size and change time), so a stale one is never read, and a
# part damaged since is read, and reported, again. A cache, never the data: delete it freely.
MEDIANS_CACHE = ".benchfab-medians.parquet"


def _stamp(path: Path) -> str:
    """What a run's medians were computed from: each summary/ and tests/ part's name, size
    and change time (a part rewritten, cut short or removed, or a resume's new part, makes
    the cache stale), hashed. One scandir per folder: a history stamps 100 runs of 100 parts."""
    digest = hashlib.sha256()
    for table in ("summary", "tests"):
        try:
            with os.scandir(path / table) as entries:
                parts = sorted((e.name, e.stat()) for e in entries if e.name.endswith(".parquet"))
        except OSError:
            digest.update(f"{table}:-;".encode())
            continue
        for name, info in parts:
            digest.update(f"{table}/{name}:{info.st_size}:{info.st_mtime_ns};".encode())
    return digest.hexdigest()


def _cached_medians(path: Path, stamp: str) -> pd.Series | None:
    cache = path / MEDIANS_CACHE
    if regular_file_problem(cache) is not None:  # missing, or a FIFO planted there (an open would block)
        return None
    try:
        table = pq.read_table(cache)
    except (OSError, pa.ArrowException):
        return None
    if (table.schema.metadata or {}).get(b"stamp", b"").decode() != stamp or table.column_names != ["key_id", "median"]:
        return None
    return pd.Series(table.column("median").to_numpy(), index=pd.Index(table.column("key_id").to_numpy(zero_copy_only=False)))


def _write_medians(path: Path, stamp: str, medians: pd.Series) -> None:
    table = pa.table({"key_id": medians.index.astype(str).to_numpy(), "median": medians.to_numpy(dtype=np.float64)})
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata({"stamp": stamp}), sink)
    try:
        atomic_write_bytes(path / MEDIANS_CACHE, sink.getvalue().to_pybytes())
    except OSError:
        pass  # a read-only results directory: no cache, the next history computes it again


def load_medians(path: Path, owned: bool = False) -> tuple[str, pd.Series]:
    """(run id, key id -> median of its judged metric) over the keys measured without fault:
    what a history needs of each earlier run (its tests/ table is not read). Complete runs
    keep the result in a stamped file beside their tables: the sweep that holds the run
    (``owned``) writes it when it ends; a run without it (older, imported, diagnosed since)
    gets it from the first history that reads it, unless a controller holds the run."""
    meta = read_meta(path)
    stamp = _stamp(path)
    complete = meta.get("status") == "complete"
    if complete and (cached := _cached_medians(path, stamp)) is not None:
        return str(meta.get("run_id") or path.name), cached
    g = _group(path, None)
    clean = g.ok & (g.wrong == 0) & ~np.isnan(g.median)
    medians = pd.Series(g.median[clean], index=pd.Index([key_id(k) for k, c in zip(g.keys, clean) if c]), dtype=np.float64)
    # A run a controller holds (a diagnose adding retests) is left to it: it writes the file when it ends.
    if complete and (owned or holder(path) is None):
        _write_medians(path, stamp, medians)
    return g.run_id, medians


def load_keys(path: Path, with_samples: bool = True) -> RunData:
    """Read one run's summary, tests (and raw) tables with one Arrow scan each and group them by key."""
    tests = read_columns(path, "tests", ["test_id", "status", "reason", "used"])
    g = _group(path, tests)
    test_info = {str(t["test_id"]): t for t in tests.to_dict("records")}
    facts_by_test = {tid: _rank_facts(t.get("used")) for tid, t in test_info.items()}
    keys: dict[Key, KeyData] = {}
    bad_rows = g.rows[g.rows["status"] != "ok"].drop_duplicates("key_index").set_index("key_index")
    # columns as lists: a row-wise to_dict of Arrow-backed strings is ten times slower
    first = {c: g.first[c].tolist() for c in ("workload", "test_id", "test_name", "rdma_device", "gid_index", "link_layer",
                                              "mtu", "env_check")}
    metrics = {w: family_of(str(w)).judged_metric(str(w)) for w in set(first["workload"])}
    for i, key in enumerate(g.keys):
        metric = metrics[first["workload"][i]]
        test_id = str(first["test_id"][i])
        median = float(g.median[i])
        data = KeyData(ok=bool(g.ok[i]), metric=metric.column, higher_is_better=metric.higher_is_better,
                       of_times=metric.of_times, median=None if median != median else median, wrong=int(g.wrong[i]),
                       test_name=str(first["test_name"][i]), measured=dict(facts_by_test.get(test_id, {})))
        if not data.ok:
            test = test_info.get(test_id, {})
            status, reason = ((bad_rows.loc[i, "status"], bad_rows.loc[i, "reason"]) if i in bad_rows.index
                              else (test.get("status"), test.get("reason")))
            data.reason = f"{status}: {reason}" if reason else str(status)
        for column, label in (("rdma_device", "RDMA device"), ("gid_index", "GID index"), ("link_layer", "link layer"),
                              ("mtu", "MTU"), ("env_check", "NCCL settings")):
            value = first[column][i]
            if value is not None and value == value:
                data.measured.setdefault(label, int(value) if column in ("gid_index", "mtu") else str(value))
        keys[key] = data
    if with_samples and keys:
        _attach_repeats(g, keys)
        single = g.rows_per_key[g.rows["key_index"].to_numpy(dtype=np.int64)] < 2
        _attach_blocks(path, g.rows[single], keys)
    return RunData(g.run_id, g.meta, keys, g.incomplete)


def _attach_repeats(g: _Grouped, keys: dict[Key, KeyData]) -> None:
    """A key measured by two rows or more (a test's repeats: separate launches) has one
    unit per row, its judged figure."""
    repeated = np.flatnonzero(g.rows_per_key >= 2)
    if not len(repeated):
        return
    all_keys = list(keys)
    rows = g.rows[g.rows["key_index"].isin(repeated)]
    for key_index, group in rows.groupby("key_index", sort=True):
        data = keys[all_keys[int(key_index)]]
        data.units = log_values(group[data.metric].to_numpy(dtype=np.float64))
        data.unit_kind = "repeats"


def _attach_blocks(path: Path, summary: pd.DataFrame, keys: dict[Key, KeyData]) -> None:
    """The units of each key of one row: its raw per-iteration times, matched to summary rows
    on (test, size, in-place) through one integer code each (a sorted lookup, no string
    join), split by key in one sort, and reduced to blocks of consecutive iterations."""
    raw = read_columns(path, "raw", ["test_id", "size_bytes", "in_place", "time_s"], categorical=["test_id"])
    if raw.empty or summary.empty:
        return
    tests = pd.Index(summary["test_id"].astype(str).unique())

    def code(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
        ids = frame["test_id"]
        if not isinstance(ids.dtype, pd.CategoricalDtype):
            ids = ids.astype(str).astype("category")
        # each distinct test id looked up once, then every row through its category code
        lookup = np.append(tests.get_indexer(ids.cat.categories.astype(str)), -1).astype(np.int64)
        test = lookup[ids.cat.codes.to_numpy(dtype=np.int64)]
        size = frame["size_bytes"].to_numpy(dtype=np.int64)
        flag = frame["in_place"].to_numpy(dtype=bool).astype(np.int64)
        # sizes stay below 2^40 B (1 TiB): test x size x flag packs into one int64
        return np.where(test < 0, -1, (test << 42) | (size << 1) | flag)

    row_code = code(summary)
    order = np.argsort(row_code, kind="stable")
    sorted_codes = row_code[order]
    raw_code = code(raw)
    at = np.clip(np.searchsorted(sorted_codes, raw_code), 0, len(sorted_codes) - 1)
    matched = (sorted_codes[at] == raw_code) & (raw_code >= 0)
    key_index = summary["key_index"].to_numpy(dtype=np.int64)[order][at][matched]
    times = raw["time_s"].to_numpy(dtype=np.float64)[matched]
    if not len(key_index):
        return
    by_key = np.argsort(key_index, kind="stable")
    key_index, times = key_index[by_key], times[by_key]
    bounds = np.flatnonzero(np.concatenate([[True], key_index[1:] != key_index[:-1], [True]]))
    all_keys = list(keys)
    for start, end in zip(bounds[:-1], bounds[1:]):
        data = keys[all_keys[int(key_index[start])]]
        data.units = log_units(times[start:end], data.of_times)
        data.unit_kind = "blocks" if len(data.units) else ""


def _rank_facts(used: Any) -> dict[str, Any]:
    """What rank 0 reported using (tests/ row ``used``): NCCL's network, HCAs, link layers,
    RoCE GID index, GPUDirect, the device, and a fall-back warning."""
    try:
        ranks = json.loads(used).get("ranks") or [] if isinstance(used, str) else []
    except (json.JSONDecodeError, AttributeError):
        return {}
    env0 = next((r for r in ranks if isinstance(r, dict) and r.get("rank") == 0), ranks[0] if ranks else None)
    if not isinstance(env0, dict):
        return {}
    facts: dict[str, Any] = {}
    found = env0.get("nccl")
    nccl: dict[str, Any] = found if isinstance(found, dict) else {}
    if nccl.get("network"):
        facts["NCCL network"] = str(nccl["network"])
    if nccl.get("hcas"):
        facts["HCA"] = ",".join(str(h) for h in nccl["hcas"])
    if nccl.get("link_layers"):
        facts["link layer"] = "/".join(sorted(str(x) for x in nccl["link_layers"]))
    if nccl.get("gid_index") is not None:
        facts["NCCL GID index"] = int(nccl["gid_index"])
    if nccl.get("gdr") is not None:
        facts["GPUDirect RDMA"] = "on" if nccl["gdr"] else "off"
    if env0.get("device"):
        facts["device"] = str(env0["device"])
    if env0.get("fallback"):
        facts["fallback"] = str(env0["fallback"])
    return facts
