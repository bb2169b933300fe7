"""``benchfab render --mpijob``: the spec's nccl-tests tests as MPI Operator MPIJobs (kubeflow.org/v2beta1).

benchfab itself runs nccl-tests across nodes without the MPI Operator or sshd (rank 0's
pod runs mpirun with benchfab's own launcher, workloads.nccl_tests_mpi). For a cluster that
already runs the MPI Operator, render writes the same measurement as one MPIJob per test:
a Worker per node of the test's placement (``slotsPerWorker`` = its ranks per node, the
same GPUs, RDMA resources, Multus networks and tolerations as benchfab's rank pods, kept
on the placement's nodes and one per node), and a Launcher that runs ``mpirun`` with ``-x``
of the spec's NCCL variables and the nccl-tests flags of the test. Its output is nccl-tests'
table: ``benchfab import nccl-tests`` stores it like any run. The MPI Operator starts the
workers' sshd and hands out their keys: its worker image must have one (benchfab's does not).
"""

from __future__ import annotations

from typing import Any

from ...planner import Plan, PlannedTest
from ...spec import SweepSpec
from ...workloads.collective_kinds import COLLECTIVES
from ...workloads.nccl_tests_engine import nccl_tests_argv
from . import manifests as mf
from .inventory import gpus_per_rank, hugepages_mib_per_rank
from .options import kube_options

API_VERSION = "kubeflow.org/v2beta1"
NCCL_TESTS_DIR = "/opt/nccl-tests"  # where docker/Dockerfile builds them
SSHD = ["/usr/sbin/sshd", "-De"]  # the MPI Operator's worker command: its launcher reaches workers by ssh


def size_flags(sizes: list[int]) -> list[str] | None:
    """nccl-tests' -b/-e/-f of ``sizes``: one size, or a geometric series with an integer factor."""
    if len(sizes) == 1:
        return ["-b", str(sizes[0]), "-e", str(sizes[0])]
    factor, rest = divmod(sizes[1], sizes[0]) if sizes[0] else (0, 1)
    if factor < 2 or rest or any(b != a * factor for a, b in zip(sizes, sizes[1:])):
        return None
    return ["-b", str(sizes[0]), "-e", str(sizes[-1]), "-f", str(factor)]


def mpijobs(spec: SweepSpec, run_id: str, namespace: str, plan: Plan,
            hostnames: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """One MPIJob per nccl-tests test of the plan; notes for the tests that cannot be one."""
    jobs, notes = [], []
    for test in plan.tests:
        if test.spec.engine != "nccl-tests":
            continue
        flags = size_flags(list(test.task().sizes))
        if flags is None:
            notes.append(f"test {test.test_id}: its sizes are not one size or a geometric series (nccl-tests' "
                         "-b/-e/-f cannot express them): no MPIJob; use sizes: {min, max, factor}")
            continue
        jobs.append(_mpijob(spec, run_id, namespace, test, flags, hostnames))
    if not jobs and not notes:
        notes.append("the spec has no engine: nccl-tests test: no MPIJob to render")
    return jobs, notes


def _mpijob(spec: SweepSpec, run_id: str, namespace: str, test: PlannedTest, flags: list[str],
            hostnames: dict[str, str]) -> dict[str, Any]:
    kube = kube_options(spec)
    task = test.task()
    binary = f"{NCCL_TESTS_DIR}/{COLLECTIVES[task.workload].nccl_name}"
    program = nccl_tests_argv(binary, task, task.sizes[0], 1)
    program = [program[0], *flags, *program[5:]]  # the test's sizes instead of the first one only
    nodes = [node for node, _ in test.members]
    ranks = len(nodes) * test.local_ranks
    env = {**kube.env, **test.profile.env}
    forwarded = [arg for name in sorted(env) if name.startswith("NCCL_") for arg in ("-x", name)]
    launcher = {"name": "launcher", "image": str(spec.image), "imagePullPolicy": kube.image_pull_policy,
                # argv list, never a shell: the spec's values stay words.
                "command": ["mpirun", "-np", str(ranks), "--bind-to", "none", "--map-by", "slot", *forwarded, *program],
                "env": [{"name": k, "value": str(v)} for k, v in sorted(env.items())]}
    first, slot = test.members[0]
    pod = mf.pod_manifest(run_id, namespace, str(spec.image), mf.PodPlan(
        test.profile_name, test.profile, first, hostnames.get(first, first), slot, gpus_per_rank(spec, test.profile_name),
        hugepages_mib_per_rank(spec, test.profile_name), test.local_ranks), kube, 0)
    worker_spec = {k: v for k, v in pod["spec"].items()
                   if k not in ("nodeSelector", "hostname", "subdomain", "serviceAccountName", "activeDeadlineSeconds",
                                "restartPolicy")}
    container = {**worker_spec["containers"][0], "name": "worker", "command": SSHD, "env": launcher["env"]}
    worker_spec["containers"] = [container]
    wanted = sorted({hostnames.get(n, n) for n in nodes})
    worker_spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": kube.hostname_label, "operator": "In", "values": wanted}]}]}}}
    worker_spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": kube.hostname_label,
                                                 "whenUnsatisfiable": "DoNotSchedule",
                                                 "labelSelector": {"matchLabels": {"training.kubeflow.org/job-name":
                                                                                   mf.dns_label(f"bf-{run_id}-{test.test_id}"),
                                                                                   "training.kubeflow.org/job-role": "worker"}}}]
    worker_meta = {k: v for k, v in pod["metadata"].items() if k == "annotations"}
    if kube.scheduling.scheduler_name:
        worker_spec["schedulerName"] = kube.scheduling.scheduler_name
    name = mf.dns_label(f"bf-{run_id}-{test.test_id}")
    labels = {**mf.run_labels(run_id), "benchfab.io/test": mf.label_value(test.test_id)}
    if kube.scheduling.queue:
        labels["kueue.x-k8s.io/queue-name"] = kube.scheduling.queue  # Kueue's MPIJob integration
    return {
        "apiVersion": API_VERSION, "kind": "MPIJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "slotsPerWorker": test.local_ranks,
            "mpiImplementation": "OpenMPI",
            "launcherCreationPolicy": "WaitForWorkersReady",
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 0},
            "mpiReplicaSpecs": {
                "Launcher": {"replicas": 1, "template": {"spec": {"restartPolicy": "Never", "containers": [launcher]}}},
                "Worker": {"replicas": len(nodes), "template": {"metadata": worker_meta, "spec": worker_spec}},
            },
        },
    }
