"""Reading a run's Parquet tables (summary/, raw/, tests/: one part per round or per test, see
layout), checked: a part that is not a regular file, not Parquet, or holds another kind of value
than benchfab writes in a column it knows, and a part that tests/ promises but is missing, are
DamagedRun errors naming the file; show's chunks and the comparisons' column scans read through
here, each test's rows from the one part that counts (layout.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_dataset
import pyarrow.parquet as pq

from .. import records
from ..errors import DamagedRun
from ..records import RawRow, SummaryRow, TestRow
from ..untrusted import regular_file_problem
from .layout import list_parts, round_number

# The columns of each table, from the record schema (benchfab.records).
SUMMARY_COLUMNS = list(records.SUMMARY_COLUMNS)
RAW_COLUMNS = list(records.RAW_COLUMNS)
TEST_COLUMNS = list(records.TEST_COLUMNS)


def read_parts(folder: Path, columns: list[str]) -> pd.DataFrame:
    """Every part of one table, concatenated (oldest part first), each test's rows from the
    part that counts (layout.py). A damaged part is an error naming the file: a table with a
    test silently missing would be a wrong result."""
    found = _parts(folder)
    owner = counted_parts(folder.parent, found)
    frames = [f for f in (_counted(_read_part(p), p.name, owner) for p in found) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(frames, ignore_index=True)
    # Parts written before a column was added lack it: it reads as null.
    for col in columns:
        if col not in frame.columns:
            frame[col] = None
    return frame


_parts = list_parts


def counted_parts(run_path: Path, table_parts: Sequence[Path]) -> dict[str, str] | None:
    """test id -> the file name of the one part whose rows of that test count, when some rows
    of the table whose parts are ``table_parts`` may not (a test measured again, and a crash
    before its older part was cleaned: layout.py); None when every row counts, which the reader
    learns from the part names and tests/' test ids alone (the common case, read at full speed)."""
    tests_parts = _parts(Path(run_path) / "tests")
    if all(round_number(p.name) is None for p in tests_parts):
        return None  # one part per test (stored before round parts): a test is in its own part only
    ids = _scan(tests_parts, pa.schema([("test_id", pa.string())]), ["test_id", "__filename"])
    names = {p.name for p in tests_parts}
    if all(p.name in names for p in table_parts) and ids.num_rows == pc.count_distinct(ids.column("test_id")).as_py():
        return None
    age = {str(p): i for i, p in enumerate(tests_parts)}  # oldest first
    frame = pd.DataFrame({"test_id": ids.column("test_id").to_pylist(), "file": ids.column("__filename").to_pylist()})
    frame["age"] = frame["file"].map(age)
    newest = frame.sort_values("age", kind="stable").drop_duplicates("test_id", keep="last")
    return {str(t): Path(f).name for t, f in zip(newest["test_id"], newest["file"])}


def _counted(frame: pd.DataFrame, part: str, owner: dict[str, str] | None) -> pd.DataFrame:
    """The rows of one part (file name ``part``) that count (counted_parts)."""
    if owner is None or frame.empty or "test_id" not in frame.columns:
        return frame
    keep = frame["test_id"].astype(object).map(owner).fillna(part) == part  # a test with no tests/ row: its rows
    return frame if keep.all() else frame[keep.to_numpy()].reset_index(drop=True)


def _move_part(part: Path) -> str:
    """What to do with a damaged part: take its tests out of the run, for --resume to measure again."""
    if round_number(part.name) is None:
        return "move it away (that test then counts as not run: benchfab sweep --resume reruns it)"
    tests = _test_count(part.parent.parent / "tests" / part.name)
    return (f"move it and the other tables' {part.name} (summary/, raw/, tests/) away ({tests} then count as not "
            "run: benchfab sweep --resume reruns them)")


def _test_count(tests_part: Path) -> str:
    """"its N tests", from the footer of a round's tests/ part ("its tests" if that is unreadable too)."""
    try:
        if regular_file_problem(tests_part) is None:
            rows = pq.read_metadata(tests_part).num_rows
            return f"its {rows} test{'s' if rows != 1 else ''}"
    except Exception:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        pass
    return "its tests"


def _read_part(part: Path) -> pd.DataFrame:
    problem = regular_file_problem(part)
    if problem is not None:  # a FIFO would block the read forever, a device never end
        raise DamagedRun(f"{part}: {problem}", hint=_move_part(part))
    try:
        schema = pq.read_schema(part)
        frame = pd.read_parquet(part)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise DamagedRun(f"{part}: not a readable Parquet file ({first})", hint=_move_part(part)) from None
    missing = [c for c in ("run_id", "test_id") if c not in frame.columns]  # every table has both
    if missing:
        raise DamagedRun(f"{part}: not a benchfab table (no {', '.join(missing)} column)",
                         hint="move it out of the run directory")
    check_column_types(part, schema, frame)
    return frame


def check_column_types(part: Path, schema: pa.Schema, frame: pd.DataFrame) -> None:
    """A DamagedRun naming the part and the column when a column benchfab knows holds another
    kind of value than benchfab writes (text where a number belongs): every reader then stops
    with that line instead of failing deep inside a sum, a sort or a plot. A column with no
    value at all may have any type (pandas stores an all-null column as float)."""
    types = TABLE_TYPES.get(part.parent.name, {})
    for column in schema:
        expected = types.get(column.name)
        if expected is None or _compatible(column.type, expected) or frame[column.name].isna().all():
            continue
        raise DamagedRun(f"{part}: column {column.name!r} holds {_kind(column.type)}, benchfab writes {_kind(expected)} "
                         "there", hint="the file was edited or written by another tool; " + _move_part(part))


def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    for test, words in ((pa.types.is_integer, "numbers"), (pa.types.is_floating, "numbers"),
                        (pa.types.is_boolean, "true/false values"), (pa.types.is_string, "text"),
                        (pa.types.is_large_string, "text"), (pa.types.is_string_view, "text")):
        if test(arrow_type):
            return words
    return f"{arrow_type} values"


def _compatible(found: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_dictionary(found):
        found = found.value_type
    if pa.types.is_null(found):
        return True
    if pa.types.is_integer(expected) or pa.types.is_floating(expected):
        return bool(pa.types.is_integer(found) or pa.types.is_floating(found))
    if pa.types.is_boolean(expected):
        return bool(pa.types.is_boolean(found))
    return bool(pa.types.is_string(found) or pa.types.is_large_string(found) or pa.types.is_string_view(found))


def missing_parts(run_path: Path) -> list[Path]:
    """The summary/ and raw/ parts of tests that tests/ says were stored, but which are not
    there (deleted, or lost with a disk): such a run would read as fewer rows, silently."""
    run_path = Path(run_path)
    tests = [p.name for p in _parts(run_path / "tests")]
    missing = []
    for table in ("summary", "raw"):
        present = {p.name for p in _parts(run_path / table)}  # a file where the folder belongs: named
        missing += [run_path / table / name for name in tests if name not in present]
    return missing


def check_parts(run_path: Path) -> None:
    """DamagedRun naming the first part tests/ promises and the run lacks (see missing_parts)."""
    missing = missing_parts(run_path)
    if missing:
        first = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        run = Path(run_path).name
        if round_number(first.name) is None:
            raise DamagedRun(f"{first}: missing{more}, though tests/{first.name} says that test was stored: the run "
                             "is damaged", hint=f"restore the file from a backup, or move tests/{first.name} away so "
                             f"that benchfab sweep --resume {run} measures the test again")
        tests = _test_count(Path(run_path) / "tests" / first.name)
        raise DamagedRun(f"{first}: missing{more}, though tests/{first.name} says {tests} were stored: the run is "
                         "damaged", hint=f"restore the file from a backup, or move the run's other {first.name} parts "
                         f"(tests/, summary/, raw/) away so that benchfab sweep --resume {run} measures {tests} again")


def _arrow_type(annotation: str) -> pa.DataType:
    """The Arrow type a column is read as, from its records.py annotation. Integers that
    may be null are read as float64: pandas stores them so once a part holds a null."""
    text = annotation.removeprefix("NotRequired[").removesuffix("]")
    nullable = text.endswith("| None")
    base = text.removesuffix("| None").strip()
    return {"str": pa.string(), "bool": pa.bool_(), "float": pa.float64(),
            "int": pa.float64() if nullable else pa.int64()}[base]


TABLE_TYPES: dict[str, dict[str, pa.DataType]] = {
    name: {col: _arrow_type(str(getattr(ann, "__forward_arg__", ann))) for col, ann in row.__annotations__.items()}
    for name, row in (("summary", SummaryRow), ("raw", RawRow), ("tests", TestRow))
}
# The schema a part is written with: as read, but an integer column stays int64 (nulls and all),
# which pandas reads back as it wrote it (int64, or float64 once a null is among them).
WRITE_SCHEMAS: dict[str, pa.Schema] = {
    name: pa.schema([(col, pa.int64() if str(getattr(ann, "__forward_arg__", ann)).removeprefix("NotRequired[")
                      .startswith("int") else types[col]) for col, ann in row.__annotations__.items()])
    for (name, row), types in zip((("summary", SummaryRow), ("raw", RawRow), ("tests", TestRow)), TABLE_TYPES.values())
}


def read_columns(run_path: Path, table: str, columns: Sequence[str], categorical: Sequence[str] = ()) -> pd.DataFrame:
    """Some columns of one table of a run, every part read in one Arrow scan (several
    times faster than a pandas read per part, for the comparisons over many runs). A
    column a part lacks (written before it was added) reads as null; a damaged part is
    the StoreError that names it, as with load_run. ``categorical`` columns (text) come back
    as pandas Categoricals, decoded once per distinct value (a million raw rows name a
    hundred tests)."""
    folder = Path(run_path) / table
    types = TABLE_TYPES[table]
    schema = pa.schema([(c, pa.dictionary(pa.int32(), types[c]) if c in categorical else types[c]) for c in columns])
    check_parts(run_path)
    found = _parts(folder)
    if not found:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    owner = counted_parts(run_path, found)
    if owner is not None and "test_id" not in columns:
        schema = schema.append(pa.field("test_id", pa.string()))
    scanned = _scan(found, schema, [*schema.names, *(["__filename"] if owner is not None else [])])
    if "test_id" in schema.names and scanned.column("test_id").null_count:
        # A part without the column (another tool's table) scans as nulls: name it, never
        # read it as tests that lack their rows. Free to check: a stored row always has its id.
        for part in found:
            _read_part(part)
        raise DamagedRun(f"{folder}: a row without a test id", hint="a part was edited or written by another tool; "
                         + _move_part(found[0]))
    if owner is not None:
        test_ids = scanned.column("test_id").to_pandas().astype(object)
        files = scanned.column("__filename").to_pandas().map(lambda f: Path(f).name)
        keep = test_ids.map(owner).fillna(files) == files
        scanned = scanned.filter(pa.array(keep.to_numpy())).select(list(columns))
    frame: pd.DataFrame = scanned.to_pandas()
    if table == "summary":
        frame = fill_env(frame)
    filled = [c for c in ("profile", "hosts") if c in columns]
    if table == "summary" and filled and frame[filled].isna().any().any():  # parts older than those columns
        frame = fill_from_tests(frame, read_columns(run_path, "tests", ["test_id", "profile", "used"]))
    return frame


def _scan(found: Sequence[Path], schema: pa.Schema, columns: list[str]) -> pa.Table:
    """``columns`` of every part in one Arrow scan (``__filename``: the part each row is from);
    a damaged part is the DamagedRun naming it."""
    for part in found:
        if (problem := regular_file_problem(part)) is not None:  # before any open: a FIFO blocks it
            raise DamagedRun(f"{part}: {problem}", hint=_move_part(part))
    try:
        return pa_dataset.dataset([str(p) for p in found], format="parquet", schema=schema).to_table(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        for part in found:
            _read_part(part)  # raises the StoreError naming the damaged part
        raise _unconvertible(found, schema, exc) from None


def _unconvertible(parts: Sequence[Path], schema: pa.Schema, exc: BaseException) -> DamagedRun:
    """The part whose values the Arrow scan could not convert (an integer too large for the float64
    a nullable integer column is read as), found by scanning the parts one at a time."""
    for part in parts:
        try:
            pa_dataset.dataset([str(part)], format="parquet", schema=schema).to_table()
        except (pa.ArrowException, OSError) as one:
            first = (str(one).splitlines() or [type(one).__name__])[0][:160]
            return DamagedRun(f"{part}: a value benchfab cannot read ({first})",
                              hint="the file was edited or written by another tool; " + _move_part(part))
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
    return DamagedRun(f"{parts[0].parent}: the parts cannot be read together ({first})",
                      hint="move away the parts benchfab did not write")


@dataclass(frozen=True)
class SummaryChunk:
    """Some of one test's summary rows (sorted by size): the first chunk of the test, the last, or both."""

    rows: pd.DataFrame
    first: bool
    last: bool


def read_table(run_path: Path, table: str) -> pd.DataFrame:
    """One whole table (summary, raw or tests) of a run, as load_run reads it."""
    return read_parts(Path(run_path) / table, {"summary": SUMMARY_COLUMNS, "raw": RAW_COLUMNS, "tests": TEST_COLUMNS}[table])


def summary_chunks(run_path: Path, tests: pd.DataFrame, chunk_rows: int = 10_000) -> Iterator[SummaryChunk]:
    """A checked run's summary rows a test at a time (in the order they were stored: part by part,
    test id order within a part), each test in chunks of at most about ``chunk_rows`` rows sorted
    by size (a size never split): ``benchfab show`` of an imported million-row report then holds
    one part's rows and one chunk's records, never the run's."""
    found = _parts(Path(run_path) / "summary")
    owner = counted_parts(run_path, found)
    for part in found:
        frame = _counted(_read_part(part), part.name, owner)
        if frame.empty:
            continue
        frame = fill_from_tests(frame.reindex(columns=list(dict.fromkeys([*frame.columns, *SUMMARY_COLUMNS]))), tests)
        for _test_id, rows in frame.groupby("test_id", sort=True, observed=True, dropna=False):
            yield from _size_chunks(rows.sort_values("size_bytes", kind="stable", ignore_index=True), chunk_rows)


def _size_chunks(frame: pd.DataFrame, chunk_rows: int) -> Iterator[SummaryChunk]:
    """One test's rows (sorted by size) in chunks of about ``chunk_rows``."""
    sizes = frame["size_bytes"].to_numpy()
    start = 0
    while start < len(frame):
        end = min(start + chunk_rows, len(frame))
        while end < len(frame) and sizes[end] == sizes[end - 1]:
            end += 1  # keep a size's out-of-place and in-place rows together
        yield SummaryChunk(frame.iloc[start:end], first=start == 0, last=end == len(frame))
        start = end


def fill_env(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary parts written before the ``env`` key column existed ran with no test settings:
    their env is "" (records.env_label of none), so they group with newer runs' rows."""
    if "env" in summary.columns and summary["env"].isna().any():
        summary["env"] = summary["env"].astype(object).where(summary["env"].notna(), "")
    return summary


def fill_from_tests(summary: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """Summary parts written before the profile and hosts columns existed: their test's
    row has both (profile, and the hosts in ``used``), so such runs still group by
    records.MEASUREMENT_KEY with newer ones (and ``fill_env``)."""
    summary = fill_env(summary)
    if summary.empty or tests.empty:
        return summary
    by_test = tests.drop_duplicates("test_id").set_index("test_id")
    hosts = by_test["used"].map(_used_hosts)
    for column, source in (("profile", by_test["profile"]), ("hosts", hosts)):
        if column not in summary.columns:  # read_columns asked for the other one only
            continue
        missing = summary[column].isna()
        if missing.any():
            # An all-null column may come back typed as Arrow's null type, which holds no text.
            summary[column] = summary[column].astype(object)
            summary.loc[missing, column] = summary.loc[missing, "test_id"].map(source)
    return summary


def _used_hosts(used: Any) -> str | None:
    try:
        found = json.loads(used).get("hosts") if isinstance(used, str) else None
    except (json.JSONDecodeError, AttributeError):
        return None
    return ",".join(str(h) for h in found) if isinstance(found, list) else None
