"""A run judged against its history: per key, the median of the earlier runs' figures and
their run-to-run spread (benchfab.compare.noise.history_spread), with a lookback step
detector that names the run a key changed from."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..units import figure
from .judge import (
    Comparison,
    Method,
    Planned,
    changed_cause,
    judge,
    lost,
    make_verdict,
    noise_class,
    one_side,
    ratio_of,
    sort_verdicts,
)
from .keys import RunData, key_id
from .noise import combined, history_spread, standard_error

# Step detector: points compared with the mean of up to this many earlier runs (conbench's lookback).
LOOKBACK = 5
STEP_Z = 5.0


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


def compare_history(history: History, new: RunData, method: Method | None = None, label: str | None = None,
                    planned: Planned | None = None) -> Comparison:
    """Each key of ``new`` against the history's median, beyond the factor and z times the
    key's run-to-run spread (moderated toward the typical key's); a step in the series
    (history, then the new run) is named in the cause."""
    method = method or Method(test="history-spread")
    keys = list(new.keys)
    ids_of_keys = pd.Index([key_id(k) for k in keys])
    series = np.full((len(keys), len(history.run_ids) + 1), np.nan)
    for j, medians in enumerate(history.medians):
        series[:, j] = medians.reindex(ids_of_keys).to_numpy(dtype=np.float64)
    series[:, -1] = [np.nan if new.keys[k].median is None else new.keys[k].median for k in keys]
    past = series[:, :-1]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # keys without history: all-NaN rows
        middle = np.nanmedian(past, axis=1) if past.shape[1] else np.full(len(keys), np.nan)
        classes = [noise_class(k) for k in keys]
        _, sigma = history_spread(np.where(past > 0, np.log(past), np.nan), classes) if past.shape[1] else (middle, middle)
    step_at = steps(series, method.factor)
    ids = [*history.run_ids, new.run_id]
    latest = history.latest.keys if history.latest else {}
    verdicts = []
    for i, key in enumerate(keys):
        n, last = new.keys[key], latest.get(key)
        if not n.ok:
            verdicts.append(one_side(key, n, "failed", n.reason or None, "new"))
            continue
        if np.isnan(middle[i]):
            verdicts.append(one_side(key, n, "new", None, "new"))
            continue
        base_median = float(middle[i])
        ratio = ratio_of(n.median, base_median)
        cause = changed_cause(last, n) if last is not None and last.ok else None
        if cause:
            verdicts.append(make_verdict(key, n.metric, n.higher_is_better, "changed", base_median, n.median, ratio,
                                         cause=cause))
            continue
        step_cause = None
        if step_at[i] >= 0:
            at = int(step_at[i])
            row = series[i]
            before = float(np.nanmedian(row[max(0, at - LOOKBACK):at]))
            step_cause = (f"changed from run {ids[at]}" + (" (this run)" if at == len(ids) - 1 else "")
                          + f": {n.metric} {figure(n.metric, before)} -> {figure(n.metric, float(np.nanmedian(row[at:])))}")
        # The history's spread, and this run's own: a run whose blocks scatter (the host
        # was busy while it ran) is judged with that scatter too.
        own = standard_error(n.units)
        noise = combined(None if own is None else own * own, float(sigma[i])) if math.isfinite(sigma[i]) else None
        verdicts.append(judge(key, n, base_median, ratio, noise, method, step_cause))
    verdicts += [lost(k, d, planned) for k, d in latest.items() if k not in new.keys]
    incomplete = (history.latest.incomplete if history.latest else []) + new.incomplete
    return Comparison(label or f"history:{len(history.run_ids)}", list(history.run_ids), new.run_id, method,
                      sort_verdicts(verdicts), incomplete)
