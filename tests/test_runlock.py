"""One controller per run: the owner lock, abandoned runs and unique run ids.

The lock is a real flock held by a real second process, as a second sweep would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchfab.errors import UsageError
from benchfab.runlock import RunLock, claim_new_run_id, holder, run_status

HOLD = """\
import sys, time
from pathlib import Path
from benchfab.runlock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def _hold_in_other_process(run_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_owner_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    run_dir = tmp_path / "r1"
    other = _hold_in_other_process(run_dir)
    try:
        with pytest.raises(UsageError) as info:
            RunLock(run_dir).acquire()
        assert f"pid {other.pid} on " in str(info.value)
        assert "another controller" in str(info.value) and info.value.hint
        assert holder(run_dir) is not None and holder(run_dir)["pid"] == other.pid  # type: ignore[index]
    finally:
        other.kill()
        other.wait()


def test_a_killed_owner_leaves_an_abandoned_run_that_can_be_taken_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "r2"
    other = _hold_in_other_process(run_dir)
    assert run_status(run_dir, {"status": "running"}) == "running"
    os.kill(other.pid, signal.SIGKILL)  # no clean-up code runs: the kernel drops the flock
    other.wait()
    assert holder(run_dir) is None
    assert run_status(run_dir, {"status": "running"}) == "abandoned"
    assert run_status(run_dir, {"status": "complete"}) == "complete"
    with RunLock(run_dir):
        owner = json.loads((run_dir / ".owner").read_text())
        assert owner["pid"] == os.getpid()
        assert run_status(run_dir, {"status": "running"}) == "running"


def test_run_ids_claimed_in_the_same_second_differ(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: claim_new_run_id(tmp_path, "nightly"), range(16)))
    assert len(set(ids)) == 16
    assert all((tmp_path / i).is_dir() for i in ids)
    stamp = time.strftime("%Y%m%d", time.gmtime())
    assert all(i.startswith(stamp) and "-nightly" in i for i in ids)


LONG_SPEC = """\
name: held
tests:
  - {name: slow, workload: allreduce, ranks: 2, sizes: [8], duration: 25, in_place: false, timeout: 300}
  - {name: quick, workload: allreduce, ranks: 2, sizes: [8], iterations: 2, warmup: 1}
"""


def _wait_for_running(run_dir: Path, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        meta = run_dir / "run.json"
        if meta.exists() and json.loads(meta.read_text()).get("status") == "running" and holder(run_dir):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    raise AssertionError("the first sweep never started")


def test_second_controller_and_resume_of_a_live_run_are_refused_then_abandoned_run_resumes(
        cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec(LONG_SPEC)
    results = tmp_path / "results"
    first = subprocess.Popen([sys.executable, "-m", "benchfab", "sweep", str(spec), "--results", str(results),
                              "--run-id", "r1", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        _wait_for_running(results / "r1", first)
        for args in (("sweep", str(spec), "--run-id", "r1"), ("sweep", "--resume", "r1")):
            proc = cli(*args, "--results", str(results), "--no-progress")
            assert proc.returncode == 2, proc.stderr
            assert f"run r1 is being written by another controller (pid {first.pid} on " in proc.stderr
        listing = cli("runs", "--results", str(results))
        assert "r1" in listing.stdout and " running " in listing.stdout
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the controller and its ranks, no clean-up
        first.communicate()
    listing = cli("runs", "--results", str(results))
    assert " abandoned " in listing.stdout, listing.stdout
    resumed = cli("sweep", "--resume", "r1", "--results", str(results), "--no-progress", "--allow-failures")
    assert resumed.returncode == 0, resumed.stderr
    meta = json.loads((results / "r1" / "run.json").read_text())
    assert meta["status"] == "complete"
    assert sum(meta["counts"].values()) == 2  # both tests, though only the resumed ones ran now


def test_two_sweeps_in_the_same_second_get_two_runs(write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("name: twin\ntests:\n  - {workload: allreduce, ranks: 2, sizes: [8], iterations: 2, warmup: 1}\n")
    results = tmp_path / "results"
    procs = [subprocess.Popen([sys.executable, "-m", "benchfab", "sweep", str(spec), "--results", str(results),
                               "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = sorted(p.parent.name for p in results.glob("*/run.json"))
    assert len(runs) == 2 and all("-twin" in r for r in runs)
