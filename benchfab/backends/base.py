"""What every backend provides: to the registry and the spec (``BackendKind``), and to
the sweep loop (``Backend``).

sweep.py calls exactly these methods, in this order: ``nodes()`` (to plan),
``unavailable()`` for every planned test, ``start()``, ``inventory()`` (for
run.json), ``run_round()`` for every plan round, and ``close()`` at the end
(also after Ctrl-C / SIGTERM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..costs import CostModel
from ..placement import NodeInfo
from ..planner import Plan, PlannedTest
from ..records import TestOutcome as TestOutcome  # its home is the record schema; backends return it

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..spec import SweepSpec, TestSpec
    from ..workloads import Problem

RecordCallback = Callable[[dict[str, Any]], None]
# A round runs several tests at once: each record comes with the id of its test.
RoundRecordCallback = Callable[[str, dict[str, Any]], None]


class Backend(Protocol):
    name: str

    @property
    def costs(self) -> CostModel:
        """What a test costs here besides its bytes: the planner's time estimates use it."""
        ...

    def nodes(self) -> list[NodeInfo]:
        """The nodes tests are placed on (``planner.plan``); the local backend has one, this host."""
        ...

    def inventory(self) -> dict[str, Any]:
        """Snapshot of what the tests can run on (hosts, devices), for run.json."""
        ...

    def unavailable(self, test: PlannedTest) -> str | None:
        """Why this backend cannot run ``test`` at all (one line with the fix), or None.
        Asked at plan time, so such a test is skipped before any rank starts."""
        ...

    def start(self, run_id: str, plan: Plan) -> None:
        """Before the first round: the run id labels everything the backend creates, and the
        plan lets it prepare for all rounds at once (e.g. one gang start of a profile's pods)."""
        ...

    def run_round(self, tests: Sequence[PlannedTest], log_dir: str,
                  on_record: RoundRecordCallback) -> list[TestOutcome]:
        """Run one plan round's tests (side by side where the backend can) to completion,
        failure or timeout; one outcome per test, in order; never leaves a rank behind."""
        ...

    def close(self) -> None:
        """Release everything the run created (idempotent). What cannot be released is raised
        as a CleanupError naming it and the command that removes it (again on a second call)."""
        ...


class BackendKind:
    """A backend as the registry and the spec know it; a subclass per backend, one line in
    ``registry.BACKENDS``. benchfab.spec.load calls ``spec_problems`` / ``test_problems`` while
    it validates a spec (its ``BackendRules``), and validates the spec's section named after
    the backend (``kubernetes:``) with ``options``."""

    name: str = ""
    options: type[BaseModel] | None = None  # the model of its section; None: it has none

    def spec_problems(self, spec: SweepSpec) -> list[Problem]:
        """What is wrong with the spec's top-level settings for this backend."""
        return []

    def test_problems(self, test: TestSpec) -> list[Problem]:
        """What is wrong with one resolved test on this backend (placements it cannot do)."""
        return []

    def make(self, spec: SweepSpec, access: object | None) -> Backend:
        """The backend for a sweep of ``spec``; ``access``: how to reach the cluster from the
        command line (the Kubernetes backend's ClusterOptions; others ignore what is not theirs)."""
        raise NotImplementedError
