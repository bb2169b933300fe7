"""Verbs between agent pods: the Kubernetes backend against the fake cluster (real HTTP,
pods as real processes), run inside the soft-RoCE VM so the pods' RDMA device is real.

Each pod's secondary network reports the address of the rxe netdev, as Multus would for
a macvlan/SR-IOV interface on the NIC; the ranks must pick the RDMA port and RoCE GID
carrying that address and run the native loops through it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import benchfab
from benchfab.backends.kubernetes.agent import STAGE_IMPORTS
from benchfab.spec import load_spec_text
from benchfab.sweep import run_sweep
from tests.fakecluster import SHARED, FakeCluster, seed_nodes

pytestmark = [pytest.mark.rdma, pytest.mark.k8s, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path, peer_ip: str) -> Iterator[FakeCluster]:
    c = FakeCluster(tmp_path / "cluster")
    c.secondary_ip = peer_ip
    c.watch_delay_s = (0.0, 0.2)  # watch events arrive late, as from a real API server
    c.start()
    c.store.put("namespaces", {"metadata": {"name": "bench"}})
    try:
        yield c
    finally:
        c.stop()


def test_verbs_write_bw_and_lat_between_pods(cluster: FakeCluster, tmp_path: Path, peer_ip: str) -> None:
    from benchfab.backends.kubernetes.backend import KubernetesBackend
    from benchfab.backends.kubernetes.client import ClusterOptions

    seed_nodes(cluster, 2)
    text = f"""\
name: k8s-verbs
backend: kubernetes
namespace: bench
image: registry.example.com/benchfab-worker:test
profiles:
  roce-shared: {{fabric: roce, mode: shared, resource: {SHARED}, network: rdma-net}}
kubernetes: {{start_timeout: 900s}}
defaults: {{device: cpu, timeout: 240s}}
tests:
  - {{name: bw, workload: rdma_write_bw, sizes: [4K, 64K], iterations: 300, placement: {{pattern: all-pairs}}}}
  - {{name: lat, workload: rdma_write_lat, sizes: [8], iterations: 300, placement: {{pattern: all-pairs}}}}
"""
    spec = load_spec_text(text)
    backend = KubernetesBackend(spec, ClusterOptions(kubeconfig=str(cluster.kubeconfig)))
    # Under load the VM once needed more than a fixed 120 s to start the agents. The gang
    # start now waits on the agents' start-up stages: a stage stuck for its limit fails
    # (naming the stage), a slow but progressing one may use up to the 900 s above.
    assert backend.stage_limits_s[STAGE_IMPORTS] >= 120
    out = io.StringIO()
    result = run_sweep(spec, text, results_dir=str(tmp_path / "res"), run_id="v", out=out,
                       progress=False, backend=backend)
    assert set(result.counts) == {"ok"}, out.getvalue()
    run = benchfab.load_run("v", tmp_path / "res")
    s = run.summary
    assert set(s["transport"]) == {"verbs"} and (s["backend"] == "kubernetes").all()
    assert set(s["link_layer"]) == {"roce"} and set(s["fabric"]) == {"roce"}
    # The port and GID the ranks used carry the pods' secondary address (RoCE v2).
    from benchfab.rdma.discovery import discover
    carrying = {(p.device, g.index) for d in discover() for p in d.ports for g in p.gids
                if g.ipv4 == peer_ip and (g.type or "").lower() == "roce v2"}
    assert carrying, f"no RoCE v2 GID for {peer_ip} on this host"
    assert set(zip(s["rdma_device"], s["gid_index"])) <= carrying
    bw = s[s.workload == "rdma_write_bw"]
    assert sorted(bw["size_bytes"]) == [4096, 65536] and (bw["bw_avg_Bps"] > 0).all()
    assert (bw["wrong_bytes"] == 0).all()
    lat = s[s.workload == "rdma_write_lat"]
    assert len(lat) == 1 and (lat["lat_median_s"] > 0).all()
    for used in run.tests["used"]:
        ranks = {r["rank"]: r for r in json.loads(used)["ranks"]}
        assert ranks[1]["net_ip"] == peer_ip and ranks[0]["peer_host"] == peer_ip
    assert cluster.objects("pods", "app.kubernetes.io/name=benchfab") == []
