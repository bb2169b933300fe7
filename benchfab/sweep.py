"""The sweep loop: plan -> backend -> store, with progress and tables.

``run_sweep`` is what ``benchfab sweep`` calls. It writes run.json first (so an
interrupted run is still a run), stores every test as soon as it ends, and on
Ctrl-C / SIGTERM stores what the interrupted test had measured, marks the run
``interrupted`` and re-raises so the CLI can exit 130. The backend's own
``finally`` has already killed the ranks by then.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from . import metadata
from .backends.base import Backend, TestOutcome
from .backends.local import LocalBackend
from .errors import EXIT_ALL_OK, EXIT_TESTS_NOT_OK, BackendError, CapabilityError, SpecError, UsageError
from .planner import Plan, PlannedTest, plan_local
from .progress import Progress
from .spec import SweepSpec, load_spec_text, spec_to_dict
from .store import SCHEMA_VERSION, RunStore, new_run_id
from .tables import format_p2p_table, format_table
from .workloads.catalog import COLLECTIVES, POINT_TO_POINT, is_point_to_point


@dataclass
class SweepResult:
    run_id: str
    path: Path
    counts: dict[str, int]

    @property
    def not_ok(self) -> int:
        return sum(n for status, n in self.counts.items() if status != "ok")

    def exit_code(self, allow_failures: bool = False) -> int:
        """0 when every test is ok; 1 when any is not, unless the caller accepts that."""
        return EXIT_TESTS_NOT_OK if self.not_ok and not allow_failures else EXIT_ALL_OK


def make_backend(spec: SweepSpec, cluster: Any = None) -> Backend:
    """The spec's backend; ``cluster`` is a benchfab.k8s.client.ClusterOptions (kubeconfig, context, namespace)."""
    if spec.backend == "local":
        return LocalBackend()
    if spec.backend == "kubernetes":
        from .k8s.backend import KubernetesBackend

        return KubernetesBackend(spec, cluster)
    raise BackendError(f"backend {spec.backend!r} is not available", hint="use backend: local or kubernetes")


def make_plan(spec: SweepSpec, backend: Backend | None = None) -> Plan:
    """The spec's plan, with a note for every test the backend cannot run at all."""
    backend = backend or make_backend(spec)
    if spec.backend == "kubernetes":
        # Placement needs the cluster's inventory: the backend reads it and plans.
        plan: Plan = getattr(backend, "plan")()  # noqa: B009 - not part of the Backend protocol
    else:
        plan = plan_local(spec)
    cannot = unrunnable_tests(plan, backend)
    if not cannot:
        return plan
    notes = [f"{test_id} will be skipped: {why}" for test_id, why in cannot.items()]
    return replace(plan, notes=plan.notes + tuple(notes))


def unrunnable_tests(plan: Plan, backend: Backend) -> dict[str, str]:
    """test id -> why the backend cannot run it here (asked before any rank starts)."""
    return {t.test_id: why for t in plan.tests if (why := backend.unavailable(t)) is not None}


def _batches(plan: Plan, todo: list[PlannedTest]) -> list[list[PlannedTest]]:
    """The tests still to run, grouped by plan round (a backend with run_round runs each group at once)."""
    wanted = {t.test_id for t in todo}
    return [b for b in ([t for t in r.tests if t.test_id in wanted] for r in plan.rounds) if b]


P2P_FIELDS = ("bw_avg_Bps", "bw_peak_Bps", "msg_rate_pps", "lat_min_s", "lat_median_s", "lat_mean_s",
              "lat_stdev_s", "lat_p99_s", "lat_p999_s", "lat_max_s", "wrong_bytes", "port", "gid_index",
              "link_layer", "mtu", "tx_depth", "cq_mod", "post_list")


def _row_base(run_id: str, test: PlannedTest, rec: dict[str, Any], backend: str) -> dict[str, Any]:
    """The columns every summary row has, whatever the workload."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "test_id": test.test_id,
        "test_name": test.spec.name,
        "workload": test.spec.workload,
        "backend": backend,
        "fabric": test.profile.fabric,
        "mode": test.profile.mode,
        "nodes": len(test.hosts),
        "ranks": test.spec.ranks,
        "size_bytes": rec["size_bytes"],
        "iterations": rec.get("iterations"),
        "status": rec.get("status", "ok"),
        "reason": rec.get("reason", ""),
    }


def summary_rows(run_id: str, test: PlannedTest, outcome: TestOutcome, backend: str = "local") -> list[dict[str, Any]]:
    if is_point_to_point(test.spec.workload):
        return [p2p_row(run_id, test, rec, backend) for rec in outcome.results]
    env0 = next((e for e in outcome.env if e.get("rank") == 0), outcome.env[0] if outcome.env else {})
    device = str(env0.get("device", ""))
    collective = COLLECTIVES[test.spec.workload]
    return [
        {
            **_row_base(run_id, test, rec, backend),
            "collective": collective.nccl_name,
            "engine": "torch",
            "transport": env0.get("transport"),
            "memory": "cuda" if device.startswith("cuda") else "host",
            "count": rec["count"],
            "dtype": test.dtype,
            "redop": test.op,
            "root": test.spec.root if collective.rooted else -1,
            "in_place": rec["in_place"],
            "method": rec.get("method"),
            "time_s": rec.get("time_s"),
            "algbw_Bps": rec.get("algbw_Bps"),
            "busbw_Bps": rec.get("busbw_Bps"),
            "wrong": rec.get("wrong"),
        }
        for rec in outcome.results
    ]


def p2p_row(run_id: str, test: PlannedTest, rec: dict[str, Any], backend: str = "local") -> dict[str, Any]:
    """One rdma_write_bw / rdma_write_lat size. time_s is the time per message:
    elapsed / iterations for bandwidth, the median half round trip for latency."""
    iters = rec.get("iterations")
    elapsed = rec.get("elapsed_s")
    if test.spec.workload == "rdma_write_bw":
        time_s = elapsed / iters if elapsed and iters else None
    else:
        time_s = rec.get("lat_median_s")
    transport = rec.get("transport", test.spec.transport)
    return {
        **_row_base(run_id, test, rec, backend),
        "collective": POINT_TO_POINT[test.spec.workload],
        "engine": rec.get("engine", test.spec.engine),
        "transport": transport,
        "memory": rec.get("memory", test.spec.memory),
        "count": None,
        "dtype": "none",
        "redop": "none",
        "root": -1,
        "in_place": False,
        "method": "rdma_write" if transport == "verbs" else "socket_write",
        "time_s": time_s,
        "algbw_Bps": None,
        "busbw_Bps": None,
        "wrong": None,
        "rdma_device": rec.get("device"),
        **{k: rec.get(k) for k in P2P_FIELDS},
    }


def raw_rows(run_id: str, test: PlannedTest, outcome: TestOutcome) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "test_id": test.test_id, "size_bytes": rec["size_bytes"], "in_place": rec["in_place"],
         "iteration": i, "time_s": t}
        for rec in outcome.results
        for i, t in enumerate(rec.get("per_iter_s") or [])
    ]


def test_row(run_id: str, test: PlannedTest, outcome: TestOutcome) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "test_id": test.test_id,
        "test_name": test.spec.name,
        "workload": test.spec.workload,
        "profile": test.profile_name,
        "fabric": test.profile.fabric,
        "mode": test.profile.mode,
        "ranks": test.spec.ranks,
        "nodes": len(test.hosts),
        "dtype": test.dtype,
        "redop": test.op,
        "status": outcome.status,
        "reason": outcome.reason,
        "log_tail": outcome.log_tail,
        "started": outcome.started,
        "ended": outcome.ended,
        "duration_s": outcome.ended - outcome.started,
        "used": json.dumps({"hosts": list(test.hosts), "ranks": outcome.env}, default=str),
    }


def test_title(test: PlannedTest, outcome: TestOutcome) -> str:
    env0 = outcome.env[0] if outcome.env else {}
    used = f"{env0.get('transport', '?')} on {env0.get('device', '?')}" if env0 else "no rank started"
    return (f"{test.test_id}: {test.spec.workload}, {test.spec.ranks} ranks, {used}, "
            f"profile {test.profile_name} ({test.profile.fabric}/{test.profile.mode}) -> {outcome.status}")


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
    run_id = run_id or new_run_id(spec.name)
    store = RunStore(root, run_id)
    if store.exists() and not resume:
        raise UsageError(f"run {run_id!r} already exists in {root}/", hint=f"resume it with --resume {run_id}")
    backend = backend or make_backend(spec)
    if hasattr(backend, "start_run"):
        backend.start_run(run_id)  # the run id labels everything the backend creates
    plan = make_plan(spec, backend)
    done = store.finished_tests() if resume else set()
    todo = [t for t in plan.tests if t.test_id not in done]
    cannot = unrunnable_tests(plan, backend)
    if todo and all(t.test_id in cannot for t in todo):
        # Nothing could be measured: say so before a run directory exists.
        reasons = sorted(set(cannot.values()))
        raise CapabilityError(f"none of the {len(todo)} test(s) can run on backend {backend.name}: {reasons[0]}"
                              + (f" (and {len(reasons) - 1} other reason(s): benchfab plan lists them)"
                                 if len(reasons) > 1 else ""))

    meta: dict[str, Any] = store.read_meta() if resume else {}
    meta.update({
        "spec": spec_to_dict(spec),
        "spec_text": spec_text,
        "spec_path": spec.source,
        "inventory": backend.inventory(),
        "versions": metadata.versions(),
        "host": metadata.host(),
        "git": metadata.git_revision(),
        "status": "running",
        "planned_tests": [t.test_id for t in plan.tests],
        "estimate_s": plan.estimate_s,
    })
    meta.setdefault("started", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if resume:
        meta.setdefault("resumes", []).append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    store.write_meta(meta)

    print(f"# benchfab run {run_id}: {len(todo)} test(s) to run"
          + (f", {len(done)} already done" if done else "")
          + f"; results in {store.path}", file=out, flush=True)
    for note in plan.notes:
        print(f"# note: {note}", file=out)
    counts: dict[str, int] = {}
    for test in [t for t in todo if t.test_id in cannot]:
        now = time.time()
        skipped = TestOutcome(test.test_id, "skipped", reason=cannot[test.test_id], started=now, ended=now)
        store.write_test(test_row(run_id, test, skipped), [], [])
        counts["skipped"] = counts.get("skipped", 0) + 1
        _print_outcome(test, skipped, out)
    todo = [t for t in todo if t.test_id not in cannot]
    bar = Progress(len(todo), sum(t.estimate_s for t in todo), enabled=progress)
    current: list[PlannedTest] = []
    partials: dict[str, TestOutcome] = {}
    # Backends with run_round (Kubernetes) run a plan round's tests side by side.
    run_round = getattr(backend, "run_round", None)
    batches = _batches(plan, todo) if run_round is not None else [[t] for t in todo]
    try:
        for batch in batches:
            current = batch
            partials = {t.test_id: TestOutcome(t.test_id, "interrupted", started=time.time()) for t in batch}
            label = batch[0].test_id if len(batch) == 1 else f"round of {len(batch)} tests"
            bar.start_test(label, max(t.estimate_s for t in batch), sum(t.units for t in batch))

            def on_record(test_id: str, rec: dict[str, Any], _p: dict[str, TestOutcome] = partials) -> None:
                _p[test_id].results.append(rec)
                bar.unit_done()

            if run_round is not None:
                outcomes = list(run_round(batch, str(store.log_dir), on_record))
            else:
                outcomes = [backend.run_test(batch[0], str(store.log_dir), lambda rec: on_record(batch[0].test_id, rec))]  # noqa: B023 - called before returning
            current = []
            for i, (test, outcome) in enumerate(zip(batch, outcomes)):
                _fail_on_wrong_data(outcome)
                store.write_test(test_row(run_id, test, outcome), summary_rows(run_id, test, outcome, backend.name), raw_rows(run_id, test, outcome))
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
                if i:
                    bar.start_test(test.test_id, test.estimate_s, test.units)
                bar.end_test(outcome.status, outcome.ended - outcome.started)
                bar.clear()
                _print_outcome(test, outcome, out)
    except KeyboardInterrupt:
        bar.clear()
        for test in current:
            partial = partials[test.test_id]
            partial.ended = time.time()
            partial.reason = "interrupted by the user; rerun with --resume"
            store.write_test(test_row(run_id, test, partial), summary_rows(run_id, test, partial, backend.name), raw_rows(run_id, test, partial))
        meta.update({"status": "interrupted", "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        store.write_meta(meta)
        print(f"# run {run_id} interrupted; resume with: benchfab sweep --resume {run_id} --results {root}",
              file=out, flush=True)
        raise
    finally:
        if hasattr(backend, "close"):
            backend.close()  # e.g. delete the run's pods
    bar.clear()
    meta.update({"status": "complete", "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "counts": counts})
    store.write_meta(meta)
    return SweepResult(run_id, store.path, counts)


def _fail_on_wrong_data(outcome: TestOutcome) -> None:
    """A test whose data check counted wrong elements failed, as nccl-tests says FAILED:
    the numbers of a link that corrupts data are not a measurement to keep as ok."""
    bad = [r for r in outcome.results if (r.get("wrong") or 0) > 0]
    if outcome.status != "ok" or not bad:
        return
    total = sum(int(r["wrong"]) for r in bad)
    sizes = ", ".join(sorted({str(r["size_bytes"]) for r in bad}, key=int))
    outcome.status = "failed"
    outcome.reason = (f"{total} wrong element(s) in the data check at size(s) {sizes} B "
                      f"(fix: look for a bad link or node in this test's hosts)" + (f"; {outcome.reason}" if outcome.reason else ""))


def _print_outcome(test: PlannedTest, outcome: TestOutcome, out: TextIO) -> None:
    title = test_title(test, outcome)
    if outcome.results and is_point_to_point(test.spec.workload):
        print(format_p2p_table(title, test.spec.workload, outcome.results), file=out)
    elif outcome.results:
        root = test.spec.root if COLLECTIVES[test.spec.workload].rooted else -1
        print(format_table(title, test.dtype, test.op, root, outcome.results), file=out)
    else:
        print(f"# {title}", file=out)
    if outcome.status != "ok":
        print(f"# {outcome.status.upper()}: {outcome.reason}", file=out)
        for line in outcome.log_tail.splitlines():
            print(f"#   {line}", file=out)
    elif outcome.reason:  # ok, with a warning (e.g. NCCL fell back from the fabric to sockets)
        print(f"# WARNING: {outcome.reason}", file=out)
    oks = [r for r in outcome.results if r.get("status") == "ok" and r.get("busbw_Bps") is not None]
    if oks:
        avg = sum(r["busbw_Bps"] for r in oks) / len(oks) / 1e9
        wrong = sum(int(r["wrong"] or 0) for r in oks)
        print(f"# Out of bounds values : {wrong} {'OK' if wrong == 0 else 'FAILED'}", file=out)
        print(f"# Avg bus bandwidth    : {avg:.4g} GB/s", file=out)
    print(file=out, flush=True)


def load_resume(results_dir: Path, run_id: str) -> tuple[SweepSpec, str]:
    """The spec a run was started with, re-validated from the text stored in its run.json."""
    store = RunStore(results_dir, run_id)
    meta = store.read_meta()
    text = meta.get("spec_text")
    if not isinstance(text, str):
        raise SpecError("run.json holds no spec text", source=str(store.path / "run.json"))
    return load_spec_text(text, source=str(meta.get("spec_path") or "run.json")), text
