"""scripts/simcluster.sh as a person uses it: up, a sweep with the normal CLI and the
kubeconfig it writes, `benchfab diagnose` on the stored run, down with nothing left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from benchfab.native import HAVE_NATIVE
from tests.conftest import run_cli
from tests.fakecluster.netsim import why_unavailable
from tests.helpers import ROOT

_why = why_unavailable() or (None if HAVE_NATIVE else "benchfab._native is not built (the tcp engine)")
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(_why is not None, reason=_why or "")]


def simcluster(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCHFAB_SIM_DIR": str(state)}
    return subprocess.run([str(ROOT / "scripts" / "simcluster.sh"), *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def netns_and_links(tag: str) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [n for n in names if n.startswith(f"bfs{tag}")] + [w for w in links.split() if w.startswith(f"bfs{tag}")]


def test_up_sweep_diagnose_down(tmp_path: Path) -> None:
    state = tmp_path / "sim"
    up = simcluster("up", "5", "--slow-node", "sim-node-1:50", state=state)
    assert up.returncode == 0, up.stderr
    tag = json.loads((state / "state.json").read_text())["tag"]
    try:
        assert netns_and_links(tag)
        spec = tmp_path / "spec.yaml"
        spec.write_text((state / "spec-head.yaml").read_text() + (
            "kubernetes: {start_timeout: 60s}\ndefaults: {timeout: 60s}\ntests:\n"
            "  - {name: bw, workload: rdma_write_bw, transport: tcp, sizes: [256K], iterations: 20, warmup: 3,\n"
            "     placement: {pattern: all-pairs}}\n"))
        kube = ["--kubeconfig", str(state / "kubeconfig")]
        res = str(tmp_path / "res")
        swept = run_cli("sweep", str(spec), "--results", res, "--run-id", "pass1", "--no-progress", *kube)
        assert swept.returncode == 0, swept.stdout + swept.stderr
        assert not (tmp_path / "res" / "pass1" / "diagnosis.json").exists()  # no second_pass in the spec
        junit = tmp_path / "diagnose.xml"
        diag = run_cli("diagnose", "pass1", "--results", res, "--no-progress", "--junit", str(junit), *kube)
        assert diag.returncode == 1, diag.stdout + diag.stderr  # a verdict: exit 1
        assert re.search(r"^bad-node +sim-node-1 ", diag.stdout, re.M) and "kubectl cordon sim-node-1" in diag.stdout, \
            diag.stdout
        (suite,) = ET.parse(junit).getroot().iter("testsuite")  # one failure, the other 4 nodes judged fine
        assert (suite.get("tests"), suite.get("failures")) == ("5", "1")
        (failed,) = [c for c in suite.iter("testcase") if c.find("failure") is not None]
        assert failed.get("name") == "sim-node-1" and "kubectl cordon sim-node-1" in (failed.findtext("failure") or "")
        # -o json: the same verdict as one document on stdout (diagnosis.json's shape), the text on stderr
        # ... and --expect FILE judged on the run too: a bound no tcp pair reaches, every pass pair below it
        expect = tmp_path / "expect.yaml"
        expect.write_text("version: 1\nexpectations:\n  - {test: bw, expect: {bandwidth: '>= 100 Tb/s'}}\n")
        as_json = run_cli("diagnose", "pass1", "--results", res, "--no-progress", "-o", "json", "--expect", str(expect),
                          *kube)
        assert as_json.returncode == 1, as_json.stderr  # exit codes as in text mode
        doc = json.loads(as_json.stdout)
        assert doc["expectations"]["counts"] == {"below-expectation": 10}  # the 10 pairs of 5 nodes
        assert as_json.stderr.count("below-expectation  bw ") == 10, as_json.stderr
        assert (doc["run_id"], doc["exit_code"]) == ("pass1", 1) and doc["path"].endswith("pass1")
        assert [(v["kind"], v["nodes"]) for v in doc["diagnosis"]["verdicts"]] == [("bad-node", ["sim-node-1"])]
        assert doc["diagnosis"] == json.loads((tmp_path / "res" / "pass1" / "diagnosis.json").read_text())
        assert re.search(r"^bad-node +sim-node-1 ", as_json.stderr, re.M), as_json.stderr
        # sweep --junit (no --baseline): the run's second-pass suite alone, through the sweep command.
        resumed = run_cli("sweep", "--resume", "pass1", "--results", res, "--no-progress", "--junit",
                          str(tmp_path / "sweep.xml"), *kube)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert ET.parse(tmp_path / "sweep.xml").getroot().find("testsuite").get("name") == "benchfab diagnose pass1"  # type: ignore[union-attr]
        stored = json.loads((tmp_path / "res" / "pass1" / "diagnosis.json").read_text())
        assert [(v["kind"], v["nodes"]) for v in stored["verdicts"]] == [("bad-node", ["sim-node-1"])]
        assert json.loads((tmp_path / "res" / "pass1" / "run.json").read_text())["diagnosis"]["verdicts"] == 1
    finally:
        down = simcluster("down", state=state)
    assert down.returncode == 0, down.stderr
    assert netns_and_links(tag) == []
    assert not (state / "state.json").exists()
