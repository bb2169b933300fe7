"""The scheduler: binds pending pods to nodes, or says why it cannot.

A pod fits a node that is Ready, not cordoned, matches the nodeSelector, whose taints the
pod tolerates and that has the requested extended resources left (allocatable minus the
requests of bound, unfinished pods); otherwise the pod gets a FailedScheduling event in
kube-scheduler's wording.
"""

from __future__ import annotations

from typing import Any

from .patch import merge_patch
from .store import Store


def quantity(value: Any) -> float:
    text = str(value)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


class Scheduler:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.sched_messages: dict[tuple[str, str], str] = {}

    def _used(self, node: str) -> dict[str, float]:
        used: dict[str, float] = {}
        for p in self.store.list("pods"):
            if p["spec"].get("nodeName") != node or p.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for c in p["spec"].get("containers", []):
                for k, v in ((c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits") or {}).items():
                    used[k] = used.get(k, 0.0) + quantity(v)
        return used

    def schedule(self) -> None:
        # A pod with schedulingGates waits for whoever put them there (Kueue) to remove them.
        pending = [p for p in self.store.list("pods") if not p["spec"].get("nodeName")
                   and not p["metadata"].get("deletionTimestamp") and not p["spec"].get("schedulingGates")]
        if not pending:
            return
        nodes = self.store.list("nodes")
        for pod in pending:
            reasons: dict[str, int] = {}
            chosen = None
            want: dict[str, float] = {}
            for c in pod["spec"].get("containers", []):
                res = c.get("resources") or {}
                for k, v in (res.get("requests") or res.get("limits") or {}).items():
                    want[k] = want.get(k, 0.0) + quantity(v)
            tolerations = pod["spec"].get("tolerations") or []
            for node in nodes:
                why = self._unfit(pod, node, want, tolerations)
                if why is None:
                    chosen = node["metadata"]["name"]
                    break
                reasons[why] = reasons.get(why, 0) + 1
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            if chosen:
                def bind(o: dict[str, Any], node_name: str = chosen) -> dict[str, Any]:
                    o["spec"]["nodeName"] = node_name
                    o.setdefault("status", {})["conditions"] = [{"type": "PodScheduled", "status": "True"}]
                    return o

                self.store.update("pods", ns, name, bind)
                continue
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            message = f"0/{len(nodes)} nodes are available: {detail}. preemption: not eligible due to preemptionPolicy=Never."
            if self.sched_messages.get((ns, name)) != message:
                self.sched_messages[(ns, name)] = message
                self.store.update("pods", ns, name, lambda o, message=message: merge_patch(o, {"status": {"conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}}))
                self.store.event(pod, "Warning", "FailedScheduling", message, "default-scheduler")

    def _unfit(self, pod: dict[str, Any], node: dict[str, Any], want: dict[str, float],
               tolerations: list[dict[str, Any]]) -> str | None:
        labels = node["metadata"].get("labels") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
        if not ready:
            return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        if node["spec"].get("unschedulable"):
            return "node(s) were unschedulable"
        for k, v in (pod["spec"].get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return "node(s) didn't match Pod's node affinity/selector"
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not any(t.get("operator") == "Exists" and t.get("key") in (None, taint["key"])
                       or (t.get("key") == taint["key"] and t.get("value") == taint.get("value")) for t in tolerations):
                return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
        alloc = node["status"].get("allocatable") or {}
        used = self._used(node["metadata"]["name"])
        for res, amount in sorted(want.items()):
            if quantity(alloc.get(res, 0)) - used.get(res, 0.0) < amount:
                return f"Insufficient {res}"
        return None
