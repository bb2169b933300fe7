"""The cluster-wide lock on a run's nodes: a ``coordination.k8s.io/v1`` Lease per node set.

Two sweeps measuring the same nodes at once measure each other. Before its first pod, a
run takes the Lease named after its node set (``lease_name``: a hash of the sorted node
names) with ``holderIdentity`` = its run id (with the controller's host and pid), renews it every third of
``kubernetes.lock.duration`` while it runs and deletes it at the end. A controller that dies
stops renewing: once ``renewTime + leaseDurationSeconds`` has passed, the next run takes the
Lease over (a write conditioned on the resourceVersion it read: of two runs taking over at
once, one gets 409 and waits).

Two runs whose node sets differ but overlap hold different Leases, so each Lease also names
its nodes (annotation ``benchfab.io/nodes``) and carries the label ``benchfab.io/lock``.
After taking its own, a run lists the others: if an unexpired one shares a node, it gives
its own back and waits (with a random pause, so two waiting runs do not keep colliding).
Whichever of two overlapping runs lists last sees the other, so they never both go on.

``kubernetes.lock.mode``: ``wait`` (the default: progress on stderr, up to
``wait_timeout``), ``fail`` (at once, naming the holder) or ``off``. RBAC: leases get,
list, create, update, delete in the run's namespace (jobs/k8s/rbac.yaml).
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from ...errors import BackendError
from .api_errors import Forbidden
from .client import Kube
from .options import NodeLock

LABEL_LOCK = "benchfab.io/lock"
ANN_NODES = "benchfab.io/nodes"
POLL_S = 2.0  # how often a waiting run looks again (plus up to as much at random)


def lease_name(nodes: Iterable[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(set(nodes))).encode()).hexdigest()[:16]
    return f"benchfab-nodes-{digest}"


def micro_time(at: float | None = None) -> str:
    """Kubernetes' MicroTime (RFC 3339 with microseconds, UTC)."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(stamp: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def expired(lease: dict[str, Any], now: float | None = None) -> bool:
    """Its holder stopped renewing it (or it holds nothing): free to take over."""
    spec = lease.get("spec") or {}
    renewed = _seconds(spec.get("renewTime"))
    if not spec.get("holderIdentity") or renewed is None:
        return True
    return renewed + float(spec.get("leaseDurationSeconds") or 0) < (time.time() if now is None else now)


def describe(lease: dict[str, Any], now: float | None = None) -> str:
    spec = lease.get("spec") or {}
    renewed = _seconds(spec.get("renewTime"))
    age = f", renewed {max(0.0, (time.time() if now is None else now) - renewed):.0f} s ago" if renewed else ""
    return f"run {spec.get('holderIdentity') or '?'} (Lease {lease['metadata']['name']}{age})"


class LeaseLock:
    """The run's hold on its nodes; ``acquire`` before the first pod, ``release`` at the end."""

    def __init__(self, kube: Kube, options: NodeLock, run_id: str, nodes: Iterable[str],
                 note: Callable[[str], None] | None = None) -> None:
        from kubernetes import client

        self.kube, self.options, self.run_id = kube, options, run_id
        # The run id names the holder; host and pid keep two controllers that happen to use
        # the same run id (two results directories) from each taking the other's Lease for its own.
        self.identity = f"{run_id}@{socket.gethostname()}:{os.getpid()}"
        self.nodes = sorted(set(nodes))
        self.name = lease_name(self.nodes)
        self.api: Any = client.CoordinationV1Api(kube.api_client)
        self.note = note or (lambda line: print(f"benchfab: {line}", file=sys.stderr, flush=True))
        self.held: dict[str, Any] | None = None
        self.lost: str | None = None  # set when another run took the Lease while we held it
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- taking it --------------------------------------------------------------------------
    def acquire(self) -> None:
        if self.options.mode == "off" or not self.nodes:
            return
        started = time.monotonic()
        shown = ""
        while True:
            try:
                holder = self._try()
            except Forbidden as exc:  # e.g. an RBAC applied before the lock existed
                raise Forbidden(f"kubernetes.lock: {exc.message}", status=exc.status,
                                hint="the lock needs leases get, list, create, update and delete in the "
                                     "namespace: kubectl apply -f jobs/k8s/rbac.yaml (or set kubernetes.lock.mode: "
                                     "off, and keep other runs off these nodes yourself)") from None
            if holder is None:
                if shown:  # said nothing when there was no wait
                    self.note(f"lock: holds {len(self.nodes)} node(s) (Lease {self.name}) after waiting "
                              f"{time.monotonic() - started:.0f} s")
                self._renewer = threading.Thread(target=self._renew, name="benchfab-lease", daemon=True)
                self._renewer.start()
                return
            who = describe(holder)
            if self.options.mode == "fail":
                raise BackendError(f"the nodes are being measured by {who}; kubernetes.lock.mode is fail",
                                   hint="run again when it is done, or set kubernetes.lock.mode: wait")
            waited = time.monotonic() - started
            if self.options.wait_timeout is not None and waited >= self.options.wait_timeout:
                raise BackendError(f"the nodes were still held by {who} after {waited:.0f} s "
                                   f"(kubernetes.lock.wait_timeout)",
                                   hint="raise kubernetes.lock.wait_timeout, or run when that run is done")
            held_by = str((holder.get("spec") or {}).get("holderIdentity"))
            if held_by != shown:
                shown = held_by
                self.note(f"lock: waiting for {who} to release node(s) of this run")
            time.sleep(POLL_S + random.random() * POLL_S)

    def _try(self) -> dict[str, Any] | None:
        """Take our Lease; None when we hold it and no overlapping one is live, else the holder."""
        ns = self.kube.namespace
        current = self.kube.call(f"get lease {self.name}", self.api.read_namespaced_lease, self.name, ns,
                                 ok_missing=True)
        if current is None:
            got = self.kube.call(f"create lease {self.name}", self.api.create_namespaced_lease, ns, self._body(None),
                                 ok_conflict=True)
        elif (current.get("spec") or {}).get("holderIdentity") == self.identity or expired(current):
            got = self.kube.call(f"take over lease {self.name}", self.api.replace_namespaced_lease, self.name, ns,
                                 self._body(current), ok_conflict=True)
        else:
            return dict(current)
        if got is None:
            # 409: another run wrote it between our read and our write, or our own write was
            # applied and its answer lost (the retry then conflicts with it): read whose it is.
            got = self._read_if_ours()
            if got is None:
                again = self.kube.call(f"get lease {self.name}", self.api.read_namespaced_lease, self.name, ns,
                                       ok_missing=True)
                return dict(again) if again is not None else {"metadata": {"name": self.name}, "spec": {}}
        self.held = dict(got)
        for other in self._overlapping():
            self._give_back()
            return other
        return None

    def _read_if_ours(self) -> dict[str, Any] | None:
        current = self.kube.call(f"get lease {self.name}", self.api.read_namespaced_lease, self.name,
                                 self.kube.namespace, ok_missing=True)
        if current is not None and (current.get("spec") or {}).get("holderIdentity") == self.identity:
            return dict(current)
        return None

    def _overlapping(self) -> list[dict[str, Any]]:
        listed = self.kube.call("list leases", self.api.list_namespaced_lease, self.kube.namespace,
                                label_selector=LABEL_LOCK)
        mine = set(self.nodes)
        return [dict(lease) for lease in listed.get("items") or []
                if lease["metadata"]["name"] != self.name and not expired(lease)
                and mine & set(str((lease["metadata"].get("annotations") or {}).get(ANN_NODES, "")).split(","))]

    def _body(self, current: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time()
        meta: dict[str, Any] = {"name": self.name, "namespace": self.kube.namespace, "labels": {LABEL_LOCK: "true"},
                                "annotations": {ANN_NODES: ",".join(self.nodes)}}
        spec: dict[str, Any] = {"holderIdentity": self.identity,
                                "leaseDurationSeconds": int(self.options.duration),
                                "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        if current is not None:
            meta["resourceVersion"] = current["metadata"].get("resourceVersion")
            old = current.get("spec") or {}
            if old.get("holderIdentity") == self.identity:
                spec["acquireTime"] = old.get("acquireTime") or now
            else:
                spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    # -- holding it -------------------------------------------------------------------------
    def _renew(self) -> None:
        while not self._stop.wait(self.options.duration / 3):
            held = self.held
            if held is None:
                return
            body = {**held, "spec": {**held["spec"], "renewTime": micro_time()}}
            try:
                got = self.kube.call(f"renew lease {self.name}", self.api.replace_namespaced_lease, self.name,
                                     self.kube.namespace, body, ok_conflict=True, ok_missing=True)
            except BackendError as exc:  # the API server is away: try again next time, while the Lease lasts
                self.note(f"lock: could not renew Lease {self.name}: {exc.message}")
                continue
            if got is None:
                got = self._read_if_ours()  # our renewal applied, its answer lost: still ours
            if got is None:
                self.lost = f"Lease {self.name} was taken or removed by another run while this run held it"
                self.note(f"lock: {self.lost}")
                self.held = None
                return
            self.held = dict(got)

    def release(self) -> None:
        """Give the Lease back; never raises: one that cannot be deleted expires after its duration."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        try:
            self._give_back()
        except BackendError as exc:
            self.note(f"lock: could not delete Lease {self.name} ({exc.message}); it expires "
                      f"{self.options.duration:.0f} s after its last renewal")

    def _give_back(self) -> None:
        if self.held is None:
            return
        self.held = None
        current = self.kube.call(f"get lease {self.name}", self.api.read_namespaced_lease, self.name,
                                 self.kube.namespace, ok_missing=True)
        if current is not None and (current.get("spec") or {}).get("holderIdentity") == self.identity:
            self.kube.call(f"delete lease {self.name}", self.api.delete_namespaced_lease, self.name,
                           self.kube.namespace, ok_missing=True)
