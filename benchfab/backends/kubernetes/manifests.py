"""Kubernetes objects of a run, as plain dicts (what ``benchfab render`` prints).

Pure functions: no API calls. Every object carries the run's labels so clean-up
is one label-selected delete; pods are pinned with a nodeSelector on the
hostname label (not ``nodeName``) so the scheduler still checks resources and
taints and explains a shortage in a FailedScheduling event.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...spec import Profile, Rail
from ...yamlpos import plain_yaml
from .options import KubeOptions

APP = "benchfab"
LABEL_RUN = "benchfab.io/run"
LABEL_PROFILE = "benchfab.io/profile"
LABEL_NODE = "benchfab.io/node"
LABEL_SLOT = "benchfab.io/slot"
LABEL_RANKS = "benchfab.io/ranks"  # local ranks in the pod (a node's GPUs), when more than one
ANN_CANCEL = "benchfab.io/cancel"  # "<seq>": stop the worker of that test (timeout)
ANN_NETWORKS = "k8s.v1.cni.cncf.io/networks"
ANN_NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
AGENT_COMMAND = ["python", "-m", "benchfab.backends.kubernetes.agent"]
RENDEZVOUS_PORT = 29500
# MASTER_PORT of test number ``seq``: FIRST + seq % COUNT, unless kubernetes.master_port fixes
# one (rank 0's rendezvous store or out-of-band channel listens there, on its pod IP).
MASTER_PORT_FIRST, MASTER_PORT_COUNT = 20000, 10000
# What else the ranks listen on, for each other: perftest's server (its default -p), and the
# kernel's ephemeral range (Linux' default ip_local_port_range), where gloo's pairs, NCCL's
# bootstrap and socket transport and the tcp transport's data port bind port 0.
PERFTEST_PORT = 18515
EPHEMERAL_PORTS = (32768, 60999)


def master_port(kube: KubeOptions, seq: int) -> int:
    return kube.master_port or (MASTER_PORT_FIRST + seq % MASTER_PORT_COUNT)


def _digest(text: str, n: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def dns_label(text: str, limit: int = 63) -> str:
    """A DNS-1123 label (lower-case alphanumerics and '-') of at most ``limit`` chars.

    When text must be changed or cut, a short hash of the original keeps two
    different inputs from ending up with the same name.
    """
    clean = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if clean == text and len(clean) <= limit:
        return clean
    keep = max(1, limit - 7)
    return f"{clean[:keep].rstrip('-')}-{_digest(text)}"


def label_value(text: str) -> str:
    """A valid label value (<= 63 chars of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")
    if clean == text and len(clean) <= 63:
        return clean
    return f"{clean[:56].rstrip('-_.')}-{_digest(text)}"


def run_key(run_id: str) -> str:
    """Short stable id of a run used in object names (run ids are long and have '_' / '.')."""
    return _digest(run_id, 8)


def service_name(run_id: str) -> str:
    return f"bf-{run_key(run_id)}"  # DNS-1035: starts with a letter


def pod_name(run_id: str, profile: str, node: str, slot: int, ranks: int = 1) -> str:
    # <= 63 chars: the pod's hostname (for DNS through the headless Service) is the same string.
    # A pod of several ranks (one node's GPUs) is named apart from the one-rank pod of its first slot.
    stem = f"{dns_label(profile, 12)}-{dns_label(node, 32)}"
    tail = f"{slot}" if ranks == 1 else f"{slot}x{ranks}"
    return f"bf-{run_key(run_id)}-{stem}"[:63 - len(tail) - 1].rstrip("-") + f"-{tail}"


def run_labels(run_id: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/managed-by": APP, LABEL_RUN: label_value(run_id)}


def run_selector(run_id: str) -> str:
    return f"{LABEL_RUN}={label_value(run_id)}"


def agent_role_name(run_id: str) -> str:
    return f"benchfab-agent-{label_value(run_id)}"


def agent_account(run_id: str, kube: KubeOptions) -> str:
    """The service account the run's agents run as: the spec's, else the run's own."""
    return kube.service_account or agent_role_name(run_id)


def agent_access(run_id: str, namespace: str, pod_names: Iterable[str], kube: KubeOptions) -> list[dict[str, Any]]:
    """The run's ServiceAccount (unless the spec names one), Role and RoleBinding: the agent
    in each rank pod may read and watch its run's pods by name (RBAC cannot say "its own
    pod", and a static Role would let every agent watch every pod of the namespace;
    ``list``/``watch`` with ``fieldSelector=metadata.name=POD`` are authorized against
    ``resourceNames``), and read and watch the namespace's ConfigMaps, where each round's
    tasks arrive (handout.py; their names change every round and RBAC cannot select by
    label, so this rule names none), and nothing else. An account of the run's own keeps concurrent
    runs apart: bound to both runs' Roles, a shared one reads both runs' pods."""
    name = agent_role_name(run_id)
    labels = {**run_labels(run_id), "app.kubernetes.io/component": "agent-access"}
    account = agent_account(run_id, kube)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"],
                   "resourceNames": sorted(set(pod_names))},
                  {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    if kube.service_account:
        return [role, binding]
    own = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace,
                                                                      "labels": labels}}
    return [own, role, binding]


@dataclass(frozen=True)
class PodPlan:
    """One rank pod: a (profile, node, slot) of the run."""

    profile_name: str
    profile: Profile
    node: str  # node name
    hostname: str  # value of the node's hostname label (can differ from its name)
    slot: int
    gpus: int  # GPUs per rank the pod requests (0 for CPU-only tests)
    hugepages_mib: int = 0  # hugepages-2Mi the pod requests (memory: hugepages tests)
    ranks: int = 1  # local ranks in the pod: one node's GPUs and rails (gpus_per_node), else 1

    @property
    def rails(self) -> list[Rail]:
        """The rails of this pod's ranks: rank i uses rail i (the profile's rails, else its resource and network)."""
        return pod_rails(self.profile, self.slot, self.ranks)


def pod_rails(profile: Profile, first: int, ranks: int) -> list[Rail]:
    """Rails first..first+ranks-1 of the profile, each with its resource and network filled in."""
    if not profile.rails:
        return [Rail(hca=None, resource=profile.resource, network=profile.network)] * ranks
    # More slots than listed rails (pairs sharing a node): slot s uses rail s mod the rail count.
    picked = [profile.rails[(first + i) % len(profile.rails)] for i in range(ranks)]
    return [Rail(hca=r.hca, resource=r.resource or profile.resource, network=r.network or profile.network)
            for r in picked]


def pod_networks(pod: PodPlan) -> list[str]:
    """The Multus attachments of a pod: one per VF on SR-IOV (each rail's network), else each
    distinct network once (a shared device's network carries every HCA of the node)."""
    nets = [r.network for r in pod.rails if r.network]
    return nets if pod.profile.mode == "sriov" else list(dict.fromkeys(nets))


def service_manifest(run_id: str, namespace: str) -> dict[str, Any]:
    """Headless Service: every rank pod resolves as <pod>.<service>.<ns>.svc.

    publishNotReadyAddresses: ranks must find each other while they start,
    before any readiness could be reported.
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(run_id), "namespace": namespace, "labels": run_labels(run_id)},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_RUN: label_value(run_id)},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT, "protocol": "TCP"}],
        },
    }


def network_policy_manifest(run_id: str, namespace: str, kube: KubeOptions) -> dict[str, Any]:
    """Ingress to the run's pods from the run's pods only, and only on the ports the ranks
    listen on for each other: the rendezvous/out-of-band ports (kubernetes.master_port, or
    the range MASTER_PORT_FIRST.. the backend hands out), perftest's port and the ephemeral
    range (gloo, NCCL, the tcp data port). Rank 0 binds its rendezvous listener to its pod
    IP only (workloads.rendezvous), the network this policy governs. Multus secondary
    networks are outside NetworkPolicy; there the out-of-band secret and the tcp data token
    decide who the peer is (docs/SECURITY.md)."""
    run_pods = {"matchLabels": {LABEL_RUN: label_value(run_id)}}
    rendezvous: dict[str, Any] = ({"protocol": "TCP", "port": kube.master_port} if kube.master_port else
                                  {"protocol": "TCP", "port": MASTER_PORT_FIRST,
                                   "endPort": MASTER_PORT_FIRST + MASTER_PORT_COUNT - 1})
    ports = [rendezvous, {"protocol": "TCP", "port": PERFTEST_PORT},
             {"protocol": "TCP", "port": EPHEMERAL_PORTS[0], "endPort": EPHEMERAL_PORTS[1]}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": service_name(run_id), "namespace": namespace, "labels": run_labels(run_id)},
        "spec": {"podSelector": run_pods, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": run_pods}], "ports": ports}]},
    }


def pod_deadline_s(kube: KubeOptions, estimate_s: float) -> int:
    """A pod's activeDeadlineSeconds: the spec's, else well past the plan's estimate (it only
    reaps pods a dead controller left behind; a live one deletes them itself)."""
    if kube.active_deadline is not None:
        return int(kube.active_deadline)
    return int(max(3600.0, 3 * estimate_s + kube.start_timeout + 600))


def pod_manifest(run_id: str, namespace: str, image: str, pod: PodPlan, kube: KubeOptions,
                 deadline_s: int) -> dict[str, Any]:
    name = pod_name(run_id, pod.profile_name, pod.node, pod.slot, pod.ranks)
    labels = {
        **run_labels(run_id),
        "app.kubernetes.io/component": "rank",
        LABEL_PROFILE: label_value(pod.profile_name),
        LABEL_NODE: label_value(pod.node),
        LABEL_SLOT: str(pod.slot),
    }
    if pod.ranks > 1:
        labels[LABEL_RANKS] = str(pod.ranks)
    annotations: dict[str, str] = {}
    if networks := pod_networks(pod):
        # Multus: the secondary network(s) that carry the RDMA devices (net1, net2, ...).
        annotations[ANN_NETWORKS] = ",".join(networks)
    container: dict[str, Any] = {
        "name": "rank",
        "image": image,
        "imagePullPolicy": kube.image_pull_policy,
        # argv list, never a shell: nothing from the spec is ever interpreted by one.
        "command": list(AGENT_COMMAND),
        "env": _agent_env(run_id, kube),
        "resources": _resources(pod, kube),
        "securityContext": {
            # IPC_LOCK lets verbs pin (register) memory beyond RLIMIT_MEMLOCK; the
            # device plugin hands the pod /dev/infiniband, so nothing privileged.
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["IPC_LOCK"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "nodeSelector": {kube.hostname_label: pod.hostname},
        "hostname": name,
        "subdomain": service_name(run_id),
        "serviceAccountName": agent_account(run_id, kube),
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "activeDeadlineSeconds": int(deadline_s),
        # The runtime's default syscall filter (the restricted Pod Security level asks for it).
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    if pod.ranks > 1:
        # NCCL's SHM transport between the pod's ranks lives in /dev/shm, which a container
        # gets as 64 MiB: a memory-backed emptyDir of shm_size (default 1Gi per rank) instead.
        size = kube.shm_size or f"{pod.ranks}Gi"
        spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": size}}]
        container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if kube.tolerations:
        spec["tolerations"] = [dict(t) for t in kube.tolerations]
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def _resources(pod: PodPlan, kube: KubeOptions) -> dict[str, Any]:
    """The rank pod's limits (its NIC share or VF, GPUs, hugepages) and requests."""
    limits: dict[str, str] = {}
    for resource, count in rail_resources(pod).items():
        limits[resource] = str(count)
    if pod.gpus:
        limits[kube.gpu_resource] = str(pod.gpus * pod.ranks)
    if pod.hugepages_mib:
        # Hugepage requests must equal their limits, which copying the limits gives.
        limits["hugepages-2Mi"] = f"{pod.hugepages_mib}Mi"
    requests = dict(limits)
    if kube.cpu:
        requests["cpu"] = kube.cpu
    if kube.memory:
        requests["memory"] = kube.memory
    if pod.hugepages_mib and "cpu" not in requests and "memory" not in requests:
        # The API server refuses hugepages without a cpu or memory request.
        requests["memory"] = "1Gi"
    return {"limits": limits, "requests": requests} if limits or requests else {}


def rail_resources(pod: PodPlan) -> dict[str, int]:
    """RDMA resources of a pod's rails: one VF per rail on SR-IOV; on the shared plugin one
    unit of each distinct resource (one unit exposes the HCAs that resource names)."""
    counts: dict[str, int] = {}
    for rail in pod.rails:
        if rail.resource:
            counts[rail.resource] = counts.get(rail.resource, 0) + 1
    return counts if pod.profile.mode == "sriov" else dict.fromkeys(counts, 1)


def _agent_env(run_id: str, kube: KubeOptions) -> list[dict[str, Any]]:
    """What the agent learns from the downward API, plus the spec's kubernetes.env."""
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        # The node's address: where its DCGM exporter listens (benchfab.gpuhealth)
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "BENCHFAB_RUN", "value": run_id},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    env.extend({"name": k, "value": v} for k, v in sorted(kube.env.items()))
    return env


def to_yaml(objects: Iterable[dict[str, Any]]) -> str:
    """Multi-document YAML that ``kubectl apply -f -`` accepts."""
    return "".join("---\n" + plain_yaml(o, sort_keys=False, default_flow_style=False) for o in objects)
