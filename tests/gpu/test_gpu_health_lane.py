"""On a GPU host: DCGM's view of this host's GPUs, as the ranks of a GPU test record it.

Where DCGM is here (dcgmi on PATH, or the exporter at $DCGM_EXPORTER_URL / 127.0.0.1:9400),
the health names this host's GPUs at their sysfs PCI addresses, each with its nearest NIC
where there is one; where it is not, it says "not checked" and why. Either way a one-rank
CUDA sweep stores the record with its test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import benchfab
from benchfab.gpuhealth import collect, health_by_node, health_summary
from benchfab.pcitopo import read_topology

pytestmark = pytest.mark.gpu


def test_this_hosts_gpu_health_is_checked_or_says_why_not(tmp_path: Path) -> None:
    health = collect(cache=tmp_path / "diag.json")
    print(json.dumps(health.to_json(), indent=1)[:4000])
    if not health.checked:
        assert health.why_not and "no DCGM exporter at" in health.why_not
        assert shutil.which("dcgmi") is None or "dcgmi diag" in health.why_not
        return
    sysfs_gpus = {g.address for g in read_topology().gpus}
    assert health.gpus, "DCGM answered but named no GPU"
    for gpu in health.gpus.values():
        assert gpu.pci is None or gpu.pci in sysfs_gpus, (gpu.pci, sorted(sysfs_gpus))
        assert gpu.problems() == [], f"GPU {gpu.index} of this host fails DCGM's checks: {gpu.problems()}"


def test_a_cuda_sweep_stores_the_nodes_gpu_health(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("name: gpu-health\ntests:\n  - {name: ar, ranks: 1, device: cuda, sizes: [8], iterations: 5}\n")
    proc = cli("sweep", str(spec), "--results", str(tmp_path), "--run-id", "h1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run = benchfab.load_run("h1", tmp_path)
    per_node = health_by_node(run.tests["used"])
    assert len(per_node) == 1, list(run.tests["used"])
    print(health_summary(per_node))
