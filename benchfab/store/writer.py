"""RunStore: writes one run directory (run.json and a test's three parts), every file through
RunStore.file, which keeps every write inside the run's directory."""

from __future__ import annotations

import errno
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import StoreError
from ..records import SCHEMA_VERSION, RawRow, SummaryRow, TestRow
from .files import RUN_ID_RE, TEST_ID_RE, atomic_write_bytes, atomic_write_parquet, rewrite_in_place
from .parts import RAW_COLUMNS, SUMMARY_COLUMNS, TEST_COLUMNS, read_parts
from .runs import read_meta


class RunStore:
    """Writes one run directory."""

    def __init__(self, root: Path, run_id: str) -> None:
        if not RUN_ID_RE.match(run_id):
            raise StoreError(f"invalid run id {run_id!r}", hint="use letters, digits, '-', '_' and '.'")
        self.run_id = run_id
        self.path = Path(root) / run_id

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"

    def file(self, folder: str | None, name: str) -> Path:
        """The path of one file of the run: every file this class writes goes through here.
        A name that is not one plain path component, or a path that resolves outside the
        run directory (a symlinked folder, a test id from an imported report), is refused."""
        stem = name.removesuffix(".parquet")
        if not TEST_ID_RE.match(stem):
            raise StoreError(f"{name!r} is not a file name benchfab writes into run {self.run_id}",
                             hint="test ids hold letters, digits, '-', '_', '.' and '+' only; nothing was written")
        path = self.path / folder / name if folder else self.path / name
        root = self.path.resolve()
        if not path.resolve().is_relative_to(root):
            raise StoreError(f"{path} resolves to {path.resolve()}, outside the run directory {root}",
                             hint=f"remove the symlink in {self.path}; a run writes only inside its own directory")
        return path

    def exists(self) -> bool:
        return (self.path / "run.json").exists()

    def read_meta(self) -> dict[str, Any]:
        return read_meta(self.path)

    def write_meta(self, meta: dict[str, Any]) -> None:
        meta = {"schema_version": SCHEMA_VERSION, "run_id": self.run_id, **meta}
        data = (json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n").encode()
        path = self.file(None, "run.json")
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            # On a full disk the run's status must still be told (failed, not running):
            # the old run.json's blocks take the new text.
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.exists():
                raise
            rewrite_in_place(path, data)

    def write_test(self, test_row: TestRow, summary_rows: Sequence[SummaryRow], raw_rows: Sequence[RawRow]) -> None:
        """Store one finished (or interrupted) test. Summary and raw go first, the
        tests/ row last: a test counts as stored only once its row exists."""
        self.write_test_frames(test_row, pd.DataFrame(list(summary_rows)), pd.DataFrame(list(raw_rows)))

    def write_test_frames(self, test_row: TestRow, summary: pd.DataFrame, raw: pd.DataFrame) -> None:
        """write_test with the rows as DataFrames (columns of records.py; any order, missing
        ones null): what an import of a million rows builds by column."""
        tid = test_row["test_id"]
        paths = [self.file(table, f"{tid}.parquet") for table in ("summary", "raw", "tests")]  # all checked first
        atomic_write_parquet(paths[0], _conform(summary, SUMMARY_COLUMNS))
        atomic_write_parquet(paths[1], _conform(raw, RAW_COLUMNS))
        atomic_write_parquet(paths[2], _conform(pd.DataFrame([test_row]), TEST_COLUMNS))

    def finished_tests(self) -> set[str]:
        """Test ids already measured successfully (skipped by --resume)."""
        tests = read_parts(self.path / "tests", TEST_COLUMNS)
        if tests.empty:
            return set()
        return set(tests.loc[tests["status"] == "ok", "test_id"])


def _conform(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with exactly the table's columns, in order (missing ones null)."""
    frame = frame.reindex(columns=columns)
    # Columns that are all-None would be stored as a null type; give them a
    # real one so parts concatenate cleanly.
    for col in columns:
        if frame[col].isna().all() and col.endswith(("_s", "_Bps")):
            frame[col] = frame[col].astype("float64")
    return frame
