"""The embedded default: each rank is a local ``python -m benchfab.worker`` process.

Ranks rendezvous over loopback. A watchdog thread-free poll loop reads rank 0's
records as they are printed (so a test that times out keeps the sizes it
finished), notices a rank that died, and enforces the per-test timeout: a hung
rank, like the classic NCCL hang at the first all-reduce, is killed and the
test is recorded as ``timeout`` with the last log lines of every rank.

Every rank runs in its own session (so a terminal's Ctrl-C reaches only the
controller, which then kills the ranks in order) and asks the kernel to kill it
if the controller dies (PR_SET_PDEATHSIG in the worker).
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..capabilities import HostCapabilities, probe_host, why_unrunnable
from ..costs import CostModel, local_costs
from ..metadata import node_software
from ..nccllog import parse_nccl_log, settings_env
from ..placement import NodeInfo
from ..planner import Plan, PlannedTest, local_nodes
from ..rdma.oob import SECRET_ENV, new_test_secret
from ..task import HOST_RANK_ENV, HOST_RANKS_ENV, parse_record
from ..workloads import Problem
from .base import Backend, BackendKind, RecordCallback, RoundRecordCallback, TestOutcome
from .outcome import LOG_TAIL_LINES, RankRecords, log_tail

if TYPE_CHECKING:
    from ..spec import SweepSpec, TestSpec

POLL_S = 0.05
GRACE_S = 5.0  # after one rank fails, how long the others get to report their own error


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    out = [ln for ln in data.splitlines() if ln.strip() and parse_record(ln) is None]
    return out[-lines:]


class LogFollower:
    """Reads complete new lines from a log file another process is writing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._partial = b""

    def lines(self) -> list[str]:
        if self._file is None:
            try:
                self._file = open(self.path, "rb")
            except FileNotFoundError:
                return []
        chunk = self._file.read()
        if not chunk:
            return []
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        return [c.decode("utf-8", "replace") for c in complete]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class LocalBackend:
    name = "local"

    def __init__(self, python: str | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.python = python or sys.executable
        self.extra_env = dict(extra_env or {})
        self._host: HostCapabilities | None = None

    def nodes(self) -> list[NodeInfo]:
        return local_nodes()

    @property
    def costs(self) -> CostModel:
        """Every rank a process on this host, sharing its cores."""
        return local_costs(local_nodes()[0].cpus or 1)

    def start(self, run_id: str, plan: Plan) -> None:
        """Nothing to prepare: each test starts its own ranks."""

    def unavailable(self, test: PlannedTest) -> str | None:
        if self._host is None:
            self._host = probe_host()
        return why_unrunnable(test.spec, self._host)

    def inventory(self) -> dict[str, Any]:
        gpus = sorted(p.name for p in Path("/proc/driver/nvidia/gpus").glob("*")) if Path("/proc/driver/nvidia/gpus").exists() else []
        return {
            "backend": "local",
            "nodes": [{
                "name": socket.gethostname(),
                "cpus": os.cpu_count(),
                "cpu_model": _cpu_model(),
                "memory_bytes": _memory_bytes(),
                "gpus": len(gpus),
                "gpu_pci": gpus,
                "kernel": platform.release(),
                "software": node_software(),
                "fabric": "loopback",
            }],
        }

    def _env(self, rank: int, world: int, port: int, local_ranks: int | None = None) -> dict[str, str]:
        """A rank's environment, torchrun's names: ``local_ranks`` per simulated node
        (placement.gpus_per_node), else every rank local to this one node."""
        local = local_ranks or world
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update({
            "BENCHFAB_PARENT_PID": str(os.getpid()),
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank % local),
            "LOCAL_WORLD_SIZE": str(local),
            "GROUP_RANK": str(rank // local),
            # The ranks share this host's GPUs whatever node they simulate: a CUDA rank
            # takes GPU `rank`, never its node-local index (two ranks on one GPU fail).
            HOST_RANK_ENV: str(rank),
            HOST_RANKS_ENV: str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        })
        # Loopback rendezvous must not depend on this host's name resolving, and the ranks'
        # own listeners (gloo's pairs, NCCL's bootstrap) stay on loopback: nothing off this
        # host can reach a local test (docs/SECURITY.md). A profile's env may still say otherwise.
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        env.setdefault("NCCL_SOCKET_IFNAME", "lo")
        # What NCCL really did is read back from each rank's log (attach_nccl), as on Kubernetes.
        env.setdefault("NCCL_DEBUG", "INFO")
        env.setdefault("NCCL_DEBUG_SUBSYS", "INIT,NET")
        # Ranks share this host's cores; without a cap each would start a
        # thread per core and they would fight over them.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // world)))
        return env

    def run_test(self, test: PlannedTest, log_dir: str, on_record: RecordCallback) -> TestOutcome:
        for _attempt in range(3):
            outcome = self._run_once(test, Path(log_dir), on_record)
            # Another program can take the port between free_port() and bind:
            # retry only that, and only while nothing was measured.
            if outcome.status == "failed" and not outcome.results and "address already in use" in outcome.reason.lower():
                continue
            return outcome
        return outcome

    def run_round(self, tests: Sequence[PlannedTest], log_dir: str, on_record: RoundRecordCallback) -> list[TestOutcome]:
        """One test after another: the ranks of a test already share this host's cores."""
        return [self.run_test(t, log_dir, _for_test(on_record, t.test_id)) for t in tests]

    def close(self) -> None:
        """Nothing outlives a test here: ``run_test`` kills its ranks before it returns."""

    def _spawn(self, test: PlannedTest, logs: list[Path], port: int) -> list[subprocess.Popen[Any]]:
        task_json = test.task().to_json()
        secret = new_test_secret()  # one per test: its ranks accept only each other
        procs: list[subprocess.Popen[Any]] = []
        try:
            for rank, path in enumerate(logs):
                with open(path, "wb") as log:
                    procs.append(subprocess.Popen(
                        [self.python, "-m", "benchfab.worker", "--task", task_json],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env={**self._env(rank, len(logs), port, test.local_ranks), **test.profile.env,
                             **settings_env(test.spec.env), SECRET_ENV: secret},
                        start_new_session=True,
                    ))
        except BaseException:
            _reap(procs)
            raise
        return procs

    def _run_once(self, test: PlannedTest, log_dir: Path, on_record: RecordCallback) -> TestOutcome:
        log_dir.mkdir(parents=True, exist_ok=True)
        logs = [log_dir / f"{test.test_id}.rank{r}.log" for r in range(test.spec.ranks)]
        ranks = RankRecords(TestOutcome(test.test_id, "failed", started=time.time()))
        followers = [LogFollower(p) for p in logs]

        def drain() -> None:
            for rank, follower in enumerate(followers):
                for line in follower.lines():
                    rec = parse_record(line)
                    if rec is not None:
                        ranks.take(rank, rec, on_record, env_extra=simulated_node(rank, test.local_ranks, len(logs)))

        procs: list[subprocess.Popen[Any]] = []
        try:
            procs = self._spawn(test, logs, free_port())
            failed_order = self._watch(procs, drain, ranks.outcome, ranks.outcome.started + test.timeout_s)
            drain()
            codes = [p.poll() for p in procs]
            # The first rank to die without saying why (a kill, a crash) caused what the others report.
            silent = next((r for r in failed_order if r not in ranks.errors), None)
            ranks.settle(test.timeout_s, stuck=[r for r, c in enumerate(codes) if c is None],
                         exited_ok=all(c == 0 for c in codes),
                         exit_problems=[f"rank {r} {_exit_text(c)}" for r, c in enumerate(codes) if c not in (0,)],
                         first_silent_death=f"rank {silent} {_exit_text(codes[silent])}" if silent is not None else None)
        finally:
            _reap(procs)
            for f in followers:
                f.close()
            ranks.outcome.ended = time.time()
        outcome = ranks.outcome
        outcome.log_tail = log_tail([tail(path) for path in logs]) if outcome.status != "ok" else ""
        attach_nccl(outcome, logs)
        return outcome

    @staticmethod
    def _watch(procs: list[subprocess.Popen[Any]], drain: Callable[[], None], outcome: TestOutcome,
               deadline: float) -> list[int]:
        """Poll until every rank exited, one failed (plus GRACE_S for the others' errors), or the deadline.
        Returns the ranks that exited non-zero, in the order they did."""
        first_failure: float | None = None
        failed: list[int] = []
        while True:
            drain()
            codes = [p.poll() for p in procs]
            failed.extend(r for r, c in enumerate(codes) if c not in (None, 0) and r not in failed)
            now = time.time()
            if all(c is not None for c in codes):
                return failed
            if first_failure is None and failed:
                first_failure = now
            if first_failure is not None and now - first_failure > GRACE_S:
                return failed
            if now > deadline:
                outcome.status = "timeout"
                return failed
            time.sleep(POLL_S)


def simulated_node(rank: int, local_ranks: int, world: int) -> dict[str, Any] | None:
    """The simulated node a rank of a multi-node shape stands for, for its env record."""
    return None if local_ranks >= world else {"node": f"node{rank // local_ranks}"}


def attach_nccl(outcome: TestOutcome, logs: Sequence[Path]) -> None:
    """Each rank's NCCL INFO lines, parsed into its env record's ``nccl`` (as the Kubernetes agent does)."""
    for rank, path in enumerate(logs):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                nccl = parse_nccl_log(line for line in f if "NCCL" in line)
        except OSError:
            continue
        if not nccl.lines:
            continue
        for env in outcome.env:
            if env.get("rank") == rank:
                env["nccl"] = nccl.to_dict()


def _for_test(on_record: RoundRecordCallback, test_id: str) -> RecordCallback:
    """A one-test record callback that tags each record with its test for the round's callback."""
    return lambda rec: on_record(test_id, rec)


def _reap(procs: list[subprocess.Popen[Any]]) -> None:
    """Kill every rank still running (its whole session) and wait for it."""
    for p in procs:
        if p.poll() is None:
            kill_group(p, signal.SIGKILL)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running (killed)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class Local(BackendKind):
    """Every rank a process on this host: one node (gpus_per_node simulates several)."""

    name = "local"

    def test_problems(self, test: TestSpec) -> list[Problem]:
        pl, found = test.placement, []
        if pl.pattern not in ("local", "group"):
            found.append(Problem("placement", f"pattern {pl.pattern!r} places ranks on several nodes",
                                 "use backend: kubernetes, or pattern: local", ("backend",)))
        if pl.nodes != 1 and not pl.gpus_per_node:
            # With gpus_per_node the nodes are simulated: gpus_per_node local ranks each, all on this host.
            found.append(Problem("placement", f"the local backend has one node, placement asks for {pl.nodes}",
                                 "set placement.nodes: 1, add gpus_per_node to simulate the nodes on this host, "
                                 "or use backend: kubernetes", ("backend",)))
        return found

    def make(self, spec: SweepSpec, access: object | None) -> Backend:
        return LocalBackend()


LOCAL = Local()
