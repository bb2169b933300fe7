"""Reading a run's ``verdicts.json``: what a comparison (``benchfab compare BASE NEW
--save``, ``benchfab sweep --baseline``) judged for that run.

Schema history: 1, a Mann-Whitney U p-value per key (``p_value``); 2 (2026-12), the noise
model (benchfab.compare.noise): ``p_value`` gave way to ``noise`` (the relative change
the runs' noise covers), verdict ``removed`` (a key the new run's spec no longer has;
``missing`` became a regression), and ``damaged`` (stored files a comparison could not
read: a regression). Schema 1 files are still read (their ``noise`` is null).

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
VERDICTS_SCHEMA = 2
READABLE_SCHEMAS = (1, 2)
MAX_VERDICTS_BYTES = 64 << 20  # a comparison of 100,000 keys writes about 40 MB
VERDICTS = ("better", "worse", "same", "new", "missing", "removed", "failed", "changed")
# What makes a comparison exit 1: slower, a test that failed, a change of what was measured,
# or a measurement the base has and the new run lost (not one its spec dropped: "removed").
REGRESSIONS = frozenset({"worse", "failed", "changed", "missing"})


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
    noise: float | None  # the relative change these runs' noise covers (0.38: ±38 %); None: unknown
    cause: str | None

    @property
    def regression(self) -> bool:
        return self.verdict in REGRESSIONS

    def noise_limited(self, factor: float) -> bool:
        """A "same" that says only that these runs cannot tell: their noise is wider than the factor."""
        return self.verdict == "same" and self.noise is not None and self.noise > factor - 1

    def label(self, factor: float) -> str:
        """The verdict as a table shows it: "same (noise ±38 %)" where the noise decided."""
        return f"same (noise {noise_text(self.noise)})" if self.noise_limited(factor) else self.verdict


def noise_text(noise: float | None) -> str:
    """±38 %, or - when unknown."""
    if noise is None:
        return "-"
    return f"±{noise * 100:,.0f} %"


@dataclass(frozen=True)
class Verdicts:
    """A run's verdicts.json: the base it was compared with, the method, one Verdict per key."""

    path: Path
    base_label: str
    base_runs: tuple[str, ...]
    new: str
    method: dict[str, Any]
    verdicts: tuple[Verdict, ...]
    damaged: tuple[str, ...] = ()  # stored files the comparison could not read, one line each

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
    if data.get("schema") not in READABLE_SCHEMAS:
        raise StoreError(f"{path}: schema {data.get('schema')!r}, this benchfab reads schemas "
                         f"{', '.join(map(str, READABLE_SCHEMAS))}", hint="read it with the benchfab version that wrote it")
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
        for name in ("base_median", "new_median", "ratio", "noise"):
            value = item.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise bad(f"{where}.{name}", f"{value!r} is not a finite number or null")
            figures[name] = None if value is None else float(value)
        parsed.append(Verdict(key=dict(item["key"]), key_id=item["key_id"], metric=item["metric"],
                              higher_is_better=item["higher_is_better"], verdict=item["verdict"], cause=cause,
                              **figures))
    damaged = data.get("damaged", [])
    if not isinstance(damaged, list) or not all(isinstance(d, str) for d in damaged):
        raise bad("damaged", "needs a list of text")
    return Verdicts(path, base["label"], tuple(str(r) for r in base["runs"]), data["new"], dict(method),
                    tuple(parsed), tuple(damaged))

