"""Nodes a plan cannot use are named with their reason (plan, sweep, run.json), and preflight
says which object is wrong: cluster states modelled on Network Operator clusters."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.fakecluster import SHARED, SRIOV, FakeCluster, seed_nodes
from tests.k8s.helpers import backend_for
from tests.k8s.test_preflight_and_nccl import seed_operator

pytestmark = pytest.mark.k8s

CliRun = Callable[..., CompletedProcess[str]]

SPEC = """\
backend: kubernetes
namespace: bench
image: x/benchfab:1
profiles:
  shared: {fabric: ib, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
  sriov: {fabric: roce, mode: sriov, resource: nvidia.com/cx7_sriov_rdma, network: sriov-rdma-net}
defaults: {device: cuda}
tests: [{name: pairs, placement: {pattern: all-pairs}}]
"""
MOFED_WAIT = "network.nvidia.com/operator.mofed.wait"


def seed_troubled(c: FakeCluster) -> list[str]:
    """Two healthy nodes, then one of each trouble (every one still lists RDMA units and GPUs
    unless the trouble is their lack)."""
    names = seed_nodes(c, 2)
    c.add_node("mofed-wait", labels={MOFED_WAIT: "true"}, allocatable={SHARED: 63, SRIOV: 4, "nvidia.com/gpu": 8})
    c.add_node("no-vf", allocatable={SHARED: 63, SRIOV: 0, "nvidia.com/gpu": 8})
    c.add_node("cordoned", unschedulable=True, allocatable={SHARED: 63, SRIOV: 4, "nvidia.com/gpu": 8})
    c.add_node("not-ready", ready=False, allocatable={SHARED: 63, SRIOV: 4, "nvidia.com/gpu": 8})
    c.add_node("tainted", taints=[{"key": "maintenance", "value": "true", "effect": "NoSchedule"}],
               allocatable={SHARED: 63, SRIOV: 4, "nvidia.com/gpu": 8})
    c.add_node("no-gpu", allocatable={SHARED: 63, SRIOV: 4})
    return names


WANT = {
    "mofed-wait": f"MOFED not ready ({MOFED_WAIT}=true)",
    "no-vf": f"0 allocatable {SRIOV} (profile sriov)",
    "cordoned": "cordoned",
    "not-ready": "NotReady",
    "tainted": "untolerated taint maintenance=true:NoSchedule",
    "no-gpu": "no GPU (0 allocatable nvidia.com/gpu)",
}


def test_plan_names_every_node_it_leaves_out(cluster: FakeCluster, cli: CliRun, write_spec: Callable[..., Path]) -> None:
    a, b = seed_troubled(cluster)
    proc = cli("plan", str(write_spec(SPEC)), "--kubeconfig", str(cluster.kubeconfig))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for node, why in WANT.items():
        assert f"# node {node} left out: {why}" in proc.stdout, proc.stdout
    assert proc.stdout.count(" left out: ") == len(WANT)
    # the MOFED-wait node is never placed, though its allocatable still shows RDMA units; the
    # VF-less node runs the shared profile's tests
    ids = {ln.split()[1] for ln in proc.stdout.splitlines() if "-pairs-" in ln and not ln.startswith("#")}
    assert ids == {f"000-pairs-shared-{a}+{b}", f"000-pairs-shared-{a}+no-vf", f"000-pairs-shared-{b}+no-vf",
                   f"000-pairs-sriov-{a}+{b}"}
    assert "the cluster's 3 usable node(s)" in proc.stdout


def test_preflight_checks_node_health(cluster: FakeCluster, cli: CliRun, write_spec: Callable[..., Path]) -> None:
    seed_troubled(cluster)
    proc = cli("preflight", str(write_spec(SPEC)), "--kubeconfig", str(cluster.kubeconfig))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()

    def row(node: str) -> str:
        i = next(i for i, ln in enumerate(lines) if ln.startswith("node schedulable") and f" {node} " in ln)
        return lines[i] + "\n" + lines[i + 1]

    assert "FAIL" in row("cordoned") and "kubectl uncordon cordoned" in row("cordoned")
    assert "FAIL" in row("not-ready") and "NotReady" in row("not-ready")
    assert "maintenance=true:NoSchedule" in row("tainted") and "kubernetes.tolerations" in row("tainted")
    assert "PASS" in row("gpu-node-0")


def test_pending_device_plugin_is_blamed_on_mofed_not_its_logs(cluster: FakeCluster, cli: CliRun,
                                                               write_spec: Callable[..., Path]) -> None:
    nodes = seed_nodes(cluster, 2)
    seed_operator(cluster, nodes)
    cluster.patch_node(nodes[1], {"metadata": {"labels": {MOFED_WAIT: "true"}}})
    cluster.add_static_pod("nvidia-network-operator", "rdma-shared-dp-ds-x", nodes[1], {"app": "rdma-shared-dp"},
                           ready=False)
    cluster.store.update("pods", "nvidia-network-operator", "rdma-shared-dp-ds-x",
                         lambda o: {**o, "status": {"phase": "Pending", "conditions": []}})
    proc = cli("preflight", str(write_spec(SPEC)), "--kubeconfig", str(cluster.kubeconfig))
    lines = proc.stdout.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("device plugin") and f" {nodes[1]} " in ln)
    text = lines[i] + "\n" + lines[i + 1]
    assert "Pending" in text and f"{MOFED_WAIT}=false" in text and "MOFED" in lines[i + 1]
    assert "kubectl logs" not in text


def sriov_policy(name: str, resource: str, num_vfs: int, selector: dict[str, str] | None = None) -> dict[str, object]:
    return {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodePolicy",
            "metadata": {"name": name, "namespace": "nvidia-network-operator"},
            "spec": {"resourceName": resource, "numVfs": num_vfs, "nodeSelector": selector or {},
                     "nicSelector": {"pfNames": ["ens1f0np0"]}, "deviceType": "netdevice", "isRdma": True}}


def node_state(node: str, sync: str, vfs: int, error: str = "") -> dict[str, object]:
    return {"apiVersion": "sriovnetwork.openshift.io/v1", "kind": "SriovNetworkNodeState",
            "metadata": {"name": node, "namespace": "nvidia-network-operator"},
            "status": {"syncStatus": sync, "lastSyncError": error,
                       "interfaces": [{"name": "ens1f0np0", "numVfs": vfs, "totalvfs": 16}]}}


def sriov_row(c: FakeCluster, cli: CliRun, spec: Path, node: str) -> str:
    proc = cli("preflight", str(spec), "--kubeconfig", str(c.kubeconfig))
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("RDMA allocatable") and f" {node} " in ln and SRIOV in ln)
    return lines[i] + "\n" + lines[i + 1]


def test_vf_less_node_names_the_sriov_object_that_is_wrong(cluster: FakeCluster, cli: CliRun,
                                                           write_spec: Callable[..., Path]) -> None:
    nodes = seed_nodes(cluster, 2)
    seed_operator(cluster, nodes)
    cluster.patch_node(nodes[1], {"status": {"allocatable": {SRIOV: "0"}}})
    spec = write_spec(SPEC)
    short = SRIOV.rpartition("/")[2]
    # numVfs 0 in the policy
    cluster.put_custom("sriovnetworknodepolicies", sriov_policy("cx7-rdma", short, 0))
    row = sriov_row(cluster, cli, spec, nodes[1])
    assert "numVfs 0" in row and "SriovNetworkNodePolicy nvidia-network-operator/cx7-rdma" in row and "ifNames" not in row
    # the policy is fine, the node's state has not synced
    cluster.store.update("sriovnetworknodepolicies", "nvidia-network-operator", "cx7-rdma",
                         lambda o: {**o, "spec": {**o["spec"], "numVfs": 8}})
    cluster.put_custom("sriovnetworknodestates", node_state(nodes[1], "Failed", 0, "failed to set numVfs: EBUSY"))
    row = sriov_row(cluster, cli, spec, nodes[1])
    assert "SriovNetworkNodeState" in row and "syncStatus Failed" in row and "EBUSY" in row
    # no policy names the resource at all
    cluster.store.remove("sriovnetworknodepolicies", "nvidia-network-operator", "cx7-rdma")
    cluster.put_custom("sriovnetworknodepolicies", sriov_policy("other", "cx6_vfs", 8))
    row = sriov_row(cluster, cli, spec, nodes[1])
    assert f"no SriovNetworkNodePolicy has resourceName {short}" in row and "cx6_vfs" in row


def test_run_json_stores_the_nodes_left_out(cluster: FakeCluster, tmp_path: Path) -> None:
    from benchfab.runmeta import start_meta
    from benchfab.spec import load_spec_text
    from benchfab.store import RunStore
    from benchfab.sweep import make_plan

    seed_troubled(cluster)
    spec = load_spec_text(SPEC)
    backend = backend_for(cluster, spec)
    placed = make_plan(spec, backend)
    store = RunStore(tmp_path, "r")
    start_meta(store, spec, SPEC, backend, placed, resume=False)
    stored = json.loads((store.path / "run.json").read_text())["left_out"]
    assert {x["node"]: x["reason"] for x in stored} == WANT


RAIL_VFS = [f"nvidia.com/rail{i}_vf" for i in range(4)]
RAILS_SPEC = """\
backend: kubernetes
namespace: bench
image: x/benchfab:1
profiles:
  rails:
    fabric: ib
    mode: sriov
    rails: [{rails}]
tests: [{{name: ar, workload: allreduce, placement: {{pattern: group, nodes: 2, gpus_per_node: 4}}}}]
""".format(rails=", ".join(f"{{resource: {r}, network: rail{i}-net}}" for i, r in enumerate(RAIL_VFS)))


def test_a_rails_profile_counts_each_rails_resource(cluster: FakeCluster) -> None:
    """A profile with rails and no resource of its own: a node without one rail's VFs, or with
    them all held, is left out naming that rail, and no pod goes there (both nodes sort first,
    so a plan that counted only GPUs would pick them)."""
    from benchfab.spec import load_spec_text
    from benchfab.sweep import make_plan

    cluster.add_node("a-no-rail2", allocatable={**{r: 2 for r in RAIL_VFS}, RAIL_VFS[2]: 0, "nvidia.com/gpu": 8})
    cluster.add_node("b-rail3-held", allocatable={**{r: 1 for r in RAIL_VFS}, "nvidia.com/gpu": 8})
    cluster.add_static_pod("bench", "other", "b-rail3-held", {"app": "other"}, requests={RAIL_VFS[3]: "1"})
    for name in ("c-full", "d-full"):
        cluster.add_node(name, allocatable={**{r: 1 for r in RAIL_VFS}, "nvidia.com/gpu": 8})
    spec = load_spec_text(RAILS_SPEC)
    placed = make_plan(spec, backend_for(cluster, spec))
    assert dict(placed.left_out) == {
        "a-no-rail2": f"0 allocatable {RAIL_VFS[2]} (profile rails, rail 2)",
        "b-rail3-held": f"all 1 {RAIL_VFS[3]} held by other pods (profile rails, rail 3)"}
    assert [t.hosts for t in placed.tests] == [("c-full", "d-full")]
