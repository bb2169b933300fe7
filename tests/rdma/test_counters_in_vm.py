"""rxe's hw_counters read around a real verbs test: benchfab sweep on rxe0, the deltas
each rank stored with the test (benchfab.counters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import benchfab
from benchfab.counters import WATCHED

pytestmark = pytest.mark.rdma

ROOT = Path(__file__).resolve().parents[2]
RXE_ERRORS = {"out_of_seq_request", "rcvd_seq_err", "retry_exceeded_err", "completer_retry_err", "send_err",
              "rcvd_rnr_err", "link_downed"}


def test_rxe_counters_move_around_a_verbs_test(tmp_path: Path, rdma_device: str | None) -> None:
    device = rdma_device or "rxe0"
    spec = tmp_path / "c.yaml"
    spec.write_text(f"name: vm-counters\ndefaults:\n  rdma: {{device: {device}}}\ntests:\n"
                    "  - name: bw\n    workload: rdma_write_bw\n    sizes: [64K]\n    iterations: 200\n")
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "benchfab", "sweep", str(spec), "--results", str(results), "--run-id", "c1", "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    run = benchfab.load_run("c1", results)
    [entry] = [e for e in json.loads(run.tests["counters"].iloc[0]) if e["kind"] == "rdma"]
    assert (entry["device"], entry["port"]) == (device, 1)
    moved = entry["deltas"]
    # Loopback on rxe0: the 200 WRITEs of 64 KiB (16 x 4 KiB packets at MTU 4096, or more) left and came back.
    assert moved["sent_pkts"] >= 200 * 16 and moved["rcvd_pkts"] >= 200 * 16, moved
    assert RXE_ERRORS <= set(moved), sorted(moved)  # present (most likely 0), not missing
    # A watched counter is in the deltas exactly when the device has the file: else "not exposed".
    port = Path("/sys/class/infiniband") / device / "ports" / "1"
    for name in WATCHED["rdma"]:
        has = (port / "counters" / name).exists() or (port / "hw_counters" / name).exists()
        assert (name in moved) == has and (name in entry["not_exposed"]) == (not has), name
    assert entry["reset"] == []
