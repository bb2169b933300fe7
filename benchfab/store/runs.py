"""A run as a whole: its run.json (checked), where it is (an id, a prefix, a directory,
"latest"), and loading it or every run of a results directory into pandas."""

from __future__ import annotations

import glob
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DamagedRun, StoreError, UnknownRun
from ..records import SCHEMA_VERSION
from ..untrusted import read_regular
from .files import MAX_JSON_BYTES
from .parts import RAW_COLUMNS, SUMMARY_COLUMNS, TEST_COLUMNS, check_parts, fill_from_tests, read_parts

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
    """A stored run, loaded into pandas. ``raw`` (the per-iteration times, by far the largest
    table) is read on first use: show, report and export never need it."""

    path: Path
    meta: dict[str, Any]
    summary: pd.DataFrame
    tests: pd.DataFrame
    _raw: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def raw(self) -> pd.DataFrame:
        if self._raw is None:
            self._raw = read_parts(self.path / "raw", RAW_COLUMNS)
        return self._raw

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
    # A prefix of a run id is one plain name: never a path (an absolute one made glob raise, a
    # relative one with ".." matched runs outside the results directory) nor a glob pattern.
    prefix = str(run)
    plain = prefix and "/" not in prefix and prefix not in (".", "..")
    matches = sorted(p.parent for p in root.glob(f"{glob.escape(prefix)}*/run.json")) if plain and root.is_dir() else []
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
    tests = read_parts(path / "tests", TEST_COLUMNS)
    return Run(path=path, meta=meta, summary=fill_from_tests(read_parts(path / "summary", SUMMARY_COLUMNS), tests),
               tests=tests)


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
