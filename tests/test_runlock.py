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
