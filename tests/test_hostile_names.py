"""Names that break outputs (issue #22 item 6): a spec may not hold control characters (validate
refuses them, file:line), and names already in a store (an import made before its names were
checked, a hand-edited run) are escaped wherever they are shown: the terminal, JUnit XML,
summary.md and report.html.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import ROOT

EXAMPLE = ROOT / "results" / "example"
HOSTILE = "lo\x1b[31mRED\nforged line<script>alert(1)</script>|x*"


@pytest.mark.parametrize("yaml_line, field", [
    ('description: "nightly\\x1b[2J"', "description"),
    ('profiles: {"lo\\x1b[31m": {fabric: loopback}}', "profiles['lo\\x1b[31m']"),
    ('profiles: {lo: {fabric: roce, resource: "rdma/x\\nforged"}}', "profiles.lo.resource"),
    ('profiles: {lo: {fabric: loopback, env: {NCCL_DEBUG: "INFO\\x07"}}}', "profiles.lo.env.NCCL_DEBUG"),
])
def test_validate_refuses_control_characters(cli, write_spec, yaml_line: str, field: str) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec(f"{yaml_line}\ntests:\n  - {{name: ar, workload: allreduce}}\n")
    proc = cli("validate", str(spec))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert any(f"spec.yaml:1: {field}: the " in line and "holds control characters" in line for line in lines), lines
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr  # shown as escapes


def test_a_description_may_span_lines(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("description: |\n  nightly\n  \tfabric check\ntests:\n  - {name: ar, workload: allreduce}\n")
    assert cli("validate", str(spec)).returncode == 0


def _run_with_hostile_profile(root: Path) -> Path:
    """The example run with its profile renamed as an unchecked import could have stored it."""
    run = root / "hostile"
    shutil.copytree(EXAMPLE, run, ignore=shutil.ignore_patterns("report"))
    meta = json.loads((run / "run.json").read_text())
    meta.update(run_id="hostile")
    (run / "run.json").write_text(json.dumps(meta))
    for table in ("summary", "tests"):
        for part in (run / table).glob("*.parquet"):
            frame = pd.read_parquet(part)
            frame["profile"] = HOSTILE
            frame["reason"] = "failed on node<b>x\x1b[0m"
            if table == "tests":
                frame["status"] = "failed"
            frame.to_parquet(part)
    return run


@pytest.mark.slow
def test_stored_names_are_escaped_everywhere_they_are_shown(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "results"
    _run_with_hostile_profile(root)
    shutil.copytree(root / "hostile", root / "hostile2")
    for command in (["show", "hostile"], ["compare", "hostile", "hostile2"], ["runs"]):
        proc = cli(*command, "--results", str(root))
        assert proc.returncode in (0, 1), proc.stderr
        assert "\x1b" not in proc.stdout + proc.stderr, command  # no raw escape reaches the terminal
    junit = cli("compare", "hostile", "hostile2", "-o", "junit", "--results", str(root))
    doc = ET.fromstring(junit.stdout)  # parses: no character XML forbids
    names = [case.get("name") or "" for case in doc.iter("testcase")]
    assert names and all("\x1b" not in n and "\n" not in n for n in names)
    assert any("lo\\x1b[31mRED\\nforged line<script>" in n for n in names)  # escaped, not lost
    report = cli("report", "hostile", "--results", str(root))
    assert report.returncode == 0, report.stderr
    md = (root / "hostile" / "report" / "summary.md").read_text()
    assert "<script>" not in md and "<b>" not in md and "\x1b" not in md
    # No pipe or newline from a name breaks a table: every row has its header's cells.
    tables: list[list[str]] = [[]]
    for line in md.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    hostile_rows = 0
    for table in filter(None, tables):
        cells = {line.count("|") - line.count("\\|") for line in table}
        assert len(cells) == 1, table
        hostile_rows += sum(line.startswith("| hostile |") for line in table)
    assert hostile_rows >= 16  # the tests, collectives' and point-to-point tables all name it
    page = (root / "hostile" / "report" / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;|x*" in page  # read back as text
