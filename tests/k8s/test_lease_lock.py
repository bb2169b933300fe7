"""The cluster-wide lock on a run's nodes (kubernetes.lock, backends/kubernetes/lease.py):
coordination.k8s.io/v1 Leases on the fake API server, through the real kubernetes client."""

from __future__ import annotations

import threading
import time

import pytest

from benchfab.backends.kubernetes import lease as lease_mod
from benchfab.backends.kubernetes.client import ClusterOptions, Kube, connect
from benchfab.backends.kubernetes.lease import LeaseLock, lease_name
from benchfab.backends.kubernetes.options import NodeLock
from benchfab.errors import BackendError
from tests.fakecluster import FakeCluster

pytestmark = pytest.mark.k8s


@pytest.fixture
def kube(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> Kube:
    monkeypatch.setattr(lease_mod, "POLL_S", 0.1)
    return connect(ClusterOptions(kubeconfig=str(cluster.kubeconfig)), "bench")


def _lock(kube: Kube, run: str, nodes: list[str], notes: list[str] | None = None, **options: object) -> LeaseLock:
    return LeaseLock(kube, NodeLock.model_validate(options), run, nodes,
                     note=(notes.append if notes is not None else lambda _line: None))


def _lease(cluster: FakeCluster, nodes: list[str]) -> dict[str, object] | None:
    return cluster.store.get("leases", "bench", lease_name(nodes))


def test_a_second_run_on_the_same_nodes_fails_naming_the_holder_or_waits_for_it(cluster: FakeCluster, kube: Kube) -> None:
    nodes = ["n2", "n1"]
    first = _lock(kube, "run-a", nodes)
    first.acquire()
    held = _lease(cluster, nodes)
    assert held is not None and held["spec"]["holderIdentity"] == first.identity  # type: ignore[index]
    assert lease_name(["n1", "n2"]) == lease_name(nodes) != lease_name(["n1"])  # sorted names, one per set
    with pytest.raises(BackendError, match="measured by run run-a@[^ ]+:[0-9]+ \\(Lease benchfab-nodes-.*renewed 0 s ago\\)"):
        _lock(kube, "run-b", nodes, mode="fail").acquire()
    notes: list[str] = []
    with pytest.raises(BackendError, match="still held by run run-a@[^ ]+ \\(Lease .*\\) after 1 s \\(kubernetes.lock.wait_timeout"):
        _lock(kube, "run-b", nodes, notes, wait_timeout="1s").acquire()
    assert len(notes) == 1 and notes[0].startswith(f"lock: waiting for run {first.identity} (Lease {lease_name(nodes)}, renewed ")
    second = _lock(kube, "run-b", nodes, notes)
    waiter = threading.Thread(target=second.acquire)
    waiter.start()
    time.sleep(0.5)
    assert second.held is None  # still waiting
    first.release()
    waiter.join(10)
    assert second.held is not None and _lease(cluster, nodes)["spec"]["holderIdentity"] == second.identity  # type: ignore[index]
    assert notes[-1].startswith("lock: holds 2 node(s)") and "after waiting" in notes[-1], notes
    second.release()
    assert _lease(cluster, nodes) is None  # released: deleted


def test_a_holder_that_stops_renewing_loses_the_lease_after_its_duration(cluster: FakeCluster, kube: Kube) -> None:
    nodes = ["n1"]
    alive = _lock(kube, "run-a", nodes, duration="6s")
    alive.acquire()
    renewed = _lease(cluster, nodes)["spec"]["renewTime"]  # type: ignore[index]
    time.sleep(2.5)  # a third of the duration: renewed
    assert _lease(cluster, nodes)["spec"]["renewTime"] != renewed  # type: ignore[index]
    alive._stop.set()  # the controller dies: no renewal, no release
    began = time.monotonic()
    taker = _lock(kube, "run-b", nodes, duration="6s")
    taker.acquire()
    waited = time.monotonic() - began
    after = _lease(cluster, nodes)["spec"]  # type: ignore[index]
    assert after["holderIdentity"] == taker.identity and after["leaseTransitions"] == 1, after
    assert 2.0 < waited < 8.0, waited  # until renewTime + 6 s, not at once and not forever
    taker.release()


def test_overlapping_node_sets_exclude_each_other_and_disjoint_ones_do_not(cluster: FakeCluster, kube: Kube) -> None:
    holder = _lock(kube, "run-a", ["n1", "n2"])
    holder.acquire()
    with pytest.raises(BackendError, match="measured by run run-a"):
        _lock(kube, "run-b", ["n2", "n3"], mode="fail").acquire()
    assert _lease(cluster, ["n2", "n3"]) is None  # the refused run gave its own Lease back
    other = _lock(kube, "run-c", ["n3", "n4"], mode="fail")
    other.acquire()  # no node in common
    other.release()
    holder.release()


def test_racing_runs_on_overlapping_nodes_never_hold_at_once(cluster: FakeCluster, kube: Kube) -> None:
    spans: list[tuple[float, float, str]] = []

    def run(name: str, nodes: list[str]) -> None:
        lock = _lock(kube, name, nodes)
        lock.acquire()
        began = time.monotonic()
        time.sleep(0.3)
        spans.append((began, time.monotonic(), name))
        lock.release()

    threads = [threading.Thread(target=run, args=(f"run-{i}", [f"n{i % 3}", f"n{(i + 1) % 3}"])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    spans.sort()
    assert len(spans) == 4
    # Any two of these node sets share a node (3 nodes, pairs of them): one run at a time.
    assert all(a_end <= b_start for (_, a_end, _), (b_start, _, _) in zip(spans, spans[1:])), spans
    assert cluster.store.list("leases", "bench") == []


def test_a_write_whose_answer_is_lost_still_holds_the_lease(cluster: FakeCluster, kube: Kube) -> None:
    # The create and a renewal are applied but their answers dropped: the retry gets 409 from
    # our own write, which must read as "ours", not as another run's lock.
    created = cluster.inject("POST", "/leases", "reset")
    lock = _lock(kube, "run-a", ["n1"], mode="fail", duration="6s")
    lock.acquire()
    assert created.hits == 1 and lock.held is not None
    renewed = cluster.inject("PUT", "/leases/", "reset")
    time.sleep(2.6)  # one renewal, its answer lost
    assert renewed.hits == 1 and lock.lost is None and lock.held is not None
    lock.release()
    assert _lease(cluster, ["n1"]) is None


def test_two_controllers_with_the_same_run_id_do_not_share_the_lock(cluster: FakeCluster, kube: Kube) -> None:
    mine = _lock(kube, "nightly-1204", ["n1"])
    mine.acquire()
    theirs = _lock(kube, "nightly-1204", ["n1"], mode="fail")
    theirs.identity = "nightly-1204@other-controller:7"  # another results directory, the same run id
    with pytest.raises(BackendError, match=f"measured by run {mine.identity}"):
        theirs.acquire()
    mine.release()


def test_an_account_without_the_lease_rights_gets_one_line_naming_the_fix(cluster: FakeCluster,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A controller account whose RBAC predates the lock (no leases rule): the real API
    server's 403, with what to apply or how to turn the lock off, never a traceback."""
    from benchfab.backends.kubernetes.api_errors import Forbidden

    monkeypatch.setattr(lease_mod, "POLL_S", 0.1)
    unbound = connect(ClusterOptions(kubeconfig=str(cluster.kubeconfig_for("bench", "no-leases"))), "bench")
    with pytest.raises(Forbidden) as refused:
        _lock(unbound, "run-a", ["n1", "n2"]).acquire()
    text = str(refused.value)
    assert text.startswith("kubernetes.lock: get lease benchfab-nodes-") and "403" in text, text
    assert "kubectl apply -f jobs/k8s/rbac.yaml" in text and "kubernetes.lock.mode: off" in text, text
    assert "\n" not in text
    assert _lease(cluster, ["n1", "n2"]) is None
