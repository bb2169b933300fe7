"""Tests on agent pods: hand each its pods, watch its records, decide how it ended.

A round's tests are handed to their pods with one write: the round's ConfigMap(s)
(handout.py; a new ``seq`` per test), deleted once the round is over. A test ends when every rank's worker exited, one failed (plus a grace period
for the others to report), its pod died, or the timeout (then the agents are
told to cancel it). One bad node fails its own tests only.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BackendError
from ...planner import PlannedTest
from ...spec import SweepSpec
from ..base import RoundRecordCallback, TestOutcome
from ..outcome import LOG_TAIL_LINES, RankRecords, log_tail
from . import manifests as mf
from .handout import TASK_PREFIX, RoundTest, assignment, round_configmaps, round_selector
from .nccl import attachments, fallback_problem, nccl_env, net_env, settings_env
from .options import kube_options
from .pods import PodPool, PodState, death, pod_keys

GRACE_S = 5.0
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
        self.options = kube_options(spec)  # validated once: _prepare runs for every test of every round
        self.seq = 0
        self.round = 0  # rounds handed out (names the round's ConfigMaps)
        self.overheads: list[float] = []  # per test: wall time not spent in the worker (seconds)
        self.log_dir: Path | None = None
        self._log_writer: ThreadPoolExecutor | None = None
        self._log_writes: list[Future[None]] = []

    def assign_all(self, tests: list[PlannedTest]) -> list[Running]:
        """Hand out a round's tests with one write (a ConfigMap per ``SHARD_BYTES`` of entries),
        whatever the number of pairs: one PATCH per pod cost 4.6 ms a test at 512 pairs a round
        (benchmarks/second_pass_makespan.py). A write that keeps failing (after Kube.call's
        retries) fails the tests it carried; the sweep goes on with the next round."""
        if not tests:
            return []
        self.round += 1
        started = [self._prepare(t, self.seq + 1 + i) for i, t in enumerate(tests)]
        self.seq += len(tests)
        pool = self.pool
        cms = round_configmaps(pool.run_id, pool.namespace, self.round, (rt for _, rt in started))
        by_test = {seq: i for i, cm in enumerate(cms) for seq in _seqs(cm)}
        for i, cm in enumerate(cms):
            try:
                pool.kube.create("ConfigMap", cm)
            except BackendError as exc:
                why = f"could not hand the round's tests to their pods (configmap {cm['metadata']['name']}): {exc.message}"
                for running, _ in started:
                    if by_test.get(running.seq) == i:
                        running.outcome.reason = why
        now, wall = time.monotonic(), time.time()
        for running, _ in started:  # the clock starts when the round is out, not while it is written
            running.started, running.deadline = now, now + running.test.timeout_s
            running.outcome.started = wall
        return [running for running, _ in started]

    def end_round(self) -> None:
        """Delete the round's ConfigMaps (one call). Best effort: close() deletes what is left of
        the run by label and names what it could not."""
        try:
            self.pool.kube.delete_configmaps(round_selector(self.pool.run_id, self.round))
        except BackendError:
            pass

    def _prepare(self, test: PlannedTest, seq: int) -> tuple[Running, RoundTest]:
        """The test's task and each of its pods' env, for the round's ConfigMap."""
        pool = self.pool
        states = [pool.pods[key] for key in pod_keys(test)]
        rank0 = pool.get(states[0].name) or {}
        master = (rank0.get("status") or {}).get("podIP") or f"{states[0].name}.{mf.service_name(pool.run_id)}"
        port = mf.master_port(self.options, seq)
        entry = RoundTest(seq, test.task().to_json())
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
                **nccl_env(test.profile, entries, self.options, rails),
                **settings_env(test.spec.env),
            }
            # The test's secret is not here: its agents derive it (handout.test_secret).
            # Per local rank: its rank, and its rail's address and HCA (rank i uses rail i).
            local_env = [{"RANK": str(index * local + i), "LOCAL_RANK": str(i), **net_env(test.profile, entries, rails, i)}
                         for i in range(local)]
            entry.pods[state.name] = assignment(seq, env, local_env)
        now = time.monotonic()
        return Running(test, seq, states, now, now + test.timeout_s, RankRecords(outcome)), entry

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
        """Tell the agents to stop test ``seq`` (on each pod's annotation, which its agent
        watches). Best effort: an agent that misses it stops the test when its next one
        arrives, and close() ends it with its pod."""
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
        """The test's log per pod, written by a background thread: two small files a test cost
        1.1 ms each between two rounds, 0.5 s a round of 512 pairs (flush_logs waits for them)."""
        if self.log_dir is None:
            return
        local = r.test.local_ranks
        files: list[tuple[Path, str]] = []
        for index, state in enumerate(r.pods):
            with state.lock:
                lines = state.lines.pop(r.seq, [])
                state.records.pop(r.seq, None)
            # One log per pod: a pod of several ranks holds ranks first..last (lines tagged by local rank).
            ranks = f"{index * local}" if local == 1 else f"{index * local}-{index * local + local - 1}"
            files.append((self.log_dir / f"{r.test.test_id}.rank{ranks}.log",
                          f"# pod {state.name} on {state.key[1]}\n" + "\n".join(lines) + "\n"))
        if self._log_writer is None:
            self._log_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="benchfab-test-logs")
        self._log_writes = [f for f in self._log_writes if not f.done() or f.exception() is not None]
        self._log_writes.append(self._log_writer.submit(_write_files, files))

    def flush_logs(self) -> None:
        """Wait until every test's log is on disk; the first write that failed raises here."""
        writer, writes = self._log_writer, self._log_writes
        self._log_writer, self._log_writes = None, []
        if writer is not None:
            writer.shutdown(wait=True)
        for write in writes:
            write.result()


def _write_files(files: list[tuple[Path, str]]) -> None:
    for path, text in files:
        path.write_text(text)


def _seqs(configmap: dict[str, Any]) -> list[int]:
    """The tests a round ConfigMap carries."""
    return [int(k[len(TASK_PREFIX):]) for k in configmap["data"] if k.startswith(TASK_PREFIX)]
