"""Tests on agent pods: hand each its pods, watch its records, decide how it ended.

A test is handed to its pods by patching the task annotation (a new ``seq`` per
test). It ends when every rank's worker exited, one failed (plus a grace period
for the others to report), its pod died, or the timeout (then the agents are
told to cancel it). One bad node fails its own tests only.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BackendError
from ...planner import PlannedTest
from ...rdma.oob import SECRET_ENV, new_test_secret
from ...spec import SweepSpec
from ..base import RoundRecordCallback, TestOutcome
from ..outcome import LOG_TAIL_LINES, RankRecords, log_tail
from . import manifests as mf
from .nccl import attachments, fallback_problem, nccl_env, net_env, settings_env
from .options import kube_options
from .pods import PodPool, PodState, death, pod_keys

GRACE_S = 5.0
HANDOUT_THREADS = 32  # a round's tests handed out at once (the client's pool holds 256 connections)
POLL_S = 0.02


@dataclass
class Running:
    """One test handed to its pods, and what its ranks reported so far."""

    test: PlannedTest
    seq: int
    pods: list[PodState]
    started: float
    deadline: float
    ranks: RankRecords
    exits: dict[int, dict[str, Any]] = field(default_factory=dict)  # rank -> the agent's exit record
    dead: dict[int, str] = field(default_factory=dict)  # rank -> why its pod went away
    consumed: dict[int, int] = field(default_factory=dict)  # rank -> records of this seq already taken
    first_failure: float | None = None

    @property
    def outcome(self) -> TestOutcome:
        return self.ranks.outcome

    @property
    def nranks(self) -> int:
        return len(self.pods) * self.test.local_ranks


class TestTracker:
    """Runs tests on the pool's started pods; remembers the controller's overhead per test."""

    __test__ = False  # not a pytest class

    def __init__(self, pool: PodPool, spec: SweepSpec) -> None:
        self.pool = pool
        self.spec = spec
        self.seq = 0
        self.overheads: list[float] = []  # per test: wall time not spent in the worker (seconds)
        self.log_dir: Path | None = None

    def assign_all(self, tests: list[PlannedTest]) -> list[Running]:
        """Hand out a round's tests at once: their pod PATCHes go in parallel (one after
        another, a round of 512 pairs waited 1,024 API round trips: 90 ms a test measured on
        the simulated cluster, benchmarks/second_pass_makespan.py)."""
        seqs = list(range(self.seq + 1, self.seq + 1 + len(tests)))
        self.seq += len(tests)
        if len(tests) <= 1:
            return [self._assign(t, s) for t, s in zip(tests, seqs)]
        with ThreadPoolExecutor(max_workers=min(HANDOUT_THREADS, len(tests)), thread_name_prefix="handout") as ex:
            return list(ex.map(self._assign, tests, seqs))

    def _assign(self, test: PlannedTest, seq: int) -> Running:
        """Write the test's task (and each rank's env) on its pods' annotations."""
        pool = self.pool
        states = [pool.pods[key] for key in pod_keys(test)]
        rank0 = pool.get(states[0].name) or {}
        master = (rank0.get("status") or {}).get("podIP") or f"{states[0].name}.{mf.service_name(pool.run_id)}"
        port = mf.master_port(kube_options(self.spec), seq)
        task_json = test.task().to_json()
        secret = new_test_secret()  # one per test: its ranks accept only each other
        outcome = TestOutcome(test.test_id, "failed", started=time.time())
        local = test.local_ranks
        for index, state in enumerate(states):
            pod = pool.get(state.name) or {}
            status = ((pod.get("metadata") or {}).get("annotations") or {}).get(mf.ANN_NETWORK_STATUS)
            rails = mf.pod_rails(test.profile, state.key[2], local)
            entries = attachments(status, mf.pod_networks(pool.pod_plan(state.key)), pool.namespace)
            env = {
                # torchrun's names: the pod is one node of G = LOCAL_WORLD_SIZE ranks.
                "WORLD_SIZE": str(len(states) * local), "LOCAL_WORLD_SIZE": str(local), "GROUP_RANK": str(index),
                "MASTER_ADDR": master, "MASTER_PORT": str(port),
                **nccl_env(test.profile, entries, kube_options(self.spec), rails),
                **settings_env(test.spec.env),
                SECRET_ENV: secret,
            }
            # Per local rank: its rank, and its rail's address and HCA (rank i uses rail i).
            local_env = [{"RANK": str(index * local + i), "LOCAL_RANK": str(i), **net_env(test.profile, entries, rails, i)}
                         for i in range(local)]
            ann = mf.task_annotation(seq, task_json, env, local_env)
            try:
                if pool.kube.patch_pod(state.name, {"metadata": {"annotations": {mf.ANN_TASK: ann}}}) is None:
                    outcome.reason = f"pod {state.name} vanished before the test started"
            except BackendError as exc:
                # The API server kept refusing (after Kube.call's retries): this test fails, the
                # pod is replaced before its next test, the sweep goes on.
                outcome.reason = f"could not hand the test to pod {state.name} ({state.key[1]}): {exc.message}"
                pool.lost[state.key] = outcome.reason
                self._cancel(seq, states[:index])  # its peers got it: they must not wait for this rank
                break
        return Running(test, seq, states, time.monotonic(), time.monotonic() + test.timeout_s, RankRecords(outcome))

    def wait(self, running: list[Running], on_record: RoundRecordCallback) -> None:
        """Until every test of the round ended (a test that could not be handed out already has)."""
        active = [r for r in running if not r.outcome.reason]
        for r in running:
            if r.outcome.reason:
                r.outcome.ended = time.time()
        while active:
            now = time.monotonic()
            for r in list(active):
                self._drain(r, on_record)
                if self._over(r, now):
                    self._finish(r)
                    active.remove(r)
            if active:
                time.sleep(POLL_S)

    def _drain(self, r: Running, on_record: RoundRecordCallback) -> None:
        test_id = r.test.test_id
        local = r.test.local_ranks
        for index, state in enumerate(r.pods):
            with state.lock:
                recs = state.records.get(r.seq, [])
                fresh = recs[r.consumed.get(index, 0):]
                r.consumed[index] = len(recs)
            for rec in fresh:
                # The agent tags each record with the worker's local rank (0 in a one-rank pod).
                rank = index * local + int(rec.get("local_rank") or 0)
                if rec.get("type") == "agent" and rec.get("event") == "exit":
                    r.exits[rank] = rec
                else:
                    r.ranks.take(rank, rec, lambda res: on_record(test_id, res),
                                 env_extra={"pod": state.name, "node": state.key[1]})
            ranks = range(index * local, (index + 1) * local)
            if any(k not in r.exits and k not in r.dead for k in ranks) and self.pool.ended(state):
                why = death(self.pool.get(state.name), state.name)
                r.dead.update({k: why for k in ranks if k not in r.exits})

    def _over(self, r: Running, now: float) -> bool:
        """Whether the test has ended; on its timeout, tell its agents to cancel it."""
        if len(r.exits) + len(r.dead) >= r.nranks:
            return True
        failed = any(int(e.get("code") or 0) != 0 for e in r.exits.values()) or bool(r.dead) or bool(r.ranks.errors)
        if failed and r.first_failure is None:
            r.first_failure = now
        if r.first_failure is not None and now - r.first_failure > GRACE_S:
            return True
        if now > r.deadline:
            r.outcome.status = "timeout"
            self._cancel(r.seq, r.pods)
            return True
        return False

    def _cancel(self, seq: int, pods: list[PodState]) -> None:
        """Tell the agents to stop test ``seq``. Best effort: an agent that misses it stops the
        test when its next one arrives, and close() ends it with its pod."""
        for state in pods:
            try:
                self.pool.kube.patch_pod(state.name, {"metadata": {"annotations": {mf.ANN_CANCEL: str(seq)}}})
            except BackendError:
                pass

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
            # The node's kernel, driver, MOFED and HCA firmware, as its agent found them at start-up.
            software = r.pods[rank // test.local_ranks].software if 0 <= rank < r.nranks else None
            if software:
                env["software"] = software
        warning = next((w for w in (fallback_problem(test.profile, x, test.spec.memory) for x in nccl) if w), None)
        codes = {k: int(e.get("code") or 0) for k, e in sorted(r.exits.items())}
        first_dead = min(r.dead) if r.dead else None
        r.ranks.settle(
            test.timeout_s, stuck=[rank for rank in range(r.nranks) if rank not in r.exits],
            exited_ok=len(r.exits) == r.nranks and all(c == 0 for c in codes.values()),
            exit_problems=[f"rank {k} exited with code {r.exits[k].get('code')}" for k, c in codes.items() if c != 0],
            death=None if first_dead is None else
            f"rank {first_dead} ({r.pods[first_dead // test.local_ranks].key[1]}): {r.dead[first_dead]}")
        if warning:
            # The test ran, but not over the fabric the profile names: say so in the record.
            o.reason = f"{o.reason}; {warning}" if o.reason else f"transport fallback: {warning}"
            for env in o.env:
                env["fallback"] = warning
        if o.status != "ok":
            o.log_tail = log_tail([[x for x in state.lines.get(r.seq, []) if x.strip()][-LOG_TAIL_LINES:]
                                   for state in r.pods])
        self._write_logs(r)

    def _write_logs(self, r: Running) -> None:
        if self.log_dir is None:
            return
        local = r.test.local_ranks
        for index, state in enumerate(r.pods):
            with state.lock:
                lines = state.lines.pop(r.seq, [])
                state.records.pop(r.seq, None)
            # One log per pod: a pod of several ranks holds ranks first..last (lines tagged by local rank).
            ranks = f"{index * local}" if local == 1 else f"{index * local}-{index * local + local - 1}"
            path = self.log_dir / f"{r.test.test_id}.rank{ranks}.log"
            path.write_text(f"# pod {state.name} on {state.key[1]}\n" + "\n".join(lines) + "\n")
