"""Verdicts per measurement key: a new run against a base run (Mann-Whitney U on the raw
per-iteration times plus a minimum effect factor, asv's rule) or against its history
(median and a MAD band, with a lookback step detector that says from which run a
key changed). What the document looks like: /work/wt/VERDICTS-CONTRACT.md, i.e.
``Comparison.to_dict`` (schema 1), written as results/<new run>/verdicts.json.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import EXIT_ALL_OK, EXIT_TESTS_NOT_OK
from ..verdicts import VERDICTS_SCHEMA, Verdict
from .keys import Key, KeyData, RunData, key_dict, key_id
from .mannwhitney import mann_whitney_u

# asv's defaults (asv continuous --factor, and its p-value cut for "significant")
DEFAULT_FACTOR = 1.10
DEFAULT_P_THRESHOLD = 0.002
# History: a new value is outside the band when it is more than this many robust
# standard deviations (1.4826 x MAD) from the history's median, as well as beyond the factor.
BAND_Z = 3.0
# Step detector: points compared with the mean of up to this many earlier runs (conbench's lookback).
LOOKBACK = 5
STEP_Z = 5.0

VERDICT_ORDER = ("failed", "changed", "worse", "missing", "new", "better", "same")


@dataclass(frozen=True)
class Method:
    test: str = "mann-whitney-u"  # or "history-mad"
    factor: float = DEFAULT_FACTOR
    p_threshold: float = DEFAULT_P_THRESHOLD


def _make(key: Key, metric: str, higher_is_better: bool, verdict: str, base_median: float | None = None,
          new_median: float | None = None, ratio: float | None = None, p_value: float | None = None,
          cause: str | None = None) -> Verdict:
    """A verdict of the one type the readers of verdicts.json use (benchfab.verdicts)."""
    return Verdict(key_dict(key), key_id(key), metric, higher_is_better, verdict, base_median, new_median, ratio,
                   p_value, cause)


@dataclass
class Comparison:
    base_label: str
    base_runs: list[str]
    new: str
    method: Method
    verdicts: list[Verdict]
    incomplete: list[dict[str, Any]] = field(default_factory=list)  # rows left out: key column(s) missing
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.regression]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.verdicts:
            out[v.verdict] = out.get(v.verdict, 0) + 1
        return out

    @property
    def exit_code(self) -> int:
        return EXIT_TESTS_NOT_OK if self.regressions else EXIT_ALL_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": VERDICTS_SCHEMA,
            "base": {"label": self.base_label, "runs": list(self.base_runs)},
            "new": self.new,
            "method": asdict(self.method),
            "verdicts": [asdict(v) for v in self.verdicts],
            "incomplete": list(self.incomplete),
            "notes": list(self.notes),
        }


def _sorted(verdicts: list[Verdict]) -> list[Verdict]:
    return sorted(verdicts, key=lambda v: (VERDICT_ORDER.index(v.verdict), v.key_id))


def _direction(ratio: float, higher_is_better: bool, factor: float) -> str:
    """'worse', 'better' or 'same' by the effect alone: a ratio beyond the factor either way."""
    slower = ratio < 1 / factor if higher_is_better else ratio > factor
    faster = ratio > factor if higher_is_better else ratio < 1 / factor
    return "worse" if slower else "better" if faster else "same"


def _changed(base: KeyData, new: KeyData) -> str | None:
    """The cause when the new run measured something else than the base under the same
    key (a fall-back to sockets, GPUDirect off, another HCA or GID), or corrupted data."""
    if new.wrong > 0:
        return f"#wrong {new.wrong} (base: {base.wrong}): the data check found corrupted data"
    if new.measured.get("fallback") and not base.measured.get("fallback"):
        return str(new.measured["fallback"])
    for label, value in new.measured.items():
        before = base.measured.get(label)
        if label == "fallback" or before is None or before == value:
            continue
        if label == "NCCL network":
            return f"NCCL fell back to {value} (base: {before})" if value == "Socket" else f"NCCL used {value} (base: {before})"
        return f"{label} {value} (base: {before})"
    return None


def _one_side(key: Key, data: KeyData, verdict: str, cause: str | None, side: str) -> Verdict:
    median = data.median
    return _make(key, data.metric, data.higher_is_better, verdict,
                   base_median=median if side == "base" else None, new_median=median if side == "new" else None,
                   cause=cause)


def _unpaired(key: Key, base: KeyData | None, new: KeyData | None) -> Verdict | None:
    """The verdicts that need no numbers: new, missing, failed, changed."""
    if new is None:
        assert base is not None
        return _one_side(key, base, "missing", "not measured in the new run", "base")
    if not new.ok:
        return _one_side(key, new, "failed", new.reason or None, "new")
    if base is None:
        return _one_side(key, new, "new", None, "new")
    if not base.ok:
        return _one_side(key, new, "new", f"base {base.reason}", "new")
    cause = _changed(base, new)
    if cause:
        return _make(key, new.metric, new.higher_is_better, "changed",
                       base.median, new.median, _ratio(new.median, base.median), cause=cause)
    return None


def _ratio(new: float | None, base: float | None) -> float | None:
    return new / base if new is not None and base is not None and base != 0 else None


def compare_runs(base: RunData, new: RunData, method: Method | None = None, label: str | None = None) -> Comparison:
    """Every key of either run judged: U test on the raw times, the factor on the judged metric."""
    method = method or Method()
    verdicts = []
    for key in list(new.keys) + [k for k in base.keys if k not in new.keys]:
        b, n = base.keys.get(key), new.keys.get(key)
        fixed = _unpaired(key, b, n)
        if fixed is not None:
            verdicts.append(fixed)
            continue
        assert b is not None and n is not None
        ratio = _ratio(n.median, b.median)
        p_value = mann_whitney_u(b.samples, n.samples)[1] if len(b.samples) and len(n.samples) else None
        verdict = "same" if ratio is None else _direction(ratio, n.higher_is_better, method.factor)
        if verdict != "same" and p_value is not None and p_value >= method.p_threshold:
            verdict = "same"  # as large as the factor, but the samples do not tell the runs apart
        verdicts.append(_make(key, n.metric, n.higher_is_better, verdict,
                                b.median, n.median, ratio, p_value))
    return Comparison(label or base.run_id, [base.run_id], new.run_id, method, _sorted(verdicts),
                      base.incomplete + new.incomplete)


def steps(series: npt.NDArray[np.float64], factor: float) -> npt.NDArray[np.int64]:
    """Per row of ``series`` (keys x runs, oldest first, NaN where a run lacks the key), the
    index from which it moved and stayed moved, or -1: the first present point whose value
    and every later one lie more than STEP_Z standard deviations from the mean of the up to
    LOOKBACK runs before it (conbench's lookback z-score), all on one side and beyond the
    factor. Vectorised over keys: a history holds thousands."""
    n_keys, n_runs = series.shape
    found = np.full(n_keys, -1, dtype=np.int64)
    if n_runs < 3:
        return found
    # later points: every value from i on is above m*f iff their minimum is (NaN skipped)
    after_min = np.fmin.accumulate(series[:, ::-1], axis=1)[:, ::-1]
    after_max = np.fmax.accumulate(series[:, ::-1], axis=1)[:, ::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows without two values: no step there
        for i in range(2, n_runs):
            window = series[:, max(0, i - LOOKBACK):i]
            centre = np.nanmean(window, axis=1)
            spread = np.nanstd(window, axis=1, ddof=1)
            limit = np.where(spread > 0, STEP_Z * spread, 0.0)
            up = (after_min[:, i] > centre * factor) & (after_min[:, i] - centre > limit)
            down = (after_max[:, i] < centre / factor) & (centre - after_max[:, i] > limit)
            hit = (up | down) & ~np.isnan(series[:, i]) & ~np.isnan(spread) & (found < 0)
            found[hit] = i
    return found


def step_from(values: Sequence[float], factor: float) -> int | None:
    """steps() of one series: the index it changed from, or None."""
    at = int(steps(np.asarray([values], dtype=np.float64), factor)[0])
    return None if at < 0 else at


@dataclass
class History:
    """The earlier runs a history compares with, oldest first: each run's key -> median,
    and the latest in full (what it measured: the changed and missing verdicts)."""

    run_ids: list[str]
    medians: list[pd.Series]  # per run: key id -> median
    latest: RunData | None


def compare_history(history: History, new: RunData, method: Method | None = None, label: str | None = None) -> Comparison:
    """Each key of ``new`` against its medians in the history: the history's median and a MAD
    band; a step in the series (history, then the new run) is named in the cause."""
    method = method or Method(test="history-mad")
    keys = list(new.keys)
    ids_of_keys = pd.Index([key_id(k) for k in keys])
    series = np.full((len(keys), len(history.run_ids) + 1), np.nan)
    for j, medians in enumerate(history.medians):
        series[:, j] = medians.reindex(ids_of_keys).to_numpy(dtype=np.float64)
    series[:, -1] = [np.nan if new.keys[k].median is None else new.keys[k].median for k in keys]
    past = series[:, :-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # keys without history: all-NaN rows
        centre = np.nanmedian(past, axis=1) if past.shape[1] else np.full(len(keys), np.nan)
        sigma = 1.4826 * np.nanmedian(np.abs(past - centre[:, None]), axis=1) if past.shape[1] else centre
    step_at = steps(series, method.factor)
    ids = [*history.run_ids, new.run_id]
    latest = history.latest.keys if history.latest else {}
    verdicts = []
    for i, key in enumerate(keys):
        n, last = new.keys[key], latest.get(key)
        if not n.ok:
            verdicts.append(_one_side(key, n, "failed", n.reason or None, "new"))
            continue
        if np.isnan(centre[i]):
            verdicts.append(_one_side(key, n, "new", None, "new"))
            continue
        base_median = float(centre[i])
        cause = _changed(last, n) if last is not None and last.ok else None
        if cause:
            verdicts.append(_make(key, n.metric, n.higher_is_better, "changed", base_median,
                                    n.median, _ratio(n.median, base_median), cause=cause))
            continue
        ratio = _ratio(n.median, base_median)
        verdict = "same" if ratio is None or n.median is None else _direction(ratio, n.higher_is_better, method.factor)
        if verdict != "same" and n.median is not None and sigma[i] > 0 and abs(n.median - base_median) <= BAND_Z * sigma[i]:
            verdict = "same"  # beyond the factor, but within the history's own spread
        step_cause = None
        if step_at[i] >= 0:
            at = int(step_at[i])
            row = series[i]
            before = float(np.nanmedian(row[max(0, at - LOOKBACK):at]))
            step_cause = (f"changed from run {ids[at]}" + (" (this run)" if at == len(ids) - 1 else "")
                          + f": {n.metric} {before:.4g} -> {float(np.nanmedian(row[at:])):.4g}")
        verdicts.append(_make(key, n.metric, n.higher_is_better, verdict, base_median,
                                n.median, ratio, None, step_cause))
    verdicts += [_one_side(k, d, "missing", "not measured in the new run", "base") for k, d in latest.items()
                 if k not in new.keys]
    incomplete = (history.latest.incomplete if history.latest else []) + new.incomplete
    return Comparison(label or f"history:{len(history.run_ids)}", list(history.run_ids), new.run_id, method,
                      _sorted(verdicts), incomplete)
