"""The object store: what etcd holds for kube-apiserver, with resourceVersions and watch history."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from typing import Any


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self.rv = 100
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []  # (rv, type, plural, obj)
        self.oldest = 0  # watches from before this version get 410

    def _bump(self, kind: str, plural: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.history.append((self.rv, kind, plural, copy.deepcopy(obj)))
        self.cond.notify_all()

    def put(self, plural: str, obj: dict[str, Any], event: str = "ADDED") -> dict[str, Any]:
        with self.lock:
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            key = (plural, meta.get("namespace", ""), meta["name"])
            self.objects[key] = obj
            self._bump(event, plural, obj)
            return copy.deepcopy(obj)

    def update(self, plural: str, ns: str, name: str, fn: Any) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((plural, ns, name))
            if obj is None:
                return None
            new = fn(copy.deepcopy(obj))
            if new is None:
                return None
            self.objects[(plural, ns, name)] = new
            self._bump("MODIFIED", plural, new)
            return copy.deepcopy(new)

    def remove(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.pop((plural, ns, name), None)
            if obj is not None:
                self._bump("DELETED", plural, obj)
            return obj

    def get(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((plural, ns, name))
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, plural: str, ns: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for (p, n, _), o in sorted(self.objects.items())
                    if p == plural and (ns is None or n == ns)]

    def compact(self, before: int | None = None) -> None:
        """Like an etcd compaction: versions older than ``before`` can no longer be watched
        from; by default every version handed out so far, the latest included."""
        with self.lock:
            self.oldest = self.rv + 1 if before is None else before
            self.history = [e for e in self.history if e[0] >= self.oldest]
            self.cond.notify_all()

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str, source: str) -> None:
        """Record a core/v1 Event about ``obj`` (as the scheduler and kubelet do)."""
        ns = obj["metadata"].get("namespace", "default")
        self.put("events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{obj['metadata']['name']}.{uuid.uuid4().hex[:10]}", "namespace": ns},
            "involvedObject": {"kind": obj.get("kind", "Pod"), "name": obj["metadata"]["name"], "namespace": ns},
            "type": type_, "reason": reason, "message": message, "source": {"component": source},
            "firstTimestamp": now_iso(), "lastTimestamp": now_iso(), "count": 1,
        })
