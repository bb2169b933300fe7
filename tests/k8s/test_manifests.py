"""Manifests: what benchfab render prints and the jobs/k8s examples validate against the API schemas."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml

from benchfab.backends.kubernetes import manifests as mf
from benchfab.backends.kubernetes.nccl import nccl_env, net_env
from benchfab.spec import KubeSettings, Profile
from tests.helpers import ROOT

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
    assert kinds[:3] == ["Service", "Role", "RoleBinding"] and set(kinds[3:]) == {"Pod"}
    svc, role, binding = docs[:3]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    pods = docs[3:]
    # The agents may read their run's pods by name, nothing else, and only through this Role.
    (rule,) = role["rules"]
    assert rule["verbs"] == ["get", "list", "watch"] and rule["resources"] == ["pods"]
    assert rule["resourceNames"] == sorted(p["metadata"]["name"] for p in pods)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "benchfab-agent", "namespace": svc["metadata"]["namespace"]}]
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
    k = KubeSettings()
    ib = nccl_env(Profile(fabric="ib", mode="sriov", resource="r", network="n"),
                  {"interface": "net1", "device-info": {"pci": {"rdma-device": "mlx5_1"}}}, k)
    assert ib["NCCL_IB_HCA"] == "=mlx5_1" and ib["NCCL_DEBUG"] == "INFO" and "NCCL_NET" not in ib
    roce = nccl_env(Profile(fabric="roce", mode="shared", hca="mlx5_0,mlx5_3", gid_index=3), {"interface": "net1"}, k)
    assert roce["NCCL_IB_HCA"] == "=mlx5_0,mlx5_3" and roce["NCCL_SOCKET_IFNAME"] == "=net1"
    assert roce["NCCL_IB_GID_INDEX"] == "3"
    assert "NCCL_IB_GID_INDEX" not in nccl_env(Profile(fabric="roce"), None, k)  # NCCL >= 2.21.5 picks it
    assert nccl_env(Profile(fabric="tcp"), None, k)["NCCL_IB_DISABLE"] == "1"
    assert nccl_env(Profile(fabric="ib"), None, KubeSettings(force_net=True))["NCCL_NET"] == "IB"


def test_net_env_names_the_secondary_interface_and_its_hca() -> None:
    sriov = {"interface": "net1", "ips": ["10.20.0.7/24"], "device-info": {"pci": {"rdma-device": "mlx5_4"}}}
    assert net_env(Profile(fabric="roce", mode="sriov"), sriov) == {
        "BENCHFAB_NET_IP": "10.20.0.7", "BENCHFAB_NET_HCA": "mlx5_4"}
    # The profile's hca wins over the device plugin's; tcp profiles get no HCA.
    assert net_env(Profile(fabric="ib", hca="=mlx5_2,mlx5_3"), sriov)["BENCHFAB_NET_HCA"] == "mlx5_2"
    assert net_env(Profile(fabric="tcp"), sriov) == {"BENCHFAB_NET_IP": "10.20.0.7"}
    assert net_env(Profile(fabric="roce"), None) == {}


def test_task_annotation_round_trips() -> None:
    text = mf.task_annotation(3, '{"a":1}', {"RANK": "0"})
    assert json.loads(text) == {"seq": 3, "task": '{"a":1}', "env": {"RANK": "0"}}


def test_docker_definition_is_present() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "FROM " in dockerfile and "perftest" in dockerfile and "pyverbs" in dockerfile
    assert "docker build" in (ROOT / "docker" / "README.md").read_text()
