"""kubernetes.scheduling (backends/kubernetes/gang.py): a gang start's pods wait in a Kueue
queue and are admitted together or not at all, with the wait shown; on the fake cluster
with a tiny Kueue (tests/fakecluster/kueue.py), real agent and gloo worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakecluster import FakeCluster, seed_nodes
from tests.fakecluster.kueue import GATE, GROUP, QUEUE, TOTAL, FakeKueue
from tests.k8s.helpers import SPEC, sweep

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

QUEUED = SPEC.replace("kubernetes: {start_timeout: 20s}",
                      "kubernetes: {start_timeout: 20s, scheduling: {queue: team-a}}") + \
    "  - name: ar3\n    workload: allreduce\n    placement: {pattern: group, nodes: 3}\n"


def _created_pods(c: FakeCluster) -> list[dict]:  # type: ignore[type-arg]
    return [obj for plural, obj in c.written if plural == "pods" and obj["metadata"].get("labels", {}).get(QUEUE)]


def test_a_queued_gang_is_admitted_whole_and_its_wait_is_shown(cluster: FakeCluster, tmp_path: Path) -> None:
    seed_nodes(cluster, 3)
    kueue = FakeKueue(cluster.store, quota_pods=3).start()
    notes: list[str] = []
    try:
        result, _backend, out = sweep(cluster, QUEUED, tmp_path / "res", before=lambda b: setattr(b.pool, "note", notes.append))
    finally:
        kueue.stop()
    assert result.counts == {"ok": 1}, out
    created = _created_pods(cluster)
    assert len(created) == 3
    groups = {p["metadata"]["labels"][GROUP] for p in created}
    assert len(groups) == 1 and kueue.admitted == [(groups.pop(), 3)]  # one group of 3, admitted once
    for pod in created:  # as created: gated, in the queue, with the group's size
        assert pod["spec"]["schedulingGates"] == [{"name": GATE}] and pod["metadata"]["labels"][QUEUE] == "team-a"
        assert pod["metadata"]["annotations"][TOTAL] == "3"
    assert notes[0] == "queued: 0 of 3 pods admitted (Kueue queue team-a)", notes
    assert all(a != b for a, b in zip(notes, notes[1:])), notes  # shown when it changes


def test_a_gang_the_quota_cannot_hold_never_starts_a_single_pod(cluster: FakeCluster, tmp_path: Path) -> None:
    seed_nodes(cluster, 3)
    kueue = FakeKueue(cluster.store, quota_pods=2).start()  # room for 2 of the 3 pods: none may start
    text = QUEUED.replace("start_timeout: 20s", "start_timeout: 4s")
    try:
        result, _backend, out = sweep(cluster, text, tmp_path / "res", before=lambda b: setattr(b.pool, "note", lambda _l: None))
    finally:
        kueue.stop()
    assert result.counts == {"failed": 1}, out
    assert "gated by kueue.x-k8s.io/admission" in out and "team-a" in out, out
    assert kueue.admitted == []
    # Not one version of any pod was ever bound to a node: none held a GPU while the rest waited.
    assert not any(plural == "pods" and obj["spec"].get("nodeName") for _, _, plural, obj in cluster.store.history)
