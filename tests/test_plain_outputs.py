"""What a person reads first: no "None" or "nan" where a value does not exist ("-" and,
once, why), no empty tables, plain YAML, and errors that say what to run instead.

The runs are real: reports of results/fabrics/sources/ and tests/rdma/data/ stored with
``benchfab import``, and the repository's example sweep (results/example/).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT

SOURCES = ROOT / "results" / "fabrics" / "sources"
IB_HDR = SOURCES / "nccl-tests-150-ib-hdr-allreduce.txt"  # names neither its hosts nor (here) a version
POSTLIST = SOURCES / "perftest-273-roce-write-bw-postlist.txt"  # perftest: no hosts, no BW peak
SOFTROCE_LAT = ROOT / "tests" / "rdma" / "data" / "ib_write_lat_client.txt"
NONE_OR_NAN = re.compile(r"\b(None|nan|NaN|NaT|<NA>)\b")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results directory with an nccl-tests and two perftest reports imported by the CLI."""
    from benchfab.cli import main

    results = tmp_path_factory.mktemp("imported")
    for args in (["nccl-tests", str(IB_HDR), "--profile", "ib-hdr", "--fabric", "ib", "--hosts", "node-1,node-2",
                  "--workload", "all_reduce_perf", "--run-id", "ib"],
                 ["perftest", str(POSTLIST), "--profile", "roce-ib0", "--run-id", "postlist"],
                 ["perftest", str(SOFTROCE_LAT), "--profile", "rxe", "--run-id", "lat"]):
        assert main(["import", *args, "--results", str(results)]) == 0
    return results


def _report(cli, run: str, results: Path, out: Path) -> str:  # type: ignore[no-untyped-def]
    proc = cli("report", run, "--results", str(results), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return (out / "summary.md").read_text()


def test_imported_run_summary_says_dash_and_why_never_none(cli, imported: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    md = _report(cli, "ib", imported, tmp_path / "ib")
    assert not NONE_OR_NAN.search(md), NONE_OR_NAN.findall(md)
    assert f"- imported: nccl-tests report `{IB_HDR}`" in md  # instead of "spec: `None`"
    assert "torch -, python -" in md and "- git: -" in md
    # once, why: the report does not state them
    assert '- "-": not recorded (the imported report does not state torch, python, git)' in md
    html = (tmp_path / "ib" / "report.html").read_text()
    assert not NONE_OR_NAN.search(re.sub(r"data:image/png;base64,[^\"]*", "", html))


def test_a_run_without_collectives_has_no_collective_table(cli, imported: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for run in ("postlist", "lat"):
        md = _report(cli, run, imported, tmp_path / run)
        assert "## Bandwidth" not in md and "peak busbw" not in md
        assert "## Point-to-point" in md and not NONE_OR_NAN.search(md)
        assert "- host: -;" in md  # perftest reports name no host (and no --hosts was given)
    lat = (tmp_path / "lat" / "summary.md").read_text()
    # the point-to-point table's row: | run | profile | test | workload | transport | engine | BW avg | BW peak | lat |
    row = next(line for line in lat.splitlines() if "| 000-rdma_write_lat | rdma_write_lat | verbs |" in line)
    assert [c.strip() for c in row.split("|")[7:10]] == ["-", "-", "8.54"]  # no bandwidth in a latency test
    assert lat.count('"-": not measured. A bandwidth test measures no latency and a latency test no bandwidth') == 1


def test_measured_run_summary_has_no_dash_note_when_nothing_is_missing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "example", results / "example")
    md = _report(cli, "example", results, tmp_path / "out")
    assert "- spec: `jobs/local.yaml` (local)" in md and "torch 2." in md
    assert '"-": not recorded' not in md and "## Bandwidth" in md and not NONE_OR_NAN.search(md)


def test_diagnose_of_an_imported_run_says_why_and_what_to_run_instead(cli, imported: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli("diagnose", "ib", "--results", str(imported))
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("benchfab: error: cannot diagnose run ib: it was imported from a nccl-tests report")
    assert "no placement of ranks on nodes" in line
    assert "(fix: the second pass retests the node pairs of a run benchfab measured with placement.pattern all-pairs" in line
    assert "benchfab sweep SPEC, then benchfab diagnose latest" in line and "benchfab compare BASE RUN" in line
    resume = cli("sweep", "--resume", "ib", "--results", str(imported))
    assert resume.returncode == 2 and "cannot resume run ib: it was imported" in resume.stderr


@pytest.mark.parametrize("argv", [
    ["render", "jobs/ib-vs-roce.yaml", "--nodes", "a,b"],
    ["render", "jobs/shared-vs-sriov.yaml", "--nodes", "4"],
    ["run", "allreduce", "-b", "8", "-e", "1M", "-d", "all", "--print-spec"],
], ids=["render-ib-vs-roce", "render-shared-vs-sriov", "run-print-spec"])
def test_written_yaml_has_no_anchors_and_reads_back_the_same(cli, argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    proc = cli(*argv)
    assert proc.returncode == 0, proc.stderr
    assert not re.search(r"[&*]id\d+", proc.stdout), re.findall(r".*[&*]id\d+.*", proc.stdout)[:3]
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)
    if argv[0] == "render":  # the NetworkPolicy's selector written twice in full, as a person writes it
        policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
        assert policy["spec"]["ingress"][0]["from"][0]["podSelector"] == policy["spec"]["podSelector"]
