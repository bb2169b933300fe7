"""Manifests: what benchfab render prints and the jobs/k8s examples validate against the API schemas."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml

from benchfab.backends.kubernetes import manifests as mf
from benchfab.backends.kubernetes.nccl import attachments, nccl_env, net_env
from benchfab.backends.kubernetes.options import KubeOptions
from benchfab.errors import SpecError
from benchfab.spec import Profile, load_spec_text
from tests.helpers import ROOT

pytestmark = pytest.mark.k8s

K8S_VERSION = "1.33"


def validate_all(docs: list[dict]) -> None:  # type: ignore[type-arg]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_render_output_validates_and_is_least_privilege(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("render", "jobs/shared-vs-sriov.yaml", "--nodes", ",".join(f"node-{i}" for i in range(16)),
               "--run-id", "20260101-000000-shared-vs-sriov")
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    validate_all(docs)
    kinds = [d["kind"] for d in docs]
    assert kinds[:5] == ["Service", "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding"]
    assert set(kinds[5:]) == {"Pod"}
    svc, policy, account, role, binding = docs[:5]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    pods = docs[5:]
    # The agents may read their run's pods by name and the namespace's ConfigMaps (where the rounds'
    # tasks arrive: they carry no secret), nothing else, and only through this Role.
    rule, tasks = role["rules"]
    assert tasks == {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}
    assert rule["verbs"] == ["get", "list", "watch"] and rule["resources"] == ["pods"]
    assert rule["resourceNames"] == sorted(p["metadata"]["name"] for p in pods)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    # ... as the run's own account (concurrent runs' agents cannot read each other's pods).
    own = mf.agent_role_name("20260101-000000-shared-vs-sriov")
    assert account["metadata"]["name"] == own and account["metadata"]["labels"][mf.LABEL_RUN] == "20260101-000000-shared-vs-sriov"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": own, "namespace": svc["metadata"]["namespace"]}]
    assert {p["spec"]["serviceAccountName"] for p in pods} == {own}
    # Ingress to the run's pods from its own pods only, and only on the ports the ranks listen on for
    # each other: the rendezvous / out-of-band ports the backend hands out (MASTER_PORT of every test),
    # perftest's, and the ephemeral range (gloo, NCCL, the tcp data port). Issue #22 item 3.
    run_pods = {"matchLabels": {mf.LABEL_RUN: "20260101-000000-shared-vs-sriov"}}
    assert policy["spec"] == {"podSelector": run_pods, "policyTypes": ["Ingress"], "ingress": [{
        "from": [{"podSelector": run_pods}],
        "ports": [{"protocol": "TCP", "port": 20000, "endPort": 29999}, {"protocol": "TCP", "port": 18515},
                  {"protocol": "TCP", "port": 32768, "endPort": 60999}]}]}
    settings = KubeOptions()
    assert {mf.master_port(settings, seq) for seq in range(1, 30001)} == set(range(20000, 30000))
    fixed = mf.network_policy_manifest("r", "ns", KubeOptions(master_port=31000))
    assert fixed["spec"]["ingress"][0]["ports"][0] == {"protocol": "TCP", "port": 31000}
    assert mf.master_port(KubeOptions(master_port=31000), 7) == 31000
    assert all(p["metadata"]["labels"][mf.LABEL_RUN] == "20260101-000000-shared-vs-sriov" for p in pods)
    names = [d["metadata"]["name"] for d in pods]
    assert len(names) == len(set(names))
    for pod in pods:
        meta, spec = pod["metadata"], pod["spec"]
        assert meta["labels"][mf.LABEL_RUN] == "20260101-000000-shared-vs-sriov"
        assert len(meta["name"]) <= 63 and spec["hostname"] == meta["name"]
        assert "nodeName" not in spec and list(spec["nodeSelector"]) == ["kubernetes.io/hostname"]
        assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] > 0
        c = spec["containers"][0]
        assert c["command"] == ["python", "-m", "benchfab.backends.kubernetes.agent"]  # an argv list, no shell
        sc = c["securityContext"]
        assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
        assert sc["seccompProfile"] == spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        limits = c["resources"]["limits"]
        profile = meta["labels"][mf.LABEL_PROFILE]
        res = {"shared": "rdma/rdma_shared_device_a", "sriov": "nvidia.com/cx7_sriov_rdma"}[profile]
        assert limits[res] == "1" and limits["nvidia.com/gpu"] == "1"
        assert c["resources"]["requests"][res] == "1"
        assert meta["annotations"][mf.ANN_NETWORKS] == {"shared": "rdma-net", "sriov": "sriov-rdma-net"}[profile]
    # rails: 8 slots per node for the sriov profile
    sriov_slots = {(d["metadata"]["labels"][mf.LABEL_NODE], d["metadata"]["labels"][mf.LABEL_SLOT])
                   for d in pods if d["metadata"]["labels"][mf.LABEL_PROFILE] == "sriov"}
    assert {s for _, s in sriov_slots} == {str(i) for i in range(8)}


def test_render_sizes_pods_for_what_their_tests_use(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    """Hugepages for memory: hugepages tests (sized to the largest buffer, with the memory
    request the API server wants beside them); a GPU only where a test can use one."""
    spec = write_spec("""\
backend: kubernetes
namespace: bench
image: registry.example.com/benchfab-worker:1
profiles:
  huge: {fabric: roce, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
  gpu: {fabric: roce, mode: sriov, resource: nvidia.com/cx7_sriov_rdma, network: sriov-rdma-net}
tests:
  - {name: hp, workload: rdma_write_bw, memory: hugepages, sizes: [4K, 3M], profiles: [huge], placement: {pattern: all-pairs}}
  - {name: lat, workload: rdma_write_lat, sizes: [8], profiles: [huge], placement: {pattern: ring}}
  - {name: gdr, workload: rdma_write_bw, memory: cuda, sizes: [1M], profiles: [gpu], placement: {pattern: all-pairs}}
""")
    proc = cli("render", str(spec), "--nodes", "a,b", "--run-id", "r1")
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    validate_all(docs)
    pods = {d["metadata"]["labels"][mf.LABEL_PROFILE]: d["spec"]["containers"][0]["resources"]
            for d in docs if d["kind"] == "Pod"}
    huge, gpu = pods["huge"], pods["gpu"]
    # 2 regions x 3 MiB = 6 MiB -> three 2 MiB pages
    assert huge["limits"]["hugepages-2Mi"] == huge["requests"]["hugepages-2Mi"] == "6Mi"
    assert huge["requests"]["memory"] == "1Gi" and "memory" not in huge["limits"]
    assert "nvidia.com/gpu" not in huge["limits"]  # host-memory point-to-point tests only
    assert gpu["limits"]["nvidia.com/gpu"] == "1" and "hugepages-2Mi" not in gpu["limits"]


def test_render_refuses_a_local_spec(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("render", "jobs/local.yaml")
    assert proc.returncode == 2 and "backend local" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("path", ["jobs/k8s/rbac.yaml", "jobs/k8s/cronjob.yaml", "jobs/k8s/nightly-storage.yaml"])
def test_job_manifests_validate(path: str) -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]
    validate_all(docs)
    for doc in docs:
        for rule in doc.get("rules", []):
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]  # least privilege
            assert "secrets" not in rule["resources"]


def test_nightly_cronjob_mounts_what_nightly_storage_defines() -> None:
    """The CronJob's ConfigMap and PVC exist in nightly-storage.yaml, the ConfigMap holds
    jobs/nightly.yaml as it is, and the Job judges the run (a slower fabric fails it)."""
    storage = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "jobs/k8s/nightly-storage.yaml").read_text()) if d}
    (cron,) = [d for d in yaml.safe_load_all((ROOT / "jobs/k8s/cronjob.yaml").read_text()) if d]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["spec"]["configMap"]["name"] == storage["ConfigMap"]["metadata"]["name"]
    assert volumes["results"]["persistentVolumeClaim"]["claimName"] == storage["PersistentVolumeClaim"]["metadata"]["name"]
    assert storage["ConfigMap"]["data"]["nightly.yaml"] == (ROOT / "jobs/nightly.yaml").read_text()
    script = pod["containers"][0]["args"][0]
    assert "--baseline history:" in script and script.rstrip().endswith("exit $rc")


def test_names_and_labels_are_valid_for_any_input() -> None:
    long = "a" * 80 + ".Example_Node"
    name = mf.pod_name("2026-run_with.dots", "Profile_With_Caps", long, 7)
    assert len(name) <= 63 and name == name.lower()
    assert mf.pod_name("r", "p", long, 7) != mf.pod_name("r", "p", long + "x", 7)
    value = mf.label_value("20260101-000000-" + "x" * 100)
    assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()


def test_nccl_env_per_fabric() -> None:
    k = KubeOptions()
    ib = nccl_env(Profile(fabric="ib", mode="sriov", resource="r", network="n"),
                  [{"interface": "net1", "device-info": {"pci": {"rdma-device": "mlx5_1"}}}], k)
    assert ib["NCCL_IB_HCA"] == "=mlx5_1" and ib["NCCL_DEBUG"] == "INFO" and "NCCL_NET" not in ib
    roce = nccl_env(Profile(fabric="roce", mode="shared", hca="mlx5_0,mlx5_3", gid_index=3), [{"interface": "net1"}], k)
    assert roce["NCCL_IB_HCA"] == "=mlx5_0,mlx5_3" and roce["NCCL_SOCKET_IFNAME"] == "=net1"
    assert roce["NCCL_IB_GID_INDEX"] == "3"
    assert "NCCL_IB_GID_INDEX" not in nccl_env(Profile(fabric="roce"), [], k)  # NCCL >= 2.21.5 picks it
    assert nccl_env(Profile(fabric="tcp"), [], k)["NCCL_IB_DISABLE"] == "1"
    assert nccl_env(Profile(fabric="ib"), [], KubeOptions(force_net=True))["NCCL_NET"] == "IB"


def test_net_env_names_the_secondary_interface_and_its_hca() -> None:
    sriov = {"interface": "net1", "ips": ["10.20.0.7/24"], "device-info": {"pci": {"rdma-device": "mlx5_4"}}}
    assert net_env(Profile(fabric="roce", mode="sriov"), [sriov]) == {
        "BENCHFAB_NET_IP": "10.20.0.7", "BENCHFAB_NET_HCA": "mlx5_4"}
    # The profile's hca wins over the device plugin's; tcp profiles get no HCA.
    assert net_env(Profile(fabric="ib", hca="=mlx5_2,mlx5_3"), [sriov])["BENCHFAB_NET_HCA"] == "mlx5_2"
    assert net_env(Profile(fabric="tcp"), [sriov]) == {"BENCHFAB_NET_IP": "10.20.0.7"}
    assert net_env(Profile(fabric="roce"), []) == {}


def _vf(i: int) -> dict:  # type: ignore[type-arg]
    """Multus network-status of VF i as the SR-IOV CNI writes it."""
    return {"name": f"bench/rail{i}-net", "interface": f"net{i + 1}", "ips": [f"10.{i}.0.7/24"],
            "device-info": {"type": "pci", "pci": {"pci-address": f"0000:{i:02x}:00.2", "rdma-device": f"mlx5_{i + 8}"}}}


def test_a_pod_of_a_nodes_gpus_gets_every_rail() -> None:
    """SR-IOV: one VF per rail, each rail's network in the Multus annotation, NCCL_IB_HCA listing all
    rails, local rank i on rail i; shared plugin: one unit of the resource that exposes the HCAs."""
    rails = [{"resource": f"nvidia.com/rail{i}_vf", "network": f"rail{i}-net"} for i in range(8)]
    sriov = Profile(fabric="ib", mode="sriov", rails=rails)  # type: ignore[arg-type]
    pod = mf.PodPlan("sriov", sriov, "n0", "n0", 0, gpus=1, ranks=8)
    body = mf.pod_manifest("run", "bench", "img", pod, KubeOptions(), 3600)
    limits = body["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {**{f"nvidia.com/rail{i}_vf": "1" for i in range(8)}, "nvidia.com/gpu": "8"}
    assert body["metadata"]["annotations"][mf.ANN_NETWORKS] == ",".join(f"rail{i}-net" for i in range(8))
    assert body["metadata"]["labels"][mf.LABEL_RANKS] == "8" and body["metadata"]["name"].endswith("-0x8")
    assert body["spec"]["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}]
    assert body["spec"]["containers"][0]["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    status = json.dumps([{"name": "cbr0", "interface": "eth0", "default": True}] + [_vf(i) for i in range(8)])
    entries = attachments(status, mf.pod_networks(pod), "bench")
    assert [e["interface"] for e in entries] == [f"net{i}" for i in range(1, 9)]
    env = nccl_env(sriov, entries, KubeOptions(), pod.rails)
    assert env["NCCL_IB_HCA"] == "=" + ",".join(f"mlx5_{i}" for i in range(8, 16))
    assert [net_env(sriov, entries, pod.rails, i)["BENCHFAB_NET_HCA"] for i in (0, 7)] == ["mlx5_8", "mlx5_15"]
    assert net_env(sriov, entries, pod.rails, 3)["BENCHFAB_NET_IP"] == "10.3.0.7"
    # the shared plugin: the named HCAs, one unit of the one resource, the network attached once
    shared = Profile(fabric="ib", mode="shared", resource="rdma/shared_ib", network="ipoib",
                     rails=[f"mlx5_{i}" for i in range(8)])  # type: ignore[list-item]
    spod = mf.PodPlan("shared", shared, "n0", "n0", 0, gpus=1, ranks=8)
    sbody = mf.pod_manifest("run", "bench", "img", spod, KubeOptions(shm_size="32Gi"), 3600)
    assert sbody["spec"]["containers"][0]["resources"]["limits"] == {"rdma/shared_ib": "1", "nvidia.com/gpu": "8"}
    assert sbody["metadata"]["annotations"][mf.ANN_NETWORKS] == "ipoib"
    assert sbody["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "32Gi"
    assert nccl_env(shared, [], KubeOptions(), spod.rails)["NCCL_IB_HCA"] == "=" + ",".join(f"mlx5_{i}" for i in range(8))
    # a one-rank pod on slot 3 uses rail 3 only, and has no /dev/shm volume
    one = mf.PodPlan("sriov", sriov, "n0", "n0", 3, gpus=1)
    obody = mf.pod_manifest("run", "bench", "img", one, KubeOptions(), 3600)
    assert obody["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/rail3_vf": "1", "nvidia.com/gpu": "1"}
    assert "volumes" not in obody["spec"] and obody["metadata"]["name"].endswith("-3")


def test_docker_definition_is_present() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM " in dockerfile and "perftest" in dockerfile and "pyverbs" in dockerfile
    assert "docker build" in (ROOT / "docker" / "README.md").read_text()
    # nccl-tests is built where engine: nccl-tests looks for it
    from benchfab.workloads.nccl_tests_engine import BIN_DIR_ENV
    assert "github.com/NVIDIA/nccl-tests" in dockerfile and f"ENV {BIN_DIR_ENV}=/opt/nccl-tests" in dockerfile


SRIOV_RAILS = ", ".join(f"{{resource: nvidia.com/rail{i}_vf, network: rail{i}-net}}" for i in range(8))
SHARED_RAILS = ", ".join(f"mlx5_{i}" for i in range(8))
RAILS_SPEC = f"""\
name: rails
backend: kubernetes
image: img
profiles:
  ib-sriov:
    fabric: ib
    mode: sriov
    rails: [{SRIOV_RAILS}]
  ib-shared: {{fabric: ib, mode: shared, resource: rdma/shared_ib, network: ipoib, rails: [{SHARED_RAILS}]}}
tests:
  - {{name: ar64, workload: allreduce, dtypes: bfloat16, placement: {{pattern: group, nodes: 8, gpus_per_node: 8}}}}
"""


def test_render_of_an_8x8_group_gives_8_pods_per_profile_with_8_gpus_and_8_rails() -> None:
    from benchfab.backends.kubernetes.render import render_objects

    spec = load_spec_text(RAILS_SPEC)
    pods = [o for o in render_objects(spec, "run", nodes=8) if o["kind"] == "Pod"]
    for profile in ("ib-sriov", "ib-shared"):
        mine = [p for p in pods if p["metadata"]["labels"][mf.LABEL_PROFILE] == profile]
        assert len(mine) == 8 and len({p["spec"]["nodeSelector"]["kubernetes.io/hostname"] for p in mine}) == 8
        for p in mine:
            limits = p["spec"]["containers"][0]["resources"]["limits"]
            assert limits["nvidia.com/gpu"] == "8" and p["metadata"]["labels"][mf.LABEL_RANKS] == "8"
            if profile == "ib-sriov":  # one VF of each rail, each rail's network attached
                assert [limits[f"nvidia.com/rail{i}_vf"] for i in range(8)] == ["1"] * 8
                assert p["metadata"]["annotations"][mf.ANN_NETWORKS].split(",") == [f"rail{i}-net" for i in range(8)]
            else:
                assert limits["rdma/shared_ib"] == "1"
    # fewer rails than GPUs per node is a spec error naming the field and the fix
    with pytest.raises(SpecError, match=r"gpus_per_node 8 needs one rail per GPU and profile 'ib-shared' lists 2"):
        load_spec_text(RAILS_SPEC.replace(SHARED_RAILS, "mlx5_0, mlx5_1"))
