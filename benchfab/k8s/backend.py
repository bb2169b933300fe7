"""The Kubernetes backend: a round's tests on agent pods, in parallel.

Lifecycle (see docs/KUBERNETES.md):
1. ``plan()`` reads the inventory and places tests (benchfab.placement).
2. For each round, ``run_round`` makes sure every (node, slot) the round
   needs has a Running agent pod of the round's profile whose agent said
   ready (gang start; a pod that cannot start is explained from its events,
   an agent whose start-up stalls is named with its stage, and only the
   tests that need it fail). With ``reuse_pods`` (default) the pods of a
   profile are created once, for all of its rounds.
3. Each test is handed to its pods by patching the task annotation; the
   agents run the worker and print records to their logs, which one
   follower thread per pod reads and routes by test ``seq``.
4. A test ends when every rank's worker exited, one failed (plus a grace
   period for the others to report), its pod died, or the timeout (then the
   agents are told to cancel it). One bad node fails its own tests only.
5. ``close()`` (also on Ctrl-C / SIGTERM) deletes every object with the run's
   label and waits until the pods are gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.base import TestOutcome
from ..errors import BackendError
from ..placement import NodeInfo, plan_kubernetes
from ..planner import Plan, PlannedTest
from ..spec import SweepSpec
from ..task import parse_record
from . import manifests as mf
from .agent import STAGE_CONNECT, STAGE_DEVICES, STAGE_IMPORTS, STAGE_PROCESS, STAGE_WATCH
from .client import Cache, ClusterOptions, Kube, connect, iter_lines
from .events import explain
from .inventory import gpus_per_rank, hugepages_mib_per_rank, nodes_for_planner, read_inventory
from .nccl import attachment, fallback_problem, nccl_env, net_env

GRACE_S = 5.0
POLL_S = 0.02
LOG_TAIL_LINES = 8
Slot = tuple[str, str, int]  # (profile, node, slot)

# Agent start-up: how long each stage may go without the next one before the pod is
# given up (seconds). The wait is progress-based: every new stage restarts the clock,
# and kubernetes.start_timeout bounds the whole gang start. A fixed budget for the
# whole start-up failed on loaded hosts (an emulated VM takes minutes to import
# pydantic and the kubernetes client) while a truly stuck agent still fails here
# within a few minutes, with the stage it was stuck in.
STAGE_LIMITS_S: dict[str, float] = {
    STAGE_PROCESS: 180.0,   # the interpreter starting: image filesystem, node load
    STAGE_IMPORTS: 180.0,
    STAGE_CONNECT: 120.0,
    STAGE_DEVICES: 60.0,
    STAGE_WATCH: 120.0,
}
DEFAULT_STAGE_LIMIT_S = 120.0  # a stage this controller does not know (another agent version)
STAGE_FIXES = {
    STAGE_PROCESS: "check the image's python and the node's load: kubectl logs POD; kubectl describe pod POD",
    STAGE_IMPORTS: "a slow or overloaded node or a broken image: kubectl logs POD",
    STAGE_CONNECT: "check the pod's service account and that it can reach the API server: kubectl logs POD",
    STAGE_DEVICES: "reading /sys/class/infiniband or loading benchfab._native hung: check MOFED and the RDMA "
                   "device plugin on the node",
    STAGE_WATCH: "the agent needs get/list/watch on pods in its namespace (jobs/k8s/rbac.yaml): "
                 "kubectl auth can-i watch pods --as=system:serviceaccount:NAMESPACE:SA",
}


@dataclass
class PodState:
    """One agent pod and what its log said, routed by test seq."""

    key: Slot
    name: str
    records: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    lines: dict[int, list[str]] = field(default_factory=dict)
    seen_n: int = 0
    current_seq: int = 0
    follower: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    agent_ready: threading.Event = field(default_factory=threading.Event)  # its agent watches for tasks
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Agent start-up progress: the stage it is in, since when (monotonic, and wall
    # clock for messages), and the detail of its latest report (e.g. the last error).
    stage: str = ""
    stage_since: float = 0.0
    stage_wall: float = 0.0
    stage_detail: str = ""

    def enter_stage(self, name: str, detail: str = "") -> None:
        with self.lock:
            self.enter_stage_locked(name, detail)

    def enter_stage_locked(self, name: str, detail: str = "") -> None:
        """Record a stage; only a new stage name restarts its clock (a repeat updates the detail)."""
        if name != self.stage:
            self.stage, self.stage_since, self.stage_wall = name, time.monotonic(), time.time()
        self.stage_detail = detail


@dataclass
class Running:
    test: PlannedTest
    seq: int
    pods: list[PodState]
    started: float
    deadline: float
    outcome: TestOutcome
    exits: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    dead: dict[int, str] = field(default_factory=dict)
    done: bool = False
    consumed: dict[int, int] = field(default_factory=dict)
    first_failure: float | None = None


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, spec: SweepSpec, options: ClusterOptions | None = None, kube: Kube | None = None) -> None:
        self.spec = spec
        self.kube = kube or connect(options or ClusterOptions(), spec.namespace)
        self.namespace = self.kube.namespace
        self.run_id = f"adhoc-{int(time.time())}"
        self._inventory: list[dict[str, Any]] | None = None
        self._plan: Plan | None = None
        self.pods: dict[Slot, PodState] = {}
        self.broken: dict[Slot, str] = {}  # slots whose pod could not start: reason
        self.profile: str | None = None
        self.cache: Cache | None = None
        self.seq = 0
        self.overheads: list[float] = []  # per test: wall time not spent in the worker (seconds)
        self._service = False
        self._closed = False
        self.log_dir: Path | None = None
        self.stage_limits_s = dict(STAGE_LIMITS_S)  # per instance: tests and callers may tighten them

    # -- sweep hooks -----------------------------------------------------------------------
    def start_run(self, run_id: str) -> None:
        self.run_id = run_id

    def unavailable(self, test: PlannedTest) -> str | None:
        # Placement already left out the nodes without the test's GPUs and RDMA resources.
        return None

    def inventory_nodes(self) -> list[dict[str, Any]]:
        if self._inventory is None:
            self._inventory = read_inventory(self.kube, self.spec)
        return self._inventory

    def nodes(self) -> list[NodeInfo]:
        return nodes_for_planner(self.spec, self.inventory_nodes())

    def inventory(self) -> dict[str, Any]:
        return {"backend": "kubernetes", "namespace": self.namespace, "nodes": self.inventory_nodes()}

    def plan(self) -> Plan:
        if self._plan is None:
            self._plan = plan_kubernetes(self.spec, self.nodes())
        return self._plan

    def run_test(self, test: PlannedTest, log_dir: str, on_record: Callable[[dict[str, Any]], None]) -> TestOutcome:
        return self.run_round([test], log_dir, lambda _tid, rec: on_record(rec))[0]

    # -- one round ---------------------------------------------------------------------------
    def run_round(self, tests: Sequence[PlannedTest], log_dir: str,
                  on_record: Callable[[str, dict[str, Any]], None]) -> list[TestOutcome]:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._run_round(list(tests), on_record)
        except BaseException:
            # Ctrl-C / SIGTERM (KeyboardInterrupt) or a bug: leave nothing behind.
            self.close()
            raise

    def _run_round(self, tests: list[PlannedTest], on_record: Callable[[str, dict[str, Any]], None]) -> list[TestOutcome]:
        if not tests:
            return []
        self._ensure_cache()
        profiles = {t.profile_name for t in tests}
        outcomes: dict[str, TestOutcome] = {}
        for profile in sorted(profiles):
            group = [t for t in tests if t.profile_name == profile]
            self._switch_profile(profile)
            wanted = self._wanted_slots(profile, group)
            self._ensure_pods(profile, wanted)
            running: list[Running] = []
            for test in group:
                missing = [(n, s) for n, s in test.members if (profile, n, s) in self.broken
                           or (profile, n, s) not in self.pods]
                if missing:
                    node, slot = missing[0]
                    why = self.broken.get((profile, node, slot), "no pod")
                    now = time.time()
                    outcomes[test.test_id] = TestOutcome(test.test_id, "failed",
                                                         reason=f"pod for {node} slot {slot} did not start: {why}",
                                                         started=now, ended=now)
                    continue
                running.append(self._assign(test))
            self._wait(running, on_record)
            for r in running:
                outcomes[r.test.test_id] = r.outcome
            if not self.spec.kubernetes.reuse_pods:
                self._delete_pods([k for k in self.pods if k[0] == profile])
        return [outcomes[t.test_id] for t in tests]

    # -- pods ------------------------------------------------------------------------------
    def _ensure_cache(self) -> None:
        if self.cache is None:
            self.cache = Cache(self.kube, self.namespace, label_selector=mf.run_selector(self.run_id))
            self.cache.start()
            if not self.cache.synced.wait(30):
                raise BackendError(f"cannot list pods in namespace {self.namespace}: {self.cache.error}",
                                   hint="check access with: kubectl auth can-i list pods")
        if not self._service:
            self.kube.create("Service", mf.service_manifest(self.run_id, self.namespace))
            self._service = True

    def _switch_profile(self, profile: str) -> None:
        if self.profile is not None and self.profile != profile:
            # Profiles may compete for the same devices (shared plugin vs VFs): free them first.
            self._delete_pods([k for k in self.pods if k[0] != profile])
            self.broken = {k: v for k, v in self.broken.items() if k[0] == profile}
        self.profile = profile

    def _wanted_slots(self, profile: str, tests: list[PlannedTest]) -> list[Slot]:
        members = {(profile, n, s) for t in tests for n, s in t.members}
        if self.spec.kubernetes.reuse_pods and self._plan is not None:
            # Start the whole profile's pool at once: one gang start for all its rounds.
            members |= {(profile, n, s) for t in self._plan.tests if t.profile_name == profile for n, s in t.members}
        return sorted(m for m in members if m not in self.broken)

    def _pod_plan(self, key: Slot) -> mf.PodPlan:
        profile, node, slot = key
        info = next((n for n in self.inventory_nodes() if n["name"] == node), None)
        hostname = info["hostname"] if info else node
        prof = self.spec.resolved_profiles()[profile]
        return mf.PodPlan(profile, prof, node, hostname, slot, gpus_per_rank(self.spec, profile),
                          hugepages_mib_per_rank(self.spec, profile))

    def _deadline_s(self) -> int:
        k = self.spec.kubernetes
        if k.active_deadline is not None:
            return int(k.active_deadline)
        est = self._plan.estimate_s if self._plan is not None else 3600.0
        return int(max(3600.0, 3 * est + k.start_timeout + 600))

    def _ensure_pods(self, profile: str, wanted: list[Slot]) -> None:
        assert self.cache is not None
        cache = self.cache
        # Pods that ended (crash, deadline) are replaced: delete them first (names are reused).
        dead = [k for k in wanted if k in self.pods and _finished(cache.get(self.pods[k].name))]
        self._delete_pods(dead)
        new = [k for k in wanted if k not in self.pods]
        for key in new:
            body = mf.pod_manifest(self.run_id, self.namespace, str(self.spec.image), self._pod_plan(key),
                                   self.spec.kubernetes, self._deadline_s())
            self.kube.create("Pod", body)
            self.pods[key] = PodState(key, body["metadata"]["name"])
        if not new:
            return
        network = self.spec.resolved_profiles()[profile].network
        pending = {self.pods[k].name: k for k in new}
        end = time.monotonic() + self.spec.kubernetes.start_timeout
        failed: list[Slot] = []
        # Gang start: each pod first becomes Running and attached (scheduling, image,
        # CNI: bounded by kubernetes.start_timeout, explained from events), then its
        # agent goes through its start-up stages to "ready" (its watch is up, so agent
        # start-up is not counted against the first test). The agent may take as long
        # as it keeps making progress, within the same outer start_timeout.
        while pending:
            now = time.monotonic()
            for name, key in list(pending.items()):
                state = self.pods[key]
                pod = cache.get(name)
                why: str | None = None
                if _finished(pod):
                    why = explain(pod, self.kube.events_for(name))
                    if state.follower is not None:
                        why += f"; its agent had reached stage '{state.stage}'"
                elif state.follower is None:
                    if _ready(pod, network, self.namespace):
                        state.enter_stage(STAGE_PROCESS)
                        self._follow(state)
                    continue
                elif state.agent_ready.is_set():
                    del pending[name]
                    continue
                else:
                    why = self._stalled(state, now)
                if why is not None:
                    self.broken[key] = why
                    failed.append(key)
                    del pending[name]
            if not pending or time.monotonic() >= end:
                break
            time.sleep(0.05)
        for name, key in pending.items():  # the outer start_timeout ran out
            state = self.pods[key]
            if state.follower is None:
                self.broken[key] = explain(cache.get(name), self.kube.events_for(name))
            else:
                with state.lock:
                    stage, wall = state.stage, state.stage_wall
                self.broken[key] = (f"the agent in pod {name} was still at stage '{stage}' (since {_clock(wall)}) "
                                    f"when kubernetes.start_timeout ({self.spec.kubernetes.start_timeout:.0f} s) ran out "
                                    f"(fix: raise kubernetes.start_timeout if it is still progressing: kubectl logs {name})")
            failed.append(key)
        # A pod that could not start would grab its node's devices later: remove it now.
        self._delete_pods(failed)

    def _stalled(self, state: PodState, now: float) -> str | None:
        """Why the agent's start-up counts as stuck: no new stage within the stage's limit."""
        with state.lock:
            stage, since, wall, detail = state.stage, state.stage_since, state.stage_wall, state.stage_detail
        limit = self.stage_limits_s.get(stage, DEFAULT_STAGE_LIMIT_S)
        if now - since <= limit:
            return None
        account = str(((self.cache.get(state.name) if self.cache else None) or {}).get("spec", {})
                      .get("serviceAccountName") or "default")
        fix = (STAGE_FIXES.get(stage, "kubectl logs POD").replace("POD", state.name)
               .replace("NAMESPACE", self.namespace).replace(":SA", f":{account}"))
        # The agent's last error may carry its own, more specific fix (BenchfabError's hint): keep one.
        tail = f"; {detail}" if detail else ""
        if "(fix:" not in detail:
            tail += f" (fix: {fix})"
        return f"the agent in pod {state.name} stopped at stage '{stage}' for {now - since:.0f} s (since {_clock(wall)}){tail}"

    def _delete_pods(self, keys: list[Slot]) -> None:
        if not keys:
            return
        names = []
        for key in keys:
            state = self.pods.pop(key, None)
            if state is None:
                continue
            state.stop.set()
            self.kube.delete_pod(state.name)
            names.append(state.name)
        if self.cache is not None and names:
            cache = self.cache
            # Wait until they are gone: their devices are free and the names can be reused.
            cache.wait(lambda: not any(n in cache.objects for n in names), 60)

    # -- logs ------------------------------------------------------------------------------
    def _follow(self, state: PodState) -> None:
        thread = threading.Thread(target=self._follow_loop, args=(state,), daemon=True, name=f"log-{state.name}")
        state.follower = thread
        thread.start()

    def _follow_loop(self, state: PodState) -> None:
        """Stream the pod's log; on a broken stream reconnect and skip lines already seen (by n)."""
        while not state.stop.is_set() and not self._closed:
            try:
                resp = self.kube.stream(self.kube.core.read_namespaced_pod_log, state.name, self.namespace,
                                        follow=True, _request_timeout=(10, 3600))
            except Exception:  # noqa: BLE001 - pod not ready yet, API hiccup: retry below
                resp = None
            if resp is not None:
                try:
                    for line in iter_lines(resp):
                        self._route_line(state, line)
                        if state.stop.is_set():
                            break
                except Exception:  # noqa: BLE001 - a broken stream: reconnect
                    pass
                finally:
                    try:
                        resp.release_conn()
                    except Exception:  # noqa: BLE001
                        pass
            pod = self.cache.get(state.name) if self.cache is not None else None
            if pod is None or _finished(pod):
                # The pod ended: read whatever it printed last, once, then stop.
                if pod is not None:
                    self._read_rest(state)
                return
            state.stop.wait(0.3)

    def _read_rest(self, state: PodState) -> None:
        try:
            resp = self.kube.stream(self.kube.core.read_namespaced_pod_log, state.name, self.namespace)
            for line in iter_lines(resp):
                self._route_line(state, line)
        except Exception:  # noqa: BLE001 - best effort
            pass

    def _route_line(self, state: PodState, line: str) -> None:
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
                state.agent_ready.set()
            if rec.get("type") == "agent" and rec.get("event") == "stage":
                state.enter_stage_locked(str(rec.get("stage") or ""), str(rec.get("detail") or ""))
            if seq:
                state.records.setdefault(seq, []).append(rec)

    # -- tests -----------------------------------------------------------------------------
    def _assign(self, test: PlannedTest) -> Running:
        assert self.cache is not None and self.profile is not None
        self.seq += 1
        seq = self.seq
        states = [self.pods[(test.profile_name, n, s)] for n, s in test.members]
        rank0 = self.cache.get(states[0].name) or {}
        master = (rank0.get("status") or {}).get("podIP") or f"{states[0].name}.{mf.service_name(self.run_id)}"
        port = self.spec.kubernetes.master_port or (20000 + seq % 10000)
        task_json = test.task().to_json()
        now = time.time()
        outcome = TestOutcome(test.test_id, "failed", started=now)
        for rank, state in enumerate(states):
            pod = self.cache.get(state.name) or {}
            entry = attachment(((pod.get("metadata") or {}).get("annotations") or {}).get(mf.ANN_NETWORK_STATUS),
                               test.profile.network, self.namespace)
            env = {
                "RANK": str(rank), "WORLD_SIZE": str(len(states)),
                # One rank per pod and the pod sees only its own GPU: local rank 0 of 1.
                "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": master, "MASTER_PORT": str(port),
                **nccl_env(test.profile, entry, self.spec.kubernetes),
                **net_env(test.profile, entry),
            }
            ann = mf.task_annotation(seq, task_json, env)
            if self.kube.patch_pod(state.name, {"metadata": {"annotations": {mf.ANN_TASK: ann}}}) is None:
                outcome.reason = f"pod {state.name} vanished before the test started"
        return Running(test, seq, states, time.monotonic(), time.monotonic() + test.timeout_s, outcome)

    def _wait(self, running: list[Running], on_record: Callable[[str, dict[str, Any]], None]) -> None:
        assert self.cache is not None
        active = [r for r in running if not r.outcome.reason]
        for r in running:
            if r.outcome.reason:
                r.outcome.ended = time.time()
        while active:
            now = time.monotonic()
            for r in list(active):
                self._drain(r, on_record)
                if self._finished_test(r, now):
                    self._finish(r)
                    active.remove(r)
            if active:
                time.sleep(POLL_S)

    def _drain(self, r: Running, on_record: Callable[[str, dict[str, Any]], None]) -> None:
        assert self.cache is not None
        for rank, state in enumerate(r.pods):
            with state.lock:
                recs = state.records.get(r.seq, [])
                fresh = recs[r.consumed.get(rank, 0):]
                r.consumed[rank] = len(recs)
            for rec in fresh:
                kind = rec.get("type")
                if kind == "env":
                    r.outcome.env.append({**rec, "pod": state.name, "node": state.key[1]})
                elif kind == "error":
                    r.errors.setdefault(rank, str(rec.get("message", "")))
                elif kind == "result" and rank == 0:
                    r.outcome.results.append(rec)
                    on_record(r.test.test_id, rec)
                elif kind == "done" and rank == 0:
                    r.done = True
                elif kind == "agent" and rec.get("event") == "exit":
                    r.exits[rank] = rec
            if rank not in r.exits and rank not in r.dead:
                pod = self.cache.get(state.name)
                if pod is None or _finished(pod):
                    r.dead[rank] = _death(pod, state.name)

    def _finished_test(self, r: Running, now: float) -> bool:
        n = len(r.pods)
        if len(r.exits) + len(r.dead) >= n:
            return True
        failed = any(int(e.get("code") or 0) != 0 for e in r.exits.values()) or bool(r.dead) or bool(r.errors)
        if failed and r.first_failure is None:
            r.first_failure = now
        if r.first_failure is not None and now - r.first_failure > GRACE_S:
            return True
        if now > r.deadline:
            r.outcome.status = "timeout"
            for state in r.pods:
                self.kube.patch_pod(state.name, {"metadata": {"annotations": {mf.ANN_CANCEL: str(r.seq)}}})
            return True
        return False

    def _finish(self, r: Running) -> None:
        o, test = r.outcome, r.test
        o.ended = time.time()
        worker_s = max((float(e.get("elapsed_s") or 0.0) for e in r.exits.values()), default=0.0)
        if r.exits and not r.dead:
            self.overheads.append(max(0.0, (o.ended - o.started) - worker_s))
        nccl = [e.get("nccl") for e in r.exits.values() if e.get("nccl")]
        for env in o.env:
            rank = int(env.get("rank", -1))
            if rank in r.exits and r.exits[rank].get("nccl"):
                env["nccl"] = r.exits[rank]["nccl"]
        warning = next((w for w in (fallback_problem(test.profile, x, test.spec.memory) for x in nccl) if w), None)
        if o.status == "timeout":
            stuck = [rank for rank in range(len(r.pods)) if rank not in r.exits]
            last = o.results[-1]["size_bytes"] if o.results else None
            progress = f"last finished size {last} B" if last is not None else "no size finished"
            o.reason = f"timed out after {test.timeout_s:.0f}s; ranks {stuck} still running; {progress}"
        elif r.done and len(r.exits) == len(r.pods) and all(int(e.get("code") or 0) == 0 for e in r.exits.values()):
            o.status = "ok"
        else:
            o.status = "failed"
            if r.dead:
                rank = min(r.dead)
                o.reason = f"rank {rank} ({r.pods[rank].key[1]}): {r.dead[rank]}"
            elif r.errors:
                rank = min(r.errors)
                o.reason = f"rank {rank}: {r.errors[rank]}"
            else:
                bad = [(k, e.get("code")) for k, e in sorted(r.exits.items()) if int(e.get("code") or 0) != 0]
                o.reason = "; ".join(f"rank {k} exited with code {c}" for k, c in bad) or "rank 0 ended without finishing"
        if warning:
            # The test ran, but not over the fabric the profile names: say so in the record.
            o.reason = f"{o.reason}; {warning}" if o.reason else f"transport fallback: {warning}"
            for env in o.env:
                env["fallback"] = warning
        if o.status != "ok":
            o.log_tail = "\n".join(f"[rank {rank}] {line}" for rank, state in enumerate(r.pods)
                                   for line in [x for x in state.lines.get(r.seq, []) if x.strip()][-LOG_TAIL_LINES:])
        self._write_logs(r)

    def _write_logs(self, r: Running) -> None:
        if self.log_dir is None:
            return
        for rank, state in enumerate(r.pods):
            with state.lock:
                lines = state.lines.pop(r.seq, [])
                state.records.pop(r.seq, None)
            path = self.log_dir / f"{r.test.test_id}.rank{rank}.log"
            path.write_text(f"# pod {state.name} on {state.key[1]}\n" + "\n".join(lines) + "\n")

    # -- clean-up ----------------------------------------------------------------------------
    def close(self) -> None:
        """Delete every object of this run (label selected) and wait until its pods are gone."""
        if self._closed:
            return
        self._closed = True
        for state in self.pods.values():
            state.stop.set()
        try:
            self.kube.delete_run(mf.run_selector(self.run_id))
            if self.cache is not None:
                cache = self.cache
                cache.wait(lambda: not cache.objects, 60)
        finally:
            if self.cache is not None:
                self.cache.stop()
            self.pods.clear()


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(wall))


def _finished(pod: dict[str, Any] | None) -> bool:
    if pod is None:
        return True
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or bool(
        pod.get("metadata", {}).get("deletionTimestamp"))


def _ready(pod: dict[str, Any] | None, network: str | None, namespace: str) -> bool:
    """Running, and attached to the profile's network when it has one (gang-start condition)."""
    if pod is None or (pod.get("status") or {}).get("phase") != "Running":
        return False
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    if not network:
        return True
    status = (pod.get("metadata", {}).get("annotations") or {}).get(mf.ANN_NETWORK_STATUS)
    return attachment(status, network, namespace) is not None


def _death(pod: dict[str, Any] | None, name: str) -> str:
    if pod is None:
        return f"pod {name} was deleted during the test"
    status = pod.get("status") or {}
    if status.get("reason") == "DeadlineExceeded":
        return f"pod {name} hit activeDeadlineSeconds"
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated")
        if term:
            return f"pod {name} ended during the test: {term.get('reason', '')} exit code {term.get('exitCode')}"
    return f"pod {name} ended during the test ({status.get('phase')})"
