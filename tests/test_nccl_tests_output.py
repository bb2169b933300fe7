"""parse_nccl_tests, the one reader of nccl-tests output (the engine's and benchfab import's), on real
outputs (tests/data/nccl_tests/README.md, results/fabrics/sources/SOURCES.md); the layouts of other
releases and flags are real reports edited the way those releases print them (src/util.cu)."""

from __future__ import annotations

import json

import pytest

from benchfab.errors import ToolOutputError, WorkloadError
from benchfab.workloads.collective_kinds import busbw_factor
from benchfab.workloads.nccl_tests_output import parse_nccl_tests
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data" / "nccl_tests"
SPARK = ROOT / "results" / "fabrics" / "sources" / "spark-pr103-roce-allreduce-first.txt"  # also imported there


def test_all_reduce_text_with_header_and_ranks() -> None:
    run = parse_nccl_tests(SPARK.read_text())
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
    text = parse_nccl_tests(SPARK.read_text())
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


def _table(text: str) -> tuple[list[str], int, int]:
    """The report's lines, its header's index and its first row's."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if "busbw" in line and "size" in line)
    return lines, head, head + 2


def test_older_releases_print_no_root_and_an_error_column() -> None:
    # nccl-tests before 2.10: no root column, and "error" (the largest difference) where #wrong is now
    lines, head, first = _table(SPARK.read_text())
    lines[head] = lines[head].replace("    root", "").replace("#wrong", " error")
    for i in range(first, len(lines)):
        cells = lines[i].split()
        lines[i] = "  ".join(cells[:4] + cells[5:8] + ["2e-07"] + cells[9:12] + ["0e+00"])
    old = parse_nccl_tests("\n".join(lines) + "\n")
    new = parse_nccl_tests(SPARK.read_text())
    assert old.rows and {(r.root, r.wrong) for r in old.rows} == {(-1, None)}  # an error is not a count
    assert [(r.size_bytes, r.time_s, r.busbw_Bps) for r in old.rows] == [(r.size_bytes, r.time_s, r.busbw_Bps)
                                                                         for r in new.rows]


def test_per_iteration_columns_cputime_and_tagged_lines_read_like_the_plain_table() -> None:
    # -I 1 prints per-iteration statistics after each half, -C cputime for time; mpirun --tag-output a prefix
    lines, head, first = _table(SPARK.read_text())
    extra = "  i_min  i_max"
    lines[head] = lines[head].replace("#wrong", "#wrong" + extra).replace("time", "cputime")
    for i in range(first, len(lines)):
        cells = lines[i].split()
        lines[i] = "  ".join(cells[:9] + ["1.0", "2.0"] + cells[9:] + ["1.0", "2.0"])
    edited = parse_nccl_tests("".join(f"[1,0]<stdout>:{line}\n" for line in lines))
    plain = parse_nccl_tests(SPARK.read_text())
    assert edited.rows == plain.rows and len(plain.rows) == 8
    assert (edited.hosts, edited.binary, edited.version) == (plain.hosts, plain.binary, plain.version)
    assert {r.iterations for r in plain.rows} == {100}  # "warmup iters: 10 iters: 100"


def test_several_data_types_are_kept_apart_and_the_same_size_twice_is_refused() -> None:
    # -d all prints one table row per size and type: the same sizes again, another type
    text = SPARK.read_text()
    lines, _, first = _table(text)
    halves = [line.replace("   float", "    half") for line in lines[first:]]
    both = parse_nccl_tests(text + "\n".join(halves) + "\n")
    assert [r.dtype for r in both.rows].count("float16") == 8 and len(both.rows) == 16
    with pytest.raises(ToolOutputError, match=r"size 8192 \(float32, sum\) appears twice \(line 12 too\)") as err:
        parse_nccl_tests(text + lines[first] + "\n")
    assert err.value.line == len(lines) + 1


def test_a_row_cut_short_and_a_word_in_a_number_cell_name_their_line() -> None:
    lines, _, first = _table(SPARK.read_text())
    cut = lines[:first] + [" ".join(lines[first].split()[:7])]
    with pytest.raises(ToolOutputError, match="a table row with 7 of the header's 13 columns") as err:
        parse_nccl_tests("\n".join(cut))
    assert err.value.line == first + 1
    lines[first] = lines[first].replace("35.15", "fast")
    with pytest.raises(ToolOutputError, match="time must be a number, not 'fast'"):
        parse_nccl_tests("\n".join(lines))


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.pop("results"), r"without the 'results' list"),
    (lambda d: d["results"][1].pop("size"), r"results\[1\] has no size"),
    (lambda d: d["results"][0]["in_place"].pop("bus_bw"), r"results\[0\] is not what nccl-tests -J writes \(KeyError"),
    (lambda d: d["results"][0]["out_of_place"].update(time="fast"), r"results\[0\] is not what .*ValueError"),
    (lambda d: d.update(config={"devices": [{"rank": "zero"}]}), r"config\.devices is not what nccl-tests -J writes"),
])
def test_a_damaged_json_file_is_one_error_not_a_traceback(edit, expected) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads((DATA / "dgx-spark-103-all-reduce.json").read_text())
    edit(doc)
    with pytest.raises(ToolOutputError, match=expected):
        parse_nccl_tests(json.dumps(doc))
