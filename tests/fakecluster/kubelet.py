"""The kubelet: runs each bound pod's container command as a real local process.

It checks that the pod's Multus networks exist (else FailedCreatePodSandBox), writes
the network-status annotation (SR-IOV style device-info for NADs tied to a VF
resource), then runs the command with the pod's env (fieldRef values resolved), keeps
its output as the pod log, and reports the exit; activeDeadlineSeconds is enforced.

Differences from a real kubelet, on purpose: every pod's IP is 127.0.0.1 (the processes
share this host), "python" in a command is this interpreter, and instead of a mounted
service-account token a pod gets KUBECONFIG: a kubeconfig with its service account's token
(``spec.serviceAccountName``, default "default"; none with automountServiceAccountToken:
false), so what it may do is what RBAC grants that account.

With ``node_netns`` (the netns simulation, ``netsim.py``) a node's pods run inside that
node's network namespace (``ip netns exec NS argv...``, an argv list) and their pod IP and
Multus attachment address are the namespace's own address, so their traffic crosses that
node's shaped veth. Pods bound to a node in ``stuck_nodes`` are never started (a node whose
pods never become ready).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .netsim import IP
from .patch import merge_patch
from .store import Store, now_iso

ROOT = Path(__file__).resolve().parents[2]
STATIC = "fake.benchfab.io/static"  # pods seeded by tests (operator pods): the kubelet leaves them alone


class Kubelet:
    def __init__(self, store: Store, workdir: Path, kubeconfig_for: Callable[[str, str | None], Path],
                 port: int) -> None:
        self.store = store
        self.workdir = workdir
        # (namespace, service account or None: no token mounted) -> the kubeconfig its pods get.
        self.kubeconfig_for = kubeconfig_for
        self.port = port  # the API server's: part of every pod's process marker
        self.procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.started_at: dict[tuple[str, str], float] = {}
        self.sandbox_failed: set[tuple[str, str]] = set()
        self.extra_pod_env: dict[str, str] = {"GLOO_SOCKET_IFNAME": "lo"}
        # Address every secondary-network attachment reports (e.g. the soft-RoCE netdev's);
        # None: a distinct 127.77.x.y per attachment.
        self.secondary_ip: str | None = None
        self.pull_failures: dict[str, str] = {}  # image -> why its pull fails
        self.create_delay_s = 0.0  # how long a pod stays ContainerCreating (pull, volumes) before it runs
        self.creating: dict[tuple[str, str], float] = {}  # pods in ContainerCreating: since (monotonic)
        # node name -> (network namespace, its address): that node's pods run in it (netsim.py).
        self.node_netns: dict[str, tuple[str, str]] = {}
        # node name -> NAD name -> (interface, address) in that node's namespace: a multi-rail
        # simulated node attaches rail r's network through its eth<r> (netsim.py rails).
        self.node_networks: dict[str, dict[str, tuple[str, str]]] = {}
        self.stuck_nodes: set[str] = set()  # pods bound here stay Pending: never started

    # -- deletion -----------------------------------------------------------------------
    def delete_pod(self, ns: str, name: str, grace_s: int | None = None) -> dict[str, Any] | None:
        """Graceful deletion: the pod gets deletionTimestamp and stays while its container has
        ``grace_s`` (else its terminationGracePeriodSeconds, default 30) to exit after SIGTERM,
        then SIGKILL, then the pod is removed. 0 still sends SIGTERM first (2 s), like a kubelet."""
        key = (ns, name)
        self.creating.pop(key, None)
        if key in self.procs:
            pod = self.store.get("pods", ns, name) or {}
            grace = grace_s if grace_s is not None else int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            got = self.store.update("pods", ns, name, lambda o: merge_patch(o, {"metadata": {
                "deletionTimestamp": now_iso(), "deletionGracePeriodSeconds": grace}}))
            threading.Thread(target=self._finish_delete, args=(key, max(grace, 2)), daemon=True).start()
            return got
        return self.store.remove("pods", ns, name)

    def _finish_delete(self, key: tuple[str, str], grace_s: float) -> None:
        self._kill(key, grace_s)
        self.store.remove("pods", *key)

    def _kill(self, key: tuple[str, str], grace_s: float = 2.0) -> None:
        proc = self.procs.pop(key, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=5)
        # The agent's workers live in their own sessions: reap any the agent left.
        self._kill_strays(key)

    def _kill_strays(self, key: tuple[str, str]) -> None:
        marker = f"FAKE_POD={self._pod_marker(key)}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue

    def _pod_marker(self, key: tuple[str, str]) -> str:
        # Pod names repeat across test sessions (they derive from run ids such as "r"): the
        # server's port makes the marker this cluster's alone, so one session's clean-up
        # never kills another concurrent session's pods.
        return f"{self.port}/{key[0]}/{key[1]}"

    def kill_pod_process(self, ns: str, name: str) -> None:
        """Simulate a container crash (OOM kill, node trouble): SIGKILL its processes."""
        proc = self.procs.get((ns, name))
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._kill_strays((ns, name))

    def log_path(self, ns: str, name: str) -> Path:
        return self.workdir / "logs" / f"{ns}_{name}.log"

    def process_alive(self, ns: str, name: str) -> bool:
        proc = self.procs.get((ns, name))
        return proc is not None and proc.poll() is None

    def live_processes(self) -> int:
        return sum(1 for p in self.procs.values() if p.poll() is None)


    def sync(self) -> None:
        for pod in self.store.list("pods"):
            meta, spec = pod["metadata"], pod["spec"]
            ns, name = meta["namespace"], meta["name"]
            key = (ns, name)
            if (meta.get("annotations") or {}).get(STATIC) or not spec.get("nodeName") or meta.get("deletionTimestamp"):
                continue
            phase = pod.get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                continue
            proc = self.procs.get(key)
            if proc is None and phase == "Pending":
                if spec["nodeName"] not in self.stuck_nodes:
                    self._start(pod)
                continue
            if proc is None:
                continue
            deadline = spec.get("activeDeadlineSeconds")
            if deadline and time.monotonic() - self.started_at[key] > float(deadline):
                self._kill(key)
                self._terminated(ns, name, "Failed", 137, "DeadlineExceeded",
                                 "Pod was active on the node longer than the specified deadline")
                continue
            code = proc.poll()
            if code is not None:
                self.procs.pop(key, None)
                code = 128 - code if code < 0 else code
                self._terminated(ns, name, "Succeeded" if code == 0 else "Failed", code,
                                 "Completed" if code == 0 else "Error", "")

    def _terminated(self, ns: str, name: str, phase: str, code: int, reason: str, message: str) -> None:
        self.store.update("pods", ns, name, lambda o: merge_patch(o, {"status": {
            "phase": phase, "reason": reason if reason == "DeadlineExceeded" else None, "message": message or None,
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "rank", "ready": False, "state": {"terminated": {
                "exitCode": code, "reason": reason}}}]}}))

    def _start(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        networks = (meta.get("annotations") or {}).get("k8s.v1.cni.cncf.io/networks", "")
        netns, pod_ip = self.node_netns.get(spec["nodeName"], (None, "127.0.0.1"))
        status = [{"name": "cbr0", "interface": "eth0", "ips": [pod_ip], "default": True, "dns": {}}]
        for i, ref in enumerate(x.strip() for x in networks.split(",") if x.strip()):
            nad_ns, _, nad = ref.partition("/") if "/" in ref else (ns, "", ref)
            nad = nad.split("@")[0]
            obj = self.store.get("network-attachment-definitions", nad_ns, nad)
            if obj is None:
                if (ns, name) not in self.sandbox_failed:
                    self.sandbox_failed.add((ns, name))
                    self.store.event(pod, "Warning", "FailedCreatePodSandBox",
                               f"Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network "
                               f"for sandbox: plugin type=\"multus\" name=\"multus-cni-network\" failed (add): "
                               f"Multus: [{ns}/{name}]: error loading k8s delegates k8s args: TryLoadPodDelegates: "
                               f"error in getting k8s network for pod: GetNetworkDelegates: failed getting the delegate: "
                               f"getKubernetesDelegate: cannot find a network-attachment-definition ({nad}) in namespace "
                               f"({nad_ns}): network-attachment-definitions.k8s.cni.cncf.io \"{nad}\" not found",
                               "kubelet")
                return
            # Secondary-network addresses are in 127/8, which all reaches this host, so a
            # test that connects to a pod's net1 address really gets there; in a node's
            # namespace the attachment is that namespace's one interface and address.
            ip = self.secondary_ip or (pod_ip if netns else f"127.77.{i}.{len(self.procs) % 250 + 2}")
            iface = "eth0" if netns else f"net{i + 1}"
            iface, ip = self.node_networks.get(spec["nodeName"], {}).get(nad, (iface, ip))
            entry: dict[str, Any] = {"name": f"{nad_ns}/{nad}", "interface": iface,
                                     "ips": [ip], "mac": "02:00:00:00:00:01", "dns": {}}
            res = (obj["metadata"].get("annotations") or {}).get("k8s.v1.cni.cncf.io/resourceName", "")
            if "sriov" in res:
                entry["device-info"] = {"type": "pci", "version": "1.1.0", "pci": {
                    "pci-address": f"0000:3b:00.{len(self.procs) % 8 + 2}", "rdma-device": f"mlx5_{len(self.procs) % 8 + 2}"}}
            status.append(entry)
        container = spec["containers"][0]
        if not self._created(pod, str(container.get("image", ""))):
            return
        node = self.store.get("nodes", "", spec["nodeName"]) or {}
        # The pod's own service account, as the token a real kubelet mounts would say.
        account = None if spec.get("automountServiceAccountToken") is False else spec.get("serviceAccountName") or "default"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               "KUBECONFIG": str(self.kubeconfig_for(ns, account)), "PYTHONPATH": str(ROOT), "FAKE_POD": self._pod_marker((ns, name)),
               "HOSTNAME": name, **self.extra_pod_env, **({"GLOO_SOCKET_IFNAME": "eth0"} if netns else {})}
        fields = {"metadata.name": name, "metadata.namespace": ns, "spec.nodeName": spec["nodeName"],
                  "status.podIP": pod_ip, "status.hostIP": (node.get("status", {}).get("addresses") or [{}])[0].get("address", "")}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif ref := (e.get("valueFrom") or {}).get("fieldRef"):
                env[e["name"]] = fields.get(ref["fieldPath"], "")
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        if netns:
            argv = [IP, "netns", "exec", netns, *argv]
        log = self.log_path(ns, name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(ROOT), start_new_session=True)
        self.procs[(ns, name)] = proc
        self.started_at[(ns, name)] = time.monotonic()
        self.store.update("pods", ns, name, lambda o: merge_patch(o, {
            "metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": json.dumps(status)}},
            "status": {"phase": "Running", "podIP": pod_ip, "hostIP": fields["status.hostIP"], "startTime": now_iso(),
                       "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "rank", "ready": True, "state": {"running": {"startedAt": now_iso()}}}]}}))


    def _created(self, pod: dict[str, Any], image: str) -> bool:
        """Whether the container may start now: ContainerCreating for ``create_delay_s``, and
        forever ErrImagePull / ImagePullBackOff (with the kubelet's events) for an image whose
        pull fails."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        key = (ns, name)
        first = key not in self.creating
        since = self.creating.setdefault(key, time.monotonic())
        why = self.pull_failures.get(image)
        if why is None and time.monotonic() - since >= self.create_delay_s:
            self.creating.pop(key, None)
            return True
        waiting = {"reason": "ContainerCreating"}
        if why is not None:
            message = f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": {why}'
            waiting = {"reason": "ErrImagePull" if first else "ImagePullBackOff",
                       "message": message if first else f'Back-off pulling image "{image}"'}
            if first:
                self.store.event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {message}', "kubelet")
                self.store.event(pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet")
            elif (pod.get("status") or {}).get("containerStatuses", [{}])[0].get("state", {}).get("waiting", {}) \
                    .get("reason") != "ImagePullBackOff":
                self.store.event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', "kubelet")
                self.store.event(pod, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet")
        current = ((pod.get("status") or {}).get("containerStatuses") or [{}])[0].get("state", {}).get("waiting")
        if current != waiting:
            self.store.update("pods", ns, name, lambda o: merge_patch(o, {"status": {
                "containerStatuses": [{"name": "rank", "ready": False, "state": {"waiting": waiting}}]}}))
        return False

    def stop(self) -> None:
        for key in list(self.procs):
            self._kill(key)
