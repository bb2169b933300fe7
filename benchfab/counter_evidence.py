"""The fabric counters stored with the tests, read as evidence: what ``show`` and the report
print (the counters that moved, per node and device), what a verdict cites ("port_rcv_errors
+1,204 on gpu-07 mlx5_3 during 3 tests"), and the warning for a test whose bandwidth was fine
while its error counters moved (a link that is failing but not yet slow).

Pure: over the tests table's rows (``TestRow``, ``counters`` JSON as ``benchfab.counters``
stores it) and the verdicts (``faults.Finding``). docs/DIAGNOSIS.md, "Counters as evidence".
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .counters import ERROR_COUNTERS
from .faults import Finding

# Congestion signals: shown beside the errors, never a warning on their own (a busy fabric sends CNPs).
CONGESTION_COUNTERS = frozenset({"port_xmit_wait", "np_cnp_sent", "rp_cnp_handled", "rp_cnp_ignored",
                                 "np_ecn_marked_roce_packets", "roce_slow_restart", "roce_slow_restart_cnps",
                                 "roce_slow_restart_trans"})
SHOWN = ERROR_COUNTERS | CONGESTION_COUNTERS
WARNED = ERROR_COUNTERS - {"RetransSegs"}


def entries(cell: Any) -> list[dict[str, Any]] | None:
    """A test row's stored counters (None: none recorded: an older run, an import, or ranks that
    found nothing to read, which is no evidence that nothing moved)."""
    if not isinstance(cell, str) or not cell:
        return None
    try:
        data = json.loads(cell)
    except ValueError:
        return None
    found = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    return found or None


def _where(e: Mapping[str, Any]) -> str:
    port = e.get("port")
    return f"{e.get('device')}" + (f":{port}" if port not in (None, 1) else "")


@dataclass(frozen=True)
class Moved:
    """One counter that moved on one node's source, summed over tests."""

    node: str
    source: str  # mlx5_3, eth1, tcp
    counter: str
    total: int
    tests: int

    @property
    def error(self) -> bool:
        return self.counter in ERROR_COUNTERS


def moved(rows: Iterable[Mapping[str, Any]], names: frozenset[str] = SHOWN) -> list[Moved]:
    """The counters of ``names`` that moved, per node, source and counter, over the given test rows."""
    total: dict[tuple[str, str, str], int] = defaultdict(int)
    tests: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for row in rows:
        for e in entries(row.get("counters")) or []:
            for name, value in (e.get("deltas") or {}).items():
                if name in names and isinstance(value, int) and value > 0:
                    key = (str(e.get("node")), _where(e), name)
                    total[key] += value
                    tests[key].add(str(row.get("test_id")))
    return [Moved(n, s, c, total[(n, s, c)], len(tests[(n, s, c)])) for n, s, c in sorted(total)]


def resets(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per test and source whose counters went down (reset or wrapped): no delta was taken."""
    out = []
    for row in rows:
        for e in entries(row.get("counters")) or []:
            if e.get("reset"):
                out.append(f"{row.get('test_id')}: {e.get('node')} {_where(e)}: reset during the test "
                           f"(no delta): {', '.join(map(str, e['reset']))}")
    return out


def not_exposed(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(node, source) -> the watched counters it does not expose (e.g. soft-RoCE has no symbol_error)."""
    out: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for e in entries(row.get("counters")) or []:
            if e.get("not_exposed"):
                out[(str(e.get("node")), _where(e))] = [str(n) for n in e["not_exposed"]]
    return out


def _phrase(m: Moved) -> str:
    return f"{m.counter} +{m.total:,} on {m.node} {m.source} during {m.tests} test{'s' if m.tests != 1 else ''}"


# -- show and the report --------------------------------------------------------------------------


def show_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """``benchfab show``: the error and congestion counters that moved, per test."""
    lines = [f"# {row.get('test_id')}: {m.counter} +{m.total:,} on {m.node} {m.source}"
             + ("" if m.error else " (congestion)") for row in rows for m in moved([row])]
    recorded = sum(entries(r.get("counters")) is not None for r in rows)
    if not recorded:
        return []
    head = (f"# fabric counters of {recorded} test(s): "
            + ("the error and congestion counters that moved" if lines else "no error or congestion counter moved"))
    return [head, *lines, *(f"# {line}" for line in resets(rows))]


def markdown_lines(run_id: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The report's table: per node and device, the error and congestion counters that moved."""
    if not any(entries(r.get("counters")) is not None for r in rows):
        return []
    lines = ["", f"## Fabric counters of `{run_id}`", ""]
    found = moved(rows)
    if not found:
        lines.append("No error or congestion counter moved during any test.")
    else:
        lines += ["| node | device | counter | kind | delta | tests |", "|---|---|---|---|---|---|"]
        lines += [f"| {m.node} | {m.source} | {m.counter} | {'error' if m.error else 'congestion'} | "
                  f"+{m.total:,} | {m.tests} |" for m in found]
    notes = [f"- {line}" for line in resets(rows)]
    notes += [f"- {node} {source}: not exposed: {', '.join(names)}" for (node, source), names in
              sorted(not_exposed(rows).items())]
    return lines + ([""] + notes if notes else [])


# -- verdicts -------------------------------------------------------------------------------------


def cite(finding: Finding, rows: Sequence[Mapping[str, Any]]) -> Finding:
    """``finding`` with the error counters of its tests that support it appended to its *why*:
    those of its own node(s) first, then what its partners counted (TCP counts retransmits at
    the sender: a node that drops what it receives shows at its partners)."""
    ids = {str(e.get("test_id")) for e in finding.evidence}
    mine = [r for r in rows if str(r.get("test_id")) in ids and entries(r.get("counters")) is not None]
    if not mine:
        return finding
    found = moved(mine, ERROR_COUNTERS)
    own = [m for m in found if m.node in finding.nodes]
    partners: dict[str, int] = defaultdict(int)
    for m in found:
        if m.node not in finding.nodes:
            partners[m.counter] += m.total
    parts = [_phrase(m) for m in sorted(own, key=lambda m: -m.total)[:4]]
    parts += [f"{name} +{n:,} at its partners" for name, n in sorted(partners.items(), key=lambda x: -x[1])[:2]]
    text = "; ".join(parts) if parts else f"no error counter moved in its {len(mine)} test(s)"
    return replace(finding, why=f"{finding.why}; counters: {text}")


@dataclass(frozen=True)
class CounterWarning:
    """A test that was not slow, lossy or failed, but whose error counters moved."""

    test_id: str
    hosts: tuple[str, ...]
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": "errors-without-slowdown", "test_id": self.test_id, "hosts": list(self.hosts),
                "why": self.why}


def errors_without_slowdown(fine: Mapping[str, Sequence[str]], rows: Sequence[Mapping[str, Any]]) -> list[CounterWarning]:
    """For each test of ``fine`` (test id -> its hosts; judged neither slow nor lossy nor failed):
    a warning where its error counters moved anyway. TCP retransmits are left out: the second
    pass's ``max_retrans`` rule already judges them (above it the test is lossy)."""
    by_id = {str(r.get("test_id")): r for r in rows}
    out = []
    for tid in sorted(fine):
        row = by_id.get(tid)
        found = moved([row], WARNED) if row is not None else []
        if found:
            out.append(CounterWarning(tid, tuple(fine[tid]), "errors without slowdown: "
                                      + "; ".join(f"{m.counter} +{m.total:,} on {m.node} {m.source}" for m in found[:4])))
    return out
