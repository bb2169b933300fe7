"""Results store: results/<run_id>/ with run.json and Parquet tables.

Layout (schema version 1):

    results/<run_id>/run.json                     metadata: resolved spec, inventory, versions,
                                                  host, git revision, timestamps, run status
    results/<run_id>/tests/round-NNNNNN.parquet   one row per test: status, reason, what it used
    results/<run_id>/summary/round-NNNNNN.parquet one row per test x size x in-place flag
    results/<run_id>/raw/round-NNNNNN.parquet     per-iteration times (max over ranks)
    results/<run_id>/logs/<test_id>.rank<r>.log

A sweep stores each round's tests as one part per table (the same name in the three folders;
skipped tests, an interrupted round's tests and each imported test likewise); runs stored
before that hold one part per test, <test_id>.parquet, and read the same (layout.py). Every
file is written to a temporary name and renamed into place, so a crash or Ctrl-C never leaves
a half-written table; tests/ is written last, so a test counts as stored only once its row
exists, and ``--resume`` skips tests whose tests/ row says ``ok``. A test measured again is
written into a new part, then taken out of its older part; readers count each test's rows
from the newest part holding its tests/ row, so a crash in between never counts it twice.

Schema history:
    1  first version (2026-11): collectives and point-to-point columns in one
       tidy summary table (columns that do not apply are null). Summary columns
       added since (profile, hosts: 2026-12) are read as null from older parts.

Modules: files (atomic writes, the names of runs and tests), layout (part names and which
part's rows count), parts (the Parquet tables, read and checked), runs (run.json, finding and
loading runs), writer (RunStore).
"""

from __future__ import annotations

from .files import (
    FILE_MODE,
    MAX_JSON_BYTES,
    RUN_ID_RE,
    TEST_ID_RE,
    atomic_write_bytes,
    atomic_write_parquet,
    rewrite_in_place,
)
from .parts import (
    RAW_COLUMNS,
    SUMMARY_COLUMNS,
    TABLE_TYPES,
    TEST_COLUMNS,
    SummaryChunk,
    check_column_types,
    check_parts,
    missing_parts,
    read_columns,
    read_table,
    summary_chunks,
)
from .runs import (
    DamagedRunWarning,
    Run,
    check_run,
    list_runs,
    load_run,
    load_runs,
    read_meta,
    read_meta_quiet,
    resolve_run_path,
)
from .writer import RunStore, StoredTest

__all__ = [
    "FILE_MODE", "MAX_JSON_BYTES", "RAW_COLUMNS", "RUN_ID_RE", "SUMMARY_COLUMNS", "TABLE_TYPES", "TEST_COLUMNS",
    "TEST_ID_RE", "DamagedRunWarning", "Run", "RunStore", "StoredTest", "SummaryChunk", "atomic_write_bytes", "atomic_write_parquet",
    "check_column_types", "check_parts", "check_run", "list_runs", "load_run", "load_runs", "missing_parts",
    "read_columns", "read_meta", "read_meta_quiet", "read_table", "resolve_run_path", "rewrite_in_place",
    "summary_chunks",
]
