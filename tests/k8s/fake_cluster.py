"""A fake Kubernetes cluster the real ``kubernetes`` client talks to over real HTTP.

- API server: a threading HTTP/1.1 server with the core/v1 and custom-resource
  paths benchfab uses; list and watch with resourceVersion (a watch from a
  compacted version gets an ERROR 410 event, like kube-apiserver), label and
  field selectors, create/get/patch (merge and JSON patch)/delete and
  delete-collection, pod logs (follow streams while the process runs), events.
- Scheduler: binds pending pods to nodes that are Ready, not cordoned, match
  the nodeSelector, tolerate the taints and have the requested extended
  resources left (allocatable minus the requests of bound, unfinished pods);
  otherwise writes a FailedScheduling event in kube-scheduler's wording.
- Kubelet: checks the Multus networks exist (else FailedCreatePodSandBox),
  writes the network-status annotation (SR-IOV style device-info for NADs
  tied to a VF resource), then runs the container's command as a real local
  process with the pod's env (fieldRef values resolved), serves its output
  as the pod log, and reports the exit; activeDeadlineSeconds is enforced.
- Faults: ``inject(method, path_regex, status | "reset", times)`` answers
  requests with 429/500/410 or drops the connection; ``compact()`` forgets
  watch history so resumes get 410 Gone.

Differences from a real cluster, on purpose: every pod's IP is 127.0.0.1 (the
processes share this host), "python" in a command is this interpreter, and
pods get KUBECONFIG pointing at this server instead of a service-account token.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

ROOT = Path(__file__).resolve().parents[2]
STATIC = "fake.benchfab.io/static"  # pods seeded by tests (operator pods): the kubelet leaves them alone
KINDS = {"pods": "Pod", "nodes": "Node", "services": "Service", "events": "Event", "namespaces": "Namespace",
         "network-attachment-definitions": "NetworkAttachmentDefinition", "nicclusterpolicies": "NicClusterPolicy",
         "configmaps": "ConfigMap"}
NAMESPACED = {"pods", "services", "events", "network-attachment-definitions", "configmaps"}


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------------------
# selectors and patches


def _get_path(obj: Any, dotted: str) -> Any:
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def match_labels(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in re.split(r",(?![^()]*\))", selector):
        term = term.strip()
        if not term:
            continue
        if m := re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\((.*)\)", term):
            values = {v.strip() for v in m.group(3).split(",")}
            has = labels.get(m.group(1)) in values
            if has != (m.group(2) == "in"):
                return False
        elif "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def match_fields(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        if not term:
            continue
        neg = "!=" in term
        k, v = term.replace("==", "=").split("!=" if neg else "=", 1)
        got = _get_path(obj, k.strip())
        got_s = "" if got is None else str(got)
        if (got_s == v.strip()) == neg:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(target: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = out
        for p in parts[:-1]:
            parent = parent.setdefault(p, {})
        if op["op"] in ("add", "replace"):
            parent[parts[-1]] = op["value"]
        elif op["op"] == "remove":
            parent.pop(parts[-1], None)
    return out


def quantity(value: Any) -> float:
    text = str(value)
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


# ---------------------------------------------------------------------------
# the store


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

    def compact(self) -> None:
        with self.lock:
            # Like an etcd compaction right now: every version handed out so far,
            # including the latest, can no longer be watched from.
            self.history.clear()
            self.oldest = self.rv + 1
            self.cond.notify_all()


# ---------------------------------------------------------------------------
# HTTP


class Fault:
    def __init__(self, method: str, path: str, action: int | str, times: int, retry_after: float | None) -> None:
        self.method, self.path, self.action, self.left, self.retry_after = method, re.compile(path), action, times, retry_after
        self.hits = 0


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    # -- plumbing ---------------------------------------------------------------------
    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> bool:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
            return True
        except OSError:
            return False

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null") if n else None

    def _fault(self) -> bool:
        cluster = self.server.cluster
        cluster.requests.append((self.command, self.path))
        for f in cluster.faults:
            if f.left > 0 and f.method in (self.command, "*") and f.path.search(self.path):
                f.left -= 1
                f.hits += 1
                if f.action == "reset":
                    if self.command in ("POST", "PATCH", "PUT"):
                        # The request arrived and is applied, but the answer is lost.
                        self._saved_body = self._body()
                        self._route(apply_only=True)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return True
                code = int(f.action)
                headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
                self._body()
                self._send(code, _status(code, {429: "TooManyRequests", 410: "Gone"}.get(code, "InternalError"),
                                         f"injected {code}"), headers)
                return True
        return False

    def do_GET(self) -> None:  # noqa: N802
        if not self._fault():
            self._route()

    def do_POST(self) -> None:  # noqa: N802
        if not self._fault():
            self._route()

    def do_PATCH(self) -> None:  # noqa: N802
        if not self._fault():
            self._route()

    def do_DELETE(self) -> None:  # noqa: N802
        if not self._fault():
            self._route()

    def do_PUT(self) -> None:  # noqa: N802
        if not self._fault():
            self._route()

    # -- routing ------------------------------------------------------------------------
    def _route(self, apply_only: bool = False) -> None:
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        if parts[:1] == ["version"]:
            self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake"})
            return
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            rest = parts[3:]
        else:
            self._send(404, _status(404, "NotFound", f"no route {url.path}"))
            return
        ns: str | None = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"]:
            rest = ["namespaces", *rest[1:]]
        plural = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        body = self._body() if self.command in ("POST", "PATCH", "PUT") and not apply_only else None
        if apply_only:
            body = getattr(self, "_saved_body", None)
        try:
            self._dispatch(plural, ns, name, sub, q, body, apply_only)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _dispatch(self, plural: str, ns: str | None, name: str | None, sub: str | None, q: dict[str, str],
                  body: Any, apply_only: bool) -> None:
        cluster = self.server.cluster
        store = cluster.store
        key_ns = ns if plural in NAMESPACED else ""
        if self.command == "GET" and name is None:
            if q.get("watch") in ("true", "True", "1"):
                self._watch(plural, ns, q)
                return
            items = [o for o in store.list(plural, ns if plural in NAMESPACED else None)
                     if match_labels(o["metadata"].get("labels") or {}, q.get("labelSelector"))
                     and match_fields(o, q.get("fieldSelector"))]
            self._send(200, {"kind": KINDS.get(plural, "Object") + "List", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(store.rv)}, "items": items})
        elif self.command == "GET" and sub == "log":
            self._log(key_ns, name or "", q)
        elif self.command == "GET":
            obj = store.get(plural, key_ns, name or "")
            if obj is None:
                self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
            else:
                self._send(200, obj)
        elif self.command == "POST":
            if body is None:
                self._send(400, _status(400, "BadRequest", "no body"))
                return
            meta = body.setdefault("metadata", {})
            if plural in NAMESPACED:
                meta["namespace"] = ns
            if store.get(plural, key_ns, meta.get("name", "")) is not None:
                self._send(409, _status(409, "AlreadyExists", f'{plural} "{meta.get("name")}" already exists'))
                return
            if plural == "pods":
                body.setdefault("status", {"phase": "Pending", "conditions": []})
            created = store.put(plural, body)
            cluster.created.append((plural, meta["name"]))
            if not apply_only:
                self._send(201, created)
        elif self.command == "PATCH":
            ctype = self.headers.get("Content-Type", "")

            def apply(obj: dict[str, Any]) -> dict[str, Any]:
                return json_patch(obj, body) if "json-patch" in ctype else merge_patch(obj, body)

            got = store.update(plural, key_ns, name or "", apply)
            if apply_only:
                return
            if got is None:
                self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
            else:
                self._send(200, got)
        elif self.command == "DELETE":
            if name is None:
                victims = [o for o in store.list(plural, ns)
                           if match_labels(o["metadata"].get("labels") or {}, q.get("labelSelector"))]
                for o in victims:
                    cluster.delete(plural, key_ns, o["metadata"]["name"])
                self._send(200, {"kind": KINDS.get(plural, "Object") + "List", "items": victims, "metadata": {}})
                return
            obj = cluster.delete(plural, key_ns, name)
            if obj is None:
                self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
            else:
                self._send(200, obj)
        else:
            self._send(405, _status(405, "MethodNotAllowed", self.command))

    def _watch(self, plural: str, ns: str | None, q: dict[str, str]) -> None:
        store = self.server.cluster.store
        timeout = float(q.get("timeoutSeconds") or 300)
        end = time.monotonic() + timeout
        rv_text = q.get("resourceVersion") or ""
        lsel, fsel = q.get("labelSelector"), q.get("fieldSelector")

        def visible(p: str, obj: dict[str, Any]) -> bool:
            return (p == plural and (ns is None or obj["metadata"].get("namespace") == ns)
                    and match_labels(obj["metadata"].get("labels") or {}, lsel) and match_fields(obj, fsel))

        self._start_stream("application/json")
        with store.lock:
            if rv_text in ("", "0"):
                since = store.rv
                initial = [o for o in store.list(plural, ns) if visible(plural, o)]
            else:
                since = int(rv_text)
                initial = []
                if since < store.oldest:
                    self._chunk(json.dumps({"type": "ERROR", "object": _status(
                        410, "Expired", f"too old resource version: {since} ({store.oldest})")}).encode() + b"\n")
                    self._end_stream()
                    return
        for o in initial:
            if not self._chunk(json.dumps({"type": "ADDED", "object": o}).encode() + b"\n"):
                return
        while not self.server.cluster.stopping and time.monotonic() < end:
            with store.lock:
                if since < store.oldest:  # compacted while we were watching
                    events: list[tuple[int, str, str, dict[str, Any]]] = []
                    gone = True
                else:
                    gone = False
                    events = [e for e in store.history if e[0] > since]
                    if not events:
                        store.cond.wait(min(0.5, max(0.0, end - time.monotonic())))
                        continue
            if gone:
                self._chunk(json.dumps({"type": "ERROR", "object": _status(410, "Expired", "too old resource version")}).encode() + b"\n")
                break
            for rv, kind, p, obj in events:
                since = rv
                if visible(p, obj) and not self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n"):
                    return
        self._end_stream()

    def _log(self, ns: str, name: str, q: dict[str, str]) -> None:
        cluster = self.server.cluster
        pod = cluster.store.get("pods", ns, name)
        path = cluster.log_path(ns, name)
        if pod is None:
            self._send(404, _status(404, "NotFound", f'pods "{name}" not found'))
            return
        if not path.exists():
            self._send(400, _status(400, "BadRequest", f'container "rank" in pod "{name}" is waiting to start'))
            return
        if q.get("follow") not in ("true", "True", "1"):
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._start_stream("text/plain")
        with open(path, "rb") as f:
            while True:
                data = f.read(65536)
                if data:
                    if not self._chunk(data):
                        return
                    continue
                if cluster.stopping or not cluster.process_alive(ns, name):
                    rest = f.read()
                    if rest:
                        self._chunk(rest)
                    break
                time.sleep(0.02)
        self._end_stream()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    cluster: "FakeCluster"


# ---------------------------------------------------------------------------
# the cluster


class FakeCluster:
    def __init__(self, workdir: Path | None = None) -> None:
        self.store = Store()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fakek8s-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.created: list[tuple[str, str]] = []  # every object the API created, in order
        self.procs: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.started_at: dict[tuple[str, str], float] = {}
        self.sched_messages: dict[tuple[str, str], str] = {}
        self.sandbox_failed: set[tuple[str, str]] = set()
        self.stopping = False
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.cluster = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.kubeconfig = self.workdir / "kubeconfig"
        self._write_kubeconfig()
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True, name="fake-apiserver"),
                         threading.Thread(target=self._loop, daemon=True, name="fake-scheduler-kubelet")]
        self.store.put("namespaces", {"metadata": {"name": "default"}})
        self.extra_pod_env: dict[str, str] = {"GLOO_SOCKET_IFNAME": "lo"}
        # Address every secondary-network attachment reports (e.g. the soft-RoCE netdev's);
        # None: a distinct 127.77.x.y per attachment.
        self.secondary_ip: str | None = None

    def _write_kubeconfig(self) -> None:
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "bench"}},
                         {"name": "other", "context": {"cluster": "fake", "user": "fake", "namespace": "elsewhere"}}],
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg))

    def start(self) -> "FakeCluster":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        with self.store.lock:
            self.store.cond.notify_all()
        for key in list(self.procs):
            self._kill(key)
        self.server.shutdown()
        self.server.server_close()

    # -- seeding ------------------------------------------------------------------------
    def add_node(self, name: str, *, labels: dict[str, str] | None = None, allocatable: dict[str, Any] | None = None,
                 ready: bool = True, unschedulable: bool = False, taints: list[dict[str, str]] | None = None,
                 kernel: str = "6.8.0-45-generic") -> None:
        alloc = {"cpu": "64", "memory": "512Gi", "pods": "110", **{k: str(v) for k, v in (allocatable or {}).items()}}
        self.store.put("nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"unschedulable": unschedulable, "taints": taints or []},
            "status": {"capacity": dict(alloc), "allocatable": dict(alloc),
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "nodeInfo": {"kernelVersion": kernel, "osImage": "Ubuntu 24.04", "kubeletVersion": "v1.33.0"},
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]},
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
        self.store.put(plural, obj)

    def inject(self, method: str, path: str, action: int | str, times: int = 1, retry_after: float | None = None) -> Fault:
        f = Fault(method, path, action, times, retry_after)
        self.faults.append(f)
        return f

    def compact(self) -> None:
        self.store.compact()

    # -- deletion -----------------------------------------------------------------------
    def delete(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        if plural != "pods":
            return self.store.remove(plural, ns, name)
        key = (ns, name)
        if key in self.procs:
            got = self.store.update("pods", ns, name, lambda o: merge_patch(o, {"metadata": {"deletionTimestamp": now_iso()}}))
            threading.Thread(target=self._finish_delete, args=(key,), daemon=True).start()
            return got
        return self.store.remove("pods", ns, name)

    def _finish_delete(self, key: tuple[str, str]) -> None:
        self._kill(key)
        self.store.remove("pods", *key)

    def _kill(self, key: tuple[str, str]) -> None:
        proc = self.procs.pop(key, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=2)
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
        return f"{self.server.server_address[1]}/{key[0]}/{key[1]}"

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

    # -- scheduler + kubelet loop ---------------------------------------------------------
    def _loop(self) -> None:
        while not self.stopping:
            try:
                self._schedule()
                self._kubelet()
            except Exception as exc:  # noqa: BLE001 - keep the fake cluster alive, show the bug
                print(f"fake cluster loop error: {exc!r}", file=sys.stderr)
            time.sleep(0.03)

    def _used(self, node: str) -> dict[str, float]:
        used: dict[str, float] = {}
        for p in self.store.list("pods"):
            if p["spec"].get("nodeName") != node or p.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for c in p["spec"].get("containers", []):
                for k, v in ((c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits") or {}).items():
                    used[k] = used.get(k, 0.0) + quantity(v)
        return used

    def _schedule(self) -> None:
        pending = [p for p in self.store.list("pods")
                   if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")]
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
                self.store.update("pods", ns, name, lambda o: merge_patch(o, {"status": {"conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}}))
                self.event(pod, "Warning", "FailedScheduling", message, "default-scheduler")

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

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str, source: str) -> None:
        ns = obj["metadata"].get("namespace", "default")
        self.store.put("events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{obj['metadata']['name']}.{uuid.uuid4().hex[:10]}", "namespace": ns},
            "involvedObject": {"kind": obj.get("kind", "Pod"), "name": obj["metadata"]["name"], "namespace": ns},
            "type": type_, "reason": reason, "message": message, "source": {"component": source},
            "firstTimestamp": now_iso(), "lastTimestamp": now_iso(), "count": 1,
        })

    def _kubelet(self) -> None:
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
        status = [{"name": "cbr0", "interface": "eth0", "ips": ["127.0.0.1"], "default": True, "dns": {}}]
        for i, ref in enumerate(x.strip() for x in networks.split(",") if x.strip()):
            nad_ns, _, nad = ref.partition("/") if "/" in ref else (ns, "", ref)
            nad = nad.split("@")[0]
            obj = self.store.get("network-attachment-definitions", nad_ns, nad)
            if obj is None:
                if (ns, name) not in self.sandbox_failed:
                    self.sandbox_failed.add((ns, name))
                    self.event(pod, "Warning", "FailedCreatePodSandBox",
                               f"Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network "
                               f"for sandbox: plugin type=\"multus\" name=\"multus-cni-network\" failed (add): "
                               f"Multus: [{ns}/{name}]: error loading k8s delegates k8s args: TryLoadPodDelegates: "
                               f"error in getting k8s network for pod: GetNetworkDelegates: failed getting the delegate: "
                               f"getKubernetesDelegate: cannot find a network-attachment-definition ({nad}) in namespace "
                               f"({nad_ns}): network-attachment-definitions.k8s.cni.cncf.io \"{nad}\" not found",
                               "kubelet")
                return
            # Secondary-network addresses are in 127/8, which all reaches this host, so a
            # test that connects to a pod's net1 address really gets there.
            entry: dict[str, Any] = {"name": f"{nad_ns}/{nad}", "interface": f"net{i + 1}",
                                     "ips": [self.secondary_ip or f"127.77.{i}.{len(self.procs) % 250 + 2}"], "mac": "02:00:00:00:00:01",
                                     "dns": {}}
            res = (obj["metadata"].get("annotations") or {}).get("k8s.v1.cni.cncf.io/resourceName", "")
            if "sriov" in res:
                entry["device-info"] = {"type": "pci", "version": "1.1.0", "pci": {
                    "pci-address": f"0000:3b:00.{len(self.procs) % 8 + 2}", "rdma-device": f"mlx5_{len(self.procs) % 8 + 2}"}}
            status.append(entry)
        container = spec["containers"][0]
        node = self.store.get("nodes", "", spec["nodeName"]) or {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               "KUBECONFIG": str(self.kubeconfig), "PYTHONPATH": str(ROOT), "FAKE_POD": self._pod_marker((ns, name)),
               "HOSTNAME": name, **self.extra_pod_env}
        fields = {"metadata.name": name, "metadata.namespace": ns, "spec.nodeName": spec["nodeName"],
                  "status.podIP": "127.0.0.1", "status.hostIP": (node.get("status", {}).get("addresses") or [{}])[0].get("address", "")}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif ref := (e.get("valueFrom") or {}).get("fieldRef"):
                env[e["name"]] = fields.get(ref["fieldPath"], "")
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        log = self.log_path(ns, name)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=str(ROOT), start_new_session=True)
        self.procs[(ns, name)] = proc
        self.started_at[(ns, name)] = time.monotonic()
        self.store.update("pods", ns, name, lambda o: merge_patch(o, {
            "metadata": {"annotations": {"k8s.v1.cni.cncf.io/network-status": json.dumps(status)}},
            "status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": fields["status.hostIP"], "startTime": now_iso(),
                       "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "rank", "ready": True, "state": {"running": {"startedAt": now_iso()}}}]}}))

    # -- what tests look at -------------------------------------------------------------
    def objects(self, plural: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.store.list(plural) if match_labels(o["metadata"].get("labels") or {}, label_selector)]


# Seeding shared by the tests (here, not in conftest: `from conftest import` breaks when
# pytest collects another folder's conftest under the same module name first).
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
