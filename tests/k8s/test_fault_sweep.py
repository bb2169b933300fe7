"""The fault sweep: a sweep under the faults a real API server produces (watch resets and
streams cut short, 429 with Retry-After, 500 on a round's hand-out and on DELETE, slow answers, watch events
0-200 ms late) ends with every test ok or truthfully failed, and nothing left behind
without a printed command that removes it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import benchfab
from benchfab.errors import CleanupError
from benchfab.spec import load_spec_text
from benchfab.sweep import run_sweep
from tests.fakecluster import SHARED, FakeCluster, seed_nodes
from tests.k8s.helpers import PAIRS, SPEC, assert_clean, backend_for, sweep
from tests.k8s.kubectl import debian_kubectl, kubectl

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


def test_transient_faults_every_test_ok_nothing_left(cluster: FakeCluster, tmp_path: Path) -> None:
    seed_nodes(cluster, 3)
    cluster.add_node("drained", unschedulable=True, allocatable={SHARED: 63, "nvidia.com/gpu": 8})
    cluster.create_delay_s = 1.0  # every pod ContainerCreating for a while first
    faults = [
        cluster.inject("GET", r"watch=true", "reset", times=3),  # watches dropped at connect
        cluster.inject("GET", r"watch=true", "cut", times=4, after=2),  # and in the middle of a stream
        cluster.inject("GET", r"/log\?", "cut", times=2, after=3),  # log streams too
        cluster.inject("*", r"/pods", 429, times=4, retry_after=0.2),  # fewer than Kube.call's 6 tries
        cluster.inject("GET", r"/pods", "slow", times=6, delay_s=0.4),
        cluster.inject("POST", r"/configmaps$", 500, times=3),  # a round's hand-out, retried
        cluster.inject("DELETE", r"/pods", 500, times=2),
    ]
    result, _, out = sweep(cluster, SPEC + PAIRS, tmp_path)
    assert result.counts == {"ok": 3}, out
    assert all(f.hits for f in faults), [(f.action, f.hits) for f in faults]
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "complete"
    assert "left behind" not in out
    assert "# node drained left out: cordoned\n" in out
    assert_clean(cluster)


def test_persistent_faults_fail_truthfully_and_print_what_is_left(cluster: FakeCluster, tmp_path: Path) -> None:
    seed_nodes(cluster, 3)
    # The first round can never be handed out (every retry refused); at the end no DELETE goes through at all.
    cluster.inject("POST", r"/configmaps$", 500, times=6)  # Kube.call's 6 tries
    spec = load_spec_text(SPEC + PAIRS)
    backend = backend_for(cluster, spec)
    backend.kube.backoff_s = 0.05  # the retries, quicker: the same count, shorter waits
    original_close = backend.pool.close

    def close_under_faults() -> None:
        cluster.inject("DELETE", r".", 500, times=10_000)
        original_close()

    backend.pool.close = close_under_faults  # type: ignore[method-assign]
    out = io.StringIO()
    with pytest.raises(CleanupError) as err:
        run_sweep(spec, SPEC + PAIRS, results_dir=str(tmp_path), run_id="r", out=out, progress=False, backend=backend)
    text = out.getvalue()
    run = benchfab.load_run("r", tmp_path)
    statuses = dict(zip(run.tests["test_id"], run.tests["status"]))
    reasons = dict(zip(run.tests["test_id"], run.tests["reason"]))
    assert len(statuses) == 3  # every test stored
    failed = [t for t, status in statuses.items() if status != "ok"]
    assert len(failed) == 1, reasons  # the first round's one test; the sweep went on
    assert "could not hand the round's tests to their pods" in reasons[failed[0]] and "500" in reasons[failed[0]]
    # what is left is listed, with the command that removes it, on stdout, in run.json and in the error
    kinds = {"pods": "pod", "configmaps": "configmap", "services": "service", "networkpolicies": "networkpolicy", "roles": "role",
             "rolebindings": "rolebinding", "serviceaccounts": "serviceaccount"}
    left = {f"{kind}/{o['metadata']['name']}" for plural, kind in kinds.items()
            for o in cluster.objects(plural, "benchfab.io/run=r")}
    assert left and set(err.value.left) == left
    for obj in left:
        assert f"# left behind: {obj}\n" in text
    command = "kubectl delete pods,configmaps,services,networkpolicies,roles,rolebindings,serviceaccounts -n bench -l benchfab.io/run=r"
    assert f"# remove them with: {command}" in text and command in str(err.value)
    meta = json.loads((tmp_path / "r" / "run.json").read_text())
    assert meta["status"] == "failed" and set(meta["left_behind"]) == left and meta["cleanup_command"] == command
    assert "clean-up of run r failed" in meta["reason"]
    # the printed command, run as printed once the API server behaves again, removes it all
    cluster.faults.clear()
    if debian_kubectl() is not None:
        proc = kubectl(cluster, *command.split()[1:])
        assert proc.returncode == 0, proc.stderr
    else:  # pragma: no cover - scripts/setup.sh provides it (tests/k8s/kubectl.py says how)
        pytest.fail("Debian's kubectl is missing: run scripts/setup.sh")
    assert_clean(cluster)
