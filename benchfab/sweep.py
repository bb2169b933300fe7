"""The sweep loop: plan -> backend -> store, with progress and tables.

``run_sweep`` is what ``benchfab sweep`` calls. It writes run.json first (runmeta.py, so an
interrupted run is still a run), stores every round's tests as soon as the round ends (one
part per table: benchfab.store.layout), and on
Ctrl-C / SIGTERM stores what the interrupted test had measured, marks the run
``interrupted`` and re-raises so the CLI can exit 130. The backend's own
``finally`` has already killed the ranks by then.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from .backends.base import Backend, TestOutcome
from .backends.registry import make_backend
from .compare.keys import load_medians
from .diagnosis import DIAGNOSIS_FILE
from .errors import EXIT_ALL_OK, EXIT_TESTS_NOT_OK, BenchfabError, CapabilityError, CleanupError, UsageError
from .focus import adaptive_entries, plan_focus
from .planner import Plan, PlannedTest, Round, plan
from .progress import Progress
from .runlock import RunLock, claim_new_run_id
from .runmeta import end_meta, load_resume, record_left_behind, start_meta
from .secondpass import plan_second_pass, run_second_pass, second_pass_entries
from .spec import SECOND_PASS_PATTERNS, SweepSpec
from .store import RunStore, StoredTest, resolve_run_path
from .workloads.rows import fail_on_wrong_data, print_outcome, raw_rows, summary_rows, test_row


def judged_exit_code(not_ok: int, faults: int, allow_failures: bool = False) -> int:
    """The one rule of every command that runs tests and judges them (sweep, diagnose): 1 when
    a verdict names a fault (the second pass's), or a test is not ok unless the caller accepts
    that (--allow-failures accepts failed tests, never a verdict); else 0. A --baseline
    comparison's regression is another verdict: the CLI raises the code to 1 for it too."""
    return EXIT_TESTS_NOT_OK if faults or (not_ok and not allow_failures) else EXIT_ALL_OK


@dataclass
class SweepResult:
    run_id: str
    path: Path
    counts: dict[str, int]
    faults: int = 0  # second-pass verdicts stored for the run (diagnosis.json)

    @property
    def not_ok(self) -> int:
        return sum(n for status, n in self.counts.items() if status != "ok")

    def exit_code(self, allow_failures: bool = False) -> int:
        return judged_exit_code(self.not_ok, self.faults, allow_failures)


def make_plan(spec: SweepSpec, backend: Backend | None = None) -> Plan:
    """The spec placed on the backend's nodes, with a note for every test the backend cannot run at all."""
    backend = backend or make_backend(spec)
    # A test the inventory cannot hold is skipped with its reason; the others run.
    placed = plan(spec, backend.nodes(), skip_unplaceable=True, costs=backend.costs)
    cannot = unrunnable_tests(placed, backend)
    if not cannot:
        return placed
    notes = [f"{test_id} will be skipped: {why}" for test_id, why in cannot.items()]
    return replace(placed, notes=placed.notes + tuple(notes))


def unrunnable_tests(plan: Plan, backend: Backend) -> dict[str, str]:
    """test id -> why the backend cannot run it here (asked before any rank starts)."""
    return {t.test_id: why for t in plan.tests if (why := backend.unavailable(t)) is not None}


def _batches(placed: Plan, todo: list[PlannedTest]) -> list[Round]:
    """The tests still to run, grouped by plan round (the backend runs each group at once where it can)."""
    wanted = {t.test_id for t in todo}
    rounds = (Round(r.index, tuple(t for t in r.tests if t.test_id in wanted), r.overhead_s) for r in placed.rounds)
    return [r for r in rounds if r.tests]


def run_sweep(
    spec: SweepSpec,
    spec_text: str,
    *,
    results_dir: str | None = None,
    run_id: str | None = None,
    resume: bool = False,
    out: TextIO | None = None,
    progress: bool = True,
    backend: Backend | None = None,
) -> SweepResult:
    out = out or sys.stdout
    root = Path(results_dir or spec.results_dir)
    backend = backend or make_backend(spec)
    placed = make_plan(spec, backend)
    cannot = unrunnable_tests(placed, backend)
    if not resume:
        _refuse_if_nothing_runs(placed.tests, cannot, backend.name)  # before a run directory exists
    run_id = run_id or claim_new_run_id(root, spec.name)
    store = RunStore(root, run_id)
    # One controller per run: a second sweep (or a --resume of a live run) is refused
    # here, naming the owner; the lock goes with this process, however it ends.
    with RunLock(store.path):
        if store.exists() and not resume:
            raise UsageError(f"run {run_id!r} already exists in {root}/", hint=f"resume it with --resume {run_id}")
        backend.start(run_id, placed)  # the run id labels everything the backend creates
        return _run_owned(spec, spec_text, store, backend, placed, cannot, resume, out, progress)


def _run_owned(spec: SweepSpec, spec_text: str, store: RunStore, backend: Backend, placed: Plan,
               cannot: dict[str, str], resume: bool, out: TextIO, progress: bool) -> SweepResult:
    """The sweep proper, once this controller owns the run directory."""
    run_id = store.run_id
    done = store.finished_tests() if resume else set()
    todo = [t for t in placed.tests if t.test_id not in done]
    _refuse_if_nothing_runs(todo, cannot, backend.name)
    meta = start_meta(store, spec, spec_text, backend, placed, resume)
    print(f"# benchfab run {run_id}: {len(todo)} test(s) to run"
          + (f", {len(done)} already done" if done else "")
          + f"; results in {store.path}", file=out, flush=True)
    for note in placed.notes:
        print(f"# note: {note}", file=out)
    for line in placed.left_out_lines():
        print(f"# {line}", file=out)
    # A resumed run counts every test: those already ok, then what the rest do now.
    counts: dict[str, int] = {"ok": len(done)} if done else {}
    skips = [(t, cannot[t.test_id]) for t in todo if t.test_id in cannot]
    now = time.time()
    skipped = [(t, TestOutcome(t.test_id, "skipped", reason=why, started=now, ended=now))
               for t, why in skips + [(t, why) for t, why in placed.unplaced if t.test_id not in done]]
    store.write_tests([(test_row(run_id, test, outcome), [], []) for test, outcome in skipped])  # one part for all
    for test, outcome in skipped:
        counts["skipped"] = counts.get("skipped", 0) + 1
        print_outcome(test, outcome, out)
    todo = [t for t in todo if t.test_id not in cannot]
    faults = 0
    try:
        _run_rounds(_batches(placed, todo), backend, store, counts, out, progress)
        if adaptive_entries(spec):
            _run_focus(spec, store, backend, meta, done, counts, out, progress)
        if second_pass_entries(spec):
            # Same backend, same pods: the retests run before they are deleted.
            second = plan_second_pass(spec, store.path, backend.nodes(), backend.costs)
            found = run_second_pass(spec, store.path, second, _plan_runner(backend, store, counts, out, progress), out)
            meta["diagnosis"] = {"file": DIAGNOSIS_FILE, "verdicts": len(found.verdicts)}
            faults = len(found.verdicts)
    except KeyboardInterrupt:
        end_meta(store, meta, "interrupted", counts)
        print(f"# run {run_id} interrupted; resume with: benchfab sweep --resume {run_id} --results {store.path.parent}",
              file=out, flush=True)
        _close(backend, store, meta, out)
        raise
    except BaseException as exc:
        # Whatever stopped the controller, run.json must not say "running" forever.
        end_meta(store, meta, "failed", counts, reason=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        _close(backend, store, meta, out)
        raise
    left = _close(backend, store, meta, out)
    if left is not None:
        # Every test is stored, but the run left objects behind: it did not end cleanly.
        end_meta(store, meta, "failed", counts, reason=left.message[:300])
        raise left
    end_meta(store, meta, "complete", counts)
    _cache_medians(store.path, out)
    return SweepResult(run_id, store.path, counts, faults)


def _run_focus(spec: SweepSpec, store: RunStore, backend: Backend, meta: dict[str, Any], done: set[str],
               counts: dict[str, int], out: TextIO, progress: bool) -> None:
    """Adaptive all-pairs: the screen ran; all-pairs among the nodes it flagged and the sample
    (focus.py), the choice in run.json first (a --resume reuses it and skips the tests done)."""
    focus = plan_focus(spec, store.path, backend.nodes(), backend.costs, meta.get("adaptive"))
    meta["adaptive"] = focus.record
    store.write_meta(meta)
    for entry, chosen in focus.record.items():
        print(f"# adaptive {entry}: the {chosen['screen']} screen flagged {len(chosen['flagged'])} node(s)"
              + (f" ({', '.join(chosen['flagged'])}); all-pairs among them and {len(chosen['sampled'])} sampled good "
                 f"node(s): {chosen['tests']} test(s)" if chosen["flagged"] else "; no further tests"), file=out, flush=True)
    _run_rounds(_batches(focus.plan, [t for t in focus.plan.tests if t.test_id not in done]), backend, store, counts,
                out, progress)


def _cache_medians(path: Path, out: TextIO) -> None:
    """Leave the complete run's key -> median table beside it, which every later history
    reads (reading a run's parts cold costs a history ~0.2 s per run; 100 runs: 27 s)."""
    try:
        load_medians(path, owned=True)  # this controller holds the run's lock
    except (BenchfabError, OSError) as exc:
        # Only a cache: the next history computes it instead; the run itself is stored.
        print(f"# note: the medians cache of {path.name} was not written ({exc})", file=out)


def _close(backend: Backend, store: RunStore, meta: dict[str, Any], out: TextIO) -> CleanupError | None:
    """Release what the run created (e.g. delete its pods); what could not be is printed, one
    line each, with the command that removes it, and recorded in run.json."""
    try:
        backend.close()
    except CleanupError as exc:
        for obj in exc.left:
            print(f"# left behind: {obj}", file=out)
        print(f"# remove them with: {exc.command}", file=out, flush=True)
        record_left_behind(store, meta, exc.left, exc.command)
        return exc
    return None


def _plan_runner(backend: Backend, store: RunStore, counts: dict[str, int], out: TextIO,
                 progress: bool) -> Callable[[Plan], None]:
    """Runs a further plan's rounds in this run (the second pass's retests), counted with the rest."""
    return lambda extra: _run_rounds(list(extra.rounds), backend, store, counts, out, progress)


def diagnose_run(run: str, results_dir: str | None = None, *, out: TextIO | None = None, progress: bool = True,
                 backend: Backend | None = None) -> SweepResult:
    """``benchfab diagnose RUN``: the second pass for a stored run, on its spec's backend now.

    What the pass learned is reused: the backend is started for the retests only, so a node
    whose pods did not start in the pass (dead) is not waited for again. The result counts the
    retests and the verdicts (``judged_exit_code``)."""
    out = out or sys.stdout
    path = resolve_run_path(run, results_dir or "results")
    spec, _text = load_resume(path.parent, path.name, purpose="diagnose")
    if not second_pass_entries(spec, every_pattern=True):
        raise UsageError(f"run {path.name} has no test with a pattern the second pass can judge",
                         hint=f"the second pass needs placement.pattern {' / '.join(SECOND_PASS_PATTERNS)}")
    backend = backend or make_backend(spec)
    store = RunStore(path.parent, path.name)
    counts: dict[str, int] = {}
    with RunLock(store.path):
        try:
            second = plan_second_pass(spec, store.path, backend.nodes(), backend.costs, every_pattern=True)
            if second.rounds:
                backend.start(store.run_id, second.retests)
            found = run_second_pass(spec, store.path, second, _plan_runner(backend, store, counts, out, progress), out)
        finally:
            left = _close(backend, store, store.read_meta(), out)
        meta = store.read_meta()
        meta["diagnosis"] = {"file": DIAGNOSIS_FILE, "verdicts": len(found.verdicts), "retest_counts": counts}
        store.write_meta(meta)
        _cache_medians(store.path, out)  # the retests' parts made the one the sweep left stale
    if left is not None:
        raise left
    return SweepResult(store.run_id, store.path, counts, len(found.verdicts))


def _refuse_if_nothing_runs(todo: list[PlannedTest], cannot: dict[str, str], backend: str) -> None:
    """Nothing could be measured: say so before a run directory exists."""
    if todo and all(t.test_id in cannot for t in todo):
        reasons = sorted(set(cannot.values()))
        raise CapabilityError(f"none of the {len(todo)} test(s) can run on backend {backend}: {reasons[0]}"
                              + (f" (and {len(reasons) - 1} other reason(s): benchfab plan lists them)"
                                 if len(reasons) > 1 else ""))


def _run_rounds(batches: list[Round], backend: Backend, store: RunStore, counts: dict[str, int],
                out: TextIO, progress: bool) -> None:
    """Each round on the backend, each test stored and printed as it ends; on Ctrl-C the
    interrupted round's tests are stored with what they had measured, then it re-raises."""
    run_id = store.run_id
    bar = Progress([b.estimate_s for b in batches], sum(len(b.tests) for b in batches), enabled=progress,
                   kinds=[b.tests[0].spec.name for b in batches])
    current: tuple[PlannedTest, ...] = ()
    partials: dict[str, TestOutcome] = {}
    try:
        for batch in batches:
            current = batch.tests
            partials = {t.test_id: TestOutcome(t.test_id, "interrupted", started=time.time()) for t in current}
            label = current[0].test_id if len(current) == 1 else f"round of {len(current)} tests"
            bar.start_round(label, sum(t.units for t in current))

            def on_record(test_id: str, rec: dict[str, Any], _p: dict[str, TestOutcome] = partials) -> None:
                _p[test_id].results.append(rec)
                bar.unit_done()

            outcomes = list(backend.run_round(current, str(store.log_dir), on_record))
            tests, current = current, ()
            bar.end_round()  # first: the lines of its tests already carry the ETA this round corrected
            for outcome in outcomes:
                fail_on_wrong_data(outcome)
            # The whole round in one part per table (three files, not three per test: issue #27).
            store.write_tests([_stored(run_id, t, o, backend.name) for t, o in zip(tests, outcomes)])
            for test, outcome in zip(tests, outcomes):
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
                bar.test_done(test.test_id, outcome.status, outcome.ended - outcome.started)
                bar.clear()
                print_outcome(test, outcome, out)
    except KeyboardInterrupt:
        bar.clear()
        for test in current:
            partials[test.test_id].ended = time.time()
            partials[test.test_id].reason = "interrupted by the user; rerun with --resume"
        store.write_tests([_stored(run_id, t, partials[t.test_id], backend.name) for t in current])
        raise
    bar.clear()


def _stored(run_id: str, test: PlannedTest, outcome: TestOutcome, backend: str) -> StoredTest:
    """What the store keeps of one test (RunStore.write_tests)."""
    return test_row(run_id, test, outcome), summary_rows(run_id, test, outcome, backend), raw_rows(run_id, test, outcome)
