"""Fixtures for the Kubernetes backend tests: a fake cluster on real HTTP."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_cluster import FakeCluster  # noqa: E402

SHARED = "rdma/rdma_shared_device_a"
SRIOV = "nvidia.com/cx7_sriov_rdma"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    c = FakeCluster(tmp_path / "cluster").start()
    c.store.put("namespaces", {"metadata": {"name": "bench"}})
    try:
        yield c
    finally:
        c.stop()


def seed_nodes(c: FakeCluster, n: int, *, shared: int = 63, sriov: int = 4, leafs: int = 2) -> list[str]:
    names = []
    for i in range(n):
        name = f"gpu-node-{i}"
        c.add_node(name, labels={"nvidia.com/gpu.present": "true", "example.com/leaf": f"leaf-{i % leafs}",
                                 "feature.node.kubernetes.io/pci-15b3.present": "true",
                                 "network.nvidia.com/operator.mofed.wait": "false"},
                   allocatable={SHARED: shared, SRIOV: sriov, "nvidia.com/gpu": 8})
        names.append(name)
    c.add_nad("bench", "rdma-net", SHARED)
    c.add_nad("bench", "sriov-rdma-net", SRIOV, cni="sriov")
    return names
