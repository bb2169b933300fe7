"""Which runs a comparison reads: BASE as a run id / prefix / 'latest' / a named baseline /
``history:N``, and the last N comparable runs before a new one (same spec name)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..store import list_runs, read_meta_quiet, resolve_run_path
from .baselines import baseline_run, spec_hash
from .judge import Comparison, History, Method, compare_history, compare_runs
from .keys import load_keys, load_medians

HISTORY_RE = re.compile(r"^history:(\d+)$")


@dataclass(frozen=True)
class Base:
    label: str
    run: Path | None = None  # a run to compare with
    history: int = 0  # or the last N comparable runs


def parse_base(text: str, results_dir: Path) -> Base:
    """BASE as the user wrote it: history:N, a baseline name, or a run."""
    if m := HISTORY_RE.match(text):
        n = int(m.group(1))
        if n < 1:
            raise UsageError(f"{text!r}: history needs at least one run", hint="e.g. history:7")
        return Base(text, history=n)
    if text.startswith("history"):
        raise UsageError(f"{text!r} is not history:N", hint="e.g. --baseline history:7 (the last 7 comparable runs)")
    named = baseline_run(results_dir, text)
    if named is not None:
        return Base(text, run=named)
    path = resolve_run_path(text, results_dir)
    return Base(path.name, run=path)


def comparable_runs(new: Path, n: int, results_dir: Path) -> list[Path]:
    """The last ``n`` complete runs started before ``new`` with the same spec name, oldest first."""
    meta = read_meta_quiet(new)
    name = (meta.get("spec") or {}).get("name")
    started = str(meta.get("started") or "~")
    found = []
    for path in list_runs(results_dir):
        other = read_meta_quiet(path)
        if path.resolve() == new.resolve() or other.get("status") != "complete":
            continue
        if (other.get("spec") or {}).get("name") == name and str(other.get("started") or "") <= started:
            found.append(path)
    return found[-n:]


def run_comparison(base: Base | str, new: Path | str, results_dir: Path | str = "results",
                   method: Method | None = None) -> Comparison:
    """Load what the comparison needs (raw samples only for a run-to-run comparison) and judge:
    ``benchfab compare BASE NEW``. ``base`` and ``new`` as the CLI takes them (a run id, prefix,
    directory or 'latest'; ``base`` also a baseline name or history:N), ``method`` asv's defaults."""
    results_dir = Path(results_dir)
    base = parse_base(base, results_dir) if isinstance(base, str) else base
    new = resolve_run_path(new, results_dir)
    method = method or Method()
    new_data = load_keys(new, with_samples=base.run is not None)
    if base.run is not None:
        base_data = load_keys(base.run)
        result = compare_runs(base_data, new_data, method, base.label)
        if spec_hash(base_data.meta) != spec_hash(new_data.meta):
            result.notes.append("the two runs were started from different spec texts: keys only one of them has "
                                "are new or missing")
        return result
    paths = comparable_runs(new, base.history, results_dir)
    medians = [load_medians(p) for p in paths]
    history = History([run_id for run_id, _ in medians], [m for _, m in medians],
                      load_keys(paths[-1], with_samples=False) if paths else None)
    result = compare_history(history, new_data, Method("history-mad", method.factor, method.p_threshold), base.label)
    if not paths:
        result.notes.append(f"no earlier complete run of spec {(new_data.meta.get('spec') or {}).get('name')!r} "
                            f"in {results_dir}/: every key is new")
    return result
