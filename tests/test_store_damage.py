"""A results directory with damaged runs: one bad file must not break the others.

Each case copies the real example run (results/example) twice, damages one copy
the way a crash, a full disk or a stray tool would, and checks what a user sees:
``benchfab runs`` lists the damaged run as such and every other run as before,
``show``/``report`` of the damaged run give one line naming the file (exit 1),
and ``load_runs`` leaves it out with a warning (``strict=True`` raises).
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import benchfab
from benchfab.errors import StoreError
from benchfab.store import DamagedRunWarning, load_runs

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example"


def _copy(root: Path, run_id: str, started: str) -> Path:
    dest = root / run_id
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("report"))
    meta = json.loads((dest / "run.json").read_text())
    meta.update(run_id=run_id, started=started)
    (dest / "run.json").write_text(json.dumps(meta))
    return dest


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
    return f"{part.name}: not a readable Parquet file"


def _foreign_parquet(run: Path) -> str:
    part = _first_part(run, "tests")
    pd.DataFrame({"temperature": [21.5, 22.0]}).to_parquet(part)
    return f"{part.name}: not a benchfab table (no run_id, test_id column)"


def _summary_is_a_file(run: Path) -> str:
    shutil.rmtree(run / "summary")
    (run / "summary").write_text("not a folder\n")
    return "summary: not a directory"


DAMAGE: dict[str, Callable[[Path], str]] = {
    "binary-run-json": _binary_meta,
    "list-run-json": _list_meta,
    "mistyped-run-json": _mistyped_meta,
    "cut-run-json": _cut_meta,
    "truncated-parquet": _truncated_parquet,
    "foreign-parquet": _foreign_parquet,
    "summary-is-a-file": _summary_is_a_file,
}
META_DAMAGE = {"binary-run-json", "list-run-json", "mistyped-run-json", "cut-run-json"}


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "results"
    good = _copy(root, "20261201-000001-good", "2026-12-01T00:00:01Z")
    bad = _copy(root, "20261201-000002-bad", "2026-12-01T00:00:02Z")
    return root, good, bad


@pytest.mark.parametrize("case", sorted(DAMAGE), ids=sorted(DAMAGE))
def test_load_runs_skips_and_names_the_damaged_run(two_runs: tuple[Path, Path, Path], case: str) -> None:
    root, good, bad = two_runs
    words = DAMAGE[case](bad)
    with pytest.warns(DamagedRunWarning, match=bad.name) as caught:
        rows = load_runs(root)
    assert words in str(caught[0].message)
    assert set(rows["run_started"]) == {"2026-12-01T00:00:01Z"}  # the good copy's rows only
    assert len(rows) == len(benchfab.load_run(good).summary)
    with pytest.raises(StoreError, match=re.escape(words)):
        load_runs(root, strict=True)


@pytest.mark.parametrize("case", sorted(DAMAGE), ids=sorted(DAMAGE))
def test_cli_lists_the_others_and_names_the_file(cli, two_runs: tuple[Path, Path, Path], case: str) -> None:  # type: ignore[no-untyped-def]
    root, good, bad = two_runs
    words = DAMAGE[case](bad)
    runs = cli("runs", "--results", str(root))
    assert runs.returncode == 0, runs.stderr
    assert good.name in runs.stdout and "Traceback" not in runs.stderr
    if case in META_DAMAGE:
        assert f"{bad.name:<48} damaged" in runs.stdout
        assert words in runs.stderr
    for command in ("show", "report"):
        proc = cli(command, bad.name, "--results", str(root))
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith("benchfab: error: ") and words in line and "(fix: " in line, line
        assert "Traceback" not in proc.stderr
    ok = cli("show", good.name, "--results", str(root))
    assert ok.returncode == 0 and "busbw" in ok.stdout


def test_run_without_summary_rows_adds_none_and_host_is_named(tmp_path: Path) -> None:
    root = tmp_path / "results"
    good = _copy(root, "20261201-000001-good", "2026-12-01T00:00:01Z")
    empty = _copy(root, "20261201-000002-empty", "2026-12-01T00:00:02Z")
    for table in ("summary", "raw"):
        shutil.rmtree(empty / table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = load_runs(root)
    assert set(rows["run_started"]) == {"2026-12-01T00:00:01Z"}  # the good copy's rows only
    assert len(rows) == len(benchfab.load_run(good).summary)
    hostname = json.loads((good / "run.json").read_text())["host"]["hostname"]
    assert (rows["run_host"] == hostname).all()
