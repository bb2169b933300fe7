"""Runs in both store layouts, for the tests: one Parquet part per test (how runs were stored
before round parts; results/example is a real one) and one part per round (benchfab.store.layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from benchfab.store import RunStore

TABLES = ("summary", "raw", "tests")


def write_per_test(run: Path, test: dict[str, Any], summary: list[dict[str, Any]], raw: list[dict[str, Any]]) -> None:
    """One test stored as the store did before round parts: <table>/<test_id>.parquet, tests/ last."""
    for table, rows in zip(TABLES, (summary, raw, [test])):
        (run / table).mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(run / table / f"{test['test_id']}.parquet", index=False)


def to_rounds(run: Path, tests_per_round: int) -> list[str]:
    """Store a per-test run's tests again as rounds of ``tests_per_round`` (test id order),
    through the store's writer, and remove the per-test parts: the test ids of each round."""
    frames = {t: {p.stem: pd.read_parquet(p) for p in sorted((run / t).glob("*.parquet"))} for t in TABLES}
    for table in TABLES:
        for part in (run / table).glob("*.parquet"):
            part.unlink()
    ids = sorted(frames["tests"])
    store = RunStore(run.parent, run.name)
    rounds = [ids[i:i + tests_per_round] for i in range(0, len(ids), tests_per_round)]
    for chunk in rounds:
        store.write_tests([(_records(frames["tests"][t])[0], _records(frames["summary"][t]), _records(frames["raw"][t]))
                           for t in chunk])
    return [",".join(chunk) for chunk in rounds]


def _records(frame: pd.DataFrame) -> list[Any]:
    """A stored frame's rows as the dicts a sweep hands the writer (null as None)."""
    return [{k: (None if v is None or (isinstance(v, float) and v != v) else v) for k, v in row.items()}
            for row in frame.astype(object).to_dict("records")]
