"""FakeCluster: the API server, store, scheduler and kubelet wired together, with the
seeding and fault-injection calls the tests use."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from .apiserver import APIServer, Handler
from .faults import Fault
from .kubelet import STATIC, Kubelet
from .patch import merge_patch
from .rbac import ADMIN_TOKEN, Users
from .resources import KINDS, NAMESPACED
from .scheduler import Scheduler
from .selectors import match_labels
from .store import Store


class FakeCluster:
    started = 0  # clusters started in this process, all instances together

    def __init__(self, workdir: Path | None = None, host: str = "127.0.0.1") -> None:
        self.store = Store()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fakek8s-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.identities: list[tuple[str, str, str]] = []  # (user, method, path) of each authenticated request
        self.denied: list[tuple[str, str]] = []  # (user, the 403 message) of each request RBAC refused
        self.created: list[tuple[str, str]] = []  # every object the API created, in order
        self.written: list[tuple[str, dict[str, Any]]] = []  # every body created or replaced, in order
        # Each watch event waits a random time in this range before it is sent (seconds).
        self.watch_delay_s: tuple[float, float] = (0.0, 0.0)
        # A watch that asked for bookmarks gets one after this long without an event (seconds).
        self.bookmark_interval_s = 1.0
        # Custom resources whose CRD is installed (others answer 404); put_custom installs one.
        self.crds: set[str] = {"network-attachment-definitions", "nicclusterpolicies"}
        self.stopping = False
        # host: where the API server listens (the netns simulation's gateway, for its pods).
        self.host = host
        self.server = APIServer((host, 0), Handler)
        self.server.cluster = self
        self._insecure: APIServer | None = None  # made by insecure_kubeconfig
        self.url = f"http://{host}:{self.server.server_address[1]}"
        # Who each bearer token is: the kubeconfig's user is a cluster-admin, service
        # accounts get their own tokens (token_for) and only what RBAC grants them.
        self.users = Users()
        self.kubeconfig = self.workdir / "kubeconfig"
        self._write_kubeconfig(self.kubeconfig, ADMIN_TOKEN, "bench")
        self.scheduler = Scheduler(self.store)
        self.kubelet = Kubelet(self.store, self.workdir, self.pod_kubeconfig, self.server.server_address[1])
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-apiserver"),
                         threading.Thread(target=self._loop, daemon=True, name="fake-scheduler-kubelet")]
        self.store.put("namespaces", {"metadata": {"name": "default"}})

    # The kubelet's settings, set by tests before start().
    @property
    def extra_pod_env(self) -> dict[str, str]:
        return self.kubelet.extra_pod_env

    @extra_pod_env.setter
    def extra_pod_env(self, env: dict[str, str]) -> None:
        self.kubelet.extra_pod_env = env

    @property
    def secondary_ip(self) -> str | None:
        return self.kubelet.secondary_ip

    @secondary_ip.setter
    def secondary_ip(self, ip: str | None) -> None:
        self.kubelet.secondary_ip = ip

    @property
    def procs(self) -> dict[tuple[str, str], Any]:
        return self.kubelet.procs

    def _write_kubeconfig(self, path: Path, token: str | None, namespace: str, server: str | None = None) -> Path:
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": server or self.url}}],
            "users": [{"name": "fake", "user": {"token": token} if token is not None else {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}},
                         {"name": "other", "context": {"cluster": "fake", "user": "fake", "namespace": "elsewhere"}}],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        # Whole or not at all: a pod's process may be reading it while the next pod starts.
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}")
        tmp.write_text(yaml.safe_dump(cfg))
        os.replace(tmp, path)
        return path

    # -- identities -----------------------------------------------------------------------
    def token_for(self, namespace: str, service_account: str) -> str:
        """The bearer token of the service account (user system:serviceaccount:NS:NAME)."""
        return self.users.service_account_token(namespace, service_account)

    def kubeconfig_for(self, namespace: str, service_account: str, path: Path | None = None) -> Path:
        """A kubeconfig that authenticates as the service account (its namespace as the context's)."""
        path = path or self.workdir / "kubeconfigs" / f"{namespace}_{service_account}"
        return self._write_kubeconfig(path, self.token_for(namespace, service_account), namespace)

    def insecure_kubeconfig(self) -> Path:
        """A kubeconfig for kubectl. client-go sends credentials only over TLS and this server
        speaks plain HTTP, so kubectl talks to a second port where a request without
        credentials is the cluster-admin, like kube-apiserver's localhost --insecure-port
        (no authentication or authorization; removed in Kubernetes 1.20). A wrong token is
        still 401 there."""
        if self._insecure is None:
            server = APIServer((self.host, 0), Handler)
            server.cluster, server.insecure = self, True
            threading.Thread(target=server.serve_forever, daemon=True, name="fake-apiserver-insecure").start()
            self._insecure = server
        return self._write_kubeconfig(self.workdir / "kubeconfig-insecure", None, "bench",
                                      f"http://{self.host}:{self._insecure.server_address[1]}")

    def pod_kubeconfig(self, namespace: str, service_account: str | None) -> Path:
        """What a pod's container gets instead of a mounted token: its service account's
        kubeconfig, or (automountServiceAccountToken: false) one without credentials."""
        if service_account is None:
            return self._write_kubeconfig(self.workdir / "kubeconfigs" / f"{namespace}__no-token", None, namespace)
        return self.kubeconfig_for(namespace, service_account)

    def apply(self, docs: list[dict[str, Any]]) -> None:
        """Put manifests (Namespaces, ServiceAccounts, Roles, bindings, ...) straight into the
        store, as ``kubectl apply`` by an admin would."""
        plurals = {kind: plural for plural, kind in KINDS.items()}
        for doc in docs:
            plural = plurals[doc["kind"]]
            if plural not in NAMESPACED:
                doc["metadata"].pop("namespace", None)
            self.store.put(plural, doc)

    def start(self) -> FakeCluster:
        FakeCluster.started += 1  # tests/conftest.py: a test that starts one must be marked k8s
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        with self.store.lock:
            self.store.cond.notify_all()
        self.kubelet.stop()
        for server in (self.server, self._insecure):
            if server is not None:
                server.shutdown()
                server.server_close()

    # -- seeding ------------------------------------------------------------------------
    def add_node(self, name: str, *, labels: dict[str, str] | None = None, allocatable: dict[str, Any] | None = None,
                 ready: bool = True, unschedulable: bool = False, taints: list[dict[str, str]] | None = None,
                 kernel: str = "6.8.0-45-generic", address: str = "127.0.0.1") -> None:
        alloc = {"cpu": "64", "memory": "512Gi", "pods": "110", **{k: str(v) for k, v in (allocatable or {}).items()}}
        self.store.put("nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"unschedulable": unschedulable, "taints": taints or []},
            "status": {"capacity": dict(alloc), "allocatable": dict(alloc),
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "nodeInfo": {"kernelVersion": kernel, "osImage": "Ubuntu 24.04", "kubeletVersion": "v1.33.0"},
                       "addresses": [{"type": "InternalIP", "address": address}]},
        })

    def patch_node(self, name: str, patch: dict[str, Any]) -> None:
        self.store.update("nodes", "", name, lambda o: merge_patch(o, patch))

    def add_nad(self, namespace: str, name: str, resource: str | None, cni: str = "macvlan") -> None:
        ann = {"k8s.v1.cni.cncf.io/resourceName": resource} if resource else {}
        self.store.put("network-attachment-definitions", {
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace, "annotations": ann},
            "spec": {"config": json.dumps({"cniVersion": "0.3.1", "type": cni, "ipam": {"type": "nv-ipam"}})},
        })

    def add_static_pod(self, namespace: str, name: str, node: str, labels: dict[str, str], ready: bool = True,
                       containers: list[str] | None = None, requests: dict[str, str] | None = None) -> None:
        self.store.put("pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": {STATIC: "true"}},
            "spec": {"nodeName": node, "containers": [{"name": c, "image": "x", "resources": {"requests": requests or {}}}
                                                      for c in (containers or ["main"])]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": c, "ready": ready} for c in (containers or ["main"])]},
        })

    def put_custom(self, plural: str, obj: dict[str, Any]) -> None:
        self.crds.add(plural)
        self.store.put(plural, obj)

    def inject(self, method: str, path: str, action: int | str, times: int = 1, retry_after: float | None = None,
               delay_s: float = 0.0, after: int = 0) -> Fault:
        """Misbehave on matching requests ``times`` times: see ``Fault`` for the actions."""
        f = Fault(method, path, action, times, retry_after, delay_s, after)
        self.faults.append(f)
        return f

    # -- the kubelet's image pulls and container creation -----------------------------------
    def fail_pulls(self, image: str, message: str = "manifest unknown") -> None:
        """Pulling ``image`` fails on every node: its pods stay Pending, ErrImagePull then ImagePullBackOff."""
        self.kubelet.pull_failures[image] = message

    @property
    def create_delay_s(self) -> float:
        return self.kubelet.create_delay_s

    @create_delay_s.setter
    def create_delay_s(self, seconds: float) -> None:
        self.kubelet.create_delay_s = seconds

    def compact(self, before: int | None = None) -> None:
        self.store.compact(before)

    # -- deletion -----------------------------------------------------------------------
    def delete(self, plural: str, ns: str, name: str, grace_s: int | None = None) -> dict[str, Any] | None:
        if plural != "pods":
            return self.store.remove(plural, ns, name)
        return self.kubelet.delete_pod(ns, name, grace_s)

    # -- the kubelet's processes ----------------------------------------------------------
    def kill_pod_process(self, ns: str, name: str) -> None:
        """Simulate a container crash (OOM kill, node trouble): SIGKILL its processes."""
        self.kubelet.kill_pod_process(ns, name)

    def log_path(self, ns: str, name: str) -> Path:
        return self.kubelet.log_path(ns, name)

    def process_alive(self, ns: str, name: str) -> bool:
        return self.kubelet.process_alive(ns, name)

    def live_processes(self) -> int:
        return self.kubelet.live_processes()

    # -- scheduler + kubelet loop ---------------------------------------------------------
    def _loop(self) -> None:
        while not self.stopping:
            try:
                self.scheduler.schedule()
                self.kubelet.sync()
            except Exception as exc:  # noqa: BLE001 - keep the fake cluster alive, show the bug
                print(f"fake cluster loop error: {exc!r}", file=sys.stderr)
            time.sleep(0.03)

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str, source: str) -> None:
        self.store.event(obj, type_, reason, message, source)

    # -- what tests look at -------------------------------------------------------------
    def objects(self, plural: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.store.list(plural) if match_labels(o["metadata"].get("labels") or {}, label_selector)]


# Seeding shared by the tests.
SHARED = "rdma/rdma_shared_device_a"
SRIOV = "nvidia.com/cx7_sriov_rdma"


def seed_nodes(c: FakeCluster, n: int, *, shared: int = 63, sriov: int = 4, leafs: int = 2) -> list[str]:
    names = []
    for i in range(n):
        name = f"gpu-node-{i}"
        c.add_node(name, labels={"nvidia.com/gpu.present": "true", "example.com/leaf": f"leaf-{i % leafs}",
                                 "feature.node.kubernetes.io/pci-15b3.present": "true",
                                 "network.nvidia.com/operator.mofed.wait": "false"},
                   allocatable={SHARED: shared, SRIOV: sriov, "nvidia.com/gpu": 8})
        names.append(name)
    c.add_nad("bench", "rdma-net", SHARED)
    c.add_nad("bench", "sriov-rdma-net", SRIOV, cni="sriov")
    return names
