"""Helpers the tests import (conftest.py holds the fixtures)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker_pids_of(parent_marker: str, cmdline_marker: str = "") -> list[int]:
    """Worker processes whose environment carries ``parent_marker`` (BENCHFAB_PARENT_PID=...,
    RANK=1...) and whose command line holds ``cmdline_marker`` (a test id in its task)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"benchfab.worker" in cmdline and cmdline_marker.encode() in cmdline and parent_marker.encode() in environ:
            found.append(int(proc.name))
    return found
