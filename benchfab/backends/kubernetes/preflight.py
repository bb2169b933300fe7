"""``benchfab preflight``: the NVIDIA Network Operator checklist, automated.

Each check gives pass / warn / fail, what it saw and, for every failure, the
fix. The operator's namespace is discovered from its pods' labels (it is
``nvidia-network-operator`` on new installs, ``network-operator`` on older
ones), never assumed. Exit code 1 if anything failed.

Checks: NicClusterPolicy ``nic-cluster-policy`` state; per GPU node: Ready,
not cordoned, no untolerated NoSchedule taint; MOFED ready (label and OFED
pod), RDMA device plugin pod (a Pending one is explained by its DaemonSet's
wait for ``mofed.wait=false``, not sent to its logs), RDMA allocatable > 0 for
each profile's resource (for an SR-IOV profile, when the SR-IOV operator is
installed, which of its SriovNetworkNodePolicy and the node's
SriovNetworkNodeState is wrong), a GPUDirect path (nvidia-peermem container Ready, or
a kernel new enough for DMA-BUF), a DCGM exporter pod (else GPU health is not
checked there: a warning); the profiles' NADs exist and are tied to their
resource; kernel versions agree across nodes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from ...spec import Profile, SweepSpec
from .client import ClusterOptions, Kube, connect
from .inventory import MOFED_WAIT, quantity, scheduling_problems
from .options import kube_options

OFED_LABEL = "nvidia.com/ofed-driver"
SHARED_DP_LABEL = "app=rdma-shared-dp"
SRIOV_DP_LABELS = ("app=sriovdp", "app=sriov-device-plugin")
OPERATOR_LABEL = "app.kubernetes.io/name=network-operator"
# The DCGM exporter's pods: the GPU Operator's DaemonSet, and the dcgm-exporter Helm chart's.
DCGM_EXPORTER_LABELS = ("app=nvidia-dcgm-exporter", "app.kubernetes.io/name=dcgm-exporter")
RESOURCE_ANN = "k8s.v1.cni.cncf.io/resourceName"
DMABUF_KERNEL = (5, 12)
SRIOV_GROUP, SRIOV_VERSION = "sriovnetwork.openshift.io", "v1"


@dataclass(frozen=True)
class Check:
    name: str
    scope: str
    status: str  # pass | warn | fail
    detail: str
    fix: str = ""


def _ready(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def _kernel(version: str | None) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _on(pods: list[dict[str, Any]], node: str) -> list[dict[str, Any]]:
    return [p for p in pods if (p.get("spec") or {}).get("nodeName") == node]


@dataclass(frozen=True)
class _OperatorPods:
    """The Network Operator's pods, by component, cluster-wide (its namespace is not assumed)."""

    ofed: list[dict[str, Any]]
    device_plugins: list[dict[str, Any]]  # RDMA shared and SR-IOV device plugins
    peermem: list[dict[str, Any]]  # pods with an nvidia-peermem container (GPU Operator)


@dataclass(frozen=True)
class _Sriov:
    """The SR-IOV Network Operator's objects, when it is installed (empty lists when not)."""

    policies: list[dict[str, Any]]  # SriovNetworkNodePolicy: resourceName, numVfs, nodeSelector
    states: dict[str, dict[str, Any]]  # node name -> its SriovNetworkNodeState (syncStatus, interfaces)

    @classmethod
    def read(cls, kube: Kube, wanted: bool) -> _Sriov:
        if not wanted:  # no SR-IOV profile: nothing to explain with them
            return cls([], {})
        policies = kube.list_custom(SRIOV_GROUP, SRIOV_VERSION, "sriovnetworknodepolicies")
        states = kube.list_custom(SRIOV_GROUP, SRIOV_VERSION, "sriovnetworknodestates")
        return cls(policies, {s["metadata"]["name"]: s for s in states})


def checks(kube: Kube, spec: SweepSpec | None) -> list[Check]:
    gpu_res = kube_options(spec).gpu_resource if spec else "nvidia.com/gpu"
    profiles = spec.resolved_profiles() if spec else {}
    resources = sorted({p.resource for p in profiles.values() if p.resource})
    sriov_resources = {p.resource for p in profiles.values() if p.resource and p.mode == "sriov"}
    tolerations = kube_options(spec).tolerations if spec else []
    out = _policy_checks(kube)
    pods, operator = _operator_pods(kube)
    out += operator
    selector = spec.nodes.selector if spec and spec.nodes.selector else None
    nodes = kube.list_nodes(selector).get("items", [])
    gpu_nodes = [n for n in nodes if (n["metadata"].get("labels") or {}).get("nvidia.com/gpu.present") == "true"
                 or quantity((n.get("status") or {}).get("allocatable", {}).get(gpu_res, 0)) > 0]
    if not gpu_nodes:
        out.append(Check("GPU nodes", "cluster", "fail", f"no node with {gpu_res} or nvidia.com/gpu.present=true"
                         + (f" among nodes matching {selector}" if selector else ""),
                         "check the GPU Operator, or the spec's nodes.selector"))
    kernels: dict[str, list[str]] = {}
    sriov = _Sriov.read(kube, bool(sriov_resources))
    exporters = [p for sel in DCGM_EXPORTER_LABELS for p in kube.list_pods(None, label_selector=sel).get("items", [])]
    for node in gpu_nodes:
        kernel = (node.get("status") or {}).get("nodeInfo", {}).get("kernelVersion", "")
        kernels.setdefault(kernel, []).append(node["metadata"]["name"])
        out.append(_schedulable_check(node, tolerations))
        out += _node_checks(node, kernel, pods, resources, sriov_resources, sriov)
        out.append(_gpu_health_check(node["metadata"]["name"], _on(exporters, node["metadata"]["name"])))
    if len(kernels) > 1:
        out.append(Check("kernel versions", "cluster", "warn",
                         "; ".join(f"{k or '?'} on {len(v)} node(s)" for k, v in sorted(kernels.items())),
                         "mixed kernels need one MOFED build per kernel; results may differ by kernel"))
    elif kernels:
        out.append(Check("kernel versions", "cluster", "pass", next(iter(kernels)) or "?"))
    for pname, profile in profiles.items():
        if profile.network:
            out.append(_nad_check(kube, pname, profile))
    if spec is not None:
        out.append(_agent_account_check(kube, kube_options(spec).service_account))
    return out


def _agent_account_check(kube: Kube, named: str | None) -> Check:
    if not named:
        return Check("agent account", kube.namespace, "pass", "each run makes its own (benchfab-agent-<run>)")
    missing = kube.missing_service_account(named)
    if missing is not None:
        return Check("agent account", kube.namespace, "fail", *missing)
    return Check("agent account", kube.namespace, "pass",
                 f"{named} (shared by every run that names it: their agents can read each other's pods)")


def _policy_checks(kube: Kube) -> list[Check]:
    """The NicClusterPolicy: only the one named nic-cluster-policy is reconciled."""
    ncp = kube.get_custom("mellanox.com", "v1alpha1", "nicclusterpolicies", "nic-cluster-policy")
    if ncp is None:
        others = [o["metadata"]["name"] for o in kube.list_custom("mellanox.com", "v1alpha1", "nicclusterpolicies")]
        return [Check("NicClusterPolicy", "cluster", "fail",
                      "no NicClusterPolicy named nic-cluster-policy" + (f" (found: {', '.join(others)}; only "
                                                                         "nic-cluster-policy is reconciled)" if others else ""),
                      "create it (kubectl apply -f nic-cluster-policy.yaml) or rename yours to nic-cluster-policy")]
    status = ncp.get("status") or {}
    state = status.get("state", "unknown")
    bad = [f"{s.get('name')}={s.get('state')}" for s in status.get("appliedStates") or [] if s.get("state") != "ready"]
    if state == "ready":
        return [Check("NicClusterPolicy", "cluster", "pass", "state ready")]
    return [Check("NicClusterPolicy", "cluster", "fail",
                  f"state {state}" + (f": {', '.join(bad)}" if bad else "") +
                  (f" ({status.get('reason')})" if status.get("reason") else ""),
                  "kubectl describe nicclusterpolicy nic-cluster-policy; look at the pods of the states "
                  "that are not ready in the operator's namespace")]


def _operator_pods(kube: Kube) -> tuple[_OperatorPods, list[Check]]:
    """The operator's component pods (namespace discovered), and the check of the operator pod itself."""
    ofed = kube.list_pods(None, label_selector=OFED_LABEL).get("items", [])
    shared_dp = kube.list_pods(None, label_selector=SHARED_DP_LABEL).get("items", [])
    sriov_dp = [p for sel in SRIOV_DP_LABELS for p in kube.list_pods(None, label_selector=sel).get("items", [])]
    operator = kube.list_pods(None, label_selector=OPERATOR_LABEL).get("items", [])
    namespaces = sorted({p["metadata"]["namespace"] for p in ofed + shared_dp + sriov_dp + operator})
    if operator:
        ok = [p for p in operator if _ready(p)]
        check = Check("operator pod", ",".join(namespaces) or "?", "pass" if ok else "fail",
                      f"{len(ok)}/{len(operator)} Ready", "" if ok else "kubectl logs the network-operator pod")
    else:
        check = Check("operator pod", "cluster", "warn", f"no pod labelled {OPERATOR_LABEL}"
                      + (f"; operator components found in {', '.join(namespaces)}" if namespaces else ""),
                      "check the Network Operator is installed (helm list -A)")
    peermem = [p for p in kube.list_pods(None).get("items", [])
               if any(c.get("name") == "nvidia-peermem-ctr" for c in (p.get("spec") or {}).get("containers") or [])]
    return _OperatorPods(ofed, shared_dp + sriov_dp, peermem), [check]


def _schedulable_check(node: dict[str, Any], tolerations: list[dict[str, Any]]) -> Check:
    """Ready, not cordoned, no NoSchedule/NoExecute taint the run's pods do not tolerate."""
    name = node["metadata"]["name"]
    problems = scheduling_problems(node, tolerations)
    if not problems:
        return Check("node schedulable", name, "pass", "Ready, not cordoned, no untolerated taint")
    fixes = {"NotReady": f"kubectl describe node {name} (its kubelet, network or disk pressure)",
             "cordoned": f"kubectl uncordon {name} when its maintenance is over, or list it under nodes.exclude",
             "untolerated": "remove the taint (kubectl taint node ...-) or add a toleration under kubernetes.tolerations"}
    fix = "; ".join(text for word, text in fixes.items() if any(p.startswith(word) for p in problems))
    return Check("node schedulable", name, "fail", ", ".join(problems), fix)


def _device_plugin_check(name: str, labels: dict[str, str], dps: list[dict[str, Any]]) -> Check:
    if dps and all(_ready(p) for p in dps):
        return Check("device plugin", name, "pass", ", ".join(p["metadata"]["name"] for p in dps))
    if not dps:
        return Check("device plugin", name, "warn", "no RDMA shared or SR-IOV device plugin pod on this node",
                     "enable rdmaSharedDevicePlugin or sriovDevicePlugin in the NicClusterPolicy")
    bad = next(p for p in dps if not _ready(p))
    ns, pod = bad["metadata"]["namespace"], bad["metadata"]["name"]
    if (bad.get("status") or {}).get("phase") == "Pending":
        # A Pending pod has no logs: what holds it is its scheduling or its DaemonSet's node selector.
        if labels.get(MOFED_WAIT) != "false":
            return Check("device plugin", name, "fail", f"{pod} Pending: its DaemonSet runs only on nodes labelled "
                         f"{MOFED_WAIT}=false, this node has {MOFED_WAIT}={labels.get(MOFED_WAIT, '(unset)')}",
                         "get MOFED ready on this node first (see the MOFED ready check); the operator then "
                         "sets the label and the device plugin starts")
        return Check("device plugin", name, "fail", f"{pod} Pending",
                     f"kubectl describe pod -n {ns} {pod} (its events say why it is not scheduled or started)")
    return Check("device plugin", name, "fail", f"{pod} not Ready", f"kubectl logs -n {ns} {pod}")


def _node_checks(node: dict[str, Any], kernel: str, pods: _OperatorPods, resources: list[str],
                 sriov_resources: set[str], sriov: _Sriov) -> list[Check]:
    """One GPU node: MOFED, its device plugin, RDMA allocatable, a GPUDirect path."""
    name = node["metadata"]["name"]
    labels = node["metadata"].get("labels") or {}
    alloc = (node.get("status") or {}).get("allocatable") or {}
    out = [_mofed_check(name, labels, kernel, _on(pods.ofed, name))]
    out.append(_device_plugin_check(name, labels, _on(pods.device_plugins, name)))
    wanted = resources or sorted(k for k in alloc if k.startswith("rdma/") or "sriov" in k)
    if not wanted:
        out.append(Check("RDMA allocatable", name, "fail", "the node advertises no RDMA resource",
                         "MOFED not ready, or the device plugin's selectors (ifNames, deviceIDs, linkTypes) "
                         "match no NIC: check its config and logs"))
    for res in wanted:
        amount = quantity(alloc.get(res, 0))
        if amount > 0:
            out.append(Check("RDMA allocatable", name, "pass", f"{res}: {amount:g}"))
        elif res in sriov_resources and (sriov.policies or sriov.states):
            out.append(_sriov_check(node, res, sriov))
        else:
            out.append(Check("RDMA allocatable", name, "fail", f"{res}: 0 or missing",
                             "MOFED not ready (mofed.wait), device plugin not running, or its selector "
                             "(ifNames / deviceIDs / linkTypes, VF count) matches nothing on this node"))
    out.append(_gpudirect_check(name, kernel, [p for p in _on(pods.peermem, name) if _ready(p)]))
    return out


def _sriov_check(node: dict[str, Any], res: str, sriov: _Sriov) -> Check:
    """A VF resource the node does not advertise: which SR-IOV object is wrong (the policy's
    resourceName, nodeSelector or numVfs, or the node's SriovNetworkNodeState sync)."""
    name = node["metadata"]["name"]
    labels = node["metadata"].get("labels") or {}
    short = res.rpartition("/")[2]  # the policy names the resource without its prefix
    policies = [p for p in sriov.policies if (p.get("spec") or {}).get("resourceName") == short]

    def fail(detail: str, fix: str) -> Check:
        return Check("RDMA allocatable", name, "fail", f"{res}: 0 or missing; {detail}", fix)

    if not policies:
        known = sorted({str((p.get("spec") or {}).get("resourceName")) for p in sriov.policies})
        return fail(f"no SriovNetworkNodePolicy has resourceName {short}"
                    + (f" (policies name: {', '.join(known)})" if known else ""),
                    f"create a SriovNetworkNodePolicy with resourceName: {short}, or set the profile's resource "
                    "to one a policy names")
    mine = [p for p in policies if all(labels.get(k) == v for k, v in ((p.get("spec") or {}).get("nodeSelector")
                                                                       or {}).items())]
    if not mine:
        p = policies[0]
        return fail(f"SriovNetworkNodePolicy {p['metadata'].get('namespace')}/{p['metadata']['name']} selects "
                    f"nodes {(p.get('spec') or {}).get('nodeSelector')}, which this node does not match",
                    "label the node to match the policy's nodeSelector, or widen the selector")
    policy = mine[0]
    where = f"{policy['metadata'].get('namespace')}/{policy['metadata']['name']}"
    num_vfs = int((policy.get("spec") or {}).get("numVfs") or 0)
    if num_vfs < 1:
        return fail(f"SriovNetworkNodePolicy {where} has numVfs {num_vfs}",
                    f"set numVfs >= 1 in SriovNetworkNodePolicy {where} (kubectl edit sriovnetworknodepolicy -n "
                    f"{policy['metadata'].get('namespace')} {policy['metadata']['name']})")
    state = sriov.states.get(name)
    if state is None:
        return fail(f"no SriovNetworkNodeState for this node (policy {where} wants numVfs {num_vfs})",
                    "the sriov-network-config-daemon is not running on it: check its DaemonSet and the node's "
                    "feature.node.kubernetes.io/network-sriov.capable label")
    status = state.get("status") or {}
    sync = status.get("syncStatus") or "unknown"
    if sync != "Succeeded":
        err = status.get("lastSyncError")
        return fail(f"SriovNetworkNodeState {name} syncStatus {sync}" + (f": {err}" if err else ""),
                    f"kubectl logs -n {state['metadata'].get('namespace')} the sriov-network-config-daemon pod on "
                    f"{name}; a sync often needs a drain and reboot to finish")
    pfs = (policy.get("spec") or {}).get("nicSelector", {}).get("pfNames") or []
    have = [f"{i.get('name')}: {i.get('numVfs', 0)} VF(s)" for i in status.get("interfaces") or []
            if not pfs or any(str(i.get("name")) == pf.split("#")[0] for pf in pfs)]
    return fail(f"SriovNetworkNodeState {name} synced but the policy {where}'s NICs show "
                + (", ".join(have) if have else "no matching interface"),
                f"check the policy's nicSelector (pfNames {pfs or 'any'}) against the node's NICs, and the SR-IOV "
                "device plugin's logs")


def _mofed_check(name: str, labels: dict[str, str], kernel: str, pods: list[dict[str, Any]]) -> Check:
    wait = labels.get(MOFED_WAIT)
    if wait == "true" or (pods and not all(_ready(p) for p in pods)):
        pod = pods[0]["metadata"] if pods else None
        where = f"kubectl logs -n {pod['namespace']} {pod['name']}" if pod else "the OFED pod's logs"
        return Check("MOFED ready", name, "fail",
                     f"{MOFED_WAIT}={wait}" + (f", OFED pod {pods[0]['metadata']['name']} not Ready" if pods else ""),
                     f"{where} (kernel headers for {kernel}? driver build error?); device plugins "
                     "start only after MOFED is ready")
    if wait == "false" or pods:
        return Check("MOFED ready", name, "pass", f"{MOFED_WAIT}=false" if wait else "OFED pod Ready")
    return Check("MOFED ready", name, "warn", "no OFED pod and no mofed.wait label (host-installed driver?)",
                 "fine if the host has DOCA-OFED/MOFED; else enable ofedDriver in the NicClusterPolicy")


def _gpu_health_check(name: str, exporters: list[dict[str, Any]]) -> Check:
    """Whether the ranks on this node can record GPU health (benchfab.gpuhealth): a Ready
    DCGM exporter here (or dcgmi in the worker image, which only a run can see)."""
    ready = [p["metadata"]["name"] for p in exporters if _ready(p)]
    if ready:
        return Check("GPU health (DCGM)", name, "pass", f"DCGM exporter {ready[0]} Ready: GPU tests record XIDs, "
                     "row remapping and ECC per GPU")
    what = f"DCGM exporter {exporters[0]['metadata']['name']} not Ready" if exporters else "no DCGM exporter pod"
    return Check("GPU health (DCGM)", name, "warn", f"{what}: GPU health not checked here unless dcgmi is in the "
                 "worker image", "enable dcgmExporter in the GPU Operator (or install the dcgm-exporter chart)")


def _gpudirect_check(name: str, kernel: str, peer: list[dict[str, Any]]) -> Check:
    kv = _kernel(kernel)
    if peer:
        return Check("GPUDirect", name, "pass", "nvidia-peermem container Ready")
    if kv is not None and kv >= DMABUF_KERNEL:
        return Check("GPUDirect", name, "pass", f"kernel {kernel} supports DMA-BUF (needs the open GPU "
                     "kernel modules, CUDA >= 11.7)")
    return Check("GPUDirect", name, "fail", f"no nvidia-peermem and kernel {kernel or '?'} is older than "
                 "5.12 (no DMA-BUF): GPU traffic will bounce through host memory",
                 "enable driver.rdma in the GPU Operator ClusterPolicy (nvidia-peermem), or upgrade "
                 "the kernel to >= 5.12 with open GPU kernel modules")


def _nad_check(kube: Kube, pname: str, profile: Profile) -> Check:
    """The profile's network-attachment-definition exists and is tied to the profile's resource."""
    assert profile.network is not None
    ns, _, nad_name = profile.network.rpartition("/")
    ns = ns or kube.namespace
    nad = kube.get_custom("k8s.cni.cncf.io", "v1", "network-attachment-definitions", nad_name, namespace=ns)
    scope = f"profile {pname}"
    if nad is None:
        return Check("NAD", scope, "fail", f"network-attachment-definition {ns}/{nad_name} not found",
                     f"create it in namespace {ns} (MacvlanNetwork / HostDeviceNetwork / SriovNetwork CR) or "
                     "fix the profile's network")
    tied = (nad["metadata"].get("annotations") or {}).get(RESOURCE_ANN)
    if tied and profile.resource and tied != profile.resource:
        return Check("NAD", scope, "fail", f"{ns}/{nad_name} is tied to {tied}, the profile requests "
                     f"{profile.resource}", "make the profile's resource match the NAD's "
                     f"{RESOURCE_ANN} annotation")
    if not tied and profile.mode == "sriov":
        return Check("NAD", scope, "fail", f"{ns}/{nad_name} has no {RESOURCE_ANN} annotation: the VF and "
                     "the network cannot be matched", "render the NAD from a SriovNetwork / HostDeviceNetwork CR")
    if not tied:
        return Check("NAD", scope, "warn", f"{ns}/{nad_name} carries no {RESOURCE_ANN} (usual for macvlan "
                     "on the shared plugin)", "")
    return Check("NAD", scope, "pass", f"{ns}/{nad_name} -> {tied}")


def format_checks(rows: list[Check]) -> str:
    widths = [max(len(r.name) for r in rows + [Check("check", "", "", "")]),
              max(len(r.scope) for r in rows + [Check("", "scope", "", "")])]
    lines = [f"{'check':<{widths[0]}}  {'scope':<{widths[1]}}  {'status':<6}  detail"]
    for r in rows:
        lines.append(f"{r.name:<{widths[0]}}  {r.scope:<{widths[1]}}  {r.status.upper():<6}  {r.detail}")
        if r.fix and r.status != "pass":
            lines.append(f"{'':<{widths[0]}}  {'':<{widths[1]}}  {'':<6}  fix: {r.fix}")
    fails = sum(r.status == "fail" for r in rows)
    warns = sum(r.status == "warn" for r in rows)
    lines.append(f"# {len(rows)} checks: {len(rows) - fails - warns} pass, {warns} warn, {fails} fail")
    return "\n".join(lines) + "\n"


def run_preflight(spec: SweepSpec | None, options: ClusterOptions, out: TextIO, as_json: bool = False) -> int:
    kube = connect(options, spec.namespace if spec else None)
    rows = checks(kube, spec)
    if as_json:
        out.write(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    else:
        out.write(format_checks(rows))
    return 1 if any(r.status == "fail" for r in rows) else 0
