"""How far a judged figure moves when nothing changed: the noise model behind every verdict.

The iterations of one run are not independent samples of that run's figure: they share
the run's processes, placement, connections and the host's state during that minute, so a
test over 1,000 of them (p = 1e-300) says the two runs differ, never that the fabric
did. What tells a real change from noise is how much the figure moves between runs, and
one run alone cannot show that. So a comparison measures two parts, on units that are:

- **within a run**: the key's repeats (two rows or more: separate launches of the test),
  else BLOCKS blocks of consecutive iterations, each reduced the way the judged figure is
  (busbw and bandwidth from the mean time, latency from the median). The spread of those
  units gives the standard error of the run's figure (in log units: relative);
- **between runs**: for two runs, what their judged keys show together: the robust spread
  (1.4826 x the median absolute deviation) of their log ratios around the median ratio,
  over every key and over the keys of the same workload, transport and engine, the larger
  of the two. A minority of keys that really moved does not widen it, a shift of every key
  does not hide in it (verdicts are measured from ratio 1, not from the median). For a
  history: each key's own spread over the earlier runs, moderated toward the typical
  key's spread and never below it (three runs that happened to agree must not make a
  band of 0; a run of noisy tests must not judge its one steady key on that key's calm),
  plus the new run's own within-run error (a run whose blocks scatter, because the host
  was busy while it ran, is judged with that scatter too).

A key is worse or better only when its ratio is beyond the factor *and* beyond Z times that
noise; otherwise it is "same", and where the noise is wider than the factor the verdict
says so ("same (noise ±38 %)"): these runs cannot support a verdict on that key.
docs/COMPARE.md has the figures measured with these defaults.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt

# Units per run when a key has a single row: blocks of consecutive iterations.
BLOCKS = 10
# A change must exceed this many standard deviations of the noise (conbench's default z).
NOISE_Z = 5.0
# The between-run spread of a pair is pooled over keys. The median absolute deviation of
# a handful is a guess (of three keys, two that moved by 17 and 19 % make a "spread" of 3 %
# that hides both): below this many, two runs do not show their run-to-run spread, and a
# verdict rests on the within-run noise alone (the notes say so).
MIN_SPREAD_KEYS = 8
# A history shows a run-to-run spread from this many earlier runs on; fewer: judged as a pair.
MIN_HISTORY = 3
# How many runs' worth of weight the typical key's spread gets against a key's own
# (an empirical-Bayes moderated variance, as limma moderates per-gene variances).
PRIOR_RUNS = 4
# 1.4826 x MAD estimates a normal standard deviation.
MAD_SCALE = 1.4826

FloatArray = npt.NDArray[np.float64]


def log_units(times: FloatArray, of_times: str, blocks: int = BLOCKS) -> FloatArray:
    """The log of the judged figure's time statistic over each of ``blocks`` runs of
    consecutive iterations (fewer, of one iteration each, when there are fewer iterations;
    the tail that does not fill a block is left out). A figure that is a rate (bandwidth,
    busbw) is the inverse of its time: the same spread, which is all the units are for."""
    times = times[np.isfinite(times) & (times > 0)]
    count = min(blocks, len(times))
    if count < 2:
        return np.empty(0)
    width = len(times) // count
    shaped = times[: width * count].reshape(count, width)
    stat = np.median(shaped, axis=1) if of_times == "median" else shaped.mean(axis=1)
    units: FloatArray = np.log(stat)
    return units


def log_values(values: FloatArray) -> FloatArray:
    """The log of each repeat's judged figure (non-positive and missing ones left out)."""
    values = values[np.isfinite(values) & (values > 0)]
    return np.log(values)


def standard_error(units: FloatArray) -> float | None:
    """The standard error of a run's log figure from its units, or None with fewer than two."""
    if len(units) < 2:
        return None
    return float(np.std(units, ddof=1) / math.sqrt(len(units)))


def pair_spread(log_ratios: FloatArray) -> float | None:
    """How far the keys of two runs moved apart, typically: 1.4826 x the median absolute
    deviation of their log ratios from the median ratio (a robust standard deviation, which
    a minority of keys that really moved does not widen, and a shift of every key does not
    hide in). It holds the keys' within-run noise as well as the run-to-run part; a key
    noisier than that within its runs adds its own. None with fewer than MIN_SPREAD_KEYS."""
    d = log_ratios[np.isfinite(log_ratios)]
    if len(d) < MIN_SPREAD_KEYS:
        return None
    return MAD_SCALE * float(np.median(np.abs(d - np.median(d))))


def pair_spreads(log_ratios: FloatArray, classes: list[str]) -> tuple[FloatArray, float | None]:
    """Per key, the between-run spread it is judged with: the larger of the spread pooled
    over every key and the spread pooled over the keys of its class (the same workload,
    transport and engine), where the class has enough keys. The first keeps a run whose
    tests wander together from judging its steadiest keys on their own calm; the second
    keeps a class that wanders more than the rest (a test whose every size moved by its
    own 30 %, say) from being judged on the calm of the others. NaN where neither is known;
    also returns the spread over every key."""
    overall = pair_spread(log_ratios)
    spreads = np.full(len(log_ratios), np.nan if overall is None else overall)
    labels = np.asarray(classes, dtype=object)
    for label in set(classes):
        members = labels == label
        own = pair_spread(log_ratios[members])
        if own is not None:
            spreads[members] = np.fmax(spreads[members], own)
    return spreads, overall


# The MAD of a few values around their own median is small on average (of three, one
# deviation is 0): factors that make 1.4826 x MAD unbiased for a normal sample of n
# (Croux & Rousseeuw 1992; these from 400,000 simulated samples each), n / (n - 0.8) above.
MAD_SMALL_SAMPLE = {2: 1.193, 3: 1.488, 4: 1.362, 5: 1.217, 6: 1.192, 7: 1.139, 8: 1.129, 9: 1.101}


def _small_sample(n: FloatArray) -> FloatArray:
    table = np.array([MAD_SMALL_SAMPLE.get(i, 1.0) for i in range(10)])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= 10, n / (n - 0.8), table[np.clip(n, 0, 9).astype(np.int64)])


def history_spread(past: FloatArray, classes: list[str] | None = None) -> tuple[FloatArray, FloatArray]:
    """Per key (rows of ``past``: keys x earlier runs of log figures, NaN where a run lacks
    the key): the centre (median) and the standard deviation of one run's figure around it.
    A key's own spread over the earlier runs (1.4826 x MAD, corrected for few runs) is
    moderated toward the typical spread, the larger of the median key's over every key and
    over the key's class, and never falls below it (a steady key is judged as the runs of
    this spec vary, as in pair_spreads); then widened for the centre's own error (the
    median of n runs: pi/2 / n of the variance). NaN where a key has no earlier value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # keys without history: all-NaN rows
        centre = np.nanmedian(past, axis=1)
        runs = np.sum(~np.isnan(past), axis=1).astype(np.float64)
        own = MAD_SCALE * np.nanmedian(np.abs(past - centre[:, None]), axis=1) * _small_sample(runs)
    usable = runs >= MIN_HISTORY
    floor = np.full(len(runs), float(np.median(own[usable])) if usable.any() else 0.0)
    labels = np.asarray(classes if classes is not None else [""] * len(runs), dtype=object)
    for label in set(labels.tolist()):
        members = usable & (labels == label)
        if members.sum() >= MIN_SPREAD_KEYS:
            floor[labels == label] = np.fmax(floor[labels == label], float(np.median(own[members])))
    own_df = np.where(usable, runs - 1, 0.0)
    moderated = np.sqrt((own_df * np.nan_to_num(own) ** 2 + PRIOR_RUNS * floor ** 2) / (own_df + PRIOR_RUNS))
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.fmax(moderated, floor) * np.sqrt(1 + (math.pi / 2) / runs)
    sigma[runs == 0] = np.nan
    return centre, sigma


def combined(within_var: float | None, between: float | None) -> float | None:
    """The standard deviation of a key's log ratio: within-run and between-run parts added
    as variances; None when neither is known (the factor alone then decides)."""
    if within_var is None and between is None:
        return None
    return math.sqrt((within_var or 0.0) + (between or 0.0) ** 2)


def band(sigma: float | None, z: float) -> float | None:
    """The relative change the noise covers, e.g. 0.38 for ±38 %: exp(z sigma) - 1."""
    if sigma is None or not math.isfinite(sigma):
        return None
    return math.expm1(z * sigma)


def beyond_noise(ratio: float, sigma: float | None, z: float) -> bool:
    """Whether a ratio new/base lies outside the noise band (always, when the noise is unknown)."""
    if sigma is None or ratio <= 0:
        return True
    return abs(math.log(ratio)) > z * sigma
