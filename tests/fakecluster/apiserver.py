"""The API server: a threading HTTP/1.1 server with the core/v1 and custom-resource paths
benchfab uses, over the cluster's store.

List and watch with resourceVersion (a watch from a compacted version gets an ERROR 410
event, like kube-apiserver), label and field selectors, create/get/patch (merge and JSON
patch)/delete and delete-collection, pod logs (follow streams while the process runs),
events; injected faults answer 429/500/410 or drop the connection.
"""

from __future__ import annotations

import json
import random
import re
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from .patch import json_patch, merge_patch
from .selectors import match_fields, match_labels

if TYPE_CHECKING:
    from .cluster import FakeCluster

KINDS = {"pods": "Pod", "nodes": "Node", "services": "Service", "events": "Event", "namespaces": "Namespace",
         "network-attachment-definitions": "NetworkAttachmentDefinition", "nicclusterpolicies": "NicClusterPolicy",
         "configmaps": "ConfigMap", "roles": "Role", "rolebindings": "RoleBinding"}
NAMESPACED = {"pods", "services", "events", "network-attachment-definitions", "configmaps", "roles", "rolebindings"}


class Fault:
    def __init__(self, method: str, path: str, action: int | str, times: int, retry_after: float | None) -> None:
        self.method, self.path, self.action, self.left, self.retry_after = method, re.compile(path), action, times, retry_after
        self.hits = 0


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: APIServer

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

    def do_GET(self) -> None:
        if not self._fault():
            self._route()

    def do_POST(self) -> None:
        if not self._fault():
            self._route()

    def do_PATCH(self) -> None:
        if not self._fault():
            self._route()

    def do_DELETE(self) -> None:
        if not self._fault():
            self._route()

    def do_PUT(self) -> None:
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
            cluster.written.append((plural, created))
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
        elif self.command == "PUT":
            if body is None or name is None:
                self._send(400, _status(400, "BadRequest", "PUT needs a name and a body"))
                return
            if plural in NAMESPACED:
                body.setdefault("metadata", {})["namespace"] = ns

            def replace(obj: dict[str, Any]) -> dict[str, Any]:
                return {**body, "metadata": {**obj["metadata"], **body["metadata"]}}

            got = store.update(plural, key_ns, name, replace)
            if got is not None:
                cluster.written.append((plural, got))
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
                if not visible(p, obj):
                    continue
                # A real API server delivers watch events tens of ms after the write that
                # made them (and a GET can see an object its watchers have not been told of).
                low, high = self.server.cluster.watch_delay_s
                if high > 0:
                    time.sleep(random.uniform(low, high))
                if not self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n"):
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


class APIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    cluster: FakeCluster


