"""Reading a run's ``verdicts.json``: what a comparison (``benchfab compare BASE NEW
--save``, ``benchfab sweep --baseline``) judged for that run, schema 1.

The comparison writes the file (atomically, beside run.json); the HTML report and the
OpenMetrics export read it through ``read_verdicts`` and work without it. Reading
checks every field they use, so a damaged or hand-edited file is one error naming the
file and the field, never a traceback or a silently wrong table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DamagedRun, StoreError
from .untrusted import read_regular

VERDICTS_FILE = "verdicts.json"
VERDICTS_SCHEMA = 1
MAX_VERDICTS_BYTES = 64 << 20  # a comparison of 100,000 keys writes about 40 MB
VERDICTS = ("better", "worse", "same", "new", "missing", "failed", "changed")
# What makes a comparison exit 1: slower, a test that failed, or a change of what was measured.
REGRESSIONS = frozenset({"worse", "failed", "changed"})


@dataclass(frozen=True)
class Verdict:
    """One key's judgement: the figures of the comparison and, for "changed", why."""

    key: dict[str, Any]
    key_id: str
    metric: str
    higher_is_better: bool
    verdict: str
    base_median: float | None
    new_median: float | None
    ratio: float | None
    p_value: float | None
    cause: str | None

    @property
    def regression(self) -> bool:
        return self.verdict in REGRESSIONS


@dataclass(frozen=True)
class Verdicts:
    """A run's verdicts.json: the base it was compared with, the method, one Verdict per key."""

    path: Path
    base_label: str
    base_runs: tuple[str, ...]
    new: str
    method: dict[str, Any]
    verdicts: tuple[Verdict, ...]

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.regression]


def read_verdicts(run_path: Path) -> Verdicts | None:
    """The verdicts stored in run directory ``run_path``, or None when no comparison wrote any."""
    path = Path(run_path) / VERDICTS_FILE
    rewrite = "rerun the comparison with --save to write it again"
    try:
        data = json.loads(read_regular(path, MAX_VERDICTS_BYTES, error=DamagedRun, fix=rewrite).decode("utf-8"))
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise DamagedRun(f"{path}: not text (byte {exc.start} is not UTF-8)", hint=rewrite) from None
    except json.JSONDecodeError as exc:
        raise DamagedRun(f"{path}: not JSON ({exc.msg} at line {exc.lineno})", hint=rewrite) from None
    except RecursionError:
        raise DamagedRun(f"{path}: nested too deeply for the JSON a comparison writes", hint=rewrite) from None
    return _parse(path, data)


def _parse(path: Path, data: Any) -> Verdicts:
    def bad(field: str, what: str) -> StoreError:
        return DamagedRun(f"{path}: field {field}: {what}",
                          hint="rerun the comparison with --save to write it again")

    if not isinstance(data, dict):
        raise bad("(top)", "is not an object")
    if data.get("schema") != VERDICTS_SCHEMA:
        raise StoreError(f"{path}: schema {data.get('schema')!r}, this benchfab reads schema {VERDICTS_SCHEMA}",
                         hint="read it with the benchfab version that wrote it")
    base = data.get("base")
    if not isinstance(base, dict) or not isinstance(base.get("label"), str) or not isinstance(base.get("runs"), list):
        raise bad("base", "needs a label (text) and runs (a list)")
    if not isinstance(data.get("new"), str):
        raise bad("new", "needs the run id (text)")
    method = data.get("method")
    if not isinstance(method, dict):
        raise bad("method", "is not an object")
    items = data.get("verdicts")
    if not isinstance(items, list):
        raise bad("verdicts", "is not a list")
    parsed = []
    for i, item in enumerate(items):
        where = f"verdicts[{i}]"
        if not isinstance(item, dict):
            raise bad(where, "is not an object")
        if item.get("verdict") not in VERDICTS:
            raise bad(f"{where}.verdict", f"{item.get('verdict')!r} is none of {', '.join(VERDICTS)}")
        for name in ("key_id", "metric"):
            if not isinstance(item.get(name), str):
                raise bad(f"{where}.{name}", "needs text")
        if not isinstance(item.get("key"), dict):
            raise bad(f"{where}.key", "is not an object")
        if not isinstance(item.get("higher_is_better"), bool):
            raise bad(f"{where}.higher_is_better", "needs true or false")
        cause = item.get("cause")
        if cause is not None and not isinstance(cause, str):
            raise bad(f"{where}.cause", "needs text or null")
        figures = {}
        for name in ("base_median", "new_median", "ratio", "p_value"):
            value = item.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise bad(f"{where}.{name}", f"{value!r} is not a finite number or null")
            figures[name] = None if value is None else float(value)
        parsed.append(Verdict(key=dict(item["key"]), key_id=item["key_id"], metric=item["metric"],
                              higher_is_better=item["higher_is_better"], verdict=item["verdict"], cause=cause,
                              **figures))
    return Verdicts(path, base["label"], tuple(str(r) for r in base["runs"]), data["new"], dict(method),
                    tuple(parsed))

