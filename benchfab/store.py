"""Results store: results/<run_id>/ with run.json and Parquet tables.

Layout (schema version 1):

    results/<run_id>/run.json                 metadata: resolved spec, inventory, versions,
                                              host, git revision, timestamps, run status
    results/<run_id>/tests/<test_id>.parquet  one row per test: status, reason, what it used
    results/<run_id>/summary/<test_id>.parquet  one row per test x size x in-place flag
    results/<run_id>/raw/<test_id>.parquet    per-iteration times (max over ranks)
    results/<run_id>/logs/<test_id>.rank<r>.log

Every file is written to a temporary name and renamed into place, so a crash
or Ctrl-C never leaves a half-written table; one file per test keeps writes
append-only (nothing already stored is rewritten when a test finishes), and
``--resume`` simply skips tests whose tests/ row says ``ok``.

Schema history:
    1  first version (2026-11): collectives and point-to-point columns in one
       tidy summary table (columns that do not apply are null). Summary columns
       added since (profile, hosts: 2026-12) are read as null from older parts.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pa_dataset
import pyarrow.parquet as pq

from . import records
from .errors import DamagedRun, StoreError, UnknownRun
from .records import SCHEMA_VERSION, RawRow, SummaryRow, TestRow
from .untrusted import read_regular, regular_file_problem

# \Z, not $: "$" also matches before a final newline, and a name with one would pass.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
# A test id names its Parquet parts and rank logs: one path component ('+' joins a Kubernetes
# test's nodes), no "..", room left for ".rank<N>.log" under the file system's 255-byte limit.
TEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,239}\Z")
# The most run.json (and the other JSON documents of a run) may hold: far above any real one
# (a 1,000-node all-pairs plan lists 500,000 test ids in about 20 MB), far below memory.
MAX_JSON_BYTES = 64 << 20

# The columns of each table, from the record schema (benchfab.records).
SUMMARY_COLUMNS = list(records.SUMMARY_COLUMNS)
RAW_COLUMNS = list(records.RAW_COLUMNS)
TEST_COLUMNS = list(records.TEST_COLUMNS)


# mkstemp makes 0600 files; results are meant to be read by the team, so they get
# the mode an ordinary file would (0666 less the umask).
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def _temp_beside(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, FILE_MODE)
    return fd, tmp


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        if not exc.filename:  # pyarrow's errors name no file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        _discard(tmp)
        raise


def rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite an existing small file through its own blocks: the last resort when a
    full disk has no room for the temporary copy an atomic write needs."""
    with open(path, "r+b") as f:
        f.truncate(0)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


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
        tests = _read_parts(self.path / "tests", TEST_COLUMNS)
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


def _read_parts(folder: Path, columns: list[str]) -> pd.DataFrame:
    """Every part of one table, concatenated. A damaged part is an error naming the
    file: a table with a test silently missing would be a wrong result."""
    frames = [f for f in (_read_part(p, columns) for p in _parts(folder)) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(frames, ignore_index=True)
    # Parts written before a column was added lack it: it reads as null.
    for col in columns:
        if col not in frame.columns:
            frame[col] = None
    return frame


def _parts(folder: Path) -> list[Path]:
    """The Parquet parts of one table folder, in test id order (none: no folder yet)."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise DamagedRun(f"{folder}: not a directory (a benchfab run keeps one Parquet file per test there)",
                         hint=f"move {folder} away; the run's other tables are unaffected")
    return sorted(folder.glob("*.parquet"))


_MOVE_PART = "move it away (that test then counts as not run: benchfab sweep --resume reruns it)"


def _read_part(part: Path, columns: list[str]) -> pd.DataFrame:
    problem = regular_file_problem(part)
    if problem is not None:  # a FIFO would block the read forever, a device never end
        raise DamagedRun(f"{part}: {problem}", hint=_MOVE_PART)
    try:
        schema = pq.read_schema(part)
        frame = pd.read_parquet(part)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise DamagedRun(f"{part}: not a readable Parquet file ({first})", hint=_MOVE_PART) from None
    missing = [c for c in ("run_id", "test_id") if c in columns and c not in frame.columns]
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
    for field in schema:
        expected = types.get(field.name)
        if expected is None or _compatible(field.type, expected) or frame[field.name].isna().all():
            continue
        raise DamagedRun(f"{part}: column {field.name!r} holds {_kind(field.type)}, benchfab writes {_kind(expected)} "
                         "there", hint="the file was edited or written by another tool; " + _MOVE_PART)


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
        raise DamagedRun(f"{first}: missing{more}, though tests/{first.name} says that test was stored: the run "
                         "is damaged", hint=f"restore the file from a backup, or move tests/{first.name} away so "
                         f"that benchfab sweep --resume {Path(run_path).name} measures the test again")


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
    for part in found:
        if (problem := regular_file_problem(part)) is not None:  # before any open: a FIFO blocks it
            raise DamagedRun(f"{part}: {problem}", hint=_MOVE_PART)
    parts = [str(p) for p in found]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    try:
        scanned = pa_dataset.dataset(parts, format="parquet", schema=schema).to_table()
    except (pa.ArrowException, OSError):
        _read_parts(folder, list(columns))  # raises the StoreError naming the damaged part
        raise
    frame: pd.DataFrame = scanned.to_pandas()
    filled = [c for c in ("profile", "hosts") if c in columns]
    if table == "summary" and filled and frame[filled].isna().any().any():  # parts older than those columns
        frame = _fill_from_tests(frame, read_columns(run_path, "tests", ["test_id", "profile", "used"]))
    return frame


# run.json fields whose type the readers rely on (sorting, counting, resuming).
_META_TYPES: dict[str, type] = {
    "run_id": str, "status": str, "started": str, "ended": str, "counts": dict, "planned_tests": list,
    "spec": dict, "spec_text": str, "host": dict, "git": dict, "inventory": dict,
}


def read_meta(path: Path) -> dict[str, Any]:
    """A run's run.json, checked: a one-line StoreError naming the file for anything
    that is not the JSON object benchfab writes."""
    meta_path = Path(path) / "run.json"
    restore = "the file is damaged; restore it from a backup or move the run away"
    try:
        meta: Any = json.loads(read_regular(meta_path, MAX_JSON_BYTES, error=DamagedRun, fix=restore).decode("utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path}: not a benchfab run (no run.json)", hint="list runs with `benchfab runs`") from None
    except UnicodeDecodeError as exc:
        raise DamagedRun(f"{meta_path}: not text (byte {exc.start} is not UTF-8)", hint=restore) from None
    except json.JSONDecodeError as exc:
        raise DamagedRun(f"{meta_path}: not valid JSON (line {exc.lineno}: {exc.msg})",
                         hint="the file is damaged or cut short; restore it or move the run away") from None
    except RecursionError:
        raise DamagedRun(f"{meta_path}: nested too deeply for JSON benchfab writes", hint=restore) from None
    if not isinstance(meta, dict):
        raise DamagedRun(f"{meta_path}: holds a JSON {type(meta).__name__}, not the object benchfab writes", hint=restore)
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{meta_path}: schema version {version!r}, this benchfab reads {SCHEMA_VERSION}",
                         hint="read it with the benchfab version that wrote it")
    for key, kind in _META_TYPES.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise DamagedRun(f"{meta_path}: field {key!r} is a {type(meta[key]).__name__}, benchfab writes a {kind.__name__}",
                             hint="the file was edited or damaged; restore it or move the run away")
    return meta


def check_run(path: Path) -> dict[str, Any]:
    """A run's run.json, after checking that the files it promises are there (missing_parts):
    what ``benchfab runs`` lists, cheaply (no table is read)."""
    meta = read_meta(path)
    check_parts(path)
    return meta


@dataclass
class Run:
    """A stored run, loaded into pandas."""

    path: Path
    meta: dict[str, Any]
    summary: pd.DataFrame
    raw: pd.DataFrame
    tests: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.meta["run_id"])


def resolve_run_path(run: str | os.PathLike[str], results_dir: str | os.PathLike[str] = "results") -> Path:
    """A run given as a directory, or as a run id under ``results_dir`` (prefix allowed if unique)."""
    candidate = Path(run)
    if (candidate / "run.json").exists():
        return candidate
    root = Path(results_dir)
    if (root / str(run) / "run.json").exists():
        return root / str(run)
    matches = sorted(p.parent for p in root.glob(f"{run}*/run.json")) if root.exists() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UnknownRun(f"run id {str(run)!r} is ambiguous: {', '.join(m.name for m in matches[:5])}",
                         hint="give more of the id")
    if str(run) == "latest":
        runs = list_runs(root)
        if runs:
            return runs[-1]
    raise UnknownRun(f"no run {str(run)!r} in {root}/", hint="list runs with `benchfab runs`")


def list_runs(results_dir: str | os.PathLike[str] = "results") -> list[Path]:
    """Every run directory under ``results_dir``, oldest first; damaged ones (whose
    run.json ``read_meta`` refuses) sort last."""
    root = Path(results_dir)
    if not root.exists():
        return []
    runs = [p.parent for p in root.glob("*/run.json")]
    return sorted(runs, key=lambda p: (read_meta_quiet(p).get("started") or "~", p.name))


def read_meta_quiet(path: Path) -> dict[str, Any]:
    try:
        return read_meta(path)
    except StoreError:
        return {}


def load_run(run: str | os.PathLike[str], results_dir: str | os.PathLike[str] = "results") -> Run:
    """Load one run (a directory, or a run id under ``results_dir``) into pandas.

    >>> run = benchfab.load_run("results/20261127-081500-local")
    >>> run.summary.query("workload == 'allreduce'")[["size_bytes", "busbw_Bps"]]
    """
    path = resolve_run_path(run, results_dir)
    meta = check_run(path)
    tests = _read_parts(path / "tests", TEST_COLUMNS)
    return Run(
        path=path,
        meta=meta,
        summary=_fill_from_tests(_read_parts(path / "summary", SUMMARY_COLUMNS), tests),
        raw=_read_parts(path / "raw", RAW_COLUMNS),
        tests=tests,
    )


@dataclass(frozen=True)
class SummaryChunk:
    """Some of one test's summary rows (sorted by size): the first chunk of the test, the last, or both."""

    rows: pd.DataFrame
    first: bool
    last: bool


def read_table(run_path: Path, table: str) -> pd.DataFrame:
    """One whole table (summary, raw or tests) of a run, as load_run reads it."""
    return _read_parts(Path(run_path) / table, {"summary": SUMMARY_COLUMNS, "raw": RAW_COLUMNS, "tests": TEST_COLUMNS}[table])


def summary_chunks(run_path: Path, tests: pd.DataFrame, chunk_rows: int = 10_000) -> Iterator[SummaryChunk]:
    """A checked run's summary rows a test at a time (test id order), each test in chunks of at
    most about ``chunk_rows`` rows sorted by size (a size never split): ``benchfab show`` of an
    imported million-row report then holds one chunk's records, not the run's."""
    for part in _parts(Path(run_path) / "summary"):
        frame = _read_part(part, SUMMARY_COLUMNS)
        if frame.empty:
            continue
        frame = _fill_from_tests(frame.reindex(columns=list(dict.fromkeys([*frame.columns, *SUMMARY_COLUMNS]))), tests)
        frame = frame.sort_values("size_bytes", kind="stable", ignore_index=True)
        sizes = frame["size_bytes"].to_numpy()
        start = 0
        while start < len(frame):
            end = min(start + chunk_rows, len(frame))
            while end < len(frame) and sizes[end] == sizes[end - 1]:
                end += 1  # keep a size's out-of-place and in-place rows together
            yield SummaryChunk(frame.iloc[start:end], first=start == 0, last=end == len(frame))
            start = end


def _fill_from_tests(summary: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """Summary parts written before the profile and hosts columns existed: their test's
    row has both (profile, and the hosts in ``used``), so such runs still group by
    records.MEASUREMENT_KEY with newer ones."""
    if summary.empty or tests.empty:
        return summary
    by_test = tests.drop_duplicates("test_id").set_index("test_id")
    hosts = by_test["used"].map(_used_hosts)
    for column, source in (("profile", by_test["profile"]), ("hosts", hosts)):
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


def load_runs(results_dir: str | os.PathLike[str] = "results", *, strict: bool = False) -> pd.DataFrame:
    """Every run's summary rows in one DataFrame, with run start time, host and git revision added.

    A damaged run (unreadable run.json or Parquet part) is left out with a
    ``DamagedRunWarning`` naming it and why; ``strict=True`` raises its StoreError instead.
    """
    extra = ["run_started", "run_host", "git_revision"]
    frames = []
    for path in list_runs(results_dir):
        try:
            run = load_run(path)
        except StoreError as exc:
            if strict:
                raise
            warnings.warn(f"skipped damaged run {path.name}: {exc}", DamagedRunWarning, stacklevel=2)
            continue
        if run.summary.empty:
            continue  # nothing measured (every test skipped or failed before a size): no rows
        frame = run.summary.copy()
        host = run.meta.get("host") or {}
        frame["run_started"] = run.meta.get("started")
        # A scalar: a dict assigned to a column is aligned on its keys (NaN rows).
        frame["run_host"] = host.get("hostname")
        frame["git_revision"] = (run.meta.get("git") or {}).get("revision")
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=SUMMARY_COLUMNS + extra)
    return pd.concat(frames, ignore_index=True)


class DamagedRunWarning(UserWarning):
    """A run in the results directory could not be read and was left out."""
