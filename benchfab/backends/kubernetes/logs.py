"""Agent pod logs: one follower thread per pod, lines routed to the test they belong to.

Every record an agent prints carries the test's ``seq`` and a running counter
``n``; other lines belong to the test the agent last started. A broken stream
is reopened and the lines already seen (by ``n``) are skipped, so a reconnect
neither loses nor repeats a record.
"""

from __future__ import annotations

import threading

from ...task import parse_record
from .client import iter_lines
from .pods import PodPool, PodState


class LogFollowers:
    """Follows the logs of the pool's pods until they stop, end, or the pool closes."""

    def __init__(self, pool: PodPool) -> None:
        self.pool = pool

    def follow(self, state: PodState) -> None:
        thread = threading.Thread(target=self._follow_loop, args=(state,), daemon=True, name=f"log-{state.name}")
        state.follower = thread
        thread.start()

    def _follow_loop(self, state: PodState) -> None:
        """Stream the pod's log; on a broken stream reconnect and skip lines already seen (by n)."""
        kube, pool = self.pool.kube, self.pool
        while not state.stop.is_set() and not pool.closed:
            try:
                resp = kube.stream(f"follow the log of pod {state.name}", kube.core.read_namespaced_pod_log, state.name,
                                   pool.namespace,
                                   follow=True, _request_timeout=(10, 3600))
            except Exception:  # noqa: BLE001 - pod not ready yet, API hiccup: retry below
                resp = None
            if resp is not None:
                try:
                    for line in iter_lines(resp):
                        route_line(state, line)
                        if state.stop.is_set():
                            break
                except Exception:  # noqa: BLE001 - a broken stream: reconnect
                    pass
                finally:
                    try:
                        resp.release_conn()
                    except Exception:  # noqa: BLE001
                        pass
            if pool.ended(state):
                pod = pool.get(state.name)
                # The pod ended: read whatever it printed last, once, then stop.
                if pod is not None:
                    self._read_rest(state)
                return
            state.stop.wait(0.3)

    def _read_rest(self, state: PodState) -> None:
        kube = self.pool.kube
        try:
            resp = kube.stream(f"read the log of pod {state.name}", kube.core.read_namespaced_pod_log, state.name,
                               self.pool.namespace)
            for line in iter_lines(resp):
                route_line(state, line)
        except Exception:  # noqa: BLE001 - best effort
            pass


def route_line(state: PodState, line: str) -> None:
    """File one log line under its test: a record by its seq, other output under the current test."""
    rec = parse_record(line)
    with state.lock:
        if rec is None:
            if state.current_seq and state.seen_n >= 0:
                state.lines.setdefault(state.current_seq, []).append(line)
            return
        n = int(rec.get("n") or 0)
        if n and n <= state.seen_n:
            return  # already seen before a reconnect
        state.seen_n = max(state.seen_n, n)
        seq = int(rec.get("seq") or 0)
        if rec.get("type") == "agent" and rec.get("event") == "start":
            state.current_seq = seq
        if rec.get("type") == "agent" and rec.get("event") == "ready":
            state.software = rec.get("software")
            state.agent_ready.set()
        if rec.get("type") == "agent" and rec.get("event") == "stage":
            state.enter_stage_locked(str(rec.get("stage") or ""), str(rec.get("detail") or ""))
        if seq:
            state.records.setdefault(seq, []).append(rec)
