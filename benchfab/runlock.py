"""Who owns a run directory: one controller at a time, and a run whose owner died says so.

A controller holds an exclusive ``flock`` on ``results/<run_id>/.owner`` for as long
as it writes the run; the file names the owner (pid, host, start time) for the
message a second controller gets. The kernel drops the lock when the process dies,
however it dies (kill -9, OOM, a lost node), so "running in run.json, but nobody
holds the lock" means the run was abandoned: ``run_status`` reports it that way,
and ``benchfab sweep --resume`` may take it over.

New run ids are claimed with ``mkdir``, which is atomic, so two sweeps started in
the same second get different ids instead of sharing one directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .errors import UsageError

OWNER_FILE = ".owner"


class RunLock:
    """The exclusive right to write one run directory, held until ``release``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the run, or raise UsageError naming the controller that has it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / OWNER_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise UsageError(
                f"run {self.run_dir.name} is being written by another controller ({describe_owner(owner)})",
                hint="wait for it to end or stop it; two controllers on one run overwrite each other's results",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(_this_owner()) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(run_dir: Path) -> dict[str, Any] | None:
    """The live owner of a run (what it wrote), or None when no controller holds it."""
    path = Path(run_dir) / OWNER_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_owner(fd) or {"pid": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def run_status(run_dir: Path, meta: dict[str, Any]) -> str:
    """run.json's status, except that a ``running`` run nobody holds is ``abandoned``."""
    status = str(meta.get("status") or "?")
    if status == "running" and holder(run_dir) is None:
        return "abandoned"
    return status


def claim_new_run_id(results_dir: Path, spec_name: str) -> str:
    """A run id of the form ``YYYYMMDD-HHMMSS-<spec name>`` whose directory this call
    created; a suffix ``-2``, ``-3``... when that second's id is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = f"{stamp}-{spec_name}"[:116]
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        run_id = base if n == 1 else f"{base}-{n}"
        try:
            (Path(results_dir) / run_id).mkdir()
        except FileExistsError:
            continue
        return run_id
    raise UsageError(f"no free run id for {base} in {results_dir}/", hint="pass --run-id ID")


def describe_owner(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "owner unknown"
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since {owner.get('since', '?')}"


def _this_owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _read_owner(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 4096, 0)
        value = json.loads(data.decode()) if data.strip() else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
