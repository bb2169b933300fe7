"""The report on the real example run in results/example/, and the notebooks (over results/fabrics/) run by a kernel."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

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


# The kernel the notebooks run in: this interpreter (the project's .venv), registered under a
# name of our own in a kernelspec directory of our own, so a system Jupyter's "python3" is never used.
KERNEL_NAME = "benchfab-test-venv"


@pytest.fixture(scope="module")
def venv_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "benchfab .venv", "language": "python", "env": {"MPLBACKEND": "Agg"}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(jupyter))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(jupyter / "runtime"))  # connection files: not in $HOME
        yield KERNEL_NAME


# What a notebook prints that the CLI prints too: (benchfab ARGS, its exit code), over results/fabrics/.
CLI_OUTPUTS = {
    "regression.ipynb": [(("compare", "roce-spark-allreduce-1", "roce-spark-allreduce-2"), 0),
                         (("compare", "--history", "2", "local-tcp-history-3"), 0)],
}


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs_in_a_kernel(notebook: Path, venv_kernel: str, cli) -> None:  # type: ignore[no-untyped-def]
    """Every notebook runs top to bottom in a real Jupyter kernel (nbclient + ipykernel), from
    notebooks/ as Jupyter starts it, and says what its data is; where it shows verdicts, they
    are the CLI's, character for character."""
    import nbclient
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    intro = nb.cells[0]
    assert intro.cell_type == "markdown" and ("**Data.**" in intro.source or "example dataset" in intro.source)
    # Last, a cell that names the interpreter: the venv's, not a system Jupyter's python.
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = nbclient.NotebookClient(nb, kernel_name=venv_kernel, timeout=180,
                                     resources={"metadata": {"path": str(notebook.parent)}})
    client.execute()  # raises CellExecutionError naming the cell and the traceback on any failure
    assert nb.cells[-1].outputs[0]["text"].strip() == sys.executable
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "error"]
    assert errors == []
    printed = "".join(o["text"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                      if o.get("output_type") == "stream" and o.get("name") == "stdout")
    for args, exit_code in CLI_OUTPUTS.get(notebook.name, []):
        proc = cli(*args, "--results", str(ROOT / "results" / "fabrics"))
        assert proc.returncode == exit_code, proc.stderr
        assert proc.stdout.strip() and proc.stdout in printed
