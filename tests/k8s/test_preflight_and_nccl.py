"""benchfab preflight against seeded failures, and NCCL INFO log parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchfab.backends.kubernetes.nccl import fallback_problem, parse_nccl_log
from benchfab.spec import Profile
from tests.fakecluster import SHARED, SRIOV, FakeCluster, seed_nodes

pytestmark = pytest.mark.k8s

PREFLIGHT_SPEC = """\
backend: kubernetes
namespace: bench
image: x/benchfab:1
profiles:
  shared: {fabric: ib, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
  sriov: {fabric: ib, mode: sriov, resource: nvidia.com/cx7_sriov_rdma, network: sriov-rdma-net}
  roce: {fabric: roce, mode: shared, resource: rdma/rdma_shared_device_a, network: roce-net}
tests: [{placement: {pattern: all-pairs}}]
"""


def seed_operator(c: FakeCluster, nodes: list[str], ns: str = "nvidia-network-operator") -> None:
    c.add_static_pod(ns, "network-operator-abc", nodes[0], {"app.kubernetes.io/name": "network-operator"})
    for n in nodes:
        c.add_static_pod(ns, f"mofed-ubuntu24.04-abc-ds-{n}", n, {"nvidia.com/ofed-driver": "", "app": "mofed"})
        c.add_static_pod(ns, f"rdma-shared-dp-ds-{n}", n, {"app": "rdma-shared-dp"})


def test_preflight_passes_on_a_healthy_cluster(cluster: FakeCluster, cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    nodes = seed_nodes(cluster, 2)
    seed_operator(cluster, nodes)
    cluster.add_nad("bench", "roce-net", None)
    cluster.put_custom("nicclusterpolicies", {"apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy",
                                              "metadata": {"name": "nic-cluster-policy"}, "status": {"state": "ready"}})
    proc = cli("preflight", str(write_spec(PREFLIGHT_SPEC)), "--kubeconfig", str(cluster.kubeconfig))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " FAIL " not in proc.stdout and "0 fail" in proc.stdout
    assert "NicClusterPolicy" in proc.stdout and "nvidia-network-operator" in proc.stdout
    as_json = cli("preflight", str(write_spec(PREFLIGHT_SPEC)), "--kubeconfig", str(cluster.kubeconfig), "-o", "json")
    checks = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and checks and {c["status"] for c in checks} <= {"pass", "warn"}
    assert {"name", "scope", "status", "detail", "fix"} == set(checks[0])


def test_preflight_explains_each_seeded_failure(cluster: FakeCluster, cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    nodes = seed_nodes(cluster, 2)
    seed_operator(cluster, nodes[:1], ns="network-operator")
    # node 1: MOFED not ready -> no device plugin, no RDMA resources; old kernel, no peermem
    cluster.add_node("gpu-node-bad", labels={"nvidia.com/gpu.present": "true",
                                             "network.nvidia.com/operator.mofed.wait": "true"},
                     allocatable={"nvidia.com/gpu": 8}, kernel="5.4.0-150-generic")
    cluster.add_static_pod("network-operator", "mofed-ubuntu20.04-x-ds-bad", "gpu-node-bad",
                           {"nvidia.com/ofed-driver": ""}, ready=False)
    cluster.put_custom("nicclusterpolicies", {
        "apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy", "metadata": {"name": "nic-cluster-policy"},
        "status": {"state": "notReady", "appliedStates": [{"name": "state-OFED", "state": "notReady"},
                                                          {"name": "state-multus-cni", "state": "ready"}]}})
    # sriov NAD tied to the wrong resource; roce NAD missing
    cluster.store.remove("network-attachment-definitions", "bench", "sriov-rdma-net")
    cluster.add_nad("bench", "sriov-rdma-net", "nvidia.com/other_vf", cni="sriov")
    proc = cli("preflight", str(write_spec(PREFLIGHT_SPEC)), "--kubeconfig", str(cluster.kubeconfig))
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = out.splitlines()

    def row(check: str, scope: str) -> str:
        hits = [i for i, ln in enumerate(lines) if ln.startswith(check) and f" {scope} " in ln and " FAIL " in ln]
        assert hits, f"no FAIL row for {check} / {scope}:\n{out}"
        return "\n".join(lines[i] + "\n" + (lines[i + 1] if i + 1 < len(lines) else "") for i in hits)

    assert "state notReady: state-OFED=notReady" in row("NicClusterPolicy", "cluster")
    mofed = row("MOFED ready", "gpu-node-bad")
    assert "mofed.wait=true" in mofed and "kubectl logs -n network-operator mofed-ubuntu20.04-x-ds-bad" in mofed
    alloc = row("RDMA allocatable", "gpu-node-bad")
    assert SHARED in alloc and SRIOV in alloc and "fix:" in alloc
    gdr = row("GPUDirect", "gpu-node-bad")
    assert "5.4.0" in gdr and "nvidia-peermem" in gdr
    assert "tied to nvidia.com/other_vf" in row("NAD", "profile sriov")
    assert "bench/roce-net not found" in row("NAD", "profile roce")
    assert "kernel versions" in out and "WARN" in out
    assert SRIOV in out


NCCL_IB = """\
node1:77:77 [0] NCCL INFO NET/IB : Using [0]mlx5_1:1/IB [1]mlx5_10:1/IB [RO]; OOB net1:192.168.0.11<0>
node1:77:77 [0] NCCL INFO DMA-BUF is available on GPU device 0
node1:77:77 [0] NCCL INFO Using network IB
node1:77:90 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[0] [send] via NET/IB/0/GDRDMA
node1:77:90 [0] NCCL INFO Channel 01/0 : 0[0] -> 1[0] [send] via NET/IB/1/GDRDMA(PCI)
"""
NCCL_SOCKET = """\
node1:77:77 [0] NCCL INFO NET/IB : No device found.
node1:77:77 [0] NCCL INFO NET/Socket : Using [0]eth0:10.0.0.1<0>
node1:77:77 [0] NCCL INFO Using network Socket
node1:77:90 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[0] [send] via NET/Socket/0
"""
NCCL_NO_GDR = NCCL_IB.replace("/GDRDMA(PCI)", "").replace("/GDRDMA", "")


def test_parse_nccl_ib_with_gdr() -> None:
    t = parse_nccl_log(NCCL_IB.splitlines())
    assert t.network == "IB" and t.hcas == ["mlx5_1", "mlx5_10"] and t.link_layers == ["IB", "IB"]
    assert t.gdr is True and t.dmabuf is True and t.channels[0] == "NET/IB/0/GDRDMA"
    assert fallback_problem(Profile(fabric="ib"), t, "cuda") is None


@pytest.mark.parametrize("log,memory,expect", [
    (NCCL_SOCKET, "host", "fell back to sockets"),
    (NCCL_NO_GDR, "cuda", "without GPUDirect RDMA"),
    (NCCL_IB, "host", None),
])
def test_silent_fallbacks_are_flagged(log: str, memory: str, expect: str | None) -> None:
    problem = fallback_problem(Profile(fabric="ib", mode="shared"), parse_nccl_log(log.splitlines()), memory)
    assert (problem is None) if expect is None else (expect in (problem or ""))


def test_roce_profile_on_ib_hcas_is_flagged() -> None:
    assert "IB HCAs on a roce profile" in (fallback_problem(Profile(fabric="roce"), parse_nccl_log(NCCL_IB.splitlines())) or "")
    assert fallback_problem(Profile(fabric="tcp"), parse_nccl_log(NCCL_SOCKET.splitlines())) is None


def test_agent_reports_nccl_transport(tmp_path: Path) -> None:
    """The agent's relay parses what its rank worker prints during a test (here: a canned NCCL
    log from a stand-in worker that answers one order as ``benchfab.worker --serve`` does)."""
    import json
    import sys
    import threading

    from benchfab.backends.kubernetes import agent
    from benchfab.backends.kubernetes.rank_workers import RankWorker

    lines: list[str] = []
    agent.print = lambda *a, **k: lines.append(str(a[0]))  # type: ignore[attr-defined]
    gone = threading.Event()
    script = ("import json, sys; order = json.loads(sys.stdin.readline()); sys.stdout.write(sys.argv[1]); "
              "print('@@benchfab {\"type\": \"done\"}'); "
              "print('@@benchfab ' + json.dumps({'type': 'worker', 'event': 'finished', 'seq': order['seq'], "
              "'code': 0, 'reusable': False}), flush=True)")
    try:
        w = RankWorker({}, 0, 1, "", agent.emit, agent.say, lambda _: gone.set(),
                       argv=[sys.executable, "-c", script, NCCL_SOCKET])
        w.give(5, "{}", {})
        assert gone.wait(30)
    finally:
        del agent.print  # type: ignore[attr-defined]
    records = [json.loads(x[len("@@benchfab "):]) for x in lines if x.startswith("@@benchfab ")]
    assert [r.get("event") or r["type"] for r in records] == ["start", "done", "exit"]
    assert records[1]["seq"] == 5 and records[1]["local_rank"] == 0
    exit_rec = records[-1]
    assert exit_rec["event"] == "exit" and exit_rec["code"] == 0 and exit_rec["nccl"]["network"] == "Socket"
    assert [r["n"] for r in records] == sorted(r["n"] for r in records)
    assert "NCCL INFO Using network Socket" in "\n".join(lines)
