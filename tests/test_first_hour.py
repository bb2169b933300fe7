"""A newcomer's habits, as the CLI and scripts meet them: a report of several runs gets its
own folder, progress speaks on stderr from the first test's start, the scripts answer
--help with their usage."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import ROOT

FABRICS = ROOT / "results" / "fabrics"


def test_a_report_of_several_runs_has_its_own_folder(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    results = tmp_path / "results"
    for run in ("roce-spark-allreduce-1", "roce-spark-allreduce-2"):
        shutil.copytree(FABRICS / run, results / run)
    own = cli("report", "roce-spark-allreduce-1", "--results", str(results))
    assert own.returncode == 0, own.stderr
    own_summary = (results / "roce-spark-allreduce-1" / "report" / "summary.md").read_text()

    both = cli("report", "roce-spark-allreduce-1", "roce-spark-allreduce-2", "--results", str(results))
    assert both.returncode == 0, both.stderr
    folder = results / "reports" / "roce-spark-allreduce-1+roce-spark-allreduce-2"
    assert {Path(line).parent for line in both.stdout.split()} == {folder}
    assert "## Run `roce-spark-allreduce-2`" in (folder / "summary.md").read_text()
    # the first run's own report is left as it was; the second run got none
    assert (results / "roce-spark-allreduce-1" / "report" / "summary.md").read_text() == own_summary
    assert not (results / "roce-spark-allreduce-2" / "report").exists()
    # a reports/ folder is not a run
    listed = cli("runs", "--results", str(results), "-o", "json")
    assert listed.returncode == 0 and "reports" not in listed.stdout
