"""parse_nccl_tests on real nccl-tests outputs (tests/data/nccl_tests/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchfab.errors import WorkloadError
from benchfab.workloads.catalog import busbw_factor
from benchfab.workloads.nccl_tests_output import parse_nccl_tests

DATA = Path(__file__).parent / "data" / "nccl_tests"


def test_all_reduce_text_with_header_and_ranks() -> None:
    run = parse_nccl_tests((DATA / "dgx-spark-103-all-reduce.txt").read_text())
    assert run.binary == "all_reduce_perf" and run.workload == "allreduce" and run.version == "2.20.0"
    assert run.nranks == 2 and [r["host"] for r in run.ranks] == ["spark-d708", "spark-dbf4"]
    assert len(run.rows) == 8 and [r.in_place for r in run.rows[:2]] == [False, True]
    first = run.rows[0]
    assert (first.size_bytes, first.count, first.dtype, first.redop, first.root) == (8192, 2048, "float32", "sum", -1)
    assert first.time_s == pytest.approx(35.15e-6) and first.algbw_Bps == pytest.approx(0.23e9)
    assert first.busbw_Bps == pytest.approx(0.23e9) and first.wrong == 0
    # the posted numbers obey nccl-tests' own rule: algbw = size / time (to the 2 printed decimals)
    for r in run.rows:
        assert r.size_bytes / r.time_s / 1e9 == pytest.approx(r.algbw_Bps / 1e9, abs=0.006)
    # and on 2 ranks all-reduce busbw = algbw x 2(n-1)/n = algbw
    assert all(r.busbw_Bps == pytest.approx(r.algbw_Bps * busbw_factor("allreduce", 2)) for r in run.rows)


def test_all_gather_rows_and_the_binary_named_by_the_caller() -> None:
    run = parse_nccl_tests((DATA / "nccl-1435-all-gather-bf16.txt").read_text(), binary="all_gather_perf")
    assert run.workload == "all_gather" and len(run.rows) == 14 and run.ranks == []
    assert {r.dtype for r in run.rows} == {"bfloat16"} and {r.redop for r in run.rows} == {"none"}
    last = run.rows[-1]
    assert (last.size_bytes, last.in_place, last.time_s) == (117440512, True, pytest.approx(418.7e-6))
    # 2 GPUs (CUDA_VISIBLE_DEVICES=0,1 in the post): all_gather busbw = algbw x (n-1)/n = algbw / 2
    assert all(r.busbw_Bps == pytest.approx(r.algbw_Bps / 2, rel=2e-3) for r in run.rows)


def test_rows_without_a_header_and_the_json_form_agree_with_the_text() -> None:
    rows = parse_nccl_tests((DATA / "mooncake-3484-all-reduce-rows.txt").read_text()).rows
    assert len(rows) == 22 and rows[-1].busbw_Bps == pytest.approx(300.52e9)
    text = parse_nccl_tests((DATA / "dgx-spark-103-all-reduce.txt").read_text())
    js = parse_nccl_tests((DATA / "dgx-spark-103-all-reduce.json").read_text(), binary="all_reduce_perf")
    assert js.rows == text.rows and js.workload == "allreduce"


def test_na_halves_and_bad_json() -> None:
    # the first posted row as nccl-tests prints it with the check off (-c 0): #wrong is N/A
    line = "        8192          2048     float     sum      -1    35.15    0.23    0.23     N/A    30.33    0.27    0.27     N/A"
    rows = parse_nccl_tests(line).rows
    assert [r.wrong for r in rows] == [None, None] and rows[1].time_s == pytest.approx(30.33e-6)
    with pytest.raises(WorkloadError, match="not nccl-tests JSON output"):
        parse_nccl_tests("{not json")
    assert parse_nccl_tests("# nothing but comments\n").rows == []
