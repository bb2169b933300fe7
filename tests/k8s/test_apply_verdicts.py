"""Applying second-pass verdicts to nodes on the fake API server, through the real client and
the real CLI: the labels and taints appear on exactly the nodes the verdicts name (``ok`` on
the nodes measured clean, nothing on a link's ends), other labels and taints stay, ``verdicts
clear`` removes exactly benchfab's marks, an expired mark is cleared by the next apply, and
RBAC refuses the patch without the separate ClusterRole that ``render --apply-verdicts``
prints."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchfab.backends.kubernetes.apply_verdicts import apply_diagnosis
from benchfab.backends.kubernetes.client import ClusterOptions, connect
from benchfab.backends.kubernetes.node_marks import label_value, marks_for, parse_until, until_text
from benchfab.diagnosis import Diagnosis, write_diagnosis
from benchfab.faults import Finding
from tests.fakecluster import FakeCluster
from tests.k8s.helpers import PAIRS, SPEC
from tests.k8s.test_rbac import shipped_rbac

pytestmark = [pytest.mark.k8s]

Cli = Callable[..., subprocess.CompletedProcess[str]]
FOREIGN_TAINT = {"key": "example.com/maintenance", "value": "true", "effect": "NoSchedule"}


def diagnosis(run_id: str = "r1") -> Diagnosis:
    """n1 a bad node, n2-n3 a bad link, n4 measured clean, n0 a known-good partner; n5 never measured."""
    return Diagnosis(run_id, {}, [Finding("bad-node", ("n1",), "0.41x the median with every partner"),
                                  Finding("bad-link", ("n2", "n3"), "0.30x the median, again when rerun")],
                     suspects=["n1", "n2", "n3", "n4"], good=["n0"])


def stored_run(results: Path, run_id: str, found: Diagnosis) -> Path:
    """A run as the store keeps it (run.json with the spec it ran, diagnosis.json)."""
    path = results / run_id
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"schema_version": 1, "run_id": run_id, "status": "complete", "spec_text": SPEC + PAIRS}))
    write_diagnosis(path, found)
    return path


def nodes(c: FakeCluster) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in c.store.list("nodes", None)}


def labels(c: FakeCluster, name: str) -> dict[str, str]:
    return {k: v for k, v in (nodes(c)[name]["metadata"].get("labels") or {}).items() if k.startswith("benchfab.io/")}


def taints(c: FakeCluster, name: str) -> list[dict[str, Any]]:
    return list(nodes(c)[name]["spec"].get("taints") or [])


@pytest.fixture
def six(cluster: FakeCluster) -> FakeCluster:
    for i in range(6):
        cluster.add_node(f"n{i}", labels={"team": "ml"}, taints=[dict(FOREIGN_TAINT)] if i == 1 else None)
    return cluster


def test_marks_name_node_verdicts_and_clean_nodes_only() -> None:
    marks = {m.node: m for m in marks_for(diagnosis())}
    assert {n: (m.rule.value, m.rule.taint) for n, m in marks.items()} == {
        "n0": ("ok", False), "n1": ("bad-node", True), "n4": ("ok", False)}  # n2, n3: a link; n5: not measured
    nic = Diagnosis("r", {}, [Finding("lossy-node", ("a",), "2 % lost"), Finding("bad-gpu", ("a",), "xid 79",
                                                                                  ({"gpu": 3},))])
    (mark,) = marks_for(nic)
    assert (mark.rule.value, mark.parts) == ("bad-gpu", {"benchfab.io/bad-gpus": "3"})


def test_label_values_fit_the_label_rules() -> None:
    assert label_value("20261201-0312-nightly") == "20261201-0312-nightly"
    long = label_value("run with spaces/and:colons " + "x" * 80)
    assert len(long) <= 63 and long[0].isalnum() and long[-1].isalnum()
    assert set(long) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert label_value("a b") != label_value("a:b")
    when = datetime(2026, 12, 5, 19, 1, 31, tzinfo=timezone.utc)
    assert until_text(when) == "20261205T190131Z" and parse_until(until_text(when)) == when


@pytest.mark.slow
def test_apply_then_clear_touches_only_benchfabs_marks(six: FakeCluster, tmp_path: Path, cli: Cli) -> None:
    results = tmp_path / "res"
    stored_run(results, "r1", diagnosis())
    kube = ["--kubeconfig", str(six.kubeconfig)]
    proc = cli("verdicts", "apply", "r1", "--results", str(results), "--valid-for", "2h", *kube)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    changed = [line for line in proc.stdout.splitlines() if line.startswith("# applied: ")]
    assert [line.split()[3].rstrip(":") for line in changed] == ["n0", "n1", "n4"], proc.stdout
    assert "taint benchfab.io/verdict=bad-node:NoSchedule" in changed[1]
    assert labels(six, "n1")["benchfab.io/verdict"] == "bad-node"
    assert labels(six, "n1")["benchfab.io/verdict-run"] == "r1"
    assert taints(six, "n1") == [FOREIGN_TAINT, {"key": "benchfab.io/verdict", "value": "bad-node",
                                                 "effect": "NoSchedule"}]
    for name in ("n0", "n4"):
        assert labels(six, name)["benchfab.io/verdict"] == "ok" and taints(six, name) == []
    for name in ("n2", "n3", "n5"):  # a link's ends and a node never measured: untouched
        assert labels(six, name) == {} and taints(six, name) == []
    assert all(not o["spec"].get("unschedulable") for o in nodes(six).values())  # never a cordon
    until = parse_until(labels(six, "n1")["benchfab.io/verdict-until"])
    assert until is not None and timedelta(minutes=119) < until - datetime.now(timezone.utc) <= timedelta(hours=2)

    proc = cli("verdicts", "clear", "--node", "n1", *kube)
    assert proc.returncode == 0 and proc.stdout.count("# cleared: ") == 1, proc.stdout + proc.stderr
    assert labels(six, "n1") == {} and taints(six, "n1") == [FOREIGN_TAINT]
    assert nodes(six)["n1"]["metadata"]["labels"]["team"] == "ml"
    assert labels(six, "n0")["benchfab.io/verdict"] == "ok"  # another node's mark stays
    proc = cli("verdicts", "clear", "--run", "r1", *kube, "-o", "json")
    assert sorted(line.split()[1].rstrip(":") for line in json.loads(proc.stdout)["cleared"]) == ["n0", "n4"]
    assert all(labels(six, n) == {} for n in nodes(six)) and taints(six, "n1") == [FOREIGN_TAINT]


def test_an_expired_mark_is_cleared_by_the_next_apply(six: FakeCluster) -> None:
    kube = connect(ClusterOptions(kubeconfig=str(six.kubeconfig)))
    long_ago = datetime.now(timezone.utc) - timedelta(days=3)
    apply_diagnosis(kube, diagnosis("old"), timedelta(hours=24), now=long_ago)
    assert labels(six, "n1")["benchfab.io/verdict"] == "bad-node"
    later = Diagnosis("new", {}, [], suspects=[], good=["n4", "n5"])
    changes = apply_diagnosis(kube, later, timedelta(hours=24))
    assert sorted(line.split()[1].rstrip(":") for line in changes.cleared) == ["n0", "n1"]  # n4: rewritten
    assert labels(six, "n1") == {} and taints(six, "n1") == [FOREIGN_TAINT]
    assert labels(six, "n4")["benchfab.io/verdict-run"] == labels(six, "n5")["benchfab.io/verdict-run"] == "new"


@pytest.mark.slow
def test_rbac_refuses_without_the_verdicts_role_and_allows_with_it(six: FakeCluster, tmp_path: Path, cli: Cli,
                                                                   write_spec: Callable[[str], Path]) -> None:
    controller = shipped_rbac(six)
    results = tmp_path / "res"
    stored_run(results, "r1", diagnosis())
    proc = cli("verdicts", "apply", "r1", "--results", str(results), "--kubeconfig", str(controller))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "forbidden" in line and "benchfab render SPEC --apply-verdicts" in line, line
    assert all(labels(six, n) == {} for n in nodes(six))

    spec = write_spec(SPEC + PAIRS)
    plain = cli("render", str(spec), "--nodes", "2")
    assert "benchfab-verdicts" not in plain.stdout  # rendered only when asked for
    proc = cli("render", str(spec), "--nodes", "2", "--apply-verdicts")
    assert proc.returncode == 0, proc.stderr
    extra = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert [d["metadata"]["name"] for d in extra] == ["benchfab-verdicts"] * 2
    assert extra[0]["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]}]
    six.apply(extra)
    proc = cli("verdicts", "apply", "r1", "--results", str(results), "--kubeconfig", str(controller))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert labels(six, "n1")["benchfab.io/verdict"] == "bad-node"
    proc = cli("verdicts", "clear", "--kubeconfig", str(controller))
    assert proc.returncode == 0 and all(labels(six, n) == {} for n in nodes(six)), proc.stdout + proc.stderr


def test_apply_flags_are_refused_where_they_cannot_apply(tmp_path: Path, cli: Cli,
                                                         write_spec: Callable[[str], Path]) -> None:
    local = write_spec("name: l\ntests:\n  - {name: ar, workload: allreduce}\n")
    proc = cli("sweep", str(local), "--apply-verdicts", "--results", str(tmp_path / "res"))
    assert proc.returncode == 2 and "Kubernetes nodes" in proc.stderr, proc.stderr
    no_pass = write_spec(SPEC + PAIRS)
    proc = cli("sweep", str(no_pass), "--apply-verdicts", "--results", str(tmp_path / "res"))
    assert proc.returncode == 2 and "second_pass: true" in proc.stderr, proc.stderr
    assert not (tmp_path / "res").exists()  # refused before anything ran
