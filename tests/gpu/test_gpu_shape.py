"""On a GPU host: the multi-node pod shape with G=1, the PCIe topology of this host's real
sysfs, NCCL's INFO log of a real run, and engine: nccl-tests where the binaries are."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import benchfab
from benchfab.pcitopo import DISTANCES, read_topology
from benchfab.workloads.nccl_tests_engine import binary_path

pytestmark = pytest.mark.gpu

SHAPE_SPEC = """\
name: gpu-shape
defaults: {device: cuda, sizes: [8, 1M, 32M], iterations: 10, warmup: 3}
tests:
  - {name: shape, workload: allreduce, placement: {pattern: group, nodes: 1, gpus_per_node: 1}}
  - {name: reduce1, workload: reduce, ranks: 1}
"""


def test_pod_shape_with_one_gpu_runs_nccl_and_parses_its_log(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli("sweep", str(write_spec(SHAPE_SPEC)), "--results", str(tmp_path), "--run-id", "s1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run = benchfab.load_run("s1", tmp_path)
    assert set(run.tests["status"]) == {"ok"}, run.tests[["test_id", "reason"]]
    s = run.summary
    assert set(s["transport"]) == {"nccl"} and (s["wrong"] == 0).all()
    # what NCCL's own INFO log said, read back from the rank's log file
    assert s["nccl_version"].notna().all(), s[["test_id", "nccl_version"]]
    print(s[["test_id", "size_bytes", "busbw_Bps", "nccl_version", "nccl_network", "nccl_channels"]].to_string())
    software = run.meta["inventory"]["nodes"][0]["software"]
    assert software["nvidia_driver"], software  # /sys/module/nvidia/version on a driver host
    print("node software:", software)


def _smi_gpu_nic_block() -> dict[str, dict[str, str]] | None:
    """nvidia-smi topo -m's GPU rows x NIC columns, with the NIC legend mapped to HCA names."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, timeout=60).stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    header = lines[0].split()
    legend = dict(re.findall(r"^\s*(NIC\d+):\s*(\S+)", out, re.M))
    nic_cols = [i for i, h in enumerate(header) if h.startswith("NIC") or h.startswith("mlx")]
    block: dict[str, dict[str, str]] = {}
    for ln in lines[1:]:
        cells = ln.split()
        if cells and re.fullmatch(r"GPU\d+", cells[0]):
            block[cells[0].removeprefix("GPU")] = {legend.get(header[i], header[i]): cells[i + 1] for i in nic_cols}
    return block


def test_topology_of_this_hosts_sysfs_agrees_with_nvidia_smi() -> None:
    topo = read_topology()
    assert topo.gpus, "a GPU host shows its GPUs in /sys/bus/pci/devices"
    print({g.name: (g.address, g.numa) for g in topo.gpus}, [(h.name, h.address) for h in topo.hcas])
    mine = topo.matrix()
    assert all(d in DISTANCES for row in mine.values() for d in row.values())
    smi = _smi_gpu_nic_block()
    if not smi or not topo.hcas:
        pytest.skip("no HCA or no nvidia-smi here: the GPU side is read; there is nothing to compare")
    cells = [(g, h, smi[g][h], mine[g][h]) for g in mine for h in mine[g] if g in smi and h in smi[g]]
    assert cells, (smi, mine)
    assert [c for c in cells if c[2] != c[3]] == [], cells


def test_nccl_tests_engine_where_the_binary_is(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if binary_path("allreduce") is None:
        pytest.skip("all_reduce_perf not found (the worker image has it; or set BENCHFAB_NCCL_TESTS_DIR)")
    spec = write_spec("""\
name: gpu-nccl-tests
defaults: {device: cuda, ranks: 1, sizes: [8, 1M, 32M], iterations: 10, warmup: 3}
tests:
  - {name: torch, workload: allreduce}
  - {name: nccltests, workload: allreduce, engine: nccl-tests}
""")
    proc = cli("sweep", str(spec), "--results", str(tmp_path), "--run-id", "n1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    s = benchfab.load_run("n1", tmp_path).summary
    assert set(s["engine"]) == {"torch", "nccl-tests"} and (s["wrong"] == 0).all()
    both = s.pivot_table(index=["size_bytes", "in_place"], columns="engine", values="time_s")
    print("time per op, torch vs nccl-tests (s):\n" + both.to_string())
    assert len(both.dropna()) == 6
