"""The figures perftest prints, computed from per-iteration timestamps.

One place for the formulas, used by the native loops, the Python TCP fallback and the
tests. Inputs are nanosecond timestamps (uint64 or int arrays); outputs are SI units.

Bandwidth (perftest ``print_report_bw``):
  BW average = size * n / (tcompleted[n-1] - tposted[0])
  MsgRate    = n / (tcompleted[n-1] - tposted[0])
  BW peak    = size / min over i <= j of (tcompleted[j] - tposted[i]) / (j - i + 1)
perftest searches the peak in O(n^2) (and so turns it off above 20000 iterations);
we find the same minimum in O(n) per step with Dinkelbach's method (a handful of steps).

Latency (perftest ``print_report_lat``): samples are tposted[i+1] - tposted[i], one
round trip each, divided by 2 (``rtt_factor``); sorted; the top 2 dropped
(LAT_MEASURE_TAIL); n' = count left. min = d[0], max = d[n'] (the second largest
sample), median = middle of the n' (mean of the two middle ones when n' is even),
mean/stdev over the n', p99 = d[ceil(0.99 n')], p99.9 = d[ceil(0.999 n')].
One deliberate difference: perftest squares ``int`` deviations in microseconds, which
truncates sub-microsecond spread to 0; we compute the population stdev in floating point.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

LAT_MEASURE_TAIL = 2

ArrayLike = npt.ArrayLike


def min_mean_interval_ns(tposted: ArrayLike, tcompleted: ArrayLike) -> float:
    """min over i <= j of (tcompleted[j] - tposted[i]) / (j - i + 1), in ns.

    Dinkelbach: for a guess lam, F(lam) = min_{i<=j} (C_j - lam*j) - (P_i - lam*(i-1)).
    F(lam) < 0 means some pair beats lam; its ratio is the next guess. The guesses
    strictly decrease and there are finitely many pairs, so it ends (typically < 10
    steps), each step O(n) with a running maximum.
    """
    p = np.asarray(tposted, dtype=np.int64)
    c = np.asarray(tcompleted, dtype=np.int64)
    n = p.size
    if n == 0 or c.size != n:
        raise ValueError("tposted and tcompleted must be non-empty and of equal length")
    t0 = p[0]
    pf = (p - t0).astype(np.float64)  # small numbers: exact in float64
    cf = (c - t0).astype(np.float64)
    idx = np.arange(n, dtype=np.float64)
    lam = (cf[-1] - pf[0]) / n
    for _ in range(200):
        a = pf - lam * (idx - 1.0)
        best_a = np.maximum.accumulate(a)
        f = (cf - lam * idx) - best_a
        j = int(np.argmin(f))
        if f[j] >= -1e-9 * max(1.0, abs(lam)):
            break
        i = int(np.argmax(a[: j + 1]))
        new = (cf[j] - pf[i]) / (j - i + 1)
        if new >= lam:
            break
        lam = new
    return float(lam)


def bw_figures(tposted: ArrayLike, tcompleted: ArrayLike, size: int,
               peak: bool = True) -> dict[str, Any]:
    """BW average / peak and message rate as perftest computes them (SI units)."""
    p = np.asarray(tposted)
    c = np.asarray(tcompleted)
    n = int(p.size)
    if n == 0:
        return {"iterations": 0, "elapsed_s": 0.0, "bw_avg_Bps": math.nan,
                "bw_peak_Bps": math.nan, "msg_rate_pps": math.nan}
    elapsed_ns = float(int(c[-1]) - int(p[0]))
    elapsed_s = elapsed_ns / 1e9
    if elapsed_ns <= 0:
        avg = rate = math.nan
    else:
        avg = size * n / elapsed_s
        rate = n / elapsed_s
    pk = math.nan
    if peak:
        m = min_mean_interval_ns(p, c)
        if m > 0:
            pk = size / (m / 1e9)
    return {"iterations": n, "elapsed_s": elapsed_s, "bw_avg_Bps": avg,
            "bw_peak_Bps": pk, "msg_rate_pps": rate}


def lat_figures(tposted: ArrayLike, rtt_factor: int = 2) -> dict[str, Any]:
    """Latency percentiles from ping-pong post times, perftest's rules (seconds)."""
    p = np.asarray(tposted, dtype=np.int64)
    iters = int(p.size)
    if iters - 1 - LAT_MEASURE_TAIL < 1:
        raise ValueError(f"need at least {LAT_MEASURE_TAIL + 2} rounds, got {iters}")
    d = np.sort(np.diff(p)).astype(np.float64) / (rtt_factor * 1e9)
    m = d.size - LAT_MEASURE_TAIL
    kept = d[:m]
    if m % 2 == 0:
        median = (d[m // 2] + d[m // 2 - 1]) / 2
    else:
        median = d[m // 2]
    mean = float(kept.mean())
    return {
        "iterations": iters,
        "lat_min_s": float(d[0]),
        "lat_max_s": float(d[m]),
        "lat_median_s": float(median),
        "lat_mean_s": mean,
        "lat_stdev_s": float(np.sqrt(np.mean((kept - mean) ** 2))),
        "lat_p99_s": float(d[math.ceil(m * 0.99)]),
        "lat_p999_s": float(d[math.ceil(m * 0.999)]),
    }


def bw_per_iteration_s(tcompleted: ArrayLike, cq_mod: int) -> npt.NDArray[np.float64]:
    """Per-message times for a raw-samples table: the gaps between consecutive CQEs
    divided by the messages each CQE covers.

    tcompleted holds one stamp per WR, and every WR a CQE covers carries that CQE's
    time (unsignaled WRs have no time of their own), so consecutive per-WR differences
    are 0 inside a group. Use the group ends (every cq_mod-th entry, plus the last).
    """
    c = np.asarray(tcompleted, dtype=np.int64)
    n = c.size
    if n < 2:
        return np.zeros(0)
    step = max(1, int(cq_mod))
    ends = np.arange(step - 1, n, step)
    if ends.size == 0 or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
    stamps = c[ends]
    counts = np.diff(ends)
    return np.diff(stamps).astype(np.float64) / counts / 1e9
