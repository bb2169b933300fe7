"""The Kubernetes backend: a round's tests on agent pods, in parallel.

Lifecycle (see docs/KUBERNETES.md):
1. ``nodes()`` reads the inventory; the sweep places tests on it
   (``planner.plan``) and hands the plan over with ``start()``.
2. For each round, ``run_round`` makes sure every (node, slot) the round
   needs has a Running agent pod of the round's profile whose agent said
   ready (``pods.PodPool``: gang start; a pod that cannot start is explained
   from its events, an agent whose start-up stalls is named with its stage,
   and only the tests that need it fail). With ``reuse_pods`` (default) the
   pods of a profile are created once, for all of its rounds.
3. Each test is handed to its pods by patching the task annotation; the
   agents run the worker and print records to their logs, which one
   follower thread per pod reads and routes by test ``seq`` (``logs``).
4. A test ends when every rank's worker exited, one failed (plus a grace
   period for the others to report), its pod died, or the timeout (then the
   agents are told to cancel it); ``tracking.TestTracker``. One bad node
   fails its own tests only.
5. ``close()`` (also on Ctrl-C / SIGTERM) deletes every object with the run's
   label and waits until the pods are gone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...costs import CostModel, pod_costs
from ...errors import CleanupError
from ...placement import NodeInfo
from ...planner import Plan, PlannedTest
from ...spec import SweepSpec
from ..base import RoundRecordCallback, TestOutcome
from .client import ClusterOptions, Kube, connect
from .gang import delete_pod_groups
from .inventory import nodes_for_planner, read_inventory
from .lease import LeaseLock
from .logs import LogFollowers
from .options import kube_options
from .pods import PodPool, PodState, Slot
from .tracking import Running, TestTracker
from .watch import Cache


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, spec: SweepSpec, options: ClusterOptions | None = None, kube: Kube | None = None) -> None:
        self.spec = spec
        self.kube = kube or connect(options or ClusterOptions(), spec.namespace)
        self.namespace = self.kube.namespace
        self._inventory: list[dict[str, Any]] | None = None
        self.logs: LogFollowers
        self.pool = PodPool(self.kube, spec, self._hostnames, lambda state: self.logs.follow(state))
        self.logs = LogFollowers(self.pool)
        self.tests = TestTracker(self.pool, spec)
        self.lock: LeaseLock | None = None

    # What callers and tests look at, kept where it always was.
    @property
    def run_id(self) -> str:
        return self.pool.run_id

    @property
    def cache(self) -> Cache | None:
        return self.pool.cache

    @property
    def pods(self) -> dict[Slot, PodState]:
        return self.pool.pods

    @property
    def stage_limits_s(self) -> dict[str, float]:
        return self.pool.stage_limits_s

    @property
    def overheads(self) -> list[float]:
        return self.tests.overheads

    @property
    def costs(self) -> CostModel:
        """Agent pods on each profile's fabric: pod start-up, hand-out and worker start as
        measured on the simulated cluster (costs.py), the bytes at the profile's line rate."""
        return pod_costs()

    # -- the Backend protocol ------------------------------------------------------------
    def start(self, run_id: str, plan: Plan) -> None:
        self.pool.run_id = run_id
        self.pool.plan = plan
        # Before the first pod: no other run measures these nodes while this one does (lease.py).
        nodes = {node for t in plan.tests for node, _ in t.members}
        if self.lock is not None:  # started again (diagnose's retests): the new plan's nodes
            self.lock.release()
        self.lock = LeaseLock(self.kube, kube_options(self.spec).lock, run_id, nodes)
        self.lock.acquire()

    def unavailable(self, test: PlannedTest) -> str | None:
        # Placement already left out the nodes without the test's GPUs and RDMA resources.
        return None

    def inventory_nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes as read once for this run: planning and run.json see the same list."""
        if self._inventory is None:
            self._inventory = read_inventory(self.kube, self.spec)
        return self._inventory

    def _hostnames(self) -> dict[str, str]:
        return {n["name"]: n["hostname"] for n in self.inventory_nodes()}

    def nodes(self) -> list[NodeInfo]:
        return nodes_for_planner(self.spec, self.inventory_nodes())

    def inventory(self) -> dict[str, Any]:
        return {"backend": "kubernetes", "namespace": self.namespace, "nodes": self.inventory_nodes()}

    def run_round(self, tests: Sequence[PlannedTest], log_dir: str, on_record: RoundRecordCallback) -> list[TestOutcome]:
        self.tests.log_dir = Path(log_dir)
        self.tests.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._run_round(list(tests), on_record)
        except BaseException:
            # Ctrl-C / SIGTERM (KeyboardInterrupt) or a bug: leave nothing behind.
            try:
                self.close()
            except CleanupError:
                pass  # the sweep's own close() raises it again and reports what is left
            raise

    def close(self) -> None:
        """Delete every object of this run (label selected) and wait until its pods are gone;
        a CleanupError names what is left and the kubectl line that removes it."""
        try:
            self.pool.close()
        finally:
            delete_pod_groups(self.kube, self.pool.pod_groups)  # never raises: names what is left
            self.pool.pod_groups.clear()
            if self.lock is not None:
                self.lock.release()  # after the pods are gone: nothing of this run still runs there
                self.lock = None
            self.tests.flush_logs()  # every ended test's log is on disk when the sweep goes on

    # -- one round ---------------------------------------------------------------------------
    def _run_round(self, tests: list[PlannedTest], on_record: RoundRecordCallback) -> list[TestOutcome]:
        if not tests:
            return []
        self.pool.ensure_cache()
        outcomes: dict[str, TestOutcome] = {}
        for profile in sorted({t.profile_name for t in tests}):
            group = [t for t in tests if t.profile_name == profile]
            self.pool.switch_profile(profile)
            self.pool.ensure(profile, self.pool.wanted_slots(profile, group))
            ready: list[PlannedTest] = []
            for test in group:
                why = self.pool.missing(test)
                if why is None:
                    ready.append(test)
                    continue
                now = time.time()
                outcomes[test.test_id] = TestOutcome(test.test_id, "failed", reason=why, started=now, ended=now)
            running: list[Running] = self.tests.assign_all(ready)
            self.tests.wait(running, on_record)
            if running:
                self.tests.end_round()
            for r in running:
                outcomes[r.test.test_id] = r.outcome
            if not kube_options(self.spec).reuse_pods:
                self.pool.delete([k for k in self.pool.pods if k[0] == profile])
        return [outcomes[t.test_id] for t in tests]
