"""``-o json``: one JSON document on stdout per command, for scripts.

Each command prints one document of a stable shape (docs/JSON.md lists them), and
nothing else on stdout: what it prints for a person (tables, notes, a comparison's
table) goes to stderr instead, with the progress line. A value that does not exist is
``null`` (never NaN, which is not JSON). Exit codes are the text mode's.

The shapes shared by several commands live here:
- ``run_document``: a stored run (``show``, and ``sweep``, ``run``, ``import``, which
  made it);
- ``validation_document``: what ``validate`` found.
``with_run_document`` gives a command that makes a run (sweep, import) its ``-o json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import numbers
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BenchfabError, SpecError

if TYPE_CHECKING:
    from .spec import SweepSpec

# beside run.json, when written
RUN_DOCUMENT_FILES = {"verdicts": "verdicts.json", "diagnosis": "diagnosis.json", "expectations": "expectations.json"}


def _plain(value: Any) -> Any:
    """JSON's values only: NaN and infinities become null, numpy numbers Python's, tuples
    lists, anything else its str()."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _plain(value.item())  # a numpy scalar (numpy.bool_ is no bool) -> Python's
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def print_json(data: Any) -> None:
    """The command's one document, on the real stdout."""
    print(json.dumps(_plain(data), indent=2, allow_nan=False))


@contextlib.contextmanager
def text_to_stderr(enabled: bool = True) -> Iterator[None]:
    """While the command works, what it prints for a person goes to stderr, so that stdout
    holds only the JSON document printed after it."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _records(frame: Any, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    # pandas writes NaN and NaT as null and numpy scalars as numbers
    kept = frame.drop(columns=[c for c in drop if c in frame.columns])
    return list(json.loads(kept.to_json(orient="records")))


def _with_counters(test: dict[str, Any]) -> dict[str, Any]:
    """A test's record with its fabric counters as a list (stored as JSON text; null: not recorded)."""
    from .counter_evidence import entries

    test["counters"] = entries(test.get("counters"))
    return test


def run_document(path: Path | str, *, with_summary: bool = True) -> dict[str, Any]:
    """A stored run: its run.json facts, tests, summary rows (``with_summary``; show streams
    them itself), and the verdicts and diagnosis stored beside it (null when none)."""
    from .runlock import run_status
    from .store import check_run, load_run, read_table  # pandas: imported when a document is made

    run_path = Path(path)
    if with_summary:
        run = load_run(run_path)
        meta, tests = run.meta, run.tests
    else:
        meta, tests = check_run(run_path), read_table(run_path, "tests")
    doc: dict[str, Any] = {
        "run_id": run_path.name,
        "path": str(run_path),
        "status": run_status(run_path, meta),
        "started": meta.get("started"),
        "ended": meta.get("ended"),
        "spec_name": (meta.get("spec") or {}).get("name"),
        "spec_path": meta.get("spec_path"),
        "imported_from": meta.get("imported_from"),
        "counts": meta.get("counts") or {},
        # used (JSON text of each rank's environment) and log_tail are for people: show prints them
        "tests": [_with_counters(t) for t in _records(tests, drop=("used", "log_tail"))],
    }
    if with_summary:
        doc["summary"] = _records(run.summary)
    for key, name in RUN_DOCUMENT_FILES.items():
        file = run_path / name
        doc[key] = json.loads(file.read_text(encoding="utf-8")) if file.exists() else None
    return doc


def validation_document(path: str, spec: SweepSpec | None, error: BenchfabError | None) -> dict[str, Any]:
    """``validate -o json``: the spec's name, backend and test entries, or every problem found."""
    if spec is not None:
        return {"spec": path, "valid": True, "name": spec.name, "backend": spec.backend,
                "tests": len(spec.resolved_tests()), "problems": []}
    problems: list[dict[str, Any]] = []
    if isinstance(error, SpecError):
        problems = [{"file": p.source, "line": p.line, "field": p.field, "message": p.what, "fix": p.hint}
                    for p in error.problems]
    elif error is not None:
        problems = [{"file": path, "line": None, "field": None, "message": error.message, "fix": error.hint}]
    return {"spec": path, "valid": False, "name": None, "backend": None, "tests": None, "problems": problems}


def validate_json(path: str, load_spec: Callable[[str], SweepSpec]) -> int:
    """``validate -o json``: the document, valid or not; a spec with problems still exits 2
    (the error is raised again, so stderr says it as text validate does). ``load_spec``:
    benchfab.backends.registry's, which checks the backend's section too."""
    try:
        spec = load_spec(path)
    except BenchfabError as exc:
        print_json(validation_document(path, None, exc))
        raise
    print_json(validation_document(path, spec, None))
    return 0


def with_run_document(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command that makes a run (sweep, import), with ``-o json``: its text goes to stderr,
    then stdout gets the run's document and the exit code. The command leaves the run's
    directory in ``args.run_path``."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        if getattr(args, "format", "text") != "json":
            return command(args)
        with text_to_stderr():
            code = command(args)
        print_json({**run_document(args.run_path), "exit_code": code})
        return code
    return run
