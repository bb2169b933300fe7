"""A newcomer's habits, as the CLI and scripts meet them: a report of several runs gets its
own folder, progress speaks on stderr from the first test's start, the scripts answer
--help with their usage."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.slow  # real gloo ranks
def test_progress_speaks_on_stderr_before_the_first_test_ends(tmp_path: Path) -> None:
    """stderr a pipe (a CI log): a line naming the first test and the estimate comes first, then
    one per finished test; stdout (the tables) says nothing on stderr's behalf."""
    proc = subprocess.Popen([sys.executable, "-m", "benchfab", "run", "allreduce", "-b", "8", "-e", "64", "-n", "2",
                             "-w", "1", "--results", str(tmp_path / "r")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()
    # The test is still running when its start is announced: its result is not stored yet.
    running = proc.poll() is None and not list((tmp_path / "r").glob("*/tests/*.parquet"))
    out, rest = proc.communicate(timeout=300)
    assert proc.returncode == 0, rest
    assert first.startswith("[0/1] 000-allreduce-2r: started; 1 test(s), estimated "), first
    assert running, "the first progress line came only after the test had ended"
    assert rest.splitlines()[0].startswith("[1/1] 000-allreduce-2r: ok in ")
    assert "[0/1]" not in out


def test_simcluster_help_prints_usage_and_exits_0() -> None:
    for flag in ("--help", "-h", "help"):
        proc = subprocess.run([str(ROOT / "scripts" / "simcluster.sh"), flag], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("usage: scripts/simcluster.sh up N") and "down" in proc.stdout
    wrong = subprocess.run([str(ROOT / "scripts" / "simcluster.sh"), "sideways"], capture_output=True, text=True, timeout=30)
    assert wrong.returncode == 2 and "usage: scripts/simcluster.sh" in wrong.stderr


def test_setup_help_and_jupyterlab_only_on_request() -> None:
    """scripts/setup.sh --help says its options; JupyterLab is the [notebooks] extra, which only
    --notebooks (or BENCHFAB_NOTEBOOKS=1) installs: not the default setup, not CI's."""
    import tomllib

    setup = ROOT / "scripts" / "setup.sh"
    proc = subprocess.run([str(setup), "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "--notebooks" in proc.stdout and "BENCHFAB_NOTEBOOKS=1" in proc.stdout
    wrong = subprocess.run([str(setup), "--notebook"], capture_output=True, text=True, timeout=30)
    assert wrong.returncode == 2 and "unknown argument --notebook" in wrong.stderr
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("jupyterlab") for dep in extras["notebooks"])
    assert not any(dep.startswith("jupyterlab") for dep in extras["test"] + extras["cuda"])
    assert "--notebooks" not in (ROOT / "scripts" / "test.sh").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "scripts/setup.sh --notebooks" in readme and ".venv/bin/jupyter lab notebooks/" in readme
    assert "source .venv/bin/activate" in readme  # how a new shell reaches the benchfab command
