"""The report and the notebooks, run on the real example dataset in results/example/."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

import benchfab
from benchfab.report import write_report
from tests.helpers import ROOT

EXAMPLE = ROOT / "results" / "example"


def test_example_dataset_is_a_real_run() -> None:
    run = benchfab.load_run(EXAMPLE)
    assert run.meta["status"] == "complete"
    assert set(run.summary["workload"]) >= {"allreduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all"}
    collectives = run.summary[(run.summary.status == "ok") & run.summary.busbw_Bps.notna()]
    assert (collectives["wrong"] == 0).all()
    p2p = run.summary[run.summary.workload.isin(["rdma_write_bw", "rdma_write_lat"])]
    assert set(p2p["workload"]) == {"rdma_write_bw", "rdma_write_lat"} and (p2p["transport"] == "tcp").all()


def test_report_writes_curves_and_markdown(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    run = benchfab.load_run(EXAMPLE)
    paths = write_report(run, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["busbw.png", "p2p_bw.png", "p2p_lat.png", "report.html", "summary.md", "time.png"]
    for png in ("busbw.png", "time.png", "p2p_bw.png", "p2p_lat.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    md = (tmp_path / "summary.md").read_text()
    for test_id in run.tests["test_id"]:
        assert test_id in md
    assert "GB/s = 1e9 B/s" in md
    proc = cli("report", str(EXAMPLE), "--out", str(tmp_path / "cli"))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cli" / "busbw.png").exists()


def test_show_reprints_tables(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("show", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("out-of-place") == 6 and "#wrong" in proc.stdout and "BW average[Gb/sec]" in proc.stdout
    # The example's point-to-point tests are tcp: no BW peak column, and the header says why.
    assert "BW peak[Gb/sec]" not in proc.stdout and "tcp: no BW peak column" in proc.stdout


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs(notebook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute every code cell in order, as Jupyter would, from the notebooks/ folder."""
    matplotlib.use("Agg")
    monkeypatch.chdir(notebook.parent)
    cells = json.loads(notebook.read_text())["cells"]
    namespace: dict[str, object] = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        exec(compile(source, f"{notebook.name}[cell {i}]", "exec"), namespace)  # noqa: S102
    assert "run" in namespace
