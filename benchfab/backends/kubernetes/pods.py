"""Agent pods: one per (profile, node, slot), created, gang-started, replaced and deleted.

A pod counts as started when it is Running, attached to each of its rails' networks,
and its agent said ``ready`` (its watch is up). Start-up is watched stage by
stage (the agent reports each stage it enters): a pod that cannot start is
explained from its events, an agent whose start-up stalls is named with its
stage, and only the tests that need that slot fail.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import BackendError, CleanupError, pod_not_started
from ...planner import Plan, PlannedTest
from ...spec import SweepSpec
from . import manifests as mf
from .agent import STAGE_CONNECT, STAGE_DEVICES, STAGE_IMPORTS, STAGE_PROCESS, STAGE_WATCH
from .client import Kube
from .events import explain
from .gang import apply_gang, create_pod_group, gated_reason, group_name, queue_note
from .handout import ANN_RUN_SECRET, new_run_secret
from .inventory import gpus_per_rank, hugepages_mib_per_rank
from .nccl import missing_attachments
from .options import kube_options
from .watch import Cache

Slot = tuple[str, str, int, int]  # (profile, node, first slot, ranks in the pod)

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
    STAGE_WATCH: "the agent reads its own pod through the run's Role benchfab-agent-RUN, which the controller "
                 "makes (it needs roles and rolebindings rights: jobs/k8s/rbac.yaml): "
                 "kubectl auth can-i watch pods/POD --as=system:serviceaccount:NAMESPACE:SA",
}


@dataclass
class PodState:
    """One agent pod and what its log said, routed by test seq."""

    key: Slot
    name: str
    # Whether the watch cache has shown this pod yet: watch events arrive some time
    # after the create, so a pod the cache does not hold is "not seen yet" until it has
    # been seen once, and "gone" only after.
    seen: bool = False
    records: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    lines: dict[int, list[str]] = field(default_factory=dict)
    seen_n: int = 0
    current_seq: int = 0
    follower: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    agent_ready: threading.Event = field(default_factory=threading.Event)  # its agent watches for tasks
    software: dict[str, Any] | None = None  # the node's kernel, driver, MOFED, firmware (the ready record)
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


class PodPool:
    """The run's agent pods, of one profile at a time, and the watch cache that sees them."""

    def __init__(self, kube: Kube, spec: SweepSpec, hostnames: Callable[[], dict[str, str]],
                 follow: Callable[[PodState], None]) -> None:
        self.kube = kube
        self.spec = spec
        self.namespace = kube.namespace
        self.run_id = f"adhoc-{int(time.time())}"
        self.run_secret = new_run_secret()  # its tests' secrets derive from it (handout.test_secret)
        self.plan: Plan | None = None
        self.pods: dict[Slot, PodState] = {}
        self.broken: dict[Slot, str] = {}  # slots whose pod could not start: reason
        self.profile: str | None = None
        self.cache: Cache | None = None
        self.closed = False
        self.cleanup_error: CleanupError | None = None  # what close() could not remove
        self.stage_limits_s = dict(STAGE_LIMITS_S)  # per instance: tests and callers may tighten them
        self._hostnames = hostnames  # node name -> its hostname label (from the inventory)
        self._follow = follow  # starts reading a pod's log once it runs
        self._service = False
        self._granted: set[str] = set()  # pod names the run's agent Role names
        self.gangs = 0  # gang starts so far (each names its pod group)
        self.pod_groups: list[tuple[str, str, str]] = []  # (group, version, name) of PodGroups made
        self.note: Callable[[str], None] = lambda line: print(f"benchfab: {line}", file=sys.stderr, flush=True)
        self._bound = False
        self._members_of: tuple[Plan | None, dict[tuple[str, frozenset[int]], frozenset[Slot]]] = (None, {})
        self._plans: dict[Slot, mf.PodPlan] = {}

    def get(self, name: str) -> dict[str, Any] | None:
        """The pod as the watch cache last saw it (None: gone, or no cache yet)."""
        return self.cache.get(name) if self.cache is not None else None

    def ended(self, state: PodState) -> bool:
        """The pod finished or was deleted (a pod the watch has not delivered yet has not)."""
        pod = self.get(state.name)
        if pod is None and not state.seen:
            return False
        state.seen = True
        return finished(pod)

    def ensure_cache(self) -> None:
        if self.cache is None:
            self.cache = Cache(self.kube, self.namespace, label_selector=mf.run_selector(self.run_id))
            self.cache.start()
            if not self.cache.synced.wait(30):
                raise BackendError(f"cannot list pods in namespace {self.namespace}: {self.cache.error}",
                                   hint="check access with: kubectl auth can-i list pods")
        if not self._service:
            self.kube.create("Service", mf.service_manifest(self.run_id, self.namespace))
            self.kube.create("NetworkPolicy", mf.network_policy_manifest(self.run_id, self.namespace, kube_options(self.spec)))
            self._service = True

    def switch_profile(self, profile: str) -> None:
        if self.profile is not None and self.profile != profile:
            # Profiles may compete for the same devices (shared plugin vs VFs): free them first.
            self.delete([k for k in self.pods if k[0] != profile])
            self.broken = {k: v for k, v in self.broken.items() if k[0] == profile}
        self.profile = profile

    def wanted_slots(self, profile: str, tests: list[PlannedTest]) -> list[Slot]:
        members = {key for t in tests for key in pod_keys(t)}
        if kube_options(self.spec).reuse_pods and self.plan is not None:
            # Start the whole profile's pool at once: one gang start for all its rounds. Only
            # pods of this round's shapes: a node's one-GPU pods and its all-GPU pod hold the
            # same devices, so the other shape is started when its round comes.
            members |= self._plan_members(self.plan, profile, frozenset(t.local_ranks for t in tests))
        return sorted(m for m in members if m not in self.broken)

    def _plan_members(self, plan: Plan, profile: str, shapes: frozenset[int]) -> frozenset[Slot]:
        """Every slot the plan's tests of ``profile`` and these shapes use, found once per plan:
        a scan of a 1,024-node all-pairs plan (523,776 tests) takes 0.43 s of CPU, which every
        one of its 1,023 rounds paid before (7 minutes of a sweep)."""
        if self._members_of[0] is not plan:
            self._members_of = (plan, {})
        found = self._members_of[1]
        if (profile, shapes) not in found:
            found[(profile, shapes)] = frozenset(key for t in plan.tests if t.profile_name == profile
                                                 and t.local_ranks in shapes for key in pod_keys(t))
        return found[(profile, shapes)]

    def missing(self, test: PlannedTest) -> str | None:
        """Why one of the test's slots has no started pod (its reason for failing), or None."""
        for key in pod_keys(test):
            if key in self.broken or key not in self.pods:
                return pod_not_started(key[1], key[2], self.broken.get(key, "no pod"))
        return None

    def pod_plan(self, key: Slot) -> mf.PodPlan:
        """The slot's pod, fixed for the run: built once (the hand-out asks for it every test)."""
        if key not in self._plans:
            profile, node, slot, ranks = key
            self._plans[key] = mf.PodPlan(profile, self.spec.resolved_profiles()[profile], node,
                                          self._hostnames().get(node, node), slot, gpus_per_rank(self.spec, profile),
                                          hugepages_mib_per_rank(self.spec, profile), ranks)
        return self._plans[key]

    def ensure(self, profile: str, wanted: list[Slot]) -> None:
        """Every wanted slot has a started pod, or is in ``broken`` with the reason it has none."""
        assert self.cache is not None
        # Pods that ended (crash, deadline) are replaced: delete them first (names are reused).
        self.delete([k for k in wanted if k in self.pods and self.ended(self.pods[k])])
        new = [k for k in wanted if k not in self.pods]
        # A node's pods of another shape hold the GPUs and rails the new ones need: free them first.
        shapes = {(k[1], k[3]) for k in new}
        self.delete([k for k in self.pods if k[0] == profile and any(k[1] == n and k[3] != r for n, r in shapes)])
        deadline = mf.pod_deadline_s(kube_options(self.spec), self.plan.estimate_s if self.plan is not None else 3600.0)
        self._grant_agents(new)
        bodies = [mf.pod_manifest(self.run_id, self.namespace, str(self.spec.image), self.pod_plan(key),
                                  kube_options(self.spec), deadline) for key in new]
        for body in bodies:  # the run secret each agent derives its tests' secrets from (handout.py)
            body["metadata"].setdefault("annotations", {})[ANN_RUN_SECRET] = self.run_secret
        if new:  # one gang: admitted together or not at all (gang.py)
            self.gangs += 1
            for group in apply_gang(bodies, kube_options(self.spec).scheduling,
                                    group_name(self.run_id, profile, self.gangs)):
                self.pod_groups.append(create_pod_group(self.kube, group))
        for key, body in zip(new, bodies, strict=True):
            self.kube.create("Pod", body)
            self.pods[key] = PodState(key, body["metadata"]["name"])
        if new:
            failed = self._gang_start(profile, new)
            # A pod that could not start would grab its node's devices later: remove it now.
            self.delete(failed)

    def _grant_agents(self, new: list[Slot]) -> None:
        """Before the pods exist: let their agents (and only theirs) read their own pods."""
        names = {mf.pod_name(self.run_id, *key) for key in new} - self._granted
        if not names:
            return
        named = kube_options(self.spec).service_account
        if named and not self._bound and (missing := self.kube.missing_service_account(named)):
            raise BackendError(missing[0], hint=missing[1])
        self._granted |= names
        *account, role, binding = mf.agent_access(self.run_id, self.namespace, self._granted, kube_options(self.spec))
        if not self._bound:
            for obj in account:  # the run's own account, before any pod names it
                self.kube.create("ServiceAccount", obj)
        self.kube.apply_role(role)
        if not self._bound:
            self.kube.create("RoleBinding", binding)
            self._bound = True

    def _gang_start(self, profile: str, new: list[Slot]) -> list[Slot]:
        """Wait for the new pods; the slots that did not start (their reasons are in ``broken``).

        Each pod first becomes Running and attached (scheduling, image, CNI: bounded by
        kubernetes.start_timeout, explained from events), then its agent goes through its
        start-up stages to "ready" (its watch is up, so agent start-up is not counted
        against the first test). The agent may take as long as it keeps making progress,
        within the same outer start_timeout.
        """
        pending = {self.pods[k].name: k for k in new}
        plans = {k: self.pod_plan(k) for k in new}  # once: each look checks every rail's attachment
        end = time.monotonic() + kube_options(self.spec).start_timeout
        failed: list[Slot] = []
        shown: str | None = None
        while pending:
            now = time.monotonic()
            note = queue_note([self.get(self.pods[k].name) for k in new], kube_options(self.spec).scheduling)
            if note is not None and note != shown:
                self.note(note)
            shown = note
            for name, key in list(pending.items()):
                why, settled = self._start_step(self.pods[key], plans[key], now)
                if why is not None:
                    self.broken[key] = why
                    failed.append(key)
                if settled:
                    del pending[name]
            if not pending or time.monotonic() >= end:
                break
            time.sleep(0.05)
        for key in pending.values():  # the outer start_timeout ran out
            self.broken[key] = self._out_of_time(self.pods[key])
            failed.append(key)
        return failed

    def _start_step(self, state: PodState, plan: mf.PodPlan, now: float) -> tuple[str | None, bool]:
        """One look at a starting pod: (why it failed or None, whether it is settled either way)."""
        if self.ended(state):  # a pod whose ADDED event has not arrived yet has not ended
            explained = explain(self.get(state.name), self.kube.events_for(state.name))
            if state.follower is not None:
                explained += f"; its agent had reached stage '{state.stage}'"
            return explained, True
        if state.follower is None:
            if ready(self.get(state.name), plan, self.namespace):
                state.enter_stage(STAGE_PROCESS)
                self._follow(state)
            return None, False
        if state.agent_ready.is_set():
            return None, True
        why = self.stalled(state, now)
        return why, why is not None

    def _out_of_time(self, state: PodState) -> str:
        if state.follower is None:
            pod = self.get(state.name)
            unattached = attachment_problem(pod, self.pod_plan(state.key), state.name, self.namespace)
            gated = gated_reason(pod, kube_options(self.spec).scheduling)
            return gated or unattached or explain(pod, self.kube.events_for(state.name))
        with state.lock:
            stage, wall = state.stage, state.stage_wall
        return (f"the agent in pod {state.name} was still at stage '{stage}' (since {clock(wall)}) "
                f"when kubernetes.start_timeout ({kube_options(self.spec).start_timeout:.0f} s) ran out "
                f"(fix: raise kubernetes.start_timeout if it is still progressing: kubectl logs {state.name})")

    def stalled(self, state: PodState, now: float) -> str | None:
        """Why the agent's start-up counts as stuck: no new stage within the stage's limit."""
        with state.lock:
            stage, since, wall, detail = state.stage, state.stage_since, state.stage_wall, state.stage_detail
        limit = self.stage_limits_s.get(stage, DEFAULT_STAGE_LIMIT_S)
        if now - since <= limit:
            return None
        account = str((self.get(state.name) or {}).get("spec", {}).get("serviceAccountName") or "default")
        fix = (STAGE_FIXES.get(stage, "kubectl logs POD").replace("benchfab-agent-RUN", mf.agent_role_name(self.run_id))
               .replace("POD", state.name)
               .replace("NAMESPACE", self.namespace).replace(":SA", f":{account}"))
        # The agent's last error may carry its own, more specific fix (BenchfabError's hint): keep one.
        tail = f"; {detail}" if detail else ""
        if "(fix:" not in detail:
            tail += f" (fix: {fix})"
        return f"the agent in pod {state.name} stopped at stage '{stage}' for {now - since:.0f} s (since {clock(wall)}){tail}"

    def delete(self, keys: list[Slot]) -> None:
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

    def close(self) -> None:
        """Delete every object of this run (label selected) and wait until its pods are gone.

        What cannot be removed (the API server keeps failing) is named, with the kubectl line
        that removes it, in a CleanupError; a second close raises the same one.
        """
        if self.closed:
            if self.cleanup_error is not None:
                raise self.cleanup_error
            return
        self.closed = True
        for state in self.pods.values():
            state.stop.set()
        selector = mf.run_selector(self.run_id)
        try:
            failed = self.kube.delete_run(selector)
            errors = list(failed.values())
            if self.cache is not None and "pods" not in failed:
                cache = self.cache
                if not cache.wait(lambda: not cache.objects, 60):
                    errors.append(f"pods still there 60 s after their deletion: {', '.join(sorted(cache.objects))}")
        finally:
            if self.cache is not None:
                self.cache.stop()
        if errors:
            self.cleanup_error = self._left_behind(selector, errors)
        self.pods.clear()
        if self.cleanup_error is not None:
            raise self.cleanup_error

    def _left_behind(self, selector: str, errors: list[str]) -> CleanupError | None:
        """What is left of the run after a clean-up that failed (None: nothing after all)."""
        try:
            left = self.kube.run_objects(selector)
        except BackendError as exc:
            # Cannot even list: name what this controller made and has not seen go.
            names = sorted((set(self.cache.objects) if self.cache is not None else set())
                           | {s.name for s in self.pods.values()})
            left = [f"pod/{n}" for n in names]
            if self._service:
                left += [f"service/{mf.service_name(self.run_id)}", f"networkpolicy/{mf.service_name(self.run_id)}"]
            if self._granted:
                name = mf.agent_role_name(self.run_id)
                left += [f"role/{name}", f"rolebinding/{name}"]
                if not kube_options(self.spec).service_account:
                    left.append(f"serviceaccount/{name}")
            errors.append(f"and listing what is left failed too ({exc.message}), so these may be left")
        if not left:
            return None
        return CleanupError(f"clean-up of run {self.run_id} failed ({'; '.join(errors)}): left behind in namespace "
                            f"{self.namespace}: {', '.join(left)}", left=left, command=self.kube.delete_command(selector))


def pod_keys(test: PlannedTest) -> list[Slot]:
    """The pods a test runs in, in rank order: (profile, node, first slot, ranks per pod)."""
    return [(test.profile_name, node, slot, test.local_ranks) for node, slot in test.members]


def clock(wall: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(wall))


def finished(pod: dict[str, Any] | None) -> bool:
    if pod is None:
        return True
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or bool(
        pod.get("metadata", {}).get("deletionTimestamp"))


def running(pod: dict[str, Any] | None) -> bool:
    return (pod is not None and (pod.get("status") or {}).get("phase") == "Running"
            and not pod.get("metadata", {}).get("deletionTimestamp"))


def unattached_rails(pod: dict[str, Any] | None, plan: mf.PodPlan, namespace: str) -> list[str]:
    """The pod's rails its Multus network-status does not list (``rail R (network N)``, R the
    profile's rail index; ``network N`` without rails): every rail's network, not only the
    profile's, must be attached before a rank may use it."""
    status = ((pod or {}).get("metadata", {}).get("annotations") or {}).get(mf.ANN_NETWORK_STATUS)
    rails = plan.rails
    count = len(plan.profile.rails)
    missing = missing_attachments(status, rails, plan.profile.mode == "sriov", namespace)
    return [f"rail {(plan.slot + i) % count} (network {net})" if count else f"network {net}" for i, net in missing]


def ready(pod: dict[str, Any] | None, plan: mf.PodPlan, namespace: str) -> bool:
    """Running, and attached to each of its rails' networks (gang-start condition)."""
    return running(pod) and not unattached_rails(pod, plan, namespace)


def attachment_problem(pod: dict[str, Any] | None, plan: mf.PodPlan, name: str, namespace: str) -> str | None:
    """Why a Running pod is not ready: the rails Multus did not attach (None: it is not that)."""
    missing = unattached_rails(pod, plan, namespace) if running(pod) else []
    if not missing:
        return None
    return (f"pod {name} is Running but its Multus network-status ({mf.ANN_NETWORK_STATUS}) lists no attachment "
            f"for {', '.join(missing)} (fix: check that NetworkAttachmentDefinition and its device plugin "
            f"resource on node {plan.node}: kubectl describe pod {name} -n {namespace})")


def death(pod: dict[str, Any] | None, name: str) -> str:
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
