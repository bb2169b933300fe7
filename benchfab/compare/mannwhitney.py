"""Mann-Whitney U (Wilcoxon rank-sum), two-sided, in numpy.

Exact distribution when neither sample has ties and the U range is small (the
coefficients of the Gaussian binomial [n1+n2 choose n1]_q count the arrangements
with each U), else the normal approximation with the tie correction and a 0.5
continuity correction, the textbook forms (and SciPy's ``mannwhitneyu``
``method='exact'`` / ``'asymptotic'``, which the tests check against).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

# Above this many U values (n1 * n2 + 1) the exact distribution is not worth its cost
# and the normal approximation is already good to the digits a verdict reads.
EXACT_MAX_CELLS = 2500


def average_ranks(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """1-based ranks with ties given their average rank, and the size of each tie group."""
    n = len(values)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    change = np.empty(n, dtype=bool)
    change[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=change[1:])
    ranks = np.empty(n, dtype=np.float64)
    if change.all():  # no ties: the ranks are the positions in sorted order
        ranks[order] = np.arange(1, n + 1, dtype=np.float64)
        return ranks, np.ones(n, dtype=np.int64)
    starts = np.flatnonzero(change)
    sizes = np.diff(np.append(starts, n))
    # every member of a tie group gets the mean of the ranks it spans
    ranks[order] = np.repeat(starts + (sizes + 1) / 2.0, sizes)
    return ranks, sizes.astype(np.int64)


def _divide_by_one_minus_q_power(poly: npt.NDArray[np.float64], i: int) -> npt.NDArray[np.float64]:
    """poly / (1 - q^i) as a power series: a running sum with stride i (columns of a reshape)."""
    length = len(poly)
    padded = np.zeros(-(-length // i) * i, dtype=np.float64)
    padded[:length] = poly
    return np.cumsum(padded.reshape(-1, i), axis=0).reshape(-1)[:length]


def exact_upper_tail(u: float, n1: int, n2: int) -> float:
    """P(U >= u) under the null for samples of n1 and n2 without ties."""
    # Gaussian binomial: prod_{i=1..n1} (1 - q^(n2+i)) / (1 - q^i); integer counts.
    size = n1 * n2 + 1
    counts = np.zeros(size + n1 + n2 + 1, dtype=np.float64)
    counts[0] = 1.0
    for i in range(1, n1 + 1):
        shift = n2 + i
        counts[shift:] -= counts[:-shift].copy()  # * (1 - q^shift)
        counts = _divide_by_one_minus_q_power(counts, i)
    dist = counts[:size]
    total = dist.sum()
    k = max(0, math.ceil(u - 1e-9))
    return float(dist[k:].sum() / total) if k < size else 0.0


def mann_whitney_u(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float]:
    """(U of x, two-sided p-value). Empty samples have no test: ValueError."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney U needs two non-empty samples")
    ranks, ties = average_ranks(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u_big = max(u1, n1 * n2 - u1)
    has_ties = bool((ties > 1).any())
    if not has_ties and n1 * n2 + 1 <= EXACT_MAX_CELLS:
        return u1, min(1.0, 2.0 * exact_upper_tail(u_big, n1, n2))
    n = n1 + n2
    tie_term = float((ties.astype(np.float64) ** 3 - ties).sum()) / (n * (n - 1))
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:  # every value equal: nothing tells the samples apart
        return u1, 1.0
    z = (u_big - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return u1, min(1.0, math.erfc(z / math.sqrt(2.0)))
