"""Seeded faults for the verdict tests: a stored run copied, and one measurement of it made
slower (or its transport changed) and written back through the store's own writer.

These are faults put into real runs on purpose, so that a test knows which key must be
flagged; every test that uses them says so in its docstring."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import benchfab
from benchfab.store import RunStore

# Columns that grow with the time per operation, and those that shrink with it.
_TIMES = ("time_s", "lat_min_s", "lat_median_s", "lat_mean_s", "lat_p99_s", "lat_p999_s", "lat_max_s")
_RATES = ("algbw_Bps", "busbw_Bps", "bw_avg_Bps", "bw_peak_Bps", "msg_rate_pps")


def copy_run(results: Path, source: str, run_id: str, started: str | None = None) -> Path:
    """results/<source> copied to results/<run_id> (run.json says the new id, and a start time)."""
    dest = results / run_id
    shutil.copytree(results / source, dest)
    meta_path = dest / "run.json"
    meta = json.loads(meta_path.read_text())
    meta["run_id"] = run_id
    if started:
        meta["started"] = started
    meta_path.write_text(json.dumps(meta))
    return dest


def _records(frame: Any) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def rewrite_test(results: Path, run_id: str, test_id: str, *, size: int | None = None, slowdown: float = 1.0,
                 used_nccl: dict[str, Any] | None = None) -> None:
    """Test ``test_id`` of the run rewritten: at ``size`` (every size if None) its times
    multiplied and rates divided by ``slowdown``; with ``used_nccl``, rank 0's NCCL
    report replaced (what the Kubernetes backend stores from NCCL's log)."""
    run = benchfab.load_run(results / run_id)
    summary = _records(run.summary[run.summary["test_id"] == test_id])
    raw = _records(run.raw[run.raw["test_id"] == test_id])
    (test,) = _records(run.tests[run.tests["test_id"] == test_id])
    for row in summary:
        if size is None or int(row["size_bytes"]) == size:
            for col in _TIMES:
                if row.get(col) is not None and row[col] == row[col]:
                    row[col] = row[col] * slowdown
            for col in _RATES:
                if row.get(col) is not None and row[col] == row[col]:
                    row[col] = row[col] / slowdown
    for row in raw:
        if size is None or int(row["size_bytes"]) == size:
            row["time_s"] = row["time_s"] * slowdown
    if used_nccl is not None:
        used = json.loads(test["used"])
        for rank in used["ranks"]:
            rank["nccl"] = used_nccl
        test["used"] = json.dumps(used)
    RunStore(results, run_id).write_test(test, summary, raw)  # type: ignore[arg-type]


def jitter_run(results: Path, run_id: str, sigma: float, seed: int) -> None:
    """Every measurement of the run scaled by its own factor exp(N(0, sigma)), times and rates
    alike (what a host whose runs wander by about ``sigma`` does to a copy of a run): the
    run-to-run noise a comparison must not call a regression."""
    import numpy as np

    rng = np.random.default_rng(seed)
    run = benchfab.load_run(results / run_id)
    for test_id in sorted(run.tests["test_id"]):
        summary = _records(run.summary[run.summary["test_id"] == test_id])
        raw = _records(run.raw[run.raw["test_id"] == test_id])
        (test,) = _records(run.tests[run.tests["test_id"] == test_id])
        factors = {(int(r["size_bytes"]), bool(r["in_place"])): float(np.exp(rng.normal(0, sigma))) for r in summary}
        for row in summary:
            f = factors[(int(row["size_bytes"]), bool(row["in_place"]))]
            for col in _TIMES:
                if row.get(col) is not None and row[col] == row[col]:
                    row[col] = row[col] * f
            for col in _RATES:
                if row.get(col) is not None and row[col] == row[col]:
                    row[col] = row[col] / f
        for row in raw:
            row["time_s"] = row["time_s"] * factors.get((int(row["size_bytes"]), bool(row["in_place"])), 1.0)
        RunStore(results, run_id).write_test(test, summary, raw)  # type: ignore[arg-type]


def drop_from_spec(results: Path, run_id: str, test_name: str) -> None:
    """The run's stored spec text without the test entry named ``test_name`` (as if the run
    had been started from a spec that no longer has it)."""
    meta_path = results / run_id / "run.json"
    meta = json.loads(meta_path.read_text())
    lines = meta["spec_text"].splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {test_name}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("- name:")), len(lines))
    while end > start and not lines[end - 1].strip():
        end -= 1
    meta["spec_text"] = "".join(lines[:start] + lines[end:])
    meta_path.write_text(json.dumps(meta))
