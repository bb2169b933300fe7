"""Named baselines: results/baselines.json maps a name to a run id and the hash of the
spec text that run was started with. A pointer, never a copy of the data: the run stays
where it is, and a baseline whose run was removed or whose spec no longer hashes the
same is an error naming it, not a silent comparison with something else.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from ..errors import StoreError, UnknownRun, UsageError
from ..runlock import run_status
from ..store import MAX_JSON_BYTES, atomic_write_bytes, read_meta, resolve_run_path
from ..untrusted import read_regular

BASELINES_FILE = "baselines.json"
BASELINES_SCHEMA = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def spec_hash(meta: dict[str, Any]) -> str:
    """sha256 of the spec text a run was started with (run.json ``spec_text``)."""
    return "sha256:" + hashlib.sha256(str(meta.get("spec_text") or "").encode()).hexdigest()


def read_baselines(results_dir: Path) -> dict[str, dict[str, Any]]:
    path = Path(results_dir) / BASELINES_FILE
    again = "restore it, or delete it and set the baselines again"
    try:
        doc = json.loads(read_regular(path, MAX_JSON_BYTES, error=StoreError, fix=again).decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise StoreError(f"{path}: not valid JSON ({exc})", hint=again) from None
    if not isinstance(doc, dict) or doc.get("schema") != BASELINES_SCHEMA or not isinstance(doc.get("baselines"), dict):
        raise StoreError(f"{path}: not a benchfab baselines file (schema {BASELINES_SCHEMA})",
                         hint="restore it, or delete it and set the baselines again")
    return {str(k): v for k, v in doc["baselines"].items() if isinstance(v, dict)}


def set_baseline(results_dir: Path, run: str, name: str, *, force: bool = False) -> dict[str, Any]:
    """Point ``name`` at ``run`` (id, prefix, 'latest', or a run directory inside ``results_dir``);
    the file is rewritten atomically. A run that is not complete (still running, abandoned by a
    controller that died, failed, interrupted) is refused unless ``force``."""
    if not NAME_RE.match(name):
        raise UsageError(f"--name {name!r}: not a baseline name", hint="use letters, digits, '-', '_' and '.' (up to 64)")
    path = resolve_run_path(run, results_dir)
    if path.parent.resolve() != Path(results_dir).resolve():
        # baselines.json records a run id of its own results directory: a run elsewhere would be
        # recorded by its name only and later resolve to whatever run of that name is here.
        raise UsageError(f"run {path} is not in the results directory {results_dir}/",
                         hint=f"keep its baseline beside it: benchfab baseline set {path.name} --name {name} "
                              f"--results {path.parent}")
    meta = read_meta(path)
    status = run_status(path, meta)  # "abandoned" when running but its controller is gone
    if status != "complete" and not force:
        raise UsageError(f"run {path.name} is {status}, not complete",
                         hint="choose a complete run (benchfab runs), finish it with benchfab sweep --resume "
                              f"{path.name}, or pass --force to name it anyway")
    entry = {"run": path.name, "spec_hash": spec_hash(meta), "spec_name": (meta.get("spec") or {}).get("name"),
             "set": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    baselines = read_baselines(results_dir)
    baselines[name] = entry
    doc = {"schema": BASELINES_SCHEMA, "baselines": dict(sorted(baselines.items()))}
    atomic_write_bytes(Path(results_dir) / BASELINES_FILE, (json.dumps(doc, indent=2) + "\n").encode())
    return entry


def baseline_run(results_dir: Path, name: str) -> Path | None:
    """The run directory a named baseline points at (None: no such name), checked against its spec hash."""
    entry = read_baselines(results_dir).get(name)
    if entry is None:
        return None
    path = Path(results_dir) / str(entry.get("run"))
    if not (path / "run.json").exists():
        raise UnknownRun(f"baseline {name!r} points at run {entry.get('run')!r}, which is not in {results_dir}/",
                         hint=f"set it again: benchfab baseline set RUN --name {name}")
    if spec_hash(read_meta(path)) != entry.get("spec_hash"):
        raise StoreError(f"baseline {name!r}: run {entry.get('run')}'s spec no longer matches the hash it was set with",
                         hint=f"the run was replaced or edited; set it again: benchfab baseline set RUN --name {name}")
    return path
