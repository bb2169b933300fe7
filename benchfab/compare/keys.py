"""The measurement key (records.MEASUREMENT_KEY) as comparisons use it: every row of
a run grouped by it, rows whose key is incomplete set aside and reported, a short
id per key, and what each key measured beyond its key columns (its fingerprint).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..records import MEASUREMENT_KEY
from ..store import read_columns, read_meta
from ..units import format_size
from ..workloads import family_of

Key = tuple[Any, ...]  # the MEASUREMENT_KEY values of one measurement, in that order

# Per-row figures a comparison reads besides the key: the judged metrics of every
# family, the data check, and the point-to-point test's device settings.
SUMMARY_READ = ("test_id", "status", "reason", "busbw_Bps", "bw_avg_Bps", "lat_median_s", "wrong", "wrong_bytes",
                "rdma_device", "gid_index", "link_layer", "mtu")
_INTEGER_KEYS = {"ranks", "nodes", "size_bytes"}


def key_of(row: Mapping[str, Any]) -> Key:
    """A row's key with plain Python values (JSON-ready, hashable)."""
    out: list[Any] = []
    for column in MEASUREMENT_KEY:
        value = row[column]
        if column in _INTEGER_KEYS:
            out.append(int(value))
        elif column == "in_place":
            out.append(bool(value))
        else:
            out.append(str(value))
    return tuple(out)


def key_dict(key: Key) -> dict[str, Any]:
    return dict(zip(MEASUREMENT_KEY, key))


def key_id(key: Key) -> str:
    """A short, stable, readable id, e.g. allreduce/ib-shared[ib:shared]/nccl/cuda/float32.sum/8MiB/2r2n/out/a,b.
    Every key column is in it, so two keys never share an id."""
    k = key_dict(key)
    place = "in" if k["in_place"] else "out"
    return (f"{k['workload']}/{k['profile']}[{k['fabric']}:{k['mode']}]/{k['transport']}.{k['engine']}/{k['memory']}/"
            f"{k['dtype']}.{k['redop']}/{format_size(k['size_bytes'])}/{k['ranks']}r{k['nodes']}n/{place}/{k['hosts']}")


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
    values: list[float] = field(default_factory=list)  # the judged metric, one per row
    samples: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))  # raw per-iteration times
    wrong: int = 0
    measured: dict[str, Any] = field(default_factory=dict)  # what was used: NCCL network, HCA, GID...

    @property
    def median(self) -> float | None:
        known = [v for v in self.values if v == v]
        return float(np.median(known)) if known else None


@dataclass
class RunData:
    """A stored run as a comparison reads it: per key, its KeyData."""

    run_id: str
    meta: dict[str, Any]
    keys: dict[Key, KeyData]
    incomplete: list[dict[str, Any]]


def load_keys(path: Path, with_samples: bool = True) -> RunData:
    """Read one run's summary (and raw) tables with one Arrow scan each and group them by key."""
    meta = read_meta(path)
    run_id = str(meta.get("run_id") or path.name)
    summary = read_columns(path, "summary", list(dict.fromkeys(MEASUREMENT_KEY + SUMMARY_READ)))
    tests = read_columns(path, "tests", ["test_id", "status", "reason", "used"])
    bad = incomplete_mask(summary)
    incomplete = [{"run": run_id, "test_id": str(r["test_id"]), "size_bytes": r["size_bytes"],
                   "missing": [c for c in MEASUREMENT_KEY if pd.isna(r[c])]}
                  for r in summary[bad].to_dict("records")]
    summary = summary[~bad]
    test_info = {str(t["test_id"]): t for t in tests.to_dict("records")}
    measured_by_test = {tid: _rank_facts(t.get("used")) for tid, t in test_info.items()}
    keys: dict[Key, KeyData] = {}
    row_key: list[Key] = []
    for row in summary.to_dict("records"):
        key = key_of(row)
        row_key.append(key)
        data = keys.get(key)
        if data is None:
            metric = family_of(str(row["workload"])).judged_metric(str(row["workload"]))
            data = keys[key] = KeyData(metric=metric.column, higher_is_better=metric.higher_is_better)
        test = test_info.get(str(row["test_id"]), {})
        for status, reason in ((row["status"], row["reason"]), (test.get("status", "ok"), test.get("reason", ""))):
            if status != "ok" and data.ok:
                data.ok, data.reason = False, f"{status}: {reason}" if reason else str(status)
        value = row[data.metric]
        data.values.append(float(value) if value is not None and value == value else float("nan"))
        for column in ("wrong", "wrong_bytes"):
            if row[column] is not None and row[column] == row[column]:
                data.wrong += int(row[column])
        facts = dict(measured_by_test.get(str(row["test_id"]), {}))
        for column, label in (("rdma_device", "RDMA device"), ("gid_index", "GID index"), ("link_layer", "link layer"),
                              ("mtu", "MTU")):
            if row[column] is not None and row[column] == row[column]:
                facts[label] = int(row[column]) if column in ("gid_index", "mtu") else str(row[column])
        for label, value in facts.items():
            data.measured.setdefault(label, value)
    if with_samples and keys:
        _attach_samples(path, summary, row_key, keys)
    return RunData(run_id, meta, keys, incomplete)


def _attach_samples(path: Path, summary: pd.DataFrame, row_key: list[Key], keys: dict[Key, KeyData]) -> None:
    """Each key's raw per-iteration times, joined on (test, size, in-place) and split in one sort."""
    raw = read_columns(path, "raw", ["test_id", "size_bytes", "in_place", "time_s"])
    if raw.empty:
        return
    index = {k: i for i, k in enumerate(keys)}
    rows = pd.DataFrame({"test_id": summary["test_id"].astype(str).to_numpy(),
                         "size_bytes": summary["size_bytes"].astype("int64").to_numpy(),
                         "in_place": summary["in_place"].astype(bool).to_numpy(),
                         "key_index": [index[k] for k in row_key]}).drop_duplicates(["test_id", "size_bytes", "in_place"])
    raw = raw.astype({"test_id": str, "size_bytes": "int64", "in_place": bool})
    joined = raw.merge(rows, on=["test_id", "size_bytes", "in_place"], how="inner")
    order = np.argsort(joined["key_index"].to_numpy(), kind="stable")
    key_index = joined["key_index"].to_numpy()[order]
    times = joined["time_s"].to_numpy(dtype=np.float64)[order]
    bounds = np.flatnonzero(np.r_[True, key_index[1:] != key_index[:-1], True])
    all_keys = list(keys)
    for start, end in zip(bounds[:-1], bounds[1:]):
        chunk = times[start:end]
        keys[all_keys[int(key_index[start])]].samples = chunk[~np.isnan(chunk)]


def _rank_facts(used: Any) -> dict[str, Any]:
    """What rank 0 reported using (tests/ row ``used``): NCCL's network, HCAs, link layers,
    GPUDirect, the device, and a fall-back warning."""
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
    if nccl.get("gdr") is not None:
        facts["GPUDirect RDMA"] = "on" if nccl["gdr"] else "off"
    if env0.get("device"):
        facts["device"] = str(env0["device"])
    if env0.get("fallback"):
        facts["fallback"] = str(env0["fallback"])
    return facts
