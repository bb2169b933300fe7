"""A results directory with damaged runs: one bad file must not break the others.

Each case copies the real example run (results/example, stored one Parquet part per test as
runs were before round parts; and again stored as rounds of 3 tests, one part per table a round,
as a sweep stores them now: tests/store_layouts.py) three times, damages one copy
the way a crash, a full disk, a stray tool or a hostile user of a shared directory would,
and checks what a user sees: ``benchfab runs`` lists the damaged run as such (when the
damage is in what it reads: run.json and which parts exist) and every other run as
before; ``show``, ``compare``, ``compare --history``, ``report`` and ``export`` of the
damaged run answer within seconds with one line naming the file and a fix (exit 1, no
traceback, no hang); and ``load_runs`` leaves it out with a warning (``strict=True`` raises).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import benchfab
from benchfab.errors import StoreError
from benchfab.store import DamagedRunWarning, load_runs
from tests.helpers import ROOT
from tests.store_layouts import to_rounds

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example"


def _copy(root: Path, run_id: str, started: str, layout: str = "per-test") -> Path:
    dest = root / run_id
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("report"))
    meta = json.loads((dest / "run.json").read_text())
    meta.update(run_id=run_id, started=started)
    (dest / "run.json").write_text(json.dumps(meta))
    if layout == "rounds":
        to_rounds(dest, 3)  # 8 tests: rounds of 3, 3 and 2
    return dest


def _what_to_do(part: Path) -> str:
    """The fix a damaged part's error names: a round part holds several tests (how many, its
    tests/ part says, unless that is the damaged one)."""
    if part.name.startswith("round-"):
        tests = "its tests" if part.parent.name == "tests" else "its 3 tests"
        return f"move it and the other tables' {part.name} (summary/, raw/, tests/) away ({tests} then count as not run"
    return "move it away (that test then counts as not run"


def _first_part(run: Path, table: str) -> Path:
    return sorted((run / table).glob("*.parquet"))[0]


def _binary_meta(run: Path) -> str:
    (run / "run.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)))
    return "run.json: not text"


def _list_meta(run: Path) -> str:
    (run / "run.json").write_text("[1, 2, 3]\n")
    return "run.json: holds a JSON list"


def _mistyped_meta(run: Path) -> str:
    meta = json.loads((run / "run.json").read_text())
    meta["started"] = 5
    meta["counts"] = "lots"
    (run / "run.json").write_text(json.dumps(meta))
    return "field 'started' is a int"


def _cut_meta(run: Path) -> str:
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 2])
    return "run.json: not valid JSON"


def _truncated_parquet(run: Path) -> str:
    part = _first_part(run, "summary")
    part.write_bytes(part.read_bytes()[:100])
    return f"{part.name}: not a readable Parquet file"  # the fix is checked by test_a_damaged_part_names_what_to_do


def _foreign_parquet(run: Path) -> str:
    part = _first_part(run, "tests")
    pd.DataFrame({"temperature": [21.5, 22.0]}).to_parquet(part)
    return f"{part.name}: not a benchfab table (no run_id, test_id column)"


def _summary_is_a_file(run: Path) -> str:
    shutil.rmtree(run / "summary")
    (run / "summary").write_text("not a folder\n")
    return "summary: not a directory"


def _text_in_numbers(run: Path) -> str:
    # What a tool that "fixed up" a table, or a pasted traceback, leaves: text in numeric columns.
    part = _first_part(run, "summary")
    frame = pd.read_parquet(part)
    for column in ("size_bytes", "time_s", "busbw_Bps"):
        frame[column] = "Traceback (most recent call last)"
    frame.to_parquet(part)
    return f"{part.name}: column 'size_bytes' holds text, benchfab writes numbers there"


def _fifo_meta(run: Path) -> str:
    (run / "run.json").unlink()
    os.mkfifo(run / "run.json")  # every reader used to block in open() waiting for a writer
    return "run.json: a FIFO, not a regular file"


def _devzero_meta(run: Path) -> str:
    (run / "run.json").unlink()
    (run / "run.json").symlink_to("/dev/zero")  # used to be read until memory ran out
    return "run.json: a character device, not a regular file"


def _summary_deleted(run: Path) -> str:
    parts = sorted(p.name for p in (run / "tests").glob("*.parquet"))
    shutil.rmtree(run / "summary")  # tests/ still says every test is ok
    said = "its 3 tests were stored" if parts[0].startswith("round-") else "that test was stored"
    return f"summary/{parts[0]}: missing (and {len(parts) - 1} more), though tests/{parts[0]} says {said}"


def _fifo_part(run: Path) -> str:
    part = _first_part(run, "summary")
    part.unlink()
    os.mkfifo(part)
    return f"{part.name}: a FIFO, not a regular file"


DAMAGE: dict[str, Callable[[Path], str]] = {
    "binary-run-json": _binary_meta,
    "list-run-json": _list_meta,
    "mistyped-run-json": _mistyped_meta,
    "cut-run-json": _cut_meta,
    "truncated-parquet": _truncated_parquet,
    "foreign-parquet": _foreign_parquet,
    "summary-is-a-file": _summary_is_a_file,
    "text-in-numbers": _text_in_numbers,
    "fifo-run-json": _fifo_meta,
    "devzero-run-json": _devzero_meta,
    "summary-deleted": _summary_deleted,
    "fifo-part": _fifo_part,
}
# What benchfab runs reads (run.json, and which parts exist), so it lists the run as damaged.
LISTED_DAMAGED = {"binary-run-json", "list-run-json", "mistyped-run-json", "cut-run-json", "summary-is-a-file",
                  "fifo-run-json", "devzero-run-json", "summary-deleted"}
# Commands a user runs on a damaged run: each must name the file with a fix, quickly.
READERS = {"show": ["show", "{bad}"], "show-json": ["show", "{bad}", "-o", "json"], "report": ["report", "{bad}"],
           "export": ["export", "{bad}", "--openmetrics"], "compare": ["compare", "{good}", "{bad}"],
           "compare-history": ["compare", "--history", "3", "{bad}"]}


# The damage that is in a Parquet part, for the runs stored as rounds (in the CLI test).
IN_PARTS = ["foreign-parquet", "fifo-part", "summary-deleted", "text-in-numbers", "truncated-parquet"]


@pytest.fixture
def two_runs(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, Path, Path]:
    """Three copies of the example run, in the layout the test asks for (default: one part per test)."""
    layout = getattr(request, "param", "per-test")
    root = tmp_path / "results"
    _copy(root, "20261201-000000-older", "2026-12-01T00:00:00Z", layout)  # history for compare --history
    good = _copy(root, "20261201-000001-good", "2026-12-01T00:00:01Z", layout)
    bad = _copy(root, "20261201-000002-bad", "2026-12-01T00:00:02Z", layout)
    return root, good, bad


@pytest.mark.parametrize("two_runs", ["per-test", "rounds"], indirect=True)
@pytest.mark.parametrize("case", sorted(DAMAGE), ids=sorted(DAMAGE))
def test_load_runs_skips_and_names_the_damaged_run(two_runs: tuple[Path, Path, Path], case: str) -> None:
    root, good, bad = two_runs
    words = DAMAGE[case](bad)
    with pytest.warns(DamagedRunWarning, match=bad.name) as caught:
        rows = load_runs(root)
    assert words in str(caught[0].message)
    assert set(rows["run_started"]) == {"2026-12-01T00:00:00Z", "2026-12-01T00:00:01Z"}  # the good copies' rows only
    assert len(rows) == 2 * len(benchfab.load_run(good).summary)
    with pytest.raises(StoreError, match=re.escape(words)):
        load_runs(root, strict=True)


def _run_all(commands: dict[str, list[str]], root: Path, timeout: float = 60) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command at once (each a real benchfab process); one that hangs fails the test."""
    procs = {name: subprocess.Popen([sys.executable, "-m", "benchfab", *args, "--results", str(root)], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, args in commands.items()}
    done = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=timeout)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        for proc in procs.values():
            proc.kill()
    return done


@pytest.mark.parametrize("two_runs", ["per-test", "rounds"], indirect=True)
@pytest.mark.parametrize("table", ["summary", "raw", "tests"])
def test_a_damaged_part_names_what_to_do(two_runs: tuple[Path, Path, Path], table: str) -> None:
    """A part cut short names itself and how to go on: move it (a round part: with the other
    tables' part of that name, its tests) away, and --resume measures its tests again."""
    _root, _good, bad = two_runs
    part = _first_part(bad, table)
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(StoreError) as caught:
        benchfab.load_run(bad).raw  # noqa: B018 - raw is read on first use
    assert f"{part}: not a readable Parquet file" in str(caught.value)
    assert _what_to_do(part) + ": benchfab sweep --resume rerun" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize(("two_runs", "case"), [("per-test", c) for c in sorted(DAMAGE)] + [("rounds", c) for c in IN_PARTS],
                         ids=[*sorted(DAMAGE), *(f"rounds-{c}" for c in IN_PARTS)], indirect=["two_runs"])
def test_cli_lists_the_others_and_names_the_file(two_runs: tuple[Path, Path, Path], case: str) -> None:
    root, good, bad = two_runs
    words = DAMAGE[case](bad)
    commands = {name: [a.format(good=good.name, bad=bad.name) for a in args] for name, args in READERS.items()}
    commands |= {"runs": ["runs"], "runs-json": ["runs", "-o", "json"], "show-good": ["show", good.name]}
    got = _run_all(commands, root)
    runs = got.pop("runs")
    assert runs.returncode == 0, runs.stderr
    assert good.name in runs.stdout and "Traceback" not in runs.stderr
    listed = {r["run_id"]: r for r in json.loads(got.pop("runs-json").stdout)}
    assert listed[good.name]["status"] == "complete"
    if case in LISTED_DAMAGED:
        assert f"{bad.name:<48} damaged" in runs.stdout
        assert words in runs.stderr and "(fix: " in runs.stderr
        assert listed[bad.name]["status"] == "damaged" and words in listed[bad.name]["error"]
    ok = got.pop("show-good")
    assert ok.returncode == 0 and "busbw" in ok.stdout
    for command, proc in got.items():
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        if command.startswith("compare"):
            # A comparison judges what it can read and names what it could not: a "damaged"
            # verdict on stdout (and in verdicts.json), exit 1 like a regression, no error line.
            assert "Traceback" not in proc.stderr, proc.stderr
            (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("# damaged: ")]
        else:
            (line,) = proc.stderr.strip().splitlines()
            assert line.startswith("benchfab: error: "), (command, line)
        assert words in line and "(fix: " in line, (command, line)


@pytest.mark.slow
def test_binary_verdicts_file_is_named_by_report_and_export(two_runs: tuple[Path, Path, Path]) -> None:
    root, good, bad = two_runs
    (bad / "verdicts.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)))
    got = _run_all({"report": ["report", bad.name], "export": ["export", bad.name, "--openmetrics"],
                    "show": ["show", bad.name], "export-good": ["export", good.name, "--openmetrics"]}, root)
    for command in ("report", "export"):
        (line,) = got[command].stderr.strip().splitlines()
        assert got[command].returncode == 1
        assert "verdicts.json: not text (byte 0 is not UTF-8) (fix: rerun the comparison with --save" in line, line
    assert got["show"].returncode == 0 and got["export-good"].returncode == 0  # the tables do not need it


def test_run_without_summary_rows_adds_none_and_host_is_named(tmp_path: Path) -> None:
    root = tmp_path / "results"
    good = _copy(root, "20261201-000001-good", "2026-12-01T00:00:01Z")
    empty = _copy(root, "20261201-000002-empty", "2026-12-01T00:00:02Z")
    for table in ("summary", "raw"):  # every test stored, none with a row (all failed before a size)
        for part in (empty / table).glob("*.parquet"):
            pd.read_parquet(part).iloc[0:0].to_parquet(part)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = load_runs(root)
    assert set(rows["run_started"]) == {"2026-12-01T00:00:01Z"}  # the good copy's rows only
    assert len(rows) == len(benchfab.load_run(good).summary)
    hostname = json.loads((good / "run.json").read_text())["host"]["hostname"]
    assert (rows["run_host"] == hostname).all()
