"""render with kubernetes.scheduling (gang.py) and render --mpijob (mpijob.py), offline:
real CLI processes, pods validated against Kubernetes' own schema."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.k8s.test_render_offline import bf

pytestmark = pytest.mark.k8s

SPEC = """\
name: gang
backend: kubernetes
namespace: bench
image: registry.example.com/benchfab-worker:test
profiles:
  ib: {fabric: ib, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
kubernetes: {scheduling: SCHEDULING, env: {NCCL_ALGO: Ring}}
tests:
  - {name: ar, workload: allreduce, engine: nccl-tests, sizes: {min: 1K, max: 1M, factor: 4},
     placement: {pattern: group, nodes: 2, gpus_per_node: 4}}
"""


def _render(tmp_path: Path, home: Path, scheduling: str, *extra: str) -> tuple[list[dict], str]:  # type: ignore[type-arg]
    spec = tmp_path / "gang.yaml"
    spec.write_text(SPEC.replace("SCHEDULING", scheduling))
    proc = bf("render", str(spec), "--nodes", "2", *extra, home=home)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d], proc.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def test_a_kueue_queue_gates_the_profiles_pods_as_one_group(tmp_path: Path, home: Path) -> None:
    docs, _ = _render(tmp_path, home, "{queue: team-a, scheduler_name: kai-scheduler}")
    pods = [d for d in docs if d["kind"] == "Pod"]
    assert len(pods) == 2
    for pod in pods:
        kubernetes_validate.validate(pod, "1.33", strict=True)
        assert pod["spec"]["schedulingGates"] == [{"name": "kueue.x-k8s.io/admission"}]
        assert pod["spec"]["schedulerName"] == "kai-scheduler"
        assert pod["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
        assert pod["metadata"]["annotations"]["kueue.x-k8s.io/pod-group-total-count"] == "2"
    assert len({p["metadata"]["labels"]["kueue.x-k8s.io/pod-group-name"] for p in pods}) == 1
    assert not [d for d in docs if d["kind"] == "PodGroup"]


@pytest.mark.parametrize(("flavour", "api", "where"), [("volcano", "scheduling.volcano.sh/v1beta1", "annotations"),
                                                      ("coscheduling", "scheduling.x-k8s.io/v1alpha1", "labels")])
def test_a_pod_group_of_the_gangs_size_comes_before_its_pods(tmp_path: Path, home: Path, flavour: str, api: str,
                                                             where: str) -> None:
    docs, _ = _render(tmp_path, home, f"{{pod_group: {flavour}}}")
    kinds = [d["kind"] for d in docs]
    assert kinds.index("PodGroup") < kinds.index("Pod")
    (group,) = [d for d in docs if d["kind"] == "PodGroup"]
    assert group["apiVersion"] == api and group["spec"] == {"minMember": 2}
    key = "scheduling.k8s.io/group-name" if flavour == "volcano" else "scheduling.x-k8s.io/pod-group"
    assert {d["metadata"][where][key] for d in docs if d["kind"] == "Pod"} == {group["metadata"]["name"]}
    # The agents' Role names the pods, not the PodGroup.
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert group["metadata"]["name"] not in str(role["rules"])


def test_render_mpijob_writes_one_mpijob_per_nccl_tests_test(tmp_path: Path, home: Path) -> None:
    docs, notes = _render(tmp_path, home, "{queue: team-a}", "--mpijob")
    (job,) = docs
    assert job["apiVersion"] == "kubeflow.org/v2beta1" and job["kind"] == "MPIJob"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    spec = job["spec"]
    assert spec["slotsPerWorker"] == 4 and spec["mpiReplicaSpecs"]["Worker"]["replicas"] == 2
    launcher = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    argv = launcher["command"]
    assert argv[:3] == ["mpirun", "-np", "8"] and ["-x", "NCCL_ALGO"] == argv[argv.index("-x"):argv.index("-x") + 2]
    binary = argv.index("/opt/nccl-tests/all_reduce_perf")
    assert argv[binary + 1:binary + 7] == ["-b", "1024", "-e", "1048576", "-f", "4"] and "-g" in argv
    assert argv[argv.index("-g") + 1] == "1"  # one GPU per MPI rank
    worker = spec["mpiReplicaSpecs"]["Worker"]["template"]
    container = worker["spec"]["containers"][0]
    assert container["command"] == ["/usr/sbin/sshd", "-De"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4" or container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert worker["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"}, **{"spec": worker["spec"]}},
                                 "1.33", strict=True)


def test_render_mpijob_names_tests_it_cannot_express(tmp_path: Path, home: Path) -> None:
    spec = tmp_path / "odd.yaml"
    spec.write_text(SPEC.replace("SCHEDULING", "{}").replace("{min: 1K, max: 1M, factor: 4}", "[1K, 3K, 4K]"))
    proc = bf("render", str(spec), "--nodes", "2", "--mpijob", home=home)
    assert proc.returncode == 0 and "not one size or a geometric series" in proc.stderr, proc.stderr
