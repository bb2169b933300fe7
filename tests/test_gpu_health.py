"""GPU health from DCGM's outputs in their documented formats (tests/data/dcgm/, hand-written:
see its README): the exporter's /metrics text served over real HTTP, ``dcgmi diag -r 1 -j``
replayed by a ``dcgmi`` on PATH, each GPU's nearest NIC from a sysfs tree, the ``bad-gpu``
verdict, its node mark, and "GPU health not checked" where there is no DCGM."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from benchfab.backends.kubernetes.node_marks import marks_for
from benchfab.diagnosis import Diagnosis, load_diagnosis, verdict_markdown, verdict_table, write_diagnosis
from benchfab.gpuhealth import (
    NodeHealth,
    collect,
    gpu_verdicts,
    health_by_node,
    health_summary,
    parse_diag,
    parse_exporter,
)
from tests.helpers import ROOT
from tests.test_pcitopo import build_sysfs

DATA = ROOT / "tests" / "data" / "dcgm"


def fixture(name: str) -> str:
    return (DATA / name).read_text()


@pytest.fixture
def exporter() -> Iterator[dict[str, str]]:
    """A real HTTP server answering /metrics with ``served["text"]``."""
    served = {"text": fixture("exporter-healthy.txt")}

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served["text"].encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served["url"] = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dcgmi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``dcgmi`` on PATH that prints the recorded ``diag -r 1 -j`` output named in ./answer."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = bin_dir / "answer"
    answer.write_text(str(DATA / "diag-pass.json"))
    script = bin_dir / "dcgmi"
    script.write_text(f'#!/bin/sh\n[ "$*" = "diag -r 1 -j" ] || exit 64\nexec cat "$(cat {answer})"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return answer


def test_exporter_text_gives_each_gpus_fields_and_only_hardware_faults_fail() -> None:
    healthy = parse_exporter(fixture("exporter-healthy.txt"))
    assert sorted(healthy.gpus) == list(range(8)) and not any(g.problems() for g in healthy.gpus.values())
    assert healthy.gpus[2].fields["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"] == 3  # recorded, not judged
    assert healthy.gpus[1].pci == "0000:28:00.0"  # DCGM's 00000000:28:00.0 as sysfs names it
    faulty = parse_exporter(fixture("exporter-faulty.txt"))
    assert {i: g.problems() for i, g in faulty.gpus.items() if g.problems()} == {
        3: ["XID 79"], 5: ["row remapping failed (an RMA criterion once a field diagnostic confirms it)"]}
    assert faulty.gpus[1].fields["DCGM_FI_DEV_XID_ERRORS"] == 13  # an application's XID: no verdict


def test_dcgmi_diag_json_gives_each_gpus_failed_tests() -> None:
    assert not any(g.problems() for g in parse_diag(fixture("diag-pass.json")).gpus.values())
    failed = parse_diag(fixture("diag-fail.json"))
    (bad,) = [g for g in failed.gpus.values() if g.problems()]
    assert bad.index == 6 and bad.diag_failures[0].startswith("memory failed (Error using CUDA API cuMemAlloc")
    legacy = parse_diag(fixture("diag-legacy.json"))
    assert legacy.gpus[1].diag_failures == ["GPU Memory failed (Memory test found 2 bad pages)"]
    with pytest.raises(ValueError):
        parse_diag('{"error": "Unable to connect to host engine"}')


def test_collect_reads_both_sources_and_names_the_nearest_nic(tmp_path: Path, exporter: dict[str, str],
                                                             dcgmi: Path) -> None:
    layout = yaml.safe_load((ROOT / "tests/data/topology/nccl-933-8gpu-9nic.yaml").read_text())
    build_sysfs(tmp_path / "sys", layout)
    exporter["text"] = fixture("exporter-faulty.txt")
    dcgmi.write_text(str(DATA / "diag-fail.json"))
    health = collect(tmp_path / "sys", exporter_url=exporter["url"], cache=tmp_path / "diag-cache.json")
    assert health.sources == ["dcgm-exporter", "dcgmi diag -r 1"] and health.why_not is None
    # GPU i shares a PCIe switch with one NIC (nvidia-smi topo -m in NCCL issue 933): 3 -> mlx5_8, 5 -> mlx5_3
    assert {i: g.nic for i, g in health.gpus.items() if g.problems()} == {3: "mlx5_8", 5: "mlx5_3", 6: "mlx5_5"}
    (verdict,) = gpu_verdicts({"gpu-node-7": NodeHealth.from_json(health.to_json())})
    assert verdict.kind == "bad-gpu" and verdict.nodes == ("gpu-node-7",)
    assert verdict.why.startswith("GPU 3 (nearest NIC mlx5_8): XID 79; GPU 5 (nearest NIC mlx5_3): row remapping")
    assert [e["gpu"] for e in verdict.evidence] == [3, 5, 6]
    assert any("dcgmi diag -r 3 -i 3 (GPU 3, nearest NIC mlx5_8)" in a for a in verdict.actions())
    (mark,) = marks_for(Diagnosis("r", {}, [verdict], good=["gpu-node-7"]))
    assert (mark.rule.value, mark.rule.taint, mark.parts) == ("bad-gpu", True, {"benchfab.io/bad-gpus": "3.5.6"})
    # The diagnostic ran once: a later test's rank on the node reads its output from the cache.
    dcgmi.write_text(str(DATA / "diag-pass.json"))
    again = collect(tmp_path / "sys", exporter_url=exporter["url"], cache=tmp_path / "diag-cache.json")
    assert again.gpus[6].diag_failures == health.gpus[6].diag_failures != []


def test_without_dcgm_the_report_says_gpu_health_not_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dcgmi
    health = collect(tmp_path, exporter_url="http://127.0.0.1:9/metrics")  # nothing listens on port 9
    assert not health.checked and "no DCGM exporter at http://127.0.0.1:9/metrics" in (health.why_not or "")
    assert "no dcgmi on PATH" in (health.why_not or "")
    found = Diagnosis("r", {}, gpu_health={"n0": health.to_json()}, good=["n0"])
    write_diagnosis(tmp_path, found)
    loaded = load_diagnosis(tmp_path)
    assert loaded is not None
    assert "# GPU health not checked: no DCGM exporter at" in verdict_table(loaded)
    assert any(line.startswith("GPU health not checked") for line in verdict_markdown(loaded))
    # A run whose ranks recorded nothing (CPU tests): not checked, said so.
    assert health_summary({}) == "GPU health not checked: no DCGM (dcgmi or the DCGM exporter) on the nodes"


def test_a_runs_recorded_health_is_read_per_node() -> None:
    healthy = parse_exporter(fixture("exporter-healthy.txt")).to_json()
    faulty = parse_exporter(fixture("exporter-faulty.txt")).to_json()
    used = ['{"hosts": ["a", "b"], "ranks": []}',  # a test from before GPU health was recorded
            json.dumps({"gpu_health": [{"node": "a", "host": "pod-a", "health": healthy}]}),
            {"gpu_health": [{"node": "b", "health": faulty}, {"node": "c", "health": "damaged"}]}, "not json"]
    per_node = health_by_node(used)
    assert sorted(per_node) == ["a", "b"]
    assert [v.nodes for v in gpu_verdicts(per_node)] == [("b",)]
    assert health_summary(per_node) == "GPU health checked on 2 node(s) (dcgm-exporter)"
