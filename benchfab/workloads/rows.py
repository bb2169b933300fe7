"""The rows of a test that ended, in the record schema (benchfab.records): its summary
rows (built by its workload family), raw rows, test row, and the table the sweep prints.

The sweep, ``benchfab show`` and ``benchfab import`` call these; the schema itself
(records.py) knows no family.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..counters import stored_entries
from ..records import RawRow, SummaryRow, TestRow, env_label
from . import family_of

if TYPE_CHECKING:
    from ..records import TestOutcome
    from .base import PlannedView


def summary_rows(run_id: str, test: PlannedView, outcome: TestOutcome, backend: str = "local") -> list[SummaryRow]:
    """The summary rows of one test, built by its workload family."""
    return family_of(test.spec.workload).summary_rows(run_id, test, outcome, backend)


def raw_rows(run_id: str, test: PlannedView, outcome: TestOutcome) -> list[RawRow]:
    return [
        {"run_id": run_id, "test_id": test.test_id, "size_bytes": rec["size_bytes"], "in_place": rec["in_place"],
         "iteration": i, "time_s": t}
        for rec in outcome.results
        for i, t in enumerate(rec.get("per_iter_s") or [])
    ]


def test_row(run_id: str, test: PlannedView, outcome: TestOutcome) -> TestRow:
    return {
        "run_id": run_id,
        "test_id": test.test_id,
        "test_name": test.spec.name,
        "workload": test.spec.workload,
        "profile": test.profile_name,
        "fabric": test.profile.fabric,
        "mode": test.profile.mode,
        "ranks": test.spec.ranks,
        "nodes": len(test.hosts),
        "dtype": test.dtype,
        "redop": test.op,
        "status": outcome.status,
        "reason": outcome.reason,
        "log_tail": outcome.log_tail,
        "started": outcome.started,
        "ended": outcome.ended,
        "duration_s": outcome.ended - outcome.started,
        "used": json.dumps({"hosts": list(test.hosts), "ranks": outcome.env, **_rail_of(test),
                            **({"gpu_health": outcome.gpu_health} if outcome.gpu_health else {})}, default=str),
        "counters": _counters_json(test, outcome),
    }


def _rail_of(test: PlannedView) -> dict[str, Any]:
    """A per-rail test's rail and that rail's device (what the second pass names in a verdict)."""
    return {} if test.rail is None else {"rail": test.rail, "rail_device": test.rail_device}


def _counters_json(test: PlannedView, outcome: TestOutcome) -> str | None:
    entries = stored_entries(outcome.counters, list(test.hosts), test.spec.ranks)
    return None if entries is None else json.dumps(entries)


def test_title(test: PlannedView, outcome: TestOutcome) -> str:
    env0 = outcome.env[0] if outcome.env else {}
    used = f"{env0.get('transport', '?')} on {env0.get('device', '?')}" if env0 else "no rank started"
    settings = f", {env_label(test.spec.env)}" if test.spec.env else ""
    return (f"{test.test_id}: {test.spec.workload}, {test.spec.ranks} ranks, {used}{settings}, "
            f"profile {test.profile_name} ({test.profile.fabric}/{test.profile.mode}) -> {outcome.status}")


def fail_on_wrong_data(outcome: TestOutcome) -> None:
    """A test whose data check counted wrong elements failed, as nccl-tests says FAILED:
    the numbers of a link that corrupts data are not a measurement to keep as ok."""
    bad = [r for r in outcome.results if (r.get("wrong") or 0) > 0]
    if outcome.status != "ok" or not bad:
        return
    total = sum(int(r["wrong"]) for r in bad)
    sizes = ", ".join(sorted({str(r["size_bytes"]) for r in bad}, key=int))
    outcome.status = "failed"
    outcome.reason = (f"{total} wrong element(s) in the data check at size(s) {sizes} B "
                      f"(fix: look for a bad link or node in this test's hosts)"
                      + (f"; {outcome.reason}" if outcome.reason else ""))


def format_results(title: str, workload: str, dtype: str, redop: str, root: int,
                   rows: Sequence[Mapping[str, Any]]) -> str:
    """One test's table (result records or summary rows), in its family's style."""
    return family_of(workload).format_table(title, workload, dtype, redop, root, rows)


def print_outcome(test: PlannedView, outcome: TestOutcome, out: TextIO) -> None:
    """What the sweep prints when a test ends: its table, status and warnings."""
    title = test_title(test, outcome)
    family = family_of(test.spec.workload)
    if outcome.results:
        print(family.format_table(title, test.spec.workload, test.dtype, test.op, test.spec.root, outcome.results),
              file=out)
    else:
        print(f"# {title}", file=out)
    if outcome.status != "ok":
        print(f"# {outcome.status.upper()}: {outcome.reason}", file=out)
        for line in outcome.log_tail.splitlines():
            print(f"#   {line}", file=out)
    elif outcome.reason:  # ok, with a warning (e.g. NCCL fell back from the fabric to sockets)
        print(f"# WARNING: {outcome.reason}", file=out)
    for line in family.table_footer(outcome.results):
        print(line, file=out)
    print(file=out, flush=True)
