"""An injected misbehaviour of the fake API server (``FakeCluster.inject``; ``Handler._fault``
applies it to the requests it matches)."""

from __future__ import annotations

import re


class Fault:
    """One injected misbehaviour for requests matching (method, path regex), ``times`` times.

    ``action``: an HTTP status (429, 500, 410, ...) answered instead; "reset": the connection
    dropped (a POST/PATCH/PUT is applied first, its answer lost); "slow": answered normally
    after ``delay_s``; "cut": a watch or log stream dropped mid-stream after ``after`` chunks
    (no terminating chunk, as when a load balancer or the API server goes away).
    """

    def __init__(self, method: str, path: str, action: int | str, times: int, retry_after: float | None,
                 delay_s: float = 0.0, after: int = 0) -> None:
        self.method, self.path, self.action, self.left, self.retry_after = method, re.compile(path), action, times, retry_after
        self.delay_s, self.after = delay_s, after
        self.hits = 0
