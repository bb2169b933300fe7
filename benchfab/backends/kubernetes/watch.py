"""A watch cache: list + watch of the run's pods (or ConfigMaps), resumed after 410 Gone.

The controller asks "is this pod Running / gone?" many times a second; one
list + watch per run answers that from memory instead of one API call each.
Agents watch their own pod and their run's round ConfigMaps (handout.py) the same way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from ...errors import BackendError
from .api_errors import Gone
from .client import Kube, iter_lines

# After a 410 Gone whose relist is Gone again, wait this long before the next list,
# doubling up to the cap.
GONE_BACKOFF_S = 0.2
GONE_BACKOFF_MAX_S = 5.0


# resource -> CoreV1Api's (namespaced, all namespaces) list function
LISTS = {"pods": ("list_namespaced_pod", "list_pod_for_all_namespaces"),
         "configmaps": ("list_namespaced_config_map", "list_config_map_for_all_namespaces")}


class Cache(threading.Thread):
    """List + watch of pods (or ConfigMaps) matching selectors; resumes on 410 Gone.

    Caches given the same ``cond`` wake the same waiters (the agent waits on its pod and its
    run's ConfigMaps at once)."""

    def __init__(self, kube: Kube, namespace: str | None, label_selector: str | None = None,
                 field_selector: str | None = None, watch_timeout_s: int = 30, resource: str = "pods",
                 cond: threading.Condition | None = None) -> None:
        super().__init__(daemon=True, name=f"benchfab-{resource}-cache")
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout_s = watch_timeout_s
        self.objects: dict[str, dict[str, Any]] = {}
        self.cond = cond if cond is not None else threading.Condition()
        self.version = 0  # bumps on every change; waiters compare
        self.relists = 0
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._resp: Any = None
        self.error: str | None = None

    def _kw(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.label_selector:
            kw["label_selector"] = self.label_selector
        if self.field_selector:
            kw["field_selector"] = self.field_selector
        return kw

    def _list_fn(self) -> tuple[Any, tuple[str, ...]]:
        namespaced, everywhere = LISTS[self.resource]
        if self.namespace:
            return getattr(self.kube.core, namespaced), (self.namespace,)
        return getattr(self.kube.core, everywhere), ()

    def _list(self) -> str:
        fn, args = self._list_fn()
        got = self.kube.call(f"list {self.resource}", fn, *args, **self._kw())
        with self.cond:
            self.objects = {o["metadata"]["name"]: o for o in got.get("items", [])}
            self.version += 1
            self.cond.notify_all()
        self.synced.set()
        return str(got.get("metadata", {}).get("resourceVersion", ""))

    def run(self) -> None:
        from urllib3.exceptions import HTTPError as Urllib3Error

        rv: str | None = None
        delay = 0.2
        gone = 0  # 410s in a row with nothing watched in between
        while not self._stop.is_set():
            try:
                if rv is None:
                    if gone:
                        # The new list's version was already compacted too (an idle resource
                        # whose history is gone): relisting at once would storm the API server.
                        self._stop.wait(min(GONE_BACKOFF_S * 2 ** (gone - 1), GONE_BACKOFF_MAX_S))
                    rv = self._list()
                    self.relists += 1
                fn, args = self._list_fn()
                self._resp = self.kube.stream(f"watch {self.resource}", fn, *args, watch=True, resource_version=rv,
                                              allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout_s,
                                              _request_timeout=(10, self.watch_timeout_s + 30), **self._kw())
                for line in iter_lines(self._resp):
                    if self._stop.is_set():
                        return
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            rv = None  # history compacted: relist
                            gone += 1
                            break
                        raise BackendError(f"watch: {obj.get('code')} {obj.get('message')}")
                    gone = 0
                    # A BOOKMARK carries only a newer resourceVersion: resuming from it after
                    # the stream ends needs no relist.
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind == "BOOKMARK":
                        continue
                    name = obj["metadata"]["name"]
                    with self.cond:
                        if kind == "DELETED":
                            self.objects.pop(name, None)
                        else:
                            self.objects[name] = obj
                        self.version += 1
                        self.cond.notify_all()
                else:
                    gone = 0  # the stream ran its course: the version was good
                delay = 0.2
            except Gone:
                rv = None
                gone += 1
                continue
            except (BackendError, Urllib3Error, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                self.error = exc.message if isinstance(exc, BackendError) else str(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
            finally:
                resp, self._resp = self._resp, None
                if resp is not None:
                    try:
                        resp.release_conn()
                    except Exception:  # noqa: BLE001 - closing a broken stream
                        pass

    def get(self, name: str) -> dict[str, Any] | None:
        with self.cond:
            return self.objects.get(name)

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until predicate() (called under the lock) holds, or the timeout."""
        end = time.monotonic() + timeout_s
        with self.cond:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()  # urllib3 2: unblocks a read in the other thread
            except Exception:  # noqa: BLE001
                pass
        with self.cond:
            self.cond.notify_all()
