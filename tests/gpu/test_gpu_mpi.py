"""GPU lane: the real all_reduce_perf under mpirun through the engine's multi-node path
(workloads.nccl_tests_mpi), on this one node: -np 1, one GPU. The launch across nodes
through benchfab's launcher is tested on simulated nodes (tests/sim/test_mpi_launch.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchfab.task import TEST_SECRET_ENV
from benchfab.workloads.nccl_tests_engine import binary_path
from benchfab.workloads.nccl_tests_mpi import run_nccl_tests_over_mpi
from tests.test_nccl_tests_mpi import SECRET, _ctx, _task

pytestmark = pytest.mark.gpu


def test_all_reduce_perf_under_mpirun_np_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if binary_path("allreduce") is None or shutil.which("mpirun") is None:
        pytest.skip("all_reduce_perf or mpirun not found (the worker image has both; or set BENCHFAB_NCCL_TESTS_DIR)")
    monkeypatch.setenv(TEST_SECRET_ENV, SECRET)
    logs: list[str] = []
    runs = run_nccl_tests_over_mpi(_task(sizes=[8, 1 << 20, 32 << 20], iterations=10, warmup=3), _ctx(logs), 300)
    assert [r.rows[0].size_bytes for r in runs] == [8, 1 << 20, 32 << 20]
    assert all(row.wrong == 0 and row.time_s and row.time_s > 0 for r in runs for row in r.rows), runs
    print("\n".join(logs))
