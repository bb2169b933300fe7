"""The report's GPU-NIC locality section: each point-to-point rank's recorded (GPU, HCA)
pairing with its distance class, and a warning per SYS pairing. The pairings are
benchfab.pcitopo's on a sysfs tree built like a published 8-GPU server; the run is a copy
of results/example with them written into its tests' ``used`` through the store's writer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

import benchfab
from benchfab.pcitopo import read_topology
from benchfab.report import write_report
from benchfab.store import RunStore
from tests.helpers import ROOT
from tests.test_pcitopo import DATA, build_sysfs

BW_TEST, LAT_TEST = "006-tcp-write-bw", "007-tcp-write-lat"


def _with_pairings(results: Path, pairings: dict[str, tuple[tuple[int, str], tuple[int, str]]], sysfs: Path) -> Path:
    """results/example copied, each test in ``pairings`` given (GPU, HCA) per rank as its ranks' locality."""
    shutil.copytree(ROOT / "results" / "example", results / "example")
    layout = yaml.safe_load((DATA / "nccl-933-8gpu-9nic.yaml").read_text())
    build_sysfs(sysfs, layout)
    topo = read_topology(sysfs)
    run = benchfab.load_run(results / "example")
    for test_id, ranks in pairings.items():
        (test,) = [{str(k): v for k, v in r.items()} for r in run.tests[run.tests["test_id"] == test_id].to_dict("records")]
        summary = [{str(k): v for k, v in r.items()} for r in run.summary[run.summary["test_id"] == test_id].to_dict("records")]
        used = json.loads(str(test["used"]))
        for env, (gpu, hca) in zip(used["ranks"], ranks):
            env["locality"] = topo.pairing(gpu, hca)
        test["used"] = json.dumps(used)
        RunStore(results, "example").write_test(test, summary, [])  # type: ignore[arg-type]
    return results / "example"


def test_a_sys_pairing_is_warned_in_summary_and_html_and_a_pix_one_is_not(tmp_path: Path) -> None:
    # nccl#933's server: GPU 0 is behind mlx5_2's switch (PIX); mlx5_1 hangs off the other socket (SYS).
    run_dir = _with_pairings(tmp_path / "results", {BW_TEST: ((0, "mlx5_2"), (0, "mlx5_1")),
                                                    LAT_TEST: ((0, "mlx5_2"), (0, "mlx5_2"))}, tmp_path / "sys")
    out = tmp_path / "report"
    write_report(benchfab.load_run(run_dir), out)
    md = (out / "summary.md").read_text()
    section = md.split("## GPU-NIC locality of `example`")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| example |")]
    assert [r.split("|")[2:4] + [r.split("|")[-2]] for r in rows] == [
        [f" {BW_TEST} ", " 0 ", " PIX "], [f" {BW_TEST} ", " 1 ", " **SYS** "],
        [f" {LAT_TEST} ", " 0 ", " PIX "], [f" {LAT_TEST} ", " 1 ", " PIX "]]
    warnings = [line for line in md.splitlines() if "WARNING" in line]
    assert len(warnings) == 1
    assert f"example {BW_TEST} rank 1: GPU 0 and mlx5_1 are SYS apart" in warnings[0]
    assert "halve bandwidth" in warnings[0] and "rdma.cuda_device" in warnings[0]
    html = (out / "report.html").read_text()
    assert f"<strong>WARNING</strong>: example {BW_TEST} rank 1: GPU 0 and mlx5_1 are SYS apart" in html
    assert html.count("<strong>WARNING</strong>") == 1


def test_no_pairings_recorded_no_locality_section(tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(benchfab.load_run(ROOT / "results" / "example"), out)
    assert "GPU-NIC locality" not in (out / "summary.md").read_text()
