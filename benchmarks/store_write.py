"""What storing a round's finished tests costs the controller between two rounds (issue #27: a
1,024-node all-pairs sweep is 1,023 rounds of 512 tests in under 20 minutes, about 1.1 s a round
all told). Prints, per test, the cost of the store's write of a whole round (RunStore.write_tests:
one Parquet part per table, three files a round) beside the earlier layout's write of one part
per table per test (three files a test), measured in the same run, for rounds of 8, 64 and 512
tests; and the file counts of a 1,000-round run of 512 tests in each layout.

Each test has the rows of a two-node point-to-point test: 8 sizes, 8 summary rows, 20 timed
iterations a size (160 raw rows). Best of 3, wall and CPU seconds (on a shared machine the wall
time also measures the neighbours: the load average is printed).

  .venv/bin/python benchmarks/store_write.py [--dir /tmp/benchfab-store-write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from benchfab.records import SCHEMA_VERSION
from benchfab.store import RAW_COLUMNS, SUMMARY_COLUMNS, TEST_COLUMNS, RunStore, StoredTest, atomic_write_parquet

SIZES, ITERATIONS = 8, 20


def _test(run_id: str, t: int) -> StoredTest:
    tid = f"{t:03d}-write-bw-n{t}+n{t + 1}"
    hosts = f"n{t},n{t + 1}"
    summary, raw = [], []
    for s in range(SIZES):
        size = 1024 << (2 * s)
        mean = 2e-6 + size / 2.5e10
        summary.append({
            "schema_version": SCHEMA_VERSION, "run_id": run_id, "test_id": tid, "test_name": "write-bw",
            "workload": "write_bw", "collective": "ib_write_bw", "engine": "verbs", "backend": "kubernetes",
            "transport": "rdma", "fabric": "roce", "mode": "none", "memory": "host", "nodes": 2, "ranks": 2,
            "size_bytes": size, "count": None, "dtype": "uint8", "redop": "none", "root": -1, "in_place": False,
            "method": None, "iterations": ITERATIONS, "time_s": mean, "algbw_Bps": size / mean, "busbw_Bps": size / mean,
            "wrong": 0, "status": "ok", "reason": "", "bw_avg_Bps": size / mean, "bw_peak_Bps": size / mean * 1.01,
            "msg_rate_pps": 1 / mean, "rdma_device": "mlx5_0", "port": 1, "gid_index": 3, "link_layer": "Ethernet",
            "mtu": 4096, "profile": "default", "hosts": hosts, "env": ""})
        raw += [{"run_id": run_id, "test_id": tid, "size_bytes": size, "in_place": False, "iteration": i,
                 "time_s": mean * (1 + 0.01 * (i % 7))} for i in range(ITERATIONS)]
    test = {"run_id": run_id, "test_id": tid, "test_name": "write-bw", "workload": "write_bw", "profile": "default",
            "fabric": "roce", "mode": "none", "ranks": 2, "nodes": 2, "dtype": "uint8", "redop": "none", "status": "ok",
            "reason": "", "log_tail": "", "started": 0.0, "ended": 1.0, "duration_s": 1.0,
            "used": json.dumps({"hosts": hosts.split(","), "ranks": [{"rank": 0, "device": "mlx5_0"}]}), "counters": None}
    return test, summary, raw  # type: ignore[return-value]


def _per_test(store: RunStore, batch: list[StoredTest]) -> None:
    """The earlier layout's write: each test's three parts, <table>/<test_id>.parquet, one pandas
    frame per table per test, tests/ last (what RunStore.write_test did before round parts)."""
    for test, summary, raw in batch:
        for table, rows, columns in (("summary", summary, SUMMARY_COLUMNS), ("raw", raw, RAW_COLUMNS),
                                     ("tests", [test], TEST_COLUMNS)):
            frame = pd.DataFrame(list(rows)).reindex(columns=columns)
            for col in columns:
                if frame[col].isna().all() and col.endswith(("_s", "_Bps")):
                    frame[col] = frame[col].astype("float64")
            atomic_write_parquet(store.file(table, f"{test['test_id']}.parquet"), frame)


def _round(store: RunStore, batch: list[StoredTest]) -> None:
    store.write_tests(batch)


def _best(write: Callable[[RunStore, list[StoredTest]], None], root: Path, tests: int, rounds: int) -> tuple[float, float]:
    """Best of 3 (wall, CPU) seconds per test over ``rounds`` rounds of ``tests`` tests, each
    try into a fresh run directory."""
    best, best_cpu = float("inf"), float("inf")
    for attempt in range(3):
        shutil.rmtree(root, ignore_errors=True)
        store = RunStore(root, f"r{attempt}")
        batches = [[_test(store.run_id, r * tests + t) for t in range(tests)] for r in range(rounds)]
        start, start_cpu = time.perf_counter(), time.process_time()
        for batch in batches:
            write(store, batch)
        n = tests * rounds
        best = min(best, (time.perf_counter() - start) / n)
        best_cpu = min(best_cpu, (time.process_time() - start_cpu) / n)
    return best, best_cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default="/tmp/benchfab-store-write", help="scratch directory (emptied)")
    args = p.parse_args()
    root = Path(args.dir)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; per test: {SIZES} summary rows, "
          f"{SIZES * ITERATIONS} raw rows")
    for tests in (8, 64, 512):
        rounds = max(1, 512 // tests)  # about 512 tests each way
        old, old_cpu = _best(_per_test, root / "old", tests, rounds)
        new, new_cpu = _best(_round, root / "new", tests, rounds)
        print(f"round of {tests:>3} tests: one part per test {old * 1e3:6.2f} ms/test wall ({old_cpu * 1e3:6.2f} CPU), "
              f"one part per round {new * 1e3:6.3f} ms/test wall ({new_cpu * 1e3:6.3f} CPU): {old / new:5.1f}x "
              f"({old_cpu / new_cpu:5.1f}x CPU); a round costs {new * tests * 1e3:7.1f} ms instead of {old * tests * 1e3:7.1f}")
    shutil.rmtree(root, ignore_errors=True)
    print("files of a 1,000-round run of 512 tests (summary/, raw/, tests/): one part per test "
          f"{3 * 512 * 1000:,}, one part per round {3 * 1000:,}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
