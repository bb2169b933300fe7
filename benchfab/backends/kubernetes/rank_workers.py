"""The rank workers an agent keeps alive across the tests of a run (issue #27).

Starting ``python -m benchfab.worker`` for every test cost each test a process start and
its imports (0.2 s on a loaded node for a point-to-point rank, seconds for torch), and its
exit (0.1 s) before the agent could report it. Instead each local rank of a pod has one
serving worker (``benchfab.worker --serve``): the agent writes it a test on stdin and it
answers with the test's records and a ``finished`` record, which the agent reports as the
test's ``exit`` at once, and then waits for the next test.

Failure isolation is kept by the rules of reuse, each for a reason:

- A test that failed, timed out or was cancelled loses its worker (what it left behind,
  a hung thread or a half-open connection, is unknown); so does a test that touched a GPU
  (the worker decides: CUDA context, NCCL's per-process state). A worker that hangs is
  killed with its process group, as before, and only its test is lost.
- A worker serves only tests whose environment, apart from ``TEST_ENV_KEYS`` (rank,
  rendezvous address and port, the test's secret), equals the one it started with: NCCL
  and CUDA read theirs once per process.
- A worker that leaves after a test is replaced at once by a waiting one with the same
  environment and imports, so the next test does not pay for the start either. One that
  dies before it ever waited for a test is not replaced (a broken image would otherwise
  start workers in a loop); the next test starts its own and fails with its output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...task import parse_record
from ...worker import TEST_ENV_KEYS

Emit = Callable[[dict[str, Any]], None]
Say = Callable[[str], None]


class RankWorker:
    """One local rank's serving worker process and the thread that relays its output.
    Its records and its exit carry the test's ``seq`` and ``local_rank``."""

    def __init__(self, fixed_env: dict[str, str], local_rank: int, of: int, preload: str, emit: Emit, say: Say,
                 on_gone: Callable[[RankWorker], None], argv: Sequence[str] | None = None) -> None:
        self.fixed_env = fixed_env
        self.local_rank = local_rank
        self.of = of
        self.preload = preload
        self._emit, self._say, self._on_gone = emit, say, on_gone
        # Several ranks share the pod log: tag their plain lines (a one-rank pod's stay as they are).
        self.prefix = f"[local rank {local_rank}] " if of > 1 else ""
        self.lock = threading.Lock()
        self.seq = 0  # the test it runs now, or ran last
        self.busy = False
        self.retiring = False  # said it will not take another test, or was killed
        self.waited = False  # reached its loop at least once (a replacement is worth starting)
        self.tests = 0
        self.started = 0.0
        self.nccl_lines: list[str] = []
        full = {**os.environ, **fixed_env, "BENCHFAB_PARENT_PID": str(os.getpid())}  # it dies with us
        argv = argv or [sys.executable, "-m", "benchfab.worker", "--serve", "--preload", preload]
        self.proc = subprocess.Popen(list(argv),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=full, start_new_session=True)
        self.thread = threading.Thread(target=self._relay, daemon=True, name=f"rank-worker-{local_rank}")
        self.thread.start()

    def usable(self, fixed_env: dict[str, str], of: int) -> bool:
        """Whether it may take a test whose environment is ``fixed_env`` (plus the test's keys)."""
        with self.lock:
            return (not self.busy and not self.retiring and self.proc.poll() is None
                    and self.fixed_env == fixed_env and self.of == of)

    def give(self, seq: int, task_json: str, test_env: dict[str, str]) -> None:
        """Hand it test ``seq``; a worker that is gone already reports the test's exit from its relay."""
        with self.lock:
            self.seq, self.busy, self.started, self.nccl_lines = seq, True, time.monotonic(), []
            self.tests += 1
        self._emit({"type": "agent", "event": "start", "seq": seq, "local_rank": self.local_rank,
                    "pid": self.proc.pid, "reused": self.tests > 1})
        order = {"seq": seq, "task": task_json, "env": test_env}
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(order) + "\n").encode())
            self.proc.stdin.flush()
        except (OSError, ValueError):
            self.kill()  # its relay reports the test as ended with the process's code

    def _relay(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            rec = parse_record(line)
            if rec is not None and rec.get("type") == "worker":
                if rec.get("event") == "waiting":
                    self.waited = True
                elif rec.get("event") == "finished" and int(rec.get("seq") or 0) == self.seq:
                    self._finish(int(rec.get("code") or 0), bool(rec.get("reusable")))
                continue
            if rec is not None:
                self._emit({**rec, "seq": self.seq, "local_rank": self.local_rank})
                continue
            if "NCCL" in line and self.busy:
                self.nccl_lines.append(line)
            self._say(self.prefix + line)
        code = self.proc.wait()
        if self.busy:  # it died, or was killed, during its test
            self._finish(code, False)
        with self.lock:
            self.retiring = True
        self._on_gone(self)

    def _finish(self, code: int, reusable: bool) -> None:
        from .nccl import parse_nccl_log  # loaded at start-up already (STAGE_IMPORTS)

        with self.lock:
            if not self.busy:
                return
            self.busy = False
            self.retiring = self.retiring or not reusable
            lines, elapsed = self.nccl_lines, time.monotonic() - self.started
        nccl = parse_nccl_log(lines)
        self._emit({"type": "agent", "event": "exit", "seq": self.seq, "local_rank": self.local_rank, "code": code,
                    "elapsed_s": elapsed, "nccl": nccl.to_dict() if nccl.lines else None})

    def kill(self) -> None:
        with self.lock:
            self.retiring = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class RankWorkers:
    """A pod's rank workers, one per local rank, kept across its tests."""

    def __init__(self, emit: Emit, say: Say) -> None:
        self._emit, self._say = emit, say
        self.lock = threading.Lock()
        self.slots: list[RankWorker | None] = []
        self.closed = False
        self.started = 0  # worker processes started (the pod's tests minus the reuses)

    def run(self, seq: int, task_json: str, env: dict[str, str], per_rank: list[dict[str, str]]) -> None:
        """Start test ``seq`` on one worker per entry of ``per_rank`` (torchrun's nproc_per_node),
        each with the pod's ``env`` plus its own entry; a worker that cannot take it is replaced."""
        of = len(per_rank)
        for i, extra in enumerate(per_rank):
            full = {**env, **extra}
            fixed = {k: v for k, v in full.items() if k not in TEST_ENV_KEYS}
            with self.lock:
                while len(self.slots) <= i:
                    self.slots.append(None)
                worker = self.slots[i]
                if worker is None or not worker.usable(fixed, of):
                    self.slots[i] = None  # detached first: its end must not start a replacement
                    if worker is not None:
                        worker.kill()
                    worker = self.slots[i] = self._start(fixed, i, of, _workload(task_json))
            worker.give(seq, task_json, {k: v for k, v in full.items() if k in TEST_ENV_KEYS})
        with self.lock:  # a pod that ran more local ranks before keeps only what this test uses
            extra_slots, self.slots = self.slots[of:], self.slots[:of]
        for worker in extra_slots:
            if worker is not None:
                worker.kill()

    def _start(self, fixed: dict[str, str], local_rank: int, of: int, preload: str) -> RankWorker:
        self.started += 1
        return RankWorker(fixed, local_rank, of, preload, self._emit, self._say, self._replace)

    def _replace(self, gone: RankWorker) -> None:
        """A worker left: a waiting one with the same environment takes its slot."""
        with self.lock:
            i = gone.local_rank
            if self.closed or i >= len(self.slots) or self.slots[i] is not gone or not gone.waited:
                if not self.closed and i < len(self.slots) and self.slots[i] is gone:
                    self.slots[i] = None
                return
            self.slots[i] = self._start(gone.fixed_env, i, gone.of, gone.preload)

    def running_seq(self) -> int:
        """The test the workers run now, 0 when none does."""
        with self.lock:
            return max((w.seq for w in self.slots if w is not None and w.busy), default=0)

    def stop_running(self) -> None:
        """Kill the workers of the test running now (cancelled, or replaced by a newer one)."""
        with self.lock:
            busy = [w for w in self.slots if w is not None and w.busy]
        for w in busy:
            w.kill()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            workers, self.slots = [w for w in self.slots if w is not None], []
        for w in workers:
            w.kill()
        for w in workers:
            w.thread.join(timeout=5)


def _workload(task_json: str) -> str:
    """The task's workload, for what a new worker imports ahead ("" if it cannot be read: the
    worker then reports the bad task). Read only when a worker starts, not for every test."""
    try:
        return str(json.loads(task_json).get("workload") or "")
    except (ValueError, AttributeError):
        return ""
