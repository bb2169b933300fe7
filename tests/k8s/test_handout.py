"""A round handed out with one write: the round ConfigMaps and an agent's pick (handout.py), and
end to end on the fake cluster under watch lag: one write per round whatever the number of pairs."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

import benchfab
from benchfab.backends.kubernetes import manifests as mf
from benchfab.backends.kubernetes.backend import KubernetesBackend
from benchfab.backends.kubernetes.handout import LABEL_ROUND, RoundTest, assignment, pick, round_configmaps, round_selector
from benchfab.errors import CleanupError
from benchfab.spec import load_spec_text
from benchfab.sweep import run_sweep
from tests.fakecluster import FakeCluster, seed_nodes
from tests.k8s.helpers import PAIRS, SPEC, assert_clean, backend_for, sweep

pytestmark = pytest.mark.k8s

POD_A, POD_B = "bf-r-ib-shared-node-a-0", "bf-r-ib-shared-node-b-0"


def _round(first_seq: int, pairs: int, task_bytes: int = 10) -> list[RoundTest]:
    return [RoundTest(first_seq + i, json.dumps({"id": i, "pad": "x" * task_bytes}),
                      {f"pod-{i}-{r}": assignment(first_seq + i, {"RANK": str(r)}, [{"LOCAL_RANK": "0"}])
                       for r in range(2)}) for i in range(pairs)]


def test_a_round_is_one_configmap_labelled_by_run_and_round_each_task_once() -> None:
    cms = round_configmaps("r", "bench", 3, _round(1, 4))
    assert len(cms) == 1
    meta = cms[0]["metadata"]
    assert meta["labels"][mf.LABEL_RUN] == "r" and meta["labels"][LABEL_ROUND] == "3"
    assert round_selector("r", 3) == "benchfab.io/run=r,benchfab.io/round=3"
    data = cms[0]["data"]
    assert sorted(k for k in data if k.startswith("task.")) == ["task.1", "task.2", "task.3", "task.4"]
    assert len(data) == 4 + 8  # each task once, each pod's entry once
    entry, task = pick(cms, "pod-2-1", 0) or ({}, "")
    assert entry["seq"] == 3 and entry["env"] == {"RANK": "1"} and json.loads(task)["id"] == 2


def test_a_large_round_is_split_and_a_test_stays_whole_in_one_shard() -> None:
    tests = _round(1, 40, task_bytes=3000)
    cms = round_configmaps("r", "bench", 1, tests, shard_bytes=20_000)
    assert len(cms) > 4
    assert len({cm["metadata"]["name"] for cm in cms}) == len(cms)
    for cm in cms:
        size = sum(len(k) + len(v) for k, v in cm["data"].items())
        assert size <= 20_000
        for key, raw in cm["data"].items():
            if not key.startswith("task."):
                assert json.loads(raw)["task"] in cm["data"]  # the pod's task is in its own shard
    assert sum(len(cm["data"]) for cm in cms) == 40 * 3


def test_the_agent_picks_its_newest_entry_above_what_it_ran_or_was_cancelled() -> None:
    old = round_configmaps("r", "bench", 1, _round(1, 2))
    new = round_configmaps("r", "bench", 2, _round(3, 2))
    assert (pick(old + new, "pod-0-0", 0) or ({}, ""))[0]["seq"] == 3  # last round's not yet deleted
    assert pick(old + new, "pod-0-0", 3) is None  # ran (or cancelled) already
    assert pick(old, "pod-9-0", 0) is None  # not in this round
    broken = [{"data": {"pod-0-0": "{"}}]
    with pytest.raises(ValueError):
        pick(broken, "pod-0-0", 0)


def test_the_agent_role_reads_configmaps_in_its_namespace_only() -> None:
    from benchfab.backends.kubernetes.options import KubeOptions

    role = mf.agent_access("r", "bench", [POD_A, POD_B], KubeOptions())[1]
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "bench"
    assert {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]} in role["rules"]
    pods = next(r for r in role["rules"] if r["resources"] == ["pods"])
    assert pods["resourceNames"] == sorted([POD_A, POD_B]) and pods["verbs"] == ["get", "list", "watch"]


def _writes(cluster: FakeCluster) -> list[tuple[str, str]]:
    return [(m, p) for m, p in cluster.requests if m in ("POST", "PATCH", "PUT")]


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [4, 8])
def test_one_write_per_round_whatever_the_pairs_under_watch_lag(cluster: FakeCluster, tmp_path: Path,
                                                              nodes: int) -> None:
    """A ring of 4 nodes: 2 pairs a round; of 8 nodes: 4 pairs a round. Each round is one ConfigMap
    write and no pod PATCH; every agent picks its entry with 50-200 ms of watch lag; rounds are deleted."""
    seed_nodes(cluster, nodes)
    cluster.watch_delay_s = (0.05, 0.2)
    text = (SPEC.replace("sizes: [8, 4K], iterations: 3", "sizes: [8], iterations: 1")
            + "  - name: ring\n    placement: {pattern: ring}\n")
    rounds: list[tuple[int, int]] = []  # (pairs, API writes) of each hand-out

    def count_writes(backend: KubernetesBackend) -> None:
        original = backend.tests.assign_all

        def counting(tests):  # type: ignore[no-untyped-def]
            before = len(_writes(cluster))
            running = original(tests)
            rounds.append((len(tests), len(_writes(cluster)) - before))
            return running

        backend.tests.assign_all = counting  # type: ignore[method-assign]

    result, _, out = sweep(cluster, text, tmp_path, before=count_writes)
    assert result.counts == {"ok": nodes}, out
    assert rounds == [(nodes // 2, 1), (nodes // 2, 1)]  # one write a round, for 2 pairs as for 4
    posts = [p for m, p in cluster.requests if m == "POST" and p.endswith("/configmaps")]
    assert len(posts) == len(rounds)
    assert not [p for m, p in cluster.requests if m == "PATCH" and "/pods/" in p]  # no per-pod hand-out
    deletes = [p for m, p in cluster.requests if m == "DELETE" and "/configmaps?" in p]
    assert len(deletes) >= len(rounds)  # each round's ConfigMap deleted as it ended
    assert_clean(cluster)


@pytest.mark.slow
def test_a_round_configmap_that_cannot_be_deleted_is_reported_left_behind(cluster: FakeCluster,
                                                                        tmp_path: Path) -> None:
    seed_nodes(cluster, 2)
    spec = load_spec_text(SPEC + PAIRS)
    backend = backend_for(cluster, spec)
    backend.kube.backoff_s = 0.05
    cluster.inject("DELETE", r"/configmaps", 500, times=10_000)  # the round's and close()'s deletes
    out = io.StringIO()
    with pytest.raises(CleanupError) as err:
        run_sweep(spec, SPEC + PAIRS, results_dir=str(tmp_path), run_id="r", out=out, progress=False, backend=backend)
    assert benchfab.load_run("r", tmp_path).tests["status"].tolist() == ["ok"]  # the result is kept
    left = [f"configmap/{cm['metadata']['name']}" for cm in cluster.objects("configmaps", "benchfab.io/run=r")]
    assert len(left) == 1 and left[0].endswith("-r1-0")  # the one round's
    assert err.value.left == left
    assert f"# left behind: {left[0]}\n" in out.getvalue()
    assert "kubectl delete pods,configmaps," in str(err.value)
    deadline = time.time() + 10
    while cluster.objects("pods", "benchfab.io/run=r") and time.time() < deadline:
        time.sleep(0.1)
    assert cluster.objects("pods", "benchfab.io/run=r") == []  # everything else went
