"""benchfab import of hostile or careless files (issue #22 items 1 and 2): nothing read from a
file becomes a path, nothing is read without a limit, a bad cell is one file:line error
(exit 2), and a failed import stores nothing, not even half a run.

The reports are real ones (results/fabrics/sources/, tests/rdma/data/) edited the way an
attacker or a damaged copy would.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest

import benchfab
from benchfab.cli import main
from benchfab.errors import StoreError
from benchfab.store import RunStore, writer
from tests.helpers import ROOT

SPARK = ROOT / "results" / "fabrics" / "sources" / "spark-pr103-roce-allreduce-first.txt"
IB_READ = ROOT / "results" / "fabrics" / "sources" / "ucx-8852-ib-read-bw.txt"
TRAVERSAL = "x/../../../../../../ESCAPED"


def _import(results: Path, report: Path, *args: str, tool: str = "nccl-tests") -> int:
    fabric = ["--fabric", "roce"] if tool == "nccl-tests" else []
    return main(["import", tool, str(report), "--profile", "p", *fabric, *args, "--results", str(results)])


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, never a traceback
    return err[0]


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _with_row(cells: str) -> str:
    """The spark report with one more row (its cells as given) under its table."""
    return SPARK.read_text() + cells + "\n"


def _nothing_stored(results: Path) -> None:
    assert not results.exists() or not any(results.iterdir()), sorted(results.rglob("*"))


@pytest.mark.parametrize("form", ["text", "json"])
def test_a_type_cell_cannot_become_a_path(tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str) -> None:
    report = tmp_path / "in" / "trav.txt"
    report.parent.mkdir()
    if form == "text":
        report.write_text(_with_row(f"      131072         32768     {TRAVERSAL}     sum      -1    80.0    1.6    1.6"
                                    "       0    80.0    1.6    1.6       0"))
    else:
        half = {"time": 27.8, "alg_bw": 0.29, "bus_bw": 0.29, "nwrong": 0}
        report.write_text(json.dumps({"args": ["all_reduce_perf"], "config": {"devices": [{"hostname": "a"}, {"hostname": "b"}]},
                                      "results": [{"size": 8, "count": 2, "type": t, "redop": "sum", "root": -1,
                                                   "out_of_place": half, "in_place": half} for t in ("float", TRAVERSAL)]}))
    before = _files_under(tmp_path)
    results = tmp_path / "deep" / "er" / "results"
    assert _import(results, report) == 2
    line = _error(capsys)
    assert f"data type {TRAVERSAL!r} is not a name nccl-tests prints" in line
    if form == "text":
        assert line.startswith(f"benchfab: error: {report}:{len(SPARK.read_text().splitlines()) + 1}: ")
    assert _files_under(tmp_path) - before <= {tmp_path / "deep", tmp_path / "deep" / "er"}  # nothing written
    assert not list(tmp_path.rglob("*ESCAPED*"))


def test_the_store_writes_only_inside_the_run_directory(tmp_path: Path) -> None:
    """RunStore.file is the one place that writes; a test id that is a path, or a table folder
    that is a symlink to elsewhere, is refused before any byte is written."""
    outside = tmp_path / "outside"
    outside.mkdir()
    run = RunStore(tmp_path / "results", "r1")
    row = {"run_id": "r1", "test_id": "../../outside/x", "status": "ok"}
    with pytest.raises(StoreError, match="not a file name benchfab writes"):
        run.write_test(row, [], [])  # type: ignore[arg-type]
    run.path.mkdir(parents=True)
    (run.path / "summary").symlink_to(outside)
    row["test_id"] = "000-ok"
    with pytest.raises(StoreError, match="outside the run directory"):
        run.write_test(row, [], [])  # type: ignore[arg-type]
    assert not list(outside.iterdir()) and not (run.path / "tests").exists()
    for bad in ("a\n", "../x", ".hidden", "a/b", ""):
        with pytest.raises(StoreError):
            RunStore(tmp_path / "results", bad)


def test_special_files_are_refused_at_once(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)  # read_bytes() used to wait here for a writer forever
    for source, what in ((fifo, "a FIFO"), (Path("/dev/zero"), "a character device"), (tmp_path, "a directory")):
        proc = cli("import", "nccl-tests", str(source), "--profile", "p", "--fabric", "roce",
                   "--results", str(tmp_path / "results"), timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (f"benchfab: error: {source}: {what}, not a regular file (fix: give the path "
                                       "of a saved report (a regular file))"), proc.stderr
    _nothing_stored(tmp_path / "results")


def test_size_and_row_caps_say_how_to_raise_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    size = SPARK.stat().st_size
    assert _import(results, SPARK, "--max-bytes", "1K") == 2
    assert _error(capsys) == (f"benchfab: error: {SPARK}: {size} bytes, more than the 1024 benchfab reads there "
                              "(fix: if this report is real, raise the cap: --max-bytes SIZE (now 1K))")
    assert _import(results, SPARK, "--max-rows", "5") == 2  # 4 rows of 2 halves each
    assert _error(capsys) == (f"benchfab: error: {SPARK}:14: more than 5 rows (result rows and per-iteration samples) "
                              "(fix: split the report, or raise the cap with --max-rows N)")
    _nothing_stored(results)
    assert _import(results, SPARK, "--max-rows", "8", "--max-bytes", "2K", "--run-id", "fits") == 0
    assert len(benchfab.load_run("fits", results).summary) == 8


def test_perftest_row_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _import(tmp_path, IB_READ, "--hosts", "a,b", "--max-rows", "3", tool="perftest") == 2
    assert re.fullmatch(rf"benchfab: error: {re.escape(str(IB_READ))}:\d+: more than 3 rows \(fix: split the report, "
                        r"or raise the cap with --max-rows N\)", _error(capsys))


@pytest.mark.parametrize("edit, expected", [
    # a NUL byte inside a cell
    (lambda t: t.replace("    30.33    0.27", "    30.3\0    0.27"), r":12: a NUL byte: this is a binary file"),
    # a size no node can hold (it overflowed the store's int64 column)
    (lambda t: _swap_size(t, "100000000000000000000000000"),
     r":12: size 100000000000000000000000000 bytes is not a message size a node can hold \(1 byte to 1024G\)"),
    (lambda t: t.replace("    35.15    0.23", "   -35.15    0.23"), r":12: time_s -35\.15 us: negative"),
    (lambda t: t.replace("    35.15    0.23    0.23       0", "    35.15    0.23    0.23      -4"), r":12: wrong -4: negative"),
    (lambda t: t.replace("\n", "\n" + "9" * 70_000 + "\n", 1), r":2: a line of more than 65536 bytes"),
    (lambda t: t.replace("spark-dbf4", "spark\x1b[31m<b>"), r"host name 'spark\\x1b\[31m<b>' is not one plain word"),
])
def test_malformed_cells_are_file_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit, expected) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "bad.txt"
    report.write_bytes(edit(SPARK.read_text()).encode())
    assert _import(tmp_path / "results", report) == 2
    line = _error(capsys)
    assert re.search(expected, line), line
    assert "\x1b" not in line  # a control character from the file is shown as an escape
    _nothing_stored(tmp_path / "results")


def _swap_size(text: str, size: str) -> str:
    return text.replace("        8192          2048", f"{size:>12}          2048", 1)


def test_duplicate_perftest_sizes_name_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = IB_READ.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.split()[:1] == ["2"])
    lines.insert(first + 1, lines[first])
    report = tmp_path / "twice.txt"
    report.write_text("\n".join(lines) + "\n")
    assert _import(tmp_path / "results", report, "--hosts", "a,b", tool="perftest") == 2
    assert _error(capsys).startswith(f"benchfab: error: {report}:{first + 2}: size 2 appears twice")


def test_options_that_become_names_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    for args, expected in ((["--profile", "p\x1b[31m\nx"], "--profile 'p\\x1b[31m\\nx' is not a name"),
                           (["--name", "../n"], "--name '../n' is not a name"),
                           (["--run-id", "x\n"], "--run-id 'x\\n' is not a run id"),
                           (["--source", "https://x/\x07"], "--source holds control characters")):
        assert main(["import", "nccl-tests", str(SPARK), "--profile", "p", "--fabric", "roce", *args,
                     "--results", str(results)]) == 2
        assert expected in _error(capsys)
    _nothing_stored(results)


def test_a_failed_import_leaves_no_partial_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The disk fills after the first test of a two-test report was written: no run, no staging left."""
    two = tmp_path / "two.txt"
    two.write_text(_with_row("      131072         32768      half     sum      -1    80.0    1.6    1.6       0"
                             "    80.0    1.6    1.6       0"))
    real = writer.atomic_write_parquet
    calls = []

    def fill_up(path: Path, frame: object) -> None:
        calls.append(path)
        if len(calls) == 4:  # the second test's summary part
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, frame)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "atomic_write_parquet", fill_up)
    results = tmp_path / "results"
    assert _import(results, two, "--run-id", "half-written") == 1
    assert "No space left on device" in _error(capsys) and len(calls) == 4
    assert list(results.iterdir()) == []  # neither the run nor its staging folder
    monkeypatch.setattr(writer, "atomic_write_parquet", real)
    assert _import(results, two, "--run-id", "half-written") == 0
    assert len(benchfab.load_run("half-written", results).tests) == 2
