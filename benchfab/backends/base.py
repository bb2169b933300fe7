"""What every backend provides to the sweep loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..planner import PlannedTest

RecordCallback = Callable[[dict[str, Any]], None]


@dataclass
class TestOutcome:
    """What happened to one test: its records and how it ended."""

    test_id: str
    status: str  # ok | failed | timeout | interrupted | skipped (could not run here; no rank started)
    reason: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)  # one per rank: what it really used
    log_tail: str = ""
    started: float = 0.0
    ended: float = 0.0


class Backend(Protocol):
    name: str

    def inventory(self) -> dict[str, Any]:
        """Snapshot of what the tests can run on (hosts, devices), for run.json."""
        ...

    def unavailable(self, test: PlannedTest) -> str | None:
        """Why this backend cannot run ``test`` at all (one line with the fix), or None.
        Asked at plan time, so such a test is skipped before any rank starts."""
        ...

    def run_test(self, test: PlannedTest, log_dir: str, on_record: RecordCallback) -> TestOutcome:
        """Run one test to completion, failure or timeout; never leaves a rank behind."""
        ...
