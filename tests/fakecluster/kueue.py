"""A tiny Kueue for the fake cluster: its plain-pod groups, admitted whole or not at all.

Kueue's pod integration gates each pod labelled ``kueue.x-k8s.io/queue-name`` (the
``kueue.x-k8s.io/admission`` scheduling gate) and admits a pod group, named by the label
``kueue.x-k8s.io/pod-group-name`` and sized by the annotation
``kueue.x-k8s.io/pod-group-total-count``, once all of its pods exist and the queue's quota
(here: a number of pods running at once) holds all of them; admitting removes the gate
from every pod of the group, and the scheduler (scheduler.py skips gated pods) binds them.
A group's quota is freed when its pods are gone or finished.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .store import Store

QUEUE = "kueue.x-k8s.io/queue-name"
GROUP = "kueue.x-k8s.io/pod-group-name"
TOTAL = "kueue.x-k8s.io/pod-group-total-count"
GATE = "kueue.x-k8s.io/admission"


class FakeKueue:
    def __init__(self, store: Store, quota_pods: int) -> None:
        self.store, self.quota_pods = store, quota_pods
        self.admitted: list[tuple[str, int]] = []  # (group, pods) in the order admitted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> FakeKueue:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self.reconcile()

    def reconcile(self) -> None:
        pods = [p for p in self.store.list("pods") if QUEUE in (p["metadata"].get("labels") or {})
                and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        groups: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            groups.setdefault(pod["metadata"]["labels"].get(GROUP, pod["metadata"]["name"]), []).append(pod)
        in_use = sum(len(g) for g in groups.values() if not any(_gated(p) for p in g))
        for name, members in sorted(groups.items()):
            if not all(_gated(p) for p in members):
                continue
            total = int((members[0]["metadata"].get("annotations") or {}).get(TOTAL, "1"))
            if len(members) < total or in_use + total > self.quota_pods:
                continue  # not all of the group exists yet, or the quota cannot hold it all
            for pod in members:
                self.store.update("pods", pod["metadata"]["namespace"], pod["metadata"]["name"], _ungate)
            in_use += total
            self.admitted.append((name, total))


def _gated(pod: dict[str, Any]) -> bool:
    return any(g.get("name") == GATE for g in pod["spec"].get("schedulingGates") or [])


def _ungate(pod: dict[str, Any]) -> dict[str, Any]:
    gates = [g for g in pod["spec"].get("schedulingGates") or [] if g.get("name") != GATE]
    if gates:
        pod["spec"]["schedulingGates"] = gates
    else:
        pod["spec"].pop("schedulingGates", None)
    pod.setdefault("metadata", {}).setdefault("annotations", {})["fake-kueue/admitted-at"] = f"{time.time():.3f}"
    return pod
