"""Verdicts: a run judged against a base run, a named baseline or its history, per
measurement key (records.MEASUREMENT_KEY). See docs/COMPARE.md."""

from __future__ import annotations

from ..verdicts import Verdict
from .baselines import read_baselines, set_baseline
from .judge import DEFAULT_FACTOR, DEFAULT_P_THRESHOLD, Comparison, Method, compare_history, compare_runs
from .keys import RunData, key_id, load_keys
from .mannwhitney import mann_whitney_u
from .outputs import FORMATS, RENDERERS, save
from .select import Base, parse_base, run_comparison

__all__ = [
    "DEFAULT_FACTOR", "DEFAULT_P_THRESHOLD", "FORMATS", "RENDERERS", "Base", "Comparison", "Method", "RunData",
    "Verdict", "compare_history", "compare_runs", "key_id", "load_keys", "mann_whitney_u", "parse_base",
    "read_baselines", "run_comparison", "save", "set_baseline",
]
