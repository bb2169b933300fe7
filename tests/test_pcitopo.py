"""benchfab.pcitopo on sysfs trees shaped like published servers (tests/data/topology/README.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from benchfab.pcitopo import read_topology

DATA = Path(__file__).parent / "data" / "topology"


def build_sysfs(root: Path, layout: dict) -> dict[str, str]:  # type: ignore[type-arg]
    """Make ``layout`` a real sysfs tree under ``root``: nested PCI device directories under
    devices/pciDDDD:BB with numa_node / vendor / class files, bus/pci/devices links and
    class/infiniband/NAME/device links. Returns each device's PCI address."""
    numa = layout["roots"]
    addresses: dict[str, str] = {}  # bridge path prefix or device -> its PCI address
    bus = 0
    found: dict[str, str] = {}
    for i in range(len(numa)):
        (root / "devices" / f"pci0000:{i:02x}").mkdir(parents=True)
    for name, path in layout["devices"].items():
        host, *chain = path.split("/")
        where = root / "devices" / f"pci0000:{list(numa).index(host):02x}"
        for depth in range(len(chain)):
            key = f"{host}/{'/'.join(chain[:depth + 1])}"
            if key not in addresses:
                bus += 1
                addresses[key] = f"0000:{bus:02x}:00.0"
            where = where / addresses[key]
            where.mkdir(exist_ok=True)
            (where / "numa_node").write_text(f"{numa[host]}\n")
            link = root / "bus" / "pci" / "devices" / addresses[key]
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(where, link)
        gpu = name.startswith("GPU")
        (where / "vendor").write_text("0x10de\n" if gpu else "0x15b3\n")
        (where / "class").write_text("0x030200\n" if gpu else "0x020700\n")
        if not gpu:
            ib = root / "class" / "infiniband" / f"mlx5_{name.removeprefix('NIC')}"
            ib.mkdir(parents=True)
            os.symlink(where, ib / "device")
        found[name] = where.name
    return found


@pytest.mark.parametrize("name", ["nccl-933-8gpu-9nic.yaml", "nccl-tests-78-two-level-switches.yaml"])
def test_distances_match_the_published_topo_matrix(tmp_path: Path, name: str) -> None:
    layout = yaml.safe_load((DATA / name).read_text())
    build_sysfs(tmp_path, layout)
    topo = read_topology(tmp_path)
    gpus = [n for n in layout["devices"] if n.startswith("GPU")]
    assert [g.name for g in topo.gpus] == [str(i) for i in range(len(gpus))]
    matrix = topo.matrix()
    checked = 0
    for row, published in layout["published"].items():
        got = [matrix[row.removeprefix("GPU")][f"mlx5_{i}"] for i in range(len(published))]
        assert got == published, row
        checked += len(published)
    assert checked >= 45  # every posted GPU x NIC cell


def test_nearest_gpu_and_a_sys_pairing_is_flagged(tmp_path: Path) -> None:
    layout = yaml.safe_load((DATA / "nccl-933-8gpu-9nic.yaml").read_text())
    build_sysfs(tmp_path, layout)
    topo = read_topology(tmp_path)
    # each GPU-side NIC's nearest GPU is the one behind its switch (PIX)
    assert {nic: topo.nearest_gpu(f"mlx5_{nic}") for nic in (2, 4, 6, 8, 1, 3, 5, 7)} == {
        2: 0, 4: 1, 6: 2, 8: 3, 1: 4, 3: 5, 5: 6, 7: 7}
    good, bad = topo.pairing(0, "mlx5_2"), topo.pairing(0, "mlx5_1")
    assert good is not None and good["distance"] == "PIX" and good["sys_distance"] is False
    assert bad is not None and bad["distance"] == "SYS" and bad["sys_distance"] is True
    assert topo.pairing(0, "mlx5_99") is None and topo.nearest_gpu("mlx5_99") is None


def test_this_hosts_real_sysfs_reads_without_error() -> None:
    topo = read_topology()  # no GPU / HCA here is fine: empty, never an exception
    assert all(h.address for h in topo.hcas) and all(g.address for g in topo.gpus)


def test_a_rank_pairs_with_the_visible_gpu_nearest_its_hca(tmp_path: Path) -> None:
    from benchfab.pcitopo import nearest_visible_gpu

    layout = yaml.safe_load((DATA / "nccl-933-8gpu-9nic.yaml").read_text())
    build_sysfs(tmp_path, layout)
    topo = read_topology(tmp_path)
    pci = [g.address for g in topo.gpus]
    # a pod that sees GPUs 4 and 5 of the host (CUDA 0 and 1): mlx5_3 sits behind GPU 5's switch
    assert nearest_visible_gpu(topo, "mlx5_3", [pci[4], pci[5]], local_rank=0) == (1, "PIX")
    # no GPU of the pod is near mlx5_2 (NUMA 0): the rank keeps its own index, and it is SYS
    assert nearest_visible_gpu(topo, "mlx5_2", [pci[4], pci[5]], local_rank=1) == (1, "SYS")
    # unknown HCA or no PCI addresses: local rank mod count, distance unknown
    assert nearest_visible_gpu(topo, None, [pci[0], pci[1]], local_rank=3) == (1, None)
    assert nearest_visible_gpu(topo, "mlx5_2", [], local_rank=3) == (0, None)
