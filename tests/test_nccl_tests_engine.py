"""engine: nccl-tests: the command line, the spec rules and the missing-binary skip (the binary
itself runs in the GPU lane, tests/gpu)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from benchfab.errors import SpecError, WorkloadError
from benchfab.spec import load_spec_text
from benchfab.task import Task
from benchfab.workloads.nccl_tests_engine import nccl_tests_argv, run_nccl_tests
from tests.helpers import ROOT

SPARK = ROOT / "results" / "fabrics" / "sources" / "spark-pr103-roce-allreduce-first.txt"  # a real all_reduce_perf


def _task(workload: str, **kw: object) -> Task:
    base: dict[str, object] = dict(test_id="t", workload=workload, ranks=2, sizes=[1024], dtype="bfloat16", op="max",
                                   iterations=7, duration=None, warmup=2, in_place=[False, True], check=True, root=1,
                                   device="cuda", cuda_graph=0, engine="nccl-tests")
    base.update(kw)
    return Task(**base)  # type: ignore[arg-type]


def test_the_command_line_speaks_nccl_tests_flags() -> None:
    argv = nccl_tests_argv("/opt/nccl-tests/all_reduce_perf", _task("allreduce"), 1024, 8)
    assert argv == ["/opt/nccl-tests/all_reduce_perf", "-b", "1024", "-e", "1024", "-g", "8", "-w", "2", "-c", "1",
                    "-d", "bfloat16", "-n", "7", "-o", "max"]
    rooted = nccl_tests_argv("gather_perf", _task("gather", check=False, duration=2.0, iterations=None), 64, 2)
    assert rooted[-2:] == ["-r", "1"] and "-o" not in rooted and ["-T", "2"] == rooted[rooted.index("-T"):][:2]
    assert nccl_tests_argv("x", _task("allreduce", dtype="float32"), 8, 1)[12] == "float"  # nccl-tests' type name


def test_missing_binary_and_several_nodes_are_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("BENCHFAB_NCCL_TESTS_DIR", raising=False)
    with pytest.raises(WorkloadError, match="needs all_reduce_perf, found neither"):
        run_nccl_tests(_task("allreduce"), 2, 2, 60)
    with pytest.raises(WorkloadError, match="runs on one node here; this test has 16 ranks, 8 on this node"):
        run_nccl_tests(_task("allreduce"), 16, 8, 60)


def test_what_the_binary_prints_is_read_by_the_one_parser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in all_reduce_perf printing a real report: the CPU lane has no GPU (the real binary: tests/gpu).
    binary = tmp_path / "all_reduce_perf"
    binary.write_text(f"#!/bin/sh\ncat {shlex.quote(str(SPARK))}\n")
    binary.chmod(0o755)
    monkeypatch.setenv("BENCHFAB_NCCL_TESTS_DIR", str(tmp_path))
    (run,) = run_nccl_tests(_task("allreduce"), 2, 2, 60)  # one run per size of the task
    assert run.workload == "allreduce" and run.hosts == ["spark-d708", "spark-dbf4"] and len(run.rows) == 8
    cut = tmp_path / "cut.txt"
    cut.write_text("\n".join(SPARK.read_text().splitlines()[:11] + ["        8192          2048     float     sum"]))
    binary.write_text(f"#!/bin/sh\ncat {shlex.quote(str(cut))}\n")
    with pytest.raises(WorkloadError, match="all_reduce_perf size 1024 B, output line 12: a table row with 4 of"):
        run_nccl_tests(_task("allreduce"), 2, 2, 60)


def test_spec_rules_and_the_plan_time_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError, match="engine: nccl-tests runs collectives, not rdma_write_bw"):
        load_spec_text("tests:\n  - {workload: rdma_write_bw, engine: nccl-tests}\n")
    with pytest.raises(SpecError, match="engine: perftest runs rdma_write_\\*, rdma_read_\\*, rdma_send_\\*, not allreduce"):
        load_spec_text("tests:\n  - {workload: allreduce, engine: perftest}\n")
    from benchfab.capabilities import probe_host
    from benchfab.workloads import family_of

    monkeypatch.setenv("PATH", "/nonexistent")  # a host without nccl-tests
    monkeypatch.delenv("BENCHFAB_NCCL_TESTS_DIR", raising=False)
    spec = load_spec_text("tests:\n  - {workload: allreduce, engine: nccl-tests}\n")
    test = spec.resolved_tests()[0]
    why = family_of("allreduce").why_unrunnable(test, probe_host())
    assert why is not None and "all_reduce_perf" in why and "engine: native" in why


def test_the_report_puts_both_engines_of_one_measurement_side_by_side() -> None:
    import pandas as pd

    from benchfab.workloads.collectives import engine_agreement_lines

    base = {"workload": "allreduce", "profile": "p", "ranks": 2, "dtype": "float32", "redop": "sum",
            "size_bytes": 8192, "in_place": False, "status": "ok"}
    rows = pd.DataFrame([{**base, "engine": "torch", "busbw_Bps": 1e8}, {**base, "engine": "nccl-tests", "busbw_Bps": 2.3e8},
                         {**base, "size_bytes": 16, "engine": "torch", "busbw_Bps": 1e6}])  # no nccl-tests twin: left out
    lines = engine_agreement_lines(rows)
    assert lines[1] == "## Engines side by side (busbw, GB/s)"
    assert lines[-1] == "| allreduce | p | 2 | float32 | sum | 8192 | False | 0.100 | 0.230 | 2.30 |" and len(lines) == 6
    assert engine_agreement_lines(rows[rows["engine"] == "torch"]) == []
