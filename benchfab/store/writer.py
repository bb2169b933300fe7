"""RunStore: writes one run directory (run.json, and a round's tests as one part per table:
layout.py), every file through RunStore.file, which keeps every write inside the run's directory."""

from __future__ import annotations

import errno
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import DamagedRun, StoreError
from ..records import SCHEMA_VERSION, RawRow, SummaryRow, TestRow
from ..untrusted import regular_file_problem
from .files import RUN_ID_RE, TEST_ID_RE, atomic_write_bytes, atomic_write_parquet, rewrite_in_place
from .layout import list_parts, next_round_number, round_part_name
from .parts import RAW_COLUMNS, SUMMARY_COLUMNS, TEST_COLUMNS, WRITE_SCHEMAS, read_parts
from .runs import read_meta

# One stored test: its tests/ row, its summary rows and its raw rows.
StoredTest = tuple[TestRow, Sequence[SummaryRow], Sequence[RawRow]]
_TABLES = ("summary", "raw", "tests")  # the order a part is written in: tests/ last


class RunStore:
    """Writes one run directory."""

    def __init__(self, root: Path, run_id: str) -> None:
        if not RUN_ID_RE.match(run_id):
            raise StoreError(f"invalid run id {run_id!r}", hint="use letters, digits, '-', '_' and '.'")
        self.run_id = run_id
        self.path = Path(root) / run_id
        self._next_round: int | None = None  # the next part's number (layout.next_round_number), once known
        self._stored: dict[str, str] | None = None  # test id -> the tests/ part holding it, once read

    @property
    def log_dir(self) -> Path:
        return self.path / "logs"

    def file(self, folder: str | None, name: str) -> Path:
        """The path of one file of the run: every file this class writes goes through here.
        A name that is not one plain path component, or a path that resolves outside the
        run directory (a symlinked folder, a test id from an imported report), is refused."""
        self._check_name(name)
        path = self.path / folder / name if folder else self.path / name
        root = self.path.resolve()
        if not path.resolve().is_relative_to(root):
            raise StoreError(f"{path} resolves to {path.resolve()}, outside the run directory {root}",
                             hint=f"remove the symlink in {self.path}; a run writes only inside its own directory")
        return path

    def _check_name(self, name: str) -> None:
        if not TEST_ID_RE.match(name.removesuffix(".parquet")):
            raise StoreError(f"{name!r} is not a file name benchfab writes into run {self.run_id}",
                             hint="test ids hold letters, digits, '-', '_', '.' and '+' only; nothing was written")

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

    def write_tests(self, batch: Sequence[StoredTest]) -> None:
        """Store a round's finished (or interrupted) tests as one part per table (layout.py):
        summary and raw first, tests/ last, as a test counts as stored only once its tests/ row
        exists. A test stored before (measured again) is then taken out of its older part."""
        if batch:
            self._write_part([t for t, _, _ in batch], _table([r for _, s, _ in batch for r in s], "summary"),
                             _table([r for _, _, rows in batch for r in rows], "raw"))

    def write_test(self, test_row: TestRow, summary_rows: Sequence[SummaryRow], raw_rows: Sequence[RawRow]) -> None:
        """Store one test (a part of its own): write_tests of one."""
        self.write_tests([(test_row, summary_rows, raw_rows)])

    def write_test_frames(self, test_row: TestRow, summary: pd.DataFrame, raw: pd.DataFrame) -> None:
        """write_test with the rows as DataFrames (columns of records.py; any order, missing
        ones null): what an import of a million rows builds by column."""
        self._write_part([test_row], _conform(summary, SUMMARY_COLUMNS), _conform(raw, RAW_COLUMNS))

    def _write_part(self, tests: list[TestRow], summary: pd.DataFrame | pa.Table, raw: pd.DataFrame | pa.Table) -> None:
        for test in tests:  # a test id names its log files (and parts of runs stored before round parts)
            self._check_name(test["test_id"])
        stored = self._stored_tests()
        name = self._claim_part_name()
        paths = [self.file(table, name) for table in _TABLES]
        atomic_write_parquet(paths[0], summary)
        atomic_write_parquet(paths[1], raw)
        atomic_write_parquet(paths[2], _table(tests, "tests"))
        older: dict[str, set[str]] = {}
        for test in tests:
            tid = test["test_id"]
            if (part := stored.get(tid)) is not None and part != name:
                older.setdefault(part, set()).add(tid)
            stored[tid] = name
        for part, again in sorted(older.items()):
            self._drop_tests(part, again)

    def _claim_part_name(self) -> str:
        """The next round part's file name: read from tests/ once, then counted on (checked, in
        case another writer of this process stored a part since)."""
        if self._next_round is None or self.file("tests", round_part_name(self._next_round)).exists():
            self._next_round = next_round_number(self.path / "tests")
        name = round_part_name(self._next_round)
        self._next_round += 1
        return name

    def _stored_tests(self) -> dict[str, str]:
        """test id -> the file name of the tests/ part holding its row (the newest, if a crash
        left it in two), read once: a new run has none, a resumed one reads tests/ once."""
        if self._stored is None:
            self._stored = {}
            for part in list_parts(self.path / "tests"):  # oldest first: the newest part wins
                if regular_file_problem(part) is not None:  # a FIFO would block the open: readers name it
                    continue
                try:
                    ids = pq.read_table(part, columns=["test_id"]).column("test_id").to_pylist()
                except (OSError, pa.ArrowException, KeyError):
                    continue  # a damaged part: readers name it; a test there runs again, into a new part
                self._stored.update((str(t), part.name) for t in ids)
        return self._stored

    def _drop_tests(self, name: str, again: set[str]) -> None:
        """Take the tests measured again out of the older part ``name``. Summary and raw first,
        tests/ last: until then its tests/ rows say the part is contested, and readers keep the
        newer part's rows (layout.py). A part left with no test goes, its tests/ file first
        (what is left of the others is then a part no tests/ row promises, read as stale)."""
        gone = pa.array(sorted(again), pa.string())
        tables: dict[str, pa.Table] = {}
        for table in _TABLES:
            path = self.file(table, name)
            if path.exists() and (problem := regular_file_problem(path)) is not None:  # never open a FIFO
                raise DamagedRun(f"{path}: {problem}", hint="move it away; the new measurement is stored and counts")
            try:
                whole = pq.read_table(path)
                tables[table] = whole.filter(pc.invert(pc.is_in(whole.column("test_id"), value_set=gone)))
            except FileNotFoundError:
                continue
            except (OSError, pa.ArrowException, KeyError) as exc:
                raise DamagedRun(f"{path}: cannot be read to take out the tests measured again ({exc})",
                                 hint="move it away; the new measurement is stored and counts") from None
        if "tests" in tables and tables["tests"].num_rows == 0:
            for table in reversed(_TABLES):
                self.file(table, name).unlink(missing_ok=True)
            return
        for table in _TABLES:
            if table in tables:
                atomic_write_parquet(self.file(table, name), tables[table])

    def finished_tests(self) -> set[str]:
        """Test ids already measured successfully (skipped by --resume)."""
        tests = read_parts(self.path / "tests", TEST_COLUMNS)
        if tests.empty:
            return set()
        return set(tests.loc[tests["status"] == "ok", "test_id"])


def _table(rows: Sequence[Any], table: str) -> pa.Table | pd.DataFrame:
    """The rows of one table (records.py dicts) as one Arrow table of the table's columns,
    built once per part straight from the dicts (a third cheaper than through pandas:
    benchmarks/store_write.py). Integer columns go through float64 and are cast back only if
    every value is whole (Arrow would cut 1.5 to 1 silently), as pandas typed them before; a
    value of another kind than records.py says (a number where text belongs) is stored as
    pandas makes of it, as every part was before round parts: never lost."""
    schema = WRITE_SCHEMAS[table]
    loose = pa.schema([(f.name, pa.float64() if pa.types.is_integer(f.type) else f.type) for f in schema])
    try:
        built = pa.Table.from_pylist(list(rows), schema=loose)
    except (pa.ArrowException, TypeError, ValueError):
        columns = {"summary": SUMMARY_COLUMNS, "raw": RAW_COLUMNS, "tests": TEST_COLUMNS}[table]
        return _conform(pd.DataFrame(list(rows)), columns)
    for i, field in enumerate(schema):
        if pa.types.is_integer(field.type):
            try:
                built = built.set_column(i, field, built.column(i).cast(field.type))  # a safe cast: whole values only
            except pa.ArrowInvalid:
                pass  # a fractional value: the column stays float64
    return built


def _conform(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` with exactly the table's columns, in order (missing ones null)."""
    frame = frame.reindex(columns=columns)
    # Columns that are all-None would be stored as a null type; give them a
    # real one so parts concatenate cleanly.
    for col in columns:
        if frame[col].isna().all() and col.endswith(("_s", "_Bps")):
            frame[col] = frame[col].astype("float64")
    return frame
