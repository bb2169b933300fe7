"""What the cluster offers the spec: nodes, their health and free RDMA/GPU capacity.

One list of nodes plus one list of running pods (to subtract what they already
hold) gives, per node: Ready / cordoned / taints, GPUs, each profile's RDMA
resource (allocatable minus requests), the hostname and topology labels, and
the Network Operator's MOFED readiness label. ``nodes_for_planner`` turns that
into the planner's NodeInfo (slots per profile); the snapshot goes to run.json.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...placement import NodeInfo
from ...spec import Profile, Rail, SweepSpec
from ...workloads import family_of
from .client import Kube
from .manifests import pod_rails
from .options import kube_options

MOFED_WAIT = "network.nvidia.com/operator.mofed.wait"
MAX_SLOTS = 64  # more rank pods per node than this is never useful


def quantity(value: Any) -> float:
    text = str(value)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024.0, "Mi": 1024.0**2, "Gi": 1024.0**3,
             "Ti": 1024.0**4}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    try:
        return float(text)
    except ValueError:
        return 0.0


def pod_requests(pod: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        # Extended resources must have requests == limits; limits alone imply requests.
        for k, v in {**(res.get("limits") or {}), **(res.get("requests") or {})}.items():
            out[k] = out.get(k, 0.0) + quantity(v)
    return out


def _tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for t in tolerations:
        if t.get("operator") == "Exists" and t.get("key") in (None, taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value") == taint.get("value"):
            return True
    return False


def untolerated_taints(node: dict[str, Any], tolerations: list[dict[str, Any]]) -> list[str]:
    """The node's NoSchedule/NoExecute taints the run's pods do not tolerate, as key=value:effect."""
    return [f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}" for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(t, tolerations)]


def scheduling_problems(node: dict[str, Any], tolerations: list[dict[str, Any]]) -> list[str]:
    """Why the scheduler would put no pod of the run on this node (empty: it would): NotReady,
    cordoned, a NoSchedule/NoExecute taint the pods do not tolerate. Preflight fails such a
    node with the same words the inventory leaves it out with."""
    status, spec = node.get("status") or {}, node.get("spec") or {}
    problems = []
    if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
        problems.append("NotReady")
    if spec.get("unschedulable"):
        problems.append("cordoned")
    untolerated = untolerated_taints(node, tolerations)
    if untolerated:
        problems.append("untolerated taint " + ", ".join(untolerated))
    return problems


def node_health(node: dict[str, Any], tolerations: list[dict[str, Any]]) -> list[str]:
    """Why no test of the run may go on this node (empty: it may): what keeps the scheduler
    off it, and MOFED not ready."""
    problems = scheduling_problems(node, tolerations)
    if (node["metadata"].get("labels") or {}).get(MOFED_WAIT) == "true":
        # The device plugins wait for MOFED: allocatable RDMA units left from before are stale.
        problems.append(f"MOFED not ready ({MOFED_WAIT}=true)")
    return problems


def leaf_of(labels: Mapping[str, str], keys: Sequence[str]) -> str | None:
    """A node's leaf: its values of the topology labels (nodes.topology_key or topology_keys,
    outermost first) joined by '/', so leaf l1 of block b1 and of block b2 differ; None
    without keys, or when the node lacks one of the labels."""
    values = [labels.get(k) for k in keys]
    return "/".join(v for v in values if v is not None) if values and None not in values else None


def read_inventory(kube: Kube, spec: SweepSpec) -> list[dict[str, Any]]:
    """One dict per node matching nodes.selector, with health and free capacity."""
    nodes = kube.list_nodes(spec.nodes.selector).get("items", [])
    pods = kube.list_pods(None, field_selector="status.phase!=Succeeded,status.phase!=Failed").get("items", [])
    used: dict[str, dict[str, float]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            held = used.setdefault(node, {})
            for k, v in pod_requests(pod).items():
                held[k] = held.get(k, 0.0) + v
    k8s = kube_options(spec)
    profiles = spec.resolved_profiles()
    out = []
    for node in nodes:
        meta, status = node["metadata"], node.get("status") or {}
        name = meta["name"]
        labels = meta.get("labels") or {}
        alloc = status.get("allocatable") or {}
        held = used.get(name, {})
        free = {k: max(0.0, quantity(v) - held.get(k, 0.0)) for k, v in alloc.items()}
        rdma = {res: {"allocatable": quantity(alloc.get(res, 0)), "free": free.get(res, 0.0)}
                for p in profiles.values() for res in profile_resources(p)}
        problems = node_health(node, k8s.tolerations)
        if name in spec.nodes.exclude:
            problems.append("excluded by the spec (nodes.exclude)")
        out.append({
            "name": name,
            "hostname": labels.get(k8s.hostname_label, name),
            "leaf": leaf_of(labels, spec.nodes.leaf_keys()),
            "ready": "NotReady" not in problems,
            "cordoned": "cordoned" in problems,
            "taints": untolerated_taints(node, k8s.tolerations),
            "usable": not problems,
            "problems": problems,
            "gpus": {"allocatable": quantity(alloc.get(k8s.gpu_resource, 0)), "free": free.get(k8s.gpu_resource, 0.0)},
            "rdma": rdma,
            "mofed_wait": labels.get(MOFED_WAIT),
            "kernel": (status.get("nodeInfo") or {}).get("kernelVersion"),
            "labels": dict(labels),  # for expect_by_node / --expect match: (benchfab.compare.expectations)
        })
    return out


def profile_rails(profile: Profile) -> list[Rail]:
    """Every rail of the profile with its resource filled in (one rail: the profile itself)."""
    return pod_rails(profile, 0, len(profile.rails) or 1)


def profile_resources(profile: Profile) -> list[str]:
    """The RDMA resources a profile's pods request: its own and each rail's, each once."""
    return list(dict.fromkeys(r.resource for r in profile_rails(profile) if r.resource))


def resource_unfit(resource: str, have: dict[str, float], profile: str, rail: int | None = None) -> str:
    """Why a node has no slot for the profile for want of ``resource`` ("" when it has some free):
    the reason a plan leaves the node out with."""
    where = f"profile {profile}" + (f", rail {rail}" if rail is not None else "")
    if have["allocatable"] <= 0:
        return f"0 allocatable {resource} ({where})"
    if have["free"] < 1:
        return f"all {have['allocatable']:g} {resource} held by other pods ({where})"
    return ""


def rail_slots(profile: Profile, pname: str, rdma: dict[str, dict[str, float]]) -> tuple[int, str]:
    """How many slots of the profile a node's free RDMA units serve, and why not more (""
    when the units are not what stops it). Slot s uses rail s mod the rail count
    (manifests.pod_rails) and takes one unit of that rail's resource: exact for SR-IOV's
    one VF per rank, on the safe side for a shared device (a pod takes one unit per resource)."""
    rails = profile_rails(profile)
    if not profile_resources(profile):
        return MAX_SLOTS, ""
    taken: dict[str, float] = {}
    for s in range(MAX_SLOTS):
        index = s % len(rails)
        res = rails[index].resource
        if res is None:
            continue
        if taken.get(res, 0.0) + 1 > rdma[res]["free"]:
            # A reason only where a rail has no unit at all; fewer units than slots is the planner's to say.
            return s, resource_unfit(res, rdma[res], pname, index if profile.rails else None)
        taken[res] = taken.get(res, 0.0) + 1
    return MAX_SLOTS, ""


def gpus_per_rank(spec: SweepSpec, profile: str) -> int:
    """1 if any test of the profile may run on GPUs, else 0: collectives with device
    auto/cuda, point-to-point tests only with GPU memory."""
    return 1 if any(family_of(t.workload).on_gpu(t) for t in spec.resolved_tests() if profile in t.profiles) else 0


HUGEPAGE_MIB = 2


def hugepages_mib_per_rank(spec: SweepSpec, profile: str) -> int:
    """MiB of 2 MiB hugepages a rank pod must request: the largest buffer (two regions of
    the largest message) of the profile's ``memory: hugepages`` tests, in whole pages."""
    page = HUGEPAGE_MIB << 20
    need = 0
    for t in spec.resolved_tests():
        if profile in t.profiles and t.memory == "hugepages":
            need = max(need, (2 * max(max(t.sizes), 64) + page - 1) // page * HUGEPAGE_MIB)
    return need


def nodes_for_planner(spec: SweepSpec, inventory: list[dict[str, Any]]) -> list[NodeInfo]:
    """Every node of the inventory with its slots per profile; a node with no slot for a
    profile says why (``NodeInfo.unfit``), so that the plan can name it."""
    profiles = spec.resolved_profiles()
    gpu = kube_options(spec).gpu_resource
    out = []
    for node in inventory:
        slots: dict[str, int] = {}
        unfit: dict[str, str] = {}
        for pname, profile in profiles.items():
            # Each rail's resource, not only the profile's: a rails profile may have none of its own.
            units, why = rail_slots(profile, pname, node["rdma"])
            n = float(units)
            if gpus_per_rank(spec, pname):
                n = min(n, node["gpus"]["free"])
                if node["gpus"]["allocatable"] <= 0:
                    why = why or f"no GPU (0 allocatable {gpu})"
                elif node["gpus"]["free"] < 1:
                    why = why or f"all {node['gpus']['allocatable']:g} GPUs ({gpu}) held by other pods"
            if node["problems"]:
                n, why = 0, ", ".join(node["problems"])
            slots[pname] = int(n)
            if why:
                unfit[pname] = why
        out.append(NodeInfo(node["name"], leaf=node["leaf"], slots=slots, unfit=unfit,
                            labels={"hostname": node["hostname"]}))
    return out
