"""The API server: a threading HTTP/1.1 server with the core/v1 and custom-resource paths
benchfab uses, over the cluster's store.

List and watch with resourceVersion (a watch from a compacted version gets an ERROR 410
event, like kube-apiserver), label and field selectors, create/get/patch (merge and JSON
patch)/delete and delete-collection (a PUT naming a stale resourceVersion: 409), pod logs
(follow streams while the process runs), events, Leases; injected faults answer 429/500/410
or drop the connection. Every request is authenticated by its bearer token (401 without a
known one) and authorized by RBAC (``rbac.py``: 403 in kube-apiserver's wording) before
anything is looked up. The resource types and the documents besides objects: ``resources.py``.
"""

from __future__ import annotations

import json
import random
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

from .patch import json_patch, merge_patch
from .rbac import Attributes, Identity, allowed, forbidden_message, missing_service_account, refused_grant
from .resources import CUSTOM, FIELD_LABELS, KINDS, NAMESPACED, discovery, pod_table, status_body, unsupported_field
from .selectors import match_fields, match_labels, query_true

if TYPE_CHECKING:
    from .cluster import FakeCluster


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: APIServer
    _who: Identity  # the authenticated user of the request being answered

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
        cut = getattr(self, "_cut_after", None)
        if cut is not None:
            if cut <= 0:
                self._drop()
                return False
            self._cut_after = cut - 1
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

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _fault(self) -> bool:
        cluster = self.server.cluster
        cluster.requests.append((self.command, self.path))
        self._cut_after: int | None = None
        for f in cluster.faults:
            if f.left > 0 and f.method in (self.command, "*") and f.path.search(self.path):
                f.left -= 1
                f.hits += 1
                if f.action == "slow":
                    time.sleep(f.delay_s)
                    return False
                if f.action == "cut":
                    self._cut_after = f.after
                    return False
                if f.action == "reset":
                    if self.command in ("POST", "PATCH", "PUT"):
                        # The request arrived and is applied, but the answer is lost.
                        self._saved_body = self._body()
                        self._route(apply_only=True)
                    self._drop()
                    return True
                code = int(f.action)
                headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
                self._body()
                self._send(code, status_body(code, {429: "TooManyRequests", 410: "Gone"}.get(code, "InternalError"),
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
        cluster = self.server.cluster
        credentials = self.headers.get("Authorization")
        who = cluster.users.authenticate(credentials)
        if who is None and credentials is None and self.server.insecure:
            who = cluster.users.admin  # the insecure port: no credentials, no questions
        if who is None:  # like kube-apiserver without anonymous access
            self._refuse(401, "Unauthorized", "Unauthorized", apply_only)
            return
        cluster.identities.append((who.user, self.command, self.path))
        # Discovery and /version: every authenticated user may read them (system:discovery).
        if parts[:1] == ["version"]:
            self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake"})
            return
        if self.command == "GET" and (found := discovery(parts, cluster.crds)) is not None:
            self._send(200, found)
            return
        if parts[:2] == ["api", "v1"] and len(parts) > 2:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, rest = parts[1], parts[3:]
        else:
            self._send(404, status_body(404, "NotFound", f"no route {url.path}"))
            return
        ns: str | None = None
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"]:
            rest = ["namespaces", *rest[1:]]
        plural = rest[0] if rest else ""
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        # Authorization comes before the resource is looked up, as in kube-apiserver: a
        # request for a resource type that is not installed is 403 without the right, 404 with it.
        attrs = Attributes.of(self.command, group, name if plural == "namespaces" else ns, plural, name, sub, q)
        if not allowed(cluster.store, who, attrs):
            message = forbidden_message(who, attrs)
            cluster.denied.append((who.user, message))
            self._refuse(403, "Forbidden", message, apply_only,
                         {"name": attrs.name, "group": group, "kind": plural})
            return
        if plural in CUSTOM and plural not in cluster.crds:
            self._refuse(404, "NotFound", "the server could not find the requested resource", apply_only)
            return
        self._who = who
        # A DELETE may carry DeleteOptions (kubectl sends them): read it, or the connection's
        # next request would start inside it.
        body = self._body() if self.command in ("POST", "PATCH", "PUT", "DELETE") and not apply_only else None
        if apply_only:
            body = getattr(self, "_saved_body", None)
        try:
            self._dispatch(plural, ns, name, sub, q, body, apply_only)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _refuse(self, code: int, reason: str, message: str, apply_only: bool,
                details: dict[str, str] | None = None) -> None:
        """Answer an error before the request's body was read (read it now: the connection is reused)."""
        if apply_only:  # the connection is about to be dropped: nothing is applied, nothing answered
            return
        self._body()
        status = status_body(code, reason, message)
        if details is not None:
            status["details"] = {k: v for k, v in details.items() if v}
        self._send(code, status)

    def _dispatch(self, plural: str, ns: str | None, name: str | None, sub: str | None, q: dict[str, str],
                  body: Any, apply_only: bool) -> None:
        cluster = self.server.cluster
        store = cluster.store
        key_ns = ns if plural in NAMESPACED else ""
        if name is None and (bad := unsupported_field(plural, q.get("fieldSelector"))):
            self._send(400, status_body(400, "BadRequest", f'"{bad}" is not a known field selector: only '
                                    f'"metadata.name", "metadata.namespace"'
                                    + "".join(f', "{f}"' for f in sorted(FIELD_LABELS.get(plural, ())))))
            return
        if self.command == "POST" and ns is not None and plural in NAMESPACED and plural != "events" \
                and store.get("namespaces", "", ns) is None:
            self._send(404, status_body(404, "NotFound", f'namespaces "{ns}" not found'))
            return
        if self.command in ("POST", "PUT") and isinstance(body, dict) \
                and (why := refused_grant(store, self._who, plural, key_ns or "", body)) is not None:
            cluster.denied.append((self._who.user, why))
            if not apply_only:
                self._send(403, status_body(403, "Forbidden", why))
            return
        if self.command == "GET" and name is None:
            if query_true(q, "watch"):
                self._watch(plural, ns, q)
                return
            items = [o for o in store.list(plural, ns if plural in NAMESPACED else None)
                     if match_labels(o["metadata"].get("labels") or {}, q.get("labelSelector"))
                     and match_fields(o, q.get("fieldSelector"))]
            if plural == "pods" and "as=Table" in self.headers.get("Accept", ""):
                self._send(200, pod_table(items, str(store.rv)))  # what `kubectl get pods` prints
                return
            self._send(200, {"kind": KINDS.get(plural, "Object") + "List", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(store.rv)}, "items": items})
        elif self.command == "GET" and sub == "log":
            self._log(key_ns, name or "", q)
        elif self.command == "GET":
            obj = store.get(plural, key_ns, name or "")
            if obj is None:
                self._send(404, status_body(404, "NotFound", f'{plural} "{name}" not found'))
            else:
                self._send(200, obj)
        elif self.command == "POST":
            if body is None:
                self._send(400, status_body(400, "BadRequest", "no body"))
                return
            meta = body.setdefault("metadata", {})
            if plural in NAMESPACED:
                meta["namespace"] = ns
            if store.get(plural, key_ns, meta.get("name", "")) is not None:
                self._send(409, status_body(409, "AlreadyExists", f'{plural} "{meta.get("name")}" already exists'))
                return
            if plural == "pods" and (missing := missing_service_account(store, ns or "", body)):
                # The ServiceAccount admission plugin: a pod names an account that exists.
                self._send(403, status_body(403, "Forbidden", f'pods "{meta.get("name")}" is forbidden: error looking up '
                                        f'service account {ns}/{missing}: serviceaccount "{missing}" not found'))
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
                self._send(404, status_body(404, "NotFound", f'{plural} "{name}" not found'))
            else:
                self._send(200, got)
        elif self.command == "PUT":
            if body is None or name is None:
                self._send(400, status_body(400, "BadRequest", "PUT needs a name and a body"))
                return
            if plural in NAMESPACED:
                body.setdefault("metadata", {})["namespace"] = ns
            # Optimistic concurrency: a replace that names a resourceVersion is refused once the
            # object has moved on (what Leases and every read-modify-write rely on).
            asked, current = body["metadata"].get("resourceVersion"), store.get(plural, key_ns, name)
            if asked and current is not None and str(asked) != current["metadata"].get("resourceVersion"):
                self._send(409, status_body(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": '
                                        "the object has been modified; please apply your changes to the latest "
                                        "version and try again"))
                return

            def replace(obj: dict[str, Any]) -> dict[str, Any]:
                return {**body, "metadata": {**obj["metadata"], **body["metadata"]}}

            got = store.update(plural, key_ns, name, replace)
            if got is not None:
                cluster.written.append((plural, got))
            if got is None:
                self._send(404, status_body(404, "NotFound", f'{plural} "{name}" not found'))
            else:
                self._send(200, got)
        elif self.command == "DELETE":
            if isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
                q = {**q, "gracePeriodSeconds": str(body["gracePeriodSeconds"])}
            if name is None:
                victims = [o for o in store.list(plural, ns)
                           if match_labels(o["metadata"].get("labels") or {}, q.get("labelSelector"))]
                for o in victims:
                    cluster.delete(plural, key_ns, o["metadata"]["name"], _grace(q))
                self._send(200, {"kind": KINDS.get(plural, "Object") + "List", "items": victims, "metadata": {}})
                return
            obj = cluster.delete(plural, key_ns, name, _grace(q))
            if obj is None:
                self._send(404, status_body(404, "NotFound", f'{plural} "{name}" not found'))
            else:
                self._send(200, obj)
        else:
            self._send(405, status_body(405, "MethodNotAllowed", self.command))

    def _watch(self, plural: str, ns: str | None, q: dict[str, str]) -> None:
        store = self.server.cluster.store
        timeout = float(q.get("timeoutSeconds") or 300)
        end = time.monotonic() + timeout
        rv_text = q.get("resourceVersion") or ""
        lsel, fsel = q.get("labelSelector"), q.get("fieldSelector")
        bookmarks = query_true(q, "allowWatchBookmarks")
        quiet_since = time.monotonic()

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
                    self._chunk(json.dumps({"type": "ERROR", "object": status_body(
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
                        events = [e for e in store.history if e[0] > since]
                    if not events:
                        if bookmarks and time.monotonic() - quiet_since >= self.server.cluster.bookmark_interval_s:
                            # Like kube-apiserver: on a quiet watch, the newest version it may resume
                            # from, so a reconnect after a compaction needs no relist.
                            quiet_since = time.monotonic()
                            since = store.rv
                            mark = {"type": "BOOKMARK", "object": {
                                "kind": KINDS.get(plural, "Object"), "apiVersion": "v1",
                                "metadata": {"resourceVersion": str(since)}}}
                            if not self._chunk(json.dumps(mark).encode() + b"\n"):
                                return
                        continue
            if gone:
                self._chunk(json.dumps({"type": "ERROR", "object": status_body(410, "Expired", "too old resource version")}).encode() + b"\n")
                break
            for rv, kind, p, obj in events:
                since = rv
                if not visible(p, obj):
                    continue
                quiet_since = time.monotonic()
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
            self._send(404, status_body(404, "NotFound", f'pods "{name}" not found'))
            return
        if not path.exists():
            self._send(400, status_body(400, "BadRequest", f'container "rank" in pod "{name}" is waiting to start'))
            return
        if not query_true(q, "follow"):
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


def _grace(q: dict[str, str]) -> int | None:
    """A DELETE's gracePeriodSeconds (None: the pod's terminationGracePeriodSeconds)."""
    value = q.get("gracePeriodSeconds")
    return int(value) if value not in (None, "") else None


class APIServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    cluster: FakeCluster
    insecure = False  # FakeCluster.insecure_kubeconfig's port: requests without credentials are the admin


