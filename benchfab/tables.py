"""Number formatting shared by the text tables (each workload family lays out its own
table: benchfab.workloads.collectives like nccl-tests, point_to_point like perftest).
The units a table prints its figures in are benchfab.units' (docs/UNITS.md)."""

from __future__ import annotations

import math
from typing import Any

from .untrusted import markdown_cell

ABSENT = "-"  # what a table or summary shows for a value that does not exist (never None or nan)


def missing(value: Any) -> bool:
    """None, NaN, or pandas' NA / NaT: a value the run does not have."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT and pd.NA are not equal to themselves
    except (TypeError, ValueError):  # pd.NA's comparison raises in a boolean context
        return True


def shown(value: Any, fmt: str = "") -> str:
    """``value`` as text (in ``fmt`` when given), or "-" when it does not exist."""
    return ABSENT if missing(value) else format(value, fmt)


def md_cell(value: Any, fmt: str = "") -> str:
    """A Markdown table cell of ``value``: shown (a "-" for nothing) and inert (names come from
    specs, imported reports and shared results: untrusted.markdown_cell)."""
    return markdown_cell(shown(value, fmt))


def num(value: Any, fmt: str) -> str:
    """``value`` in ``fmt``, or N/A (as nccl-tests prints) when it is missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "N/A"
    return format(value, fmt)
