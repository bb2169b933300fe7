"""Which runs a comparison reads: BASE as a run id / prefix / 'latest' / a named baseline /
``history:N``, and the last N comparable runs before a new one (same spec, same hosts)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import StoreError, UnknownRun, UsageError
from ..store import list_runs, read_meta_quiet, resolve_run_path
from .baselines import baseline_run, spec_hash
from .history import History, compare_history
from .judge import Comparison, Method, compare_runs, damaged_comparison
from .keys import Key, KeyData, key_id, load_keys, load_medians
from .noise import MIN_HISTORY
from .planned import spec_plans

HISTORY_RE = re.compile(r"^history:(\d+)$")


@dataclass(frozen=True)
class Base:
    label: str
    run: Path | None = None  # a run to compare with
    history: int = 0  # or the last N comparable runs


@dataclass(frozen=True)
class Scope:
    """Which earlier runs a history may use besides those of the same spec text on the same
    hosts: ``any_host`` also those measured on other machines, ``any_spec`` also those of
    another text of the spec of the same name."""

    any_host: bool = False
    any_spec: bool = False


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


def host_identity(meta: dict[str, Any]) -> frozenset[tuple[str, ...]]:
    """The machines a run measured on, each by its name, CPU, GPU count and kernel (run.json
    ``inventory``): a history leaves out a run that shares none of them with the new run
    (the committed example run, another laptop, a cluster reinstalled)."""
    inventory = meta.get("inventory") or {}
    nodes = inventory.get("nodes") if isinstance(inventory, dict) else None
    if isinstance(nodes, list) and nodes:
        return frozenset(tuple(str(n.get(k)) for k in ("name", "cpu_model", "cpus", "kernel"))
                         for n in nodes if isinstance(n, dict))
    hosts = inventory.get("hosts") if isinstance(inventory, dict) else None  # imported runs: host names only
    if isinstance(hosts, list) and hosts:
        return frozenset((str(h),) for h in hosts)
    return frozenset({(str((meta.get("host") or {}).get("hostname")),)})


@dataclass
class Earlier:
    """The earlier runs a history takes, oldest first, and how many it left out, and why."""

    paths: list[Path]
    other_hosts: int = 0
    other_specs: int = 0


def comparable_runs(new: Path, n: int, results_dir: Path, scope: Scope = Scope()) -> Earlier:
    """The last ``n`` complete runs started before ``new`` from a spec of the same name: of the
    same spec text and sharing a machine with ``new`` unless ``scope`` widens that."""
    meta = read_meta_quiet(new)
    name = (meta.get("spec") or {}).get("name")
    started = str(meta.get("started") or "~")
    text_hash, hosts = spec_hash(meta), host_identity(meta)
    found = Earlier([])
    for path in list_runs(results_dir):
        other = read_meta_quiet(path)
        if path.resolve() == new.resolve() or other.get("status") != "complete":
            continue
        if (other.get("spec") or {}).get("name") != name or str(other.get("started") or "") > started:
            continue
        if not scope.any_spec and spec_hash(other) != text_hash:
            found.other_specs += 1
        elif not scope.any_host and not (host_identity(other) & hosts):
            found.other_hosts += 1
        else:
            found.paths.append(path)
    found.paths = found.paths[-n:]
    return found


def run_comparison(base: Base | str, new: Path | str, results_dir: Path | str = "results",
                   method: Method | None = None, scope: Scope = Scope()) -> Comparison:
    """Load what the comparison needs and judge: ``benchfab compare BASE NEW``. ``base`` and
    ``new`` as the CLI takes them (a run id, prefix, directory or 'latest'; ``base`` also a
    baseline name or history:N), ``method`` the defaults (factor 1.10, z 5). Stored files of
    either side that cannot be read make a "damaged" comparison naming the file (exit 1)."""
    results_dir = Path(results_dir)
    base = parse_base(base, results_dir) if isinstance(base, str) else base
    new = resolve_run_path(new, results_dir)
    method = method or Method()
    earlier = None if base.run is not None else comparable_runs(new, base.history, results_dir, scope)
    label = base.label if earlier is None else f"history:{base.history} ({len(earlier.paths)} of {base.history} runs)"
    try:
        if base.run is not None:
            return _against_run(base.run, new, method, label)
        assert earlier is not None
        return _against_history(earlier, base.history, new, method, label, results_dir)
    except UnknownRun:
        raise
    except StoreError as exc:
        runs = [base.run.name] if base.run is not None else [p.name for p in earlier.paths] if earlier else []
        return damaged_comparison(label, runs, new.name, method, str(exc))


def _against_run(base: Path, new: Path, method: Method, label: str, note: str | None = None) -> Comparison:
    new_data = load_keys(new)
    base_data = load_keys(base)
    names = [(data.meta.get("spec") or {}).get("name") for data in (base_data, new_data)]
    # A base of another spec (a named baseline shared by specs): its test entries mean nothing
    # to the new spec, so a key only the base has is unmatched ("removed"), never "missing".
    # A new run without a spec (imported) plans nothing: what it lacks stays "missing".
    across = names[0] != names[1] and isinstance(new_data.meta.get("spec_text"), str)
    planned = _never_planned if across else spec_plans(new_data.meta)
    result = compare_runs(base_data, new_data, method, label, planned=planned)
    if across:
        result.verdicts = [replace(v, cause=f"unmatched: no such key in the new run (base spec {names[0]!r})")
                           if v.verdict == "removed" else v for v in result.verdicts]
    if note:
        result.notes.insert(0, note)
    if spec_hash(base_data.meta) != spec_hash(new_data.meta):
        result.unmatched = {"base_only": [key_id(k) for k in base_data.keys if k not in new_data.keys],
                            "new_only": [key_id(k) for k in new_data.keys if k not in base_data.keys]}
        matched = sum(1 for k in new_data.keys if k in base_data.keys)
        lost = "unmatched (removed)" if across else "missing where the new spec still plans them, else removed"
        result.notes.append(
            (f"the base is of spec {names[0]!r}, the new run of {names[1]!r}" if across else
             "the two runs were started from different spec texts")
            + f": {matched} key(s) matched and were judged; {len(result.unmatched['base_only'])} only in the base "
              f"({lost}), {len(result.unmatched['new_only'])} only in the new run (new)")
    return result


def _never_planned(key: Key, data: KeyData) -> bool:
    return False


def _against_history(earlier: Earlier, n: int, new: Path, method: Method, label: str, results_dir: Path) -> Comparison:
    left_out = [f"{count} from {what} (--{flag} takes them)" for count, what, flag in (
        (earlier.other_hosts, "other machines", "any-host"), (earlier.other_specs, "another text of the spec", "any-spec"))
        if count]
    scope_note = f"left out {', '.join(left_out)}" if left_out else None
    if 0 < len(earlier.paths) < MIN_HISTORY:
        latest = earlier.paths[-1]
        note = (f"{len(earlier.paths)} of {n} runs: fewer than {MIN_HISTORY} earlier runs show no run-to-run spread; "
                f"judged against the latest, {latest.name}, as a pair of runs")
        result = _against_run(latest, new, method, label, note)
    else:
        medians = [load_medians(p) for p in earlier.paths]
        new_data = load_keys(new)
        history = History([run_id for run_id, _ in medians], [m for _, m in medians],
                          load_keys(earlier.paths[-1], with_samples=False) if earlier.paths else None)
        result = compare_history(history, new_data, Method("history-spread", method.factor, method.z), label,
                                 planned=spec_plans(new_data.meta))
        if not earlier.paths:
            result.notes.append(f"no earlier complete run of spec {(new_data.meta.get('spec') or {}).get('name')!r} "
                                f"in {results_dir}/ to compare with: every key is new")
    if scope_note:
        result.notes.append(scope_note)
    return result
