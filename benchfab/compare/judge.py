"""Verdicts per measurement key: a new run against a base run, each key's ratio judged
against a minimum effect (the factor, asv's rule) and against the noise of the two runs
(benchfab.compare.noise: blocks or repeats within each run, the spread of every key's
ratio between them). History is benchfab.compare.history. What the document looks like:
``Comparison.to_dict``, written as results/<new run>/verdicts.json (benchfab.verdicts).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import EXIT_ALL_OK, EXIT_TESTS_NOT_OK
from ..verdicts import VERDICTS_SCHEMA, Verdict
from .expectations import ExpectationResult
from .keys import Key, KeyData, RunData, key_dict, key_id
from .noise import MIN_SPREAD_KEYS, NOISE_Z, band, beyond_noise, combined, pair_spreads, standard_error

# asv's minimum effect (asv continuous --factor)
DEFAULT_FACTOR = 1.10

VERDICT_ORDER = ("failed", "changed", "worse", "missing", "new", "removed", "better", "same")

# Whether the new run's spec still plans a key the base measured (KeyData.test_name says
# which entry measured it): False means the spec dropped it ("removed", no regression).
Planned = Callable[[Key, KeyData], bool]


@dataclass(frozen=True)
class Method:
    test: str = "noise-band"  # or "history-spread" (benchfab.compare.history)
    factor: float = DEFAULT_FACTOR
    z: float = NOISE_Z  # a change must exceed z standard deviations of the noise


def make_verdict(key: Key, metric: str, higher_is_better: bool, verdict: str, base_median: float | None = None,
                 new_median: float | None = None, ratio: float | None = None, noise: float | None = None,
                 cause: str | None = None) -> Verdict:
    """A verdict of the one type the readers of verdicts.json use (benchfab.verdicts)."""
    return Verdict(key_dict(key), key_id(key), metric, higher_is_better, verdict, base_median, new_median, ratio,
                   noise, cause)


@dataclass
class Comparison:
    base_label: str
    base_runs: list[str]
    new: str
    method: Method
    verdicts: list[Verdict]
    incomplete: list[dict[str, Any]] = field(default_factory=list)  # rows left out: key column(s) missing
    notes: list[str] = field(default_factory=list)
    # The between-run standard deviation of a key's log figure the verdicts used (pairs:
    # pooled over the keys; None: not measured), and stored files that could not be read.
    spread: float | None = None
    damaged: list[str] = field(default_factory=list)
    # The new run judged against absolute expectations too (compare.expectations), when any apply.
    expectations: ExpectationResult | None = None
    # A base of another spec (a named baseline used across specs): the keys each side has
    # that the other lacks, listed rather than left to the new/removed verdicts alone.
    unmatched: dict[str, list[str]] | None = None

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
        below = self.expectations is not None and bool(self.expectations.below)
        return EXIT_TESTS_NOT_OK if self.regressions or self.damaged or below else EXIT_ALL_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": VERDICTS_SCHEMA,
            "base": {"label": self.base_label, "runs": list(self.base_runs)},
            "new": self.new,
            "method": asdict(self.method),
            "spread": self.spread,
            "verdicts": [asdict(v) for v in self.verdicts],
            "damaged": list(self.damaged),
            "incomplete": list(self.incomplete),
            "notes": list(self.notes),
            **({"unmatched": self.unmatched} if self.unmatched is not None else {}),
            **({"expectations": self.expectations.to_dict()} if self.expectations is not None else {}),
        }


def damaged_comparison(base_label: str, base_runs: list[str], new: str, method: Method, problem: str) -> Comparison:
    """The outcome when stored files of either side cannot be read: no verdict stands on
    them, and the comparison fails (exit 1) naming the file."""
    return Comparison(base_label, base_runs, new, method, [], damaged=[problem])


def sort_verdicts(verdicts: list[Verdict]) -> list[Verdict]:
    return sorted(verdicts, key=lambda v: (VERDICT_ORDER.index(v.verdict), v.key_id))


def direction(ratio: float, higher_is_better: bool, factor: float) -> str:
    """'worse', 'better' or 'same' by the effect alone: a ratio beyond the factor either way."""
    slower = ratio < 1 / factor if higher_is_better else ratio > factor
    faster = ratio > factor if higher_is_better else ratio < 1 / factor
    return "worse" if slower else "better" if faster else "same"


def changed_cause(base: KeyData, new: KeyData) -> str | None:
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


def one_side(key: Key, data: KeyData, verdict: str, cause: str | None, side: str) -> Verdict:
    median = data.median
    return make_verdict(key, data.metric, data.higher_is_better, verdict,
                        base_median=median if side == "base" else None, new_median=median if side == "new" else None,
                        cause=cause)


def lost(key: Key, base: KeyData, planned: Planned | None) -> Verdict:
    """A key the base measured and the new run did not: lost data (a regression), unless the
    new run's spec no longer plans it."""
    if planned is not None and not planned(key, base):
        return one_side(key, base, "removed", f"removed from the spec (test {base.test_name!r})", "base")
    return one_side(key, base, "missing", "not measured in the new run", "base")


def unpaired(key: Key, base: KeyData | None, new: KeyData | None, planned: Planned | None) -> Verdict | None:
    """The verdicts that need no numbers: missing or removed, failed, new, changed."""
    if new is None:
        assert base is not None
        return lost(key, base, planned)
    if not new.ok:
        return one_side(key, new, "failed", new.reason or None, "new")
    if base is None:
        return one_side(key, new, "new", None, "new")
    if not base.ok:
        return one_side(key, new, "new", f"base {base.reason}", "new")
    cause = changed_cause(base, new)
    if cause:
        return make_verdict(key, new.metric, new.higher_is_better, "changed",
                            base.median, new.median, ratio_of(new.median, base.median), cause=cause)
    return None


def ratio_of(new: float | None, base: float | None) -> float | None:
    return new / base if new is not None and base is not None and base != 0 else None


def judge(key: Key, data: KeyData, base_median: float | None, ratio: float | None, sigma: float | None,
          method: Method, cause: str | None = None) -> Verdict:
    """worse or better when the ratio is beyond the factor and the noise band, else same."""
    verdict = "same"
    if ratio is not None and ratio > 0:
        verdict = direction(ratio, data.higher_is_better, method.factor)
        if verdict != "same" and not beyond_noise(ratio, sigma, method.z):
            verdict = "same"  # as large as the factor, but no larger than these runs move by themselves
    return make_verdict(key, data.metric, data.higher_is_better, verdict, base_median, data.median, ratio,
                        band(sigma, method.z), cause)


def within_variance(base: KeyData, new: KeyData) -> float | None:
    """The variance of a key's log ratio from each run's own units; a run without units (an
    imported report) is taken to be as noisy as the other; None when neither has any."""
    errors = [e for e in (standard_error(base.units), standard_error(new.units)) if e is not None]
    if not errors:
        return None
    return sum(e * e for e in errors) * 2 / len(errors)


def compare_runs(base: RunData, new: RunData, method: Method | None = None, label: str | None = None,
                 planned: Planned | None = None) -> Comparison:
    """Every key of either run judged: its ratio against the factor and the two runs' noise."""
    method = method or Method()
    verdicts = []
    paired: list[tuple[Key, KeyData, KeyData, float | None, float | None]] = []
    for key in list(new.keys) + [k for k in base.keys if k not in new.keys]:
        b, n = base.keys.get(key), new.keys.get(key)
        fixed = unpaired(key, b, n, planned)
        if fixed is not None:
            verdicts.append(fixed)
            continue
        assert b is not None and n is not None
        ratio = ratio_of(n.median, b.median)
        paired.append((key, b, n, ratio, within_variance(b, n)))
    log_ratios = np.array([math.log(r) if r is not None and r > 0 else np.nan for _, _, _, r, _ in paired])
    spreads, spread = pair_spreads(log_ratios, [noise_class(key) for key, *_ in paired])
    for (key, b, n, ratio, within), between in zip(paired, spreads):
        verdicts.append(judge(key, n, b.median, ratio, combined(within, None if np.isnan(between) else between), method))
    result = Comparison(label or base.run_id, [base.run_id], new.run_id, method, sort_verdicts(verdicts),
                        base.incomplete + new.incomplete, spread=spread)
    result.notes += noise_notes(paired, spread)
    return result


def noise_class(key: Key) -> str:
    """The keys whose run-to-run spread is pooled apart as well: one workload on one
    transport and engine (benchfab.compare.noise.pair_spreads)."""
    k = key_dict(key)
    return f"{k['workload']}/{k['transport']}.{k['engine']}"


def noise_notes(paired: list[tuple[Key, KeyData, KeyData, float | None, float | None]], spread: float | None) -> list[str]:
    """What the noise of a pair of runs was measured from, in words."""
    if not paired:
        return []
    kinds = sorted({f"{b.unit_kind or 'none'}/{n.unit_kind or 'none'}" for _, b, n, _, _ in paired})
    without = sum(1 for *_, w in paired if w is None)
    notes = []
    if spread is None:
        notes.append(f"the run-to-run spread needs at least {MIN_SPREAD_KEYS} judged keys, these runs have "
                     f"{len(paired)}: the noise is each run's own alone (repeats or a history show the rest)")
    else:
        notes.append(f"run-to-run spread of these two runs: ±{math.expm1(spread) * 100:.1f} % (one standard deviation, "
                     f"pooled over {len(paired)} keys); within-run units (base/new): {', '.join(kinds)}")
    if without:
        notes.append(f"{without} key(s) without repeats or per-iteration times"
                     + (": judged on the run-to-run spread alone" if spread is not None else ": the factor alone decided"))
    return notes
