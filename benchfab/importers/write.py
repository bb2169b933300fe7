"""A parsed report into the store: run.json with where the file came from, and per test
the same tests/, summary/ and raw/ parts a sweep writes (benchfab.store.RunStore), so
``benchfab show``, ``report``, ``benchfab.load_runs`` and comparisons read an imported
run like a measured one."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd

from .. import __version__
from ..backends.base import TestOutcome
from ..errors import UsageError
from ..records import SCHEMA_VERSION, TestRow
from ..store import RunStore
from ..workloads.rows import fail_on_wrong_data
from .parsed import Missing, ParsedReport, ParsedTest, missing_error

# The backend column of imported rows: what ran them was the tool itself, not a benchfab backend.
IMPORTED_BACKEND = "import"


@dataclass(frozen=True)
class ImportContext:
    """What the report does not say and the user gives (benchfab import's options)."""

    profile: str
    fabric: str
    mode: str
    name: str  # the spec name the run files under (history groups runs by it)
    hosts: tuple[str, ...]  # --hosts, when the report names none
    source_url: str | None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def missing_hosts(report: ParsedReport, given: Sequence[str]) -> Missing | None:
    """The ranks' hosts, when neither the report (nccl-tests' '# Rank' lines) nor --hosts names them."""
    if report.ranks is None and not report.hosts and not given:
        return Missing("its ranks' hosts (no '#  Rank N ... on HOST' lines)",
                       "--hosts A,B,... (one host per rank, in rank order)")
    return None


def write_run(store: RunStore, report: ParsedReport, ctx: ImportContext, path: Path, data: bytes) -> list[str]:
    """Store ``report`` as run ``store.run_id``; the ids of the tests written. The run is written
    into a hidden folder beside it and renamed into place at the end, so an import that fails
    (or is killed) leaves no partial run behind."""
    if store.path.exists():
        raise UsageError(f"run {store.run_id} already exists in {store.path.parent}/",
                         hint="give another --run-id, or remove that run first")
    store.path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".import-{store.run_id}.", dir=store.path.parent))
    try:
        staged = RunStore(staging, store.run_id)
        test_ids = _write(staged, report, ctx, path, data)
        try:
            os.rename(staged.path, store.path)  # an empty directory of that name would be replaced: checked above
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise UsageError(f"run {store.run_id} appeared in {store.path.parent}/ while importing",
                                 hint="give another --run-id") from None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return test_ids


def _write(store: RunStore, report: ParsedReport, ctx: ImportContext, path: Path, data: bytes) -> list[str]:
    hosts = list(report.hosts) or list(ctx.hosts)
    if report.hosts and ctx.hosts and list(ctx.hosts) != report.hosts:
        raise UsageError(f"--hosts {','.join(ctx.hosts)} but {path} names the ranks' hosts {','.join(report.hosts)}",
                         hint="drop --hosts: the report's own hosts are kept")
    lacking = report.missing + [m for m in [missing_hosts(report, ctx.hosts)] if m is not None]
    if lacking:
        raise missing_error(str(path), lacking)
    if report.ranks is not None and hosts and len(hosts) != report.ranks:
        raise UsageError(f"--hosts names {len(hosts)} host(s), the report measured {report.ranks} ranks",
                         hint="give one host per rank, in rank order" + (" (perftest: client,server)"
                                                                        if report.tool == "perftest" else ""))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ranks = report.ranks or len(hosts)
    nodes = len(dict.fromkeys(hosts)) if hosts else ranks  # perftest without --hosts: a client and a server
    test_ids: list[str] = []
    counts: dict[str, int] = {}
    for index, test in enumerate(report.tests):
        test_id = f"{index:03d}-{test.workload}" + (f"-{test.dtype}-{test.redop}" if len(report.tests) > 1 else "")
        test_ids.append(test_id)
        outcome = TestOutcome(test_id, "ok", results=list(test.rows))
        fail_on_wrong_data(outcome)  # #wrong above zero: failed, as nccl-tests says FAILED
        status, reason = ("ok", "") if outcome.status == "ok" else ("failed", outcome.reason)
        summary = _summary_frame(_common(store.run_id, test_id, test, ctx, ranks, nodes, hosts), test, hosts,
                                 status, reason)
        raw = pd.DataFrame(test.raw, columns=["size_bytes", "in_place", "iteration", "time_s"])
        raw.insert(0, "test_id", test_id)
        raw.insert(0, "run_id", store.run_id)
        store.write_test_frames(_test_row(store.run_id, test_id, test, ctx, ranks, nodes, hosts, outcome), summary, raw)
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    started = report.facts.get("started") or now
    store.write_meta({
        "status": "complete",
        "started": started,
        "ended": report.facts.get("ended") or started,
        "counts": counts,
        "planned_tests": test_ids,
        "spec": {"name": ctx.name, "description": f"imported {report.tool} report {path.name}",
                 "backend": IMPORTED_BACKEND,
                 "profiles": {ctx.profile: {"fabric": ctx.fabric, "mode": ctx.mode}}},
        "spec_path": None,
        "host": {"hostname": hosts[0] if hosts else None},
        "git": {},
        "inventory": {"hosts": hosts},
        "versions": {"benchfab": __version__, report.tool: report.version},
        "imported_from": {
            "tool": report.tool, "format": report.format, "version": report.version,
            "path": str(path), "sha256": sha256_of(data), "bytes": len(data), "source_url": ctx.source_url,
            "imported": now, "facts": report.facts,
        },
    })
    return test_ids


def _common(run_id: str, test_id: str, test: ParsedTest, ctx: ImportContext, ranks: int, nodes: int,
            hosts: Sequence[str]) -> dict[str, Any]:
    return {"run_id": run_id, "test_id": test_id, "test_name": f"{ctx.name}-{test.binary}", "workload": test.workload,
            "profile": ctx.profile, "fabric": ctx.fabric, "mode": ctx.mode, "ranks": ranks, "nodes": nodes,
            "dtype": test.dtype, "redop": test.redop}


def _summary_frame(base: dict[str, Any], test: ParsedTest, hosts: Sequence[str], status: str, reason: str) -> pd.DataFrame:
    """The test's summary rows, built by column: the report's cells, then what every row shares
    (a million rows as dicts of 60 keys each took gigabytes)."""
    collective = test.family == "collective"
    frame = pd.DataFrame(test.rows).drop(columns=["line"], errors="ignore")
    shared = {
        "schema_version": SCHEMA_VERSION, **base,
        "collective": test.binary,
        "engine": "nccl-tests" if collective else "perftest",
        "backend": IMPORTED_BACKEND,
        "transport": test.transport,
        "nccl_network": test.nccl_network,
        "memory": test.memory,
        "root": test.root, "count": None, "algbw_Bps": None, "busbw_Bps": None, "wrong": None,
        "hosts": ",".join(hosts),
        "env": "",  # a report says nothing of the NCCL settings it ran with
    }
    for column, value in shared.items():
        if column not in frame.columns:
            frame[column] = value
    frame["status"], frame["reason"] = status, reason
    return frame


def _test_row(run_id: str, test_id: str, test: ParsedTest, ctx: ImportContext, ranks: int, nodes: int,
              hosts: Sequence[str], outcome: TestOutcome) -> TestRow:
    return cast(TestRow, {
        **_common(run_id, test_id, test, ctx, ranks, nodes, hosts),
        "status": outcome.status, "reason": outcome.reason, "log_tail": "",
        "started": 0.0, "ended": 0.0, "duration_s": 0.0,
        "used": json.dumps({"hosts": list(hosts), "ranks": [], "imported": True}),
    })
