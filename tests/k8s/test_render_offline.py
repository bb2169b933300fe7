"""render / plan of Kubernetes specs: offline from --nodes, the no-kubeconfig fallback, --profile,
and the one-line errors for a missing or malformed kubeconfig (real CLI processes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from benchfab.backends.kubernetes import manifests as mf
from tests.fakecluster import FakeCluster, seed_nodes
from tests.helpers import ROOT

pytestmark = pytest.mark.k8s

IB_VS_ROCE = "jobs/ib-vs-roce.yaml"


def bf(*args: str, home: Path, kubeconfig: str | None = None) -> subprocess.CompletedProcess[str]:
    """benchfab ARGS with HOME=home, and KUBECONFIG only if given (never the caller's)."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(home)
    if kubeconfig is not None:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run([sys.executable, "-m", "benchfab", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME: no ~/.kube at all."""
    h = tmp_path / "home"
    h.mkdir()
    return h


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchfab: error: ") and "(fix: " in lines[0], proc.stderr
    return lines[0]


def pods(text: str) -> list[dict]:  # type: ignore[type-arg]
    docs = list(yaml.safe_load_all(text))
    for d in docs:
        kubernetes_validate.validate(d, "1.33", strict=True)
    assert docs[0]["kind"] == "Service"
    return [d for d in docs[1:] if d["kind"] == "Pod"]


def gpus_per_node(pod_list: list[dict]) -> Counter[str]:  # type: ignore[type-arg]
    per: Counter[str] = Counter()
    for p in pod_list:
        node = p["spec"]["nodeSelector"]["kubernetes.io/hostname"]
        per[node] += int(p["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", "0"))
    return per


def test_render_offline_skips_the_tests_that_do_not_fit(home: Path) -> None:
    proc = bf("render", IB_VS_ROCE, "--nodes", "a,b", home=home)
    assert proc.returncode == 0, proc.stderr
    assert "benchfab: note: allreduce-8n/ib-shared: skipped: a group of 8 nodes, the inventory has 2" in proc.stderr
    assert "allreduce-8n/roce-shared: skipped" in proc.stderr
    got = pods(proc.stdout)
    assert {p["spec"]["nodeSelector"]["kubernetes.io/hostname"] for p in got} == {"a", "b"}
    assert {p["metadata"]["labels"][mf.LABEL_PROFILE] for p in got} == {"ib-shared", "roce-shared"}
    # what is applied together is said in the output itself
    assert "# ---- profile ib-shared" in proc.stdout and "# ---- profile roce-shared" in proc.stdout
    assert f"benchfab render {IB_VS_ROCE} --profile roce-shared | kubectl apply -f -" in proc.stdout
    assert "not meant to run at once" in proc.stderr


def test_render_profile_emits_one_profile_that_fits_the_gpus(home: Path) -> None:
    both = bf("render", IB_VS_ROCE, "--nodes", "8", home=home)
    assert both.returncode == 0, both.stderr
    # two profiles x (the pairs test's one-GPU pod + the group's 8-GPU pod) per node
    assert set(gpus_per_node(pods(both.stdout)).values()) == {18}
    one = bf("render", IB_VS_ROCE, "--nodes", "8", "--profile", "roce-shared", home=home)
    assert one.returncode == 0, one.stderr
    got = pods(one.stdout)
    assert {p["metadata"]["labels"][mf.LABEL_PROFILE] for p in got} == {"roce-shared"}
    # the gpus_per_node: 8 group on 8 nodes: one pod per node with all 8 GPUs and a /dev/shm for NCCL
    wide = [p for p in got if p["metadata"]["labels"].get(mf.LABEL_RANKS) == "8"]
    per = gpus_per_node(wide)
    assert sorted(per) == [f"node-{i}" for i in range(8)] and set(per.values()) == {8} and len(wide) == 8
    assert all(p["spec"]["volumes"][0]["emptyDir"]["medium"] == "Memory" for p in wide)
    assert set(gpus_per_node([p for p in got if p not in wide]).values()) == {1}  # pairs: one (GPU, NIC) per rank
    assert "8 pod(s) of 1 rank, 1 GPU; 8 pod(s) of 8 ranks, 8 GPUs" in one.stdout
    assert "# ---- profile ib-shared" not in one.stdout and "not meant to run at once" not in one.stderr
    bad = bf("render", IB_VS_ROCE, "--nodes", "8", "--profile", "nope", home=home)
    assert bad.returncode == 2 and "one of: ib-shared, roce-shared" in one_line_error(bad)


def test_plan_offline_from_a_count_or_names(home: Path) -> None:
    two = bf("plan", IB_VS_ROCE, "--nodes", "2", home=home)
    assert two.returncode == 0, two.stderr
    assert "# note: allreduce-8n/ib-shared: skipped: a group of 8 nodes, the inventory has 2" in two.stdout
    assert "000-pairs-ib-shared-node-0+node-1" in two.stdout and "allreduce-8n" not in two.stdout.split("round")[-1]
    eight = bf("plan", IB_VS_ROCE, "--nodes", "8", home=home)
    assert eight.returncode == 0 and "skipped" not in eight.stdout
    assert "001-allreduce-8n-ib-shared-8n" in eight.stdout and "made-up node(s) (node-0..node-7)" in eight.stdout
    names = bf("plan", IB_VS_ROCE, "--nodes", "x,y,z", home=home)
    assert names.returncode == 0 and "3 given node(s) (x,y,z)" in names.stdout
    one = bf("plan", IB_VS_ROCE, "--nodes", "1", home=home)
    assert one.returncode == 2 and "nothing to run" in (err := one_line_error(one)) and "--nodes 8" in err
    local = bf("plan", "jobs/local.yaml", "--nodes", "2", home=home)
    assert local.returncode == 2 and "--nodes is for backend: kubernetes" in one_line_error(local)


def test_no_kubeconfig_at_all_plans_and_renders_offline_with_a_note(home: Path) -> None:
    plan = bf("plan", "jobs/shared-vs-sriov.yaml", home=home)
    assert plan.returncode == 0, plan.stderr
    assert "# note: no Kubernetes configuration found" in plan.stdout
    assert "16 made-up node(s)" in plan.stdout and "--kubeconfig FILE" in plan.stdout  # the rails group needs 16
    assert "skipped" not in plan.stdout  # every test fits the default
    render = bf("render", IB_VS_ROCE, home=home)
    assert render.returncode == 0, render.stderr
    assert "benchfab: note: no Kubernetes configuration found" in render.stderr
    assert len({p["spec"]["nodeSelector"]["kubernetes.io/hostname"] for p in pods(render.stdout)}) == 8


def test_a_kubeconfig_means_the_real_cluster(cluster: FakeCluster, home: Path) -> None:
    """~/.kube/config or $KUBECONFIG present: plan and render read the cluster, never the offline default."""
    seed_nodes(cluster, 3)
    spec = home / "spec.yaml"
    text = (ROOT / IB_VS_ROCE).read_text().replace("namespace: gpu-bench", "namespace: bench")
    text = "\n".join(line for line in text.splitlines() if "roce-shared:" not in line)  # the fake nodes: IB only
    spec.write_text(text.replace("nodes: 8, gpus_per_node: 8", "nodes: 2, gpus_per_node: 2") + "\n")
    (home / ".kube").mkdir()
    shutil.copy(cluster.kubeconfig, home / ".kube" / "config")
    plan = bf("plan", str(spec), home=home)
    assert plan.returncode == 0, plan.stderr
    assert "the cluster's 3 usable node(s)" in plan.stdout and "gpu-node-0" in plan.stdout
    assert "made-up" not in plan.stdout and "no Kubernetes configuration" not in plan.stdout
    empty = home.parent / "empty"
    empty.mkdir()
    render = bf("render", str(spec), "--profile", "ib-shared", home=empty, kubeconfig=str(cluster.kubeconfig))
    assert render.returncode == 0, render.stderr
    assert {p["spec"]["nodeSelector"]["kubernetes.io/hostname"] for p in pods(render.stdout)} <= {
        f"gpu-node-{i}" for i in range(3)}
    # a group bigger than the cluster is skipped with a note; as this spec's only test it leaves nothing to run: an error
    big = spec.read_text().replace("nodes: 2, gpus_per_node: 2", "nodes: 4, gpus_per_node: 2")
    spec.write_text(big)
    proc = bf("plan", str(spec), home=home)
    assert proc.returncode == 2 and "a group of 4 nodes, the inventory has 3" in one_line_error(proc)


def test_no_kubeconfig_error_says_where_it_looked_and_the_fix(home: Path) -> None:
    for args in (("preflight", IB_VS_ROCE), ("plan", IB_VS_ROCE, "--context", "prod")):
        proc = bf(*args, home=home)
        assert proc.returncode == 1
        err = one_line_error(proc)
        assert "Invalid kube-config" not in err
        assert "none found" in err and "$KUBECONFIG (unset)" in err
        assert f"~/.kube/config ({home}/.kube/config: missing)" in err and "in-cluster service account" in err
        assert "--kubeconfig FILE" in err and "--context NAME" in err and "--nodes" in err


def test_kubeconfig_pointing_at_a_missing_file(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    proc = bf("plan", IB_VS_ROCE, home=home, kubeconfig=str(missing))  # named explicitly: no offline fallback
    assert proc.returncode == 1
    assert f"KUBECONFIG={missing} names no existing file" in one_line_error(proc)
    proc = bf("preflight", IB_VS_ROCE, "--kubeconfig", str(missing), home=home)
    assert proc.returncode == 1 and f"--kubeconfig {missing} does not exist" in one_line_error(proc)


@pytest.mark.parametrize("text,what", [
    ("apiVersion: v1\nclusters: [\n  - foo: : bar\n", ":3 is malformed: not valid YAML"),
    ("just a string\n", "is malformed: not a kubeconfig"),
])
def test_malformed_kubeconfig_is_named(home: Path, tmp_path: Path, text: str, what: str) -> None:
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(text)
    for proc in (bf("plan", IB_VS_ROCE, home=home, kubeconfig=str(bad)),
                 bf("preflight", IB_VS_ROCE, "--kubeconfig", str(bad), home=home)):
        assert proc.returncode == 1
        err = one_line_error(proc)
        assert f"the kubeconfig {bad}" in err and what in err
