"""``benchfab preflight``: the NVIDIA Network Operator checklist, automated.

Each check gives pass / warn / fail, what it saw and, for every failure, the
fix. The operator's namespace is discovered from its pods' labels (it is
``nvidia-network-operator`` on new installs, ``network-operator`` on older
ones), never assumed. Exit code 1 if anything failed.

Checks: NicClusterPolicy ``nic-cluster-policy`` state; per GPU node: MOFED
ready (label and OFED pod), RDMA device plugin pod, RDMA allocatable > 0 for
each profile's resource, a GPUDirect path (nvidia-peermem container Ready, or
a kernel new enough for DMA-BUF); the profiles' NADs exist and are tied to
their resource; kernel versions agree across nodes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from ...spec import Profile, SweepSpec
from .client import ClusterOptions, Kube, connect
from .inventory import MOFED_WAIT, quantity

OFED_LABEL = "nvidia.com/ofed-driver"
SHARED_DP_LABEL = "app=rdma-shared-dp"
SRIOV_DP_LABELS = ("app=sriovdp", "app=sriov-device-plugin")
OPERATOR_LABEL = "app.kubernetes.io/name=network-operator"
RESOURCE_ANN = "k8s.v1.cni.cncf.io/resourceName"
DMABUF_KERNEL = (5, 12)


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


def checks(kube: Kube, spec: SweepSpec | None) -> list[Check]:
    gpu_res = spec.kubernetes.gpu_resource if spec else "nvidia.com/gpu"
    profiles = spec.resolved_profiles() if spec else {}
    resources = sorted({p.resource for p in profiles.values() if p.resource})
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
    for node in gpu_nodes:
        kernel = (node.get("status") or {}).get("nodeInfo", {}).get("kernelVersion", "")
        kernels.setdefault(kernel, []).append(node["metadata"]["name"])
        out += _node_checks(node, kernel, pods, resources)
    if len(kernels) > 1:
        out.append(Check("kernel versions", "cluster", "warn",
                         "; ".join(f"{k or '?'} on {len(v)} node(s)" for k, v in sorted(kernels.items())),
                         "mixed kernels need one MOFED build per kernel; results may differ by kernel"))
    elif kernels:
        out.append(Check("kernel versions", "cluster", "pass", next(iter(kernels)) or "?"))
    for pname, profile in profiles.items():
        if profile.network:
            out.append(_nad_check(kube, pname, profile))
    return out


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


def _node_checks(node: dict[str, Any], kernel: str, pods: _OperatorPods, resources: list[str]) -> list[Check]:
    """One GPU node: MOFED, its device plugin, RDMA allocatable, a GPUDirect path."""
    name = node["metadata"]["name"]
    alloc = (node.get("status") or {}).get("allocatable") or {}
    out = [_mofed_check(name, node["metadata"].get("labels") or {}, kernel, _on(pods.ofed, name))]
    dps = _on(pods.device_plugins, name)
    if dps and all(_ready(p) for p in dps):
        out.append(Check("device plugin", name, "pass", ", ".join(p["metadata"]["name"] for p in dps)))
    elif dps:
        out.append(Check("device plugin", name, "fail", f"{dps[0]['metadata']['name']} not Ready",
                         f"kubectl logs -n {dps[0]['metadata']['namespace']} {dps[0]['metadata']['name']}"))
    else:
        out.append(Check("device plugin", name, "warn", "no RDMA shared or SR-IOV device plugin pod on this node",
                         "enable rdmaSharedDevicePlugin or sriovDevicePlugin in the NicClusterPolicy"))
    wanted = resources or sorted(k for k in alloc if k.startswith("rdma/") or "sriov" in k)
    if not wanted:
        out.append(Check("RDMA allocatable", name, "fail", "the node advertises no RDMA resource",
                         "MOFED not ready, or the device plugin's selectors (ifNames, deviceIDs, linkTypes) "
                         "match no NIC: check its config and logs"))
    for res in wanted:
        amount = quantity(alloc.get(res, 0))
        if amount > 0:
            out.append(Check("RDMA allocatable", name, "pass", f"{res}: {amount:g}"))
        else:
            out.append(Check("RDMA allocatable", name, "fail", f"{res}: 0 or missing",
                             "MOFED not ready (mofed.wait), device plugin not running, or its selector "
                             "(ifNames / deviceIDs / linkTypes, VF count) matches nothing on this node"))
    out.append(_gpudirect_check(name, kernel, [p for p in _on(pods.peermem, name) if _ready(p)]))
    return out


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
