"""pandas views every family's report tables share: the rows that measured something and
the columns one table row stands for.

The families build their own tables (collectives.bandwidth_table, point_to_point.p2p_table)
from these; benchfab.analysis re-exports them with its other views. Imported only inside
the families' report methods (pandas costs seconds; the spec loader never needs it).
"""

from __future__ import annotations

import pandas as pd


def ok_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows with a real measurement."""
    if summary.empty:
        return summary
    return summary[(summary["status"] == "ok") & summary["time_s"].notna()]


# A report table's row is one test of one run on one profile: `benchfab report A B` holds
# the same test id in both runs, and a row grouped by test id alone would show the peak of
# one run beside the minimum time of the other.
TABLE_ROW = ["run_id", "profile", "test_id"]


def table_groups(rows: pd.DataFrame, extra: list[str] | None = None) -> list[str]:
    """The columns a per-test table groups by: run, profile and test (those the rows have)."""
    return [c for c in [*TABLE_ROW, *(extra or [])] if c in rows.columns]
