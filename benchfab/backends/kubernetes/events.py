"""Why is a pod not running? One line from its status and events, with the fix.

Reads what the scheduler and kubelet wrote (FailedScheduling, FailedCreatePodSandBox,
image pull errors) and names the cause in Network Operator terms. Pure function.
"""

from __future__ import annotations

import re
from typing import Any

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Insufficient (rdma/\S+|nvidia\.com/(?!gpu)\S+|openshift\.io/\S+|intel\.com/\S+)"),
     "no free {0} on the node: its RDMA device plugin is not advertising it (MOFED not ready, ifNames/"
     "selector mismatch) or other pods hold every unit (fix: run benchfab preflight; check the node's "
     "allocatable and the device plugin pod)"),
    (re.compile(r"Insufficient (nvidia\.com/gpu)"),
     "no free GPU on the node: other pods hold them or the GPU Operator's device plugin is down "
     "(fix: kubectl describe node; free GPUs or exclude the node)"),
    (re.compile(r"Insufficient (\S+)"),
     "not enough {0} left on the node (fix: lower kubernetes.cpu/memory or free the node)"),
    (re.compile(r"untolerated taint \{([^}]*)\}"),
     "the node is tainted {{{0}}} (fix: add a toleration under kubernetes.tolerations, or exclude the node)"),
    (re.compile(r"were unschedulable"),
     "the node is cordoned (fix: kubectl uncordon, or exclude it under nodes.exclude)"),
    (re.compile(r"didn't match Pod's node affinity/selector"),
     "no node carries the pod's hostname label any more (fix: the node is gone or relabelled; re-run to re-plan)"),
    (re.compile(r"cannot find a network-attachment-definition \(([^)]*)\) in namespace \(([^)]*)\)"),
     "the NetworkAttachmentDefinition {0} does not exist in namespace {1} (fix: create it, or set the "
     "profile's network to an existing NAD: kubectl get net-attach-def -A)"),
    (re.compile(r"failed to lookup master \"?([^\":]+)"),
     "the NAD's master interface {0} does not exist on the node (fix: correct 'master' in the NAD)"),
    (re.compile(r"(ErrImagePull|ImagePullBackOff|InvalidImageName)"),
     "the worker image cannot be pulled ({0}) (fix: check the spec's image and imagePullSecrets)"),
]


def explain(pod: dict[str, Any] | None, events: list[dict[str, Any]]) -> str:
    """A one-line reason a pod is not Running (falls back to its phase)."""
    messages = [str(e.get("message", "")) for e in sorted(events, key=lambda e: str(e.get("lastTimestamp") or ""))
                if e.get("type") == "Warning" or e.get("reason") in ("FailedScheduling", "FailedCreatePodSandBox")]
    status = (pod or {}).get("status") or {}
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            messages.append(f"{waiting['reason']}: {waiting.get('message', '')}")
    for cond in status.get("conditions") or []:
        if cond.get("reason") == "Unschedulable" and cond.get("message"):
            messages.append(str(cond["message"]))
    for message in reversed(messages):  # newest first
        for pattern, text in _RULES:
            m = pattern.search(message)
            if m:
                return text.format(*m.groups())
    if messages:
        return messages[-1].splitlines()[0][:300]
    phase = status.get("phase") or "unknown"
    if pod is None:
        return "the pod was deleted"
    return f"pod is {phase} with no event explaining why (fix: kubectl describe pod {pod['metadata']['name']})"
