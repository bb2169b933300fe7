"""What the fake API server serves, apart from HTTP: the resource types it knows (their kinds,
which are namespaced, which are custom resources served only while their CRD is installed, the
field selectors each accepts), and the documents it answers with besides the objects: a
Status, discovery (as kubectl asks for it), and the pod table of ``kubectl get pods``.
"""

from __future__ import annotations

import re
from typing import Any

KINDS = {"pods": "Pod", "nodes": "Node", "services": "Service", "events": "Event", "namespaces": "Namespace",
         "network-attachment-definitions": "NetworkAttachmentDefinition", "nicclusterpolicies": "NicClusterPolicy",
         "configmaps": "ConfigMap", "serviceaccounts": "ServiceAccount", "roles": "Role", "rolebindings": "RoleBinding",
         "clusterroles": "ClusterRole", "clusterrolebindings": "ClusterRoleBinding", "networkpolicies": "NetworkPolicy",
         "leases": "Lease"}
NAMESPACED = {"pods", "services", "events", "network-attachment-definitions", "configmaps", "serviceaccounts", "roles",
              "rolebindings", "networkpolicies", "sriovnetworknodepolicies", "sriovnetworknodestates", "leases"}
# Custom resources: served only while their CRD is installed (FakeCluster.crds), else 404 as
# kube-apiserver answers for a resource type it does not know.
CUSTOM = {"network-attachment-definitions": "k8s.cni.cncf.io", "nicclusterpolicies": "mellanox.com",
          "sriovnetworknodepolicies": "sriovnetwork.openshift.io", "sriovnetworknodestates": "sriovnetwork.openshift.io"}
KINDS.update({"sriovnetworknodepolicies": "SriovNetworkNodePolicy", "sriovnetworknodestates": "SriovNetworkNodeState"})
# The field selectors kube-apiserver accepts per resource (every resource: metadata.name and
# metadata.namespace); anything else is 400 "field label not supported".
FIELD_LABELS = {
    "pods": {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
             "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"},
    "events": {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
               "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
               "reason", "reportingComponent", "source", "type"},
    "nodes": {"spec.unschedulable"},
}


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Status answer, as kube-apiserver sends it with an error code."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def pod_status(pod: dict[str, Any]) -> str:
    """The STATUS column of ``kubectl get pods``: a waiting or terminated container's reason, else the phase."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        reason = (state.get("waiting") or {}).get("reason") or (state.get("terminated") or {}).get("reason")
        if reason:
            return str(reason)
    return str(status.get("phase") or "Pending")


def pod_table(pods: list[dict[str, Any]], rv: str) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of pods (server-side printing, as kubectl asks for it)."""
    columns = [("Name", "string", "name"), ("Ready", "string", ""), ("Status", "string", ""),
               ("Restarts", "integer", ""), ("Node", "string", "")]
    rows = []
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ready = f"{sum(1 for c in statuses if c.get('ready'))}/{len((pod.get('spec') or {}).get('containers') or [])}"
        rows.append({"cells": [pod["metadata"]["name"], ready, pod_status(pod), 0,
                               (pod.get("spec") or {}).get("nodeName") or "<none>"],
                     "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": pod["metadata"]}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": [{"name": n, "type": t, "format": f, "description": "", "priority": 0}
                                  for n, t, f in columns], "rows": rows}


def unsupported_field(plural: str, selector: str | None) -> str | None:
    """The first field of ``selector`` kube-apiserver would refuse for this resource, or None."""
    for term in (selector or "").split(","):
        field = re.split(r"!=|==|=", term, maxsplit=1)[0].strip()
        if field and field not in {"metadata.name", "metadata.namespace", *FIELD_LABELS.get(plural, ())}:
            return field
    return None


# Discovery, as kubectl asks for it before it reads or writes anything.
_CORE = [("pods", "Pod", True), ("services", "Service", True), ("events", "Event", True),
         ("namespaces", "Namespace", False), ("nodes", "Node", False), ("configmaps", "ConfigMap", True),
         ("serviceaccounts", "ServiceAccount", True)]
_GROUPS: dict[str, list[tuple[str, str, bool]]] = {
    "rbac.authorization.k8s.io": [("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                                  ("clusterroles", "ClusterRole", False),
                                  ("clusterrolebindings", "ClusterRoleBinding", False)],
    "networking.k8s.io": [("networkpolicies", "NetworkPolicy", True)],  # stored, not enforced (every pod is on this host)
}


def discovery(parts: list[str], crds: set[str]) -> dict[str, Any] | None:
    """The /api, /api/v1, /apis and /apis/GROUP/VERSION documents (None: not a discovery path)."""
    groups = dict(_GROUPS)
    for plural, group in CUSTOM.items():
        if plural in crds:
            groups.setdefault(group, []).append((plural, KINDS[plural], plural in NAMESPACED))

    def resources(version: str, items: list[tuple[str, str, bool]]) -> dict[str, Any]:
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": version,
                "resources": [{"name": p, "singularName": "", "namespaced": ns, "kind": k, "verbs": verbs}
                              for p, k, ns in items]}

    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if parts == ["api", "v1"]:
        return resources("v1", _CORE)
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/{_version(g)}", "version": _version(g)}],
             "preferredVersion": {"groupVersion": f"{g}/{_version(g)}", "version": _version(g)}}
            for g in sorted(groups)]}
    if len(parts) == 3 and parts[0] == "apis" and parts[1] in groups and parts[2] == _version(parts[1]):
        return resources(f"{parts[1]}/{parts[2]}", groups[parts[1]])
    return None


def _version(group: str) -> str:
    return "v1alpha1" if group == "mellanox.com" else "v1"
