"""Verdicts: a run judged against a base run, a named baseline or its history, per
measurement key (records.MEASUREMENT_KEY), against the runs' noise (compare.noise).
See docs/COMPARE.md."""

from __future__ import annotations

from ..verdicts import Verdict
from .baselines import read_baselines, set_baseline
from .history import History, compare_history
from .judge import DEFAULT_FACTOR, Comparison, Method, compare_runs
from .keys import RunData, key_id, load_keys
from .noise import NOISE_Z
from .outputs import FORMATS, RENDERERS, save
from .select import Base, Scope, parse_base, run_comparison

__all__ = [
    "DEFAULT_FACTOR", "FORMATS", "NOISE_Z", "RENDERERS", "Base", "Comparison", "History", "Method", "RunData", "Scope",
    "Verdict", "compare_history", "compare_runs", "key_id", "load_keys", "parse_base", "read_baselines",
    "run_comparison", "save", "set_baseline",
]
