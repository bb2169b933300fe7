"""The agent's rank workers kept across tests (backends/kubernetes/rank_workers.py), run for
real: two pods' worker sets in this process, each a serving ``python -m benchfab.worker``,
measuring tcp point-to-point pairs over loopback. What is asserted comes from the workers
themselves: the pid each rank reports in its ``env`` record, the agent's start and exit
records, and the results."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from benchfab.backends.kubernetes.rank_workers import RankWorkers
from benchfab.backends.local import free_port
from benchfab.task import TEST_SECRET_ENV, Task


def _task(test_id: str) -> str:
    return Task(test_id=test_id, workload="rdma_write_bw", ranks=2, sizes=[4096], dtype="float32", op="sum",
                iterations=20, duration=None, warmup=2, in_place=[False], check=False, root=0, device="cpu",
                cuda_graph=0, rendezvous_timeout=10.0, transport="tcp").to_json()


class Pod:
    """One pod's RankWorkers and what its agent would have printed."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.workers = RankWorkers(self._emit, self.lines.append)

    def _emit(self, record: dict[str, Any]) -> None:
        with self.cond:
            self.records.append(record)
            self.cond.notify_all()

    def exit_of(self, seq: int, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [r for r in self.records if r.get("event") == "exit" and r.get("seq") == seq]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                assert left > 0, f"test {seq} never ended: {self.records[-5:]} {self.lines[-10:]}"
                self.cond.wait(left)

    def of(self, seq: int, kind: str) -> list[dict[str, Any]]:
        with self.cond:
            return [r for r in self.records if r.get("seq") == seq and (r.get("type") == kind or r.get("event") == kind)]

    def pid(self, seq: int) -> int:
        (env,) = self.of(seq, "env")
        return int(env["pid"])


@pytest.fixture
def pods() -> Iterator[tuple[Pod, Pod]]:
    a, b = Pod(), Pod()
    yield a, b
    a.workers.close()
    b.workers.close()


def _run(a: Pod, b: Pod, seq: int, task_json: str | None = None, env: dict[str, str] | None = None,
         only_rank0: bool = False) -> None:
    """Hand test ``seq`` to both pods, as their agents do for a round ConfigMap entry."""
    task_json = task_json or _task(f"t{seq}")
    base = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
            TEST_SECRET_ENV: secrets.token_hex(32), **(env or {})}
    a.workers.run(seq, task_json, {**base, "GROUP_RANK": "0"}, [{"RANK": "0", "LOCAL_RANK": "0"}])
    if not only_rank0:
        b.workers.run(seq, task_json, {**base, "GROUP_RANK": "1"}, [{"RANK": "1", "LOCAL_RANK": "0"}])


def test_a_worker_serves_one_test_after_another(pods: tuple[Pod, Pod]) -> None:
    a, b = pods
    for seq in (1, 2, 3):
        _run(a, b, seq)
        assert a.exit_of(seq)["code"] == 0 and b.exit_of(seq)["code"] == 0, a.lines[-10:]
        assert [r["test_id"] for r in a.of(seq, "result")] == [f"t{seq}"]
    # One process per rank for the three tests: its pid, and the agent's start records, say so.
    assert a.pid(1) == a.pid(2) == a.pid(3) and b.pid(1) == b.pid(2) == b.pid(3) != a.pid(1)
    assert [r["reused"] for s in (1, 2, 3) for r in a.of(s, "start")] == [False, True, True]
    assert a.workers.started == b.workers.started == 1


def test_a_failed_test_loses_its_worker_and_the_next_test_runs(pods: tuple[Pod, Pod]) -> None:
    a, b = pods
    _run(a, b, 1)
    assert a.exit_of(1)["code"] == 0
    first = a.pid(1)
    # A task the worker cannot read: exit code 2, and the worker leaves (what it left is unknown).
    a.workers.run(2, '{"test_id": "broken"}', {"WORLD_SIZE": "2"}, [{"RANK": "0"}])
    assert a.exit_of(2)["code"] == 2
    _run(a, b, 3)
    assert a.exit_of(3)["code"] == 0 and b.exit_of(3)["code"] == 0
    assert a.pid(3) != first and b.pid(3) == b.pid(1)  # only the failed test's worker was replaced
    assert a.workers.started == 2 and b.workers.started == 1


def test_a_hung_test_is_killed_and_only_its_worker_replaced(pods: tuple[Pod, Pod]) -> None:
    a, b = pods
    _run(a, b, 1)
    assert a.exit_of(1)["code"] == 0 and b.exit_of(1)["code"] == 0
    # Rank 1 never comes: rank 0 waits for its peer, like a hung test, until the agent cancels it.
    _run(a, b, 2, only_rank0=True)
    time.sleep(0.5)
    assert a.workers.running_seq() == 2
    a.workers.stop_running()
    assert a.exit_of(2)["code"] == -signal.SIGKILL
    _run(a, b, 3)
    assert a.exit_of(3)["code"] == 0 and b.exit_of(3)["code"] == 0
    assert a.pid(3) != a.pid(1) and b.pid(3) == b.pid(1)


def test_a_worker_that_dies_during_its_test_reports_it(pods: tuple[Pod, Pod]) -> None:
    a, b = pods
    _run(a, b, 1, only_rank0=True)
    time.sleep(0.5)
    (start,) = a.of(1, "start")
    os.kill(int(start["pid"]), signal.SIGKILL)
    assert a.exit_of(1)["code"] == -signal.SIGKILL
    _run(a, b, 2)
    assert a.exit_of(2)["code"] == 0 and b.exit_of(2)["code"] == 0


def test_a_worker_is_not_given_a_test_of_another_environment(pods: tuple[Pod, Pod]) -> None:
    """NCCL and CUDA read their variables once per process: a test that sets others gets a new worker."""
    a, b = pods
    for seq, env in ((1, {}), (2, {"NCCL_ALGO": "Ring"}), (3, {"NCCL_ALGO": "Ring"})):
        _run(a, b, seq, env=env)
        assert a.exit_of(seq)["code"] == 0 and b.exit_of(seq)["code"] == 0
    assert a.pid(1) != a.pid(2) == a.pid(3)
    assert [r["reused"] for s in (1, 2, 3) for r in a.of(s, "start")] == [False, False, True]
