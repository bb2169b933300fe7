"""``-o json`` on every command that produces something: stdout is one JSON document of the
shape docs/JSON.md gives, and nothing else (the text goes to stderr); the exit codes are the
text mode's. Real runs: gloo ranks on this host, real nccl-tests reports imported."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT

RUN_KEYS = {"run_id", "path", "status", "started", "ended", "spec_name", "spec_path", "imported_from", "counts",
            "tests", "summary", "verdicts", "diagnosis", "expectations"}
SPARK = ROOT / "results" / "fabrics" / "sources" / "spark-pr103-roce-allreduce-mtu9000.txt"
SPEC = "name: j\ntests:\n  - {name: fine, sizes: [1K, 4K], iterations: 2, warmup: 0}\n"


def _document(proc: subprocess.CompletedProcess[str]) -> Any:
    """stdout as JSON; it must be nothing else (no table, no note)."""
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)  # raises on anything around the document


def test_validate_json_valid_and_every_problem(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    ok = _document(cli("validate", "jobs/local.yaml", "-o", "json"))
    assert ok == {"spec": "jobs/local.yaml", "valid": True, "name": "local", "backend": "local", "tests": 8, "problems": []}

    bad = write_spec("name: b\ntests:\n  - {workload: allreduc, ranks: 2}\n  - {ranks: 0}\n")
    proc = cli("validate", str(bad), "-o", "json")
    assert proc.returncode == 2  # as text validate exits
    doc = _document(proc)
    assert doc["valid"] is False and doc["name"] is None and len(doc["problems"]) == 2
    first, second = doc["problems"]
    assert (first["file"], first["line"], first["field"]) == (str(bad), 3, "tests[0].workload")
    assert "allreduc" in first["message"] and "allreduce" in first["fix"]  # did you mean
    assert (second["line"], second["field"]) == (4, "tests[1].ranks")
    # stderr still says it as text validate does, one line per problem
    assert [line.split(": ")[2] for line in proc.stderr.splitlines()] == [f"{bad}:3", f"{bad}:4"]


@pytest.mark.slow  # real gloo ranks
def test_sweep_json_is_the_run_document_with_exit_code(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec(SPEC)
    results = str(tmp_path / "res")
    proc = cli("sweep", str(spec), "--results", results, "--run-id", "j1", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = _document(proc)
    assert set(doc) == RUN_KEYS | {"exit_code"}
    assert (doc["run_id"], doc["status"], doc["exit_code"], doc["counts"]) == ("j1", "complete", 0, {"ok": 1})
    assert doc["spec_name"] == "j" and doc["spec_path"] == str(spec) and doc["imported_from"] is None
    assert [t["test_id"] for t in doc["tests"]] == ["000-fine"] and doc["tests"][0]["status"] == "ok"
    assert sorted({r["size_bytes"] for r in doc["summary"]}) == [1024, 4096]
    assert all(isinstance(r["busbw_Bps"], float) for r in doc["summary"])
    assert "# 000-fine: allreduce, 2 ranks" in proc.stderr and "# run j1: 1 ok" in proc.stderr  # the tables moved
    assert doc["verdicts"] is None and doc["diagnosis"] is None

    # exit 1 unchanged (a test failed its data check); --baseline's comparison is in the document
    corrupt = cli("sweep", str(spec), "--results", results, "--run-id", "j2", "--baseline", "j1", "-o", "json",
                  env={"BENCHFAB_TEST_CORRUPT": "000-fine:1"})
    assert corrupt.returncode == 1, corrupt.stderr
    doc = _document(corrupt)
    assert doc["exit_code"] == 1 and doc["tests"][0]["status"] == "failed" and doc["counts"] == {"failed": 1}
    assert doc["verdicts"]["new"] and {v["verdict"] for v in doc["verdicts"]["verdicts"]} == {"failed"}  # verdicts.json
    assert "failed" in corrupt.stderr  # the comparison's table, for a person

    shown = _document(cli("show", "j1", "--results", results, "-o", "json"))
    assert set(shown) == RUN_KEYS and shown["summary"] == _document(proc)["summary"]


@pytest.mark.slow  # real gloo ranks
def test_run_json_long_flag_beside_nccl_tests_o(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """benchfab run takes --output json: -o is nccl-tests' --op."""
    proc = cli("run", "allreduce", "-b", "1K", "-e", "1K", "-n", "2", "-w", "0", "-o", "max", "--output", "json",
               "--results", str(tmp_path / "res"))
    assert proc.returncode == 0, proc.stderr
    doc = _document(proc)
    assert set(doc) == RUN_KEYS | {"exit_code"} and doc["exit_code"] == 0
    assert {r["redop"] for r in doc["summary"]} == {"max"} and doc["spec_name"] == "run-allreduce"
    assert "# 000-allreduce-2r: allreduce, 2 ranks" in proc.stderr  # the table, for a person


def test_import_json_is_the_stored_run(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli("import", "nccl-tests", str(SPARK), "--profile", "roce-spark", "--fabric", "roce", "--run-id", "imp",
               "--results", str(tmp_path), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = _document(proc)
    assert doc["run_id"] == "imp" and doc["exit_code"] == 0 and doc["status"] == "complete"
    assert doc["imported_from"]["tool"] == "nccl-tests" and doc["imported_from"]["version"] == "2.20.0"
    assert len(doc["summary"]) == 8 and {r["fabric"] for r in doc["summary"]} == {"roce"}
    assert proc.stderr.startswith("# imported nccl-tests text report")
    again = cli("import", "nccl-tests", str(SPARK), "--profile", "roce-spark", "--fabric", "roce", "--run-id", "imp",
                "--results", str(tmp_path), "-o", "json")
    assert again.returncode == 2 and again.stdout == ""  # an error: nothing on stdout, one line on stderr


@pytest.mark.parametrize("flags", [["-o", "json"], ["--json"], ["--gids", "-o", "json"]])
def test_devices_json_and_its_alias(cli, flags: list[str]) -> None:  # type: ignore[no-untyped-def]
    proc = cli("devices", *flags)
    assert proc.returncode == 0, proc.stderr
    devices = _document(proc)
    assert isinstance(devices, list)
    for dev in devices:  # this host's RDMA devices, when it has any
        assert {"name", "ports"} <= set(dev) and all("fabric" in p and "default_gid_index" in p for p in dev["ports"])
