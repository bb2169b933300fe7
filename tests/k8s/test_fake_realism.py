"""The fake cluster behaves like a real one where benchfab's correctness depends on it:
Debian's kubectl accepts what ``benchfab render`` prints, BOOKMARKs, the field-selector
whitelist, 404s for a missing CRD or namespace, image-pull failures, graceful deletion."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import benchfab
from benchfab.backends.kubernetes.api_errors import (
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    ServerError,
    Unauthorized,
    Unreachable,
)
from benchfab.backends.kubernetes.client import ClusterOptions, Kube, connect
from benchfab.backends.kubernetes.watch import Cache
from benchfab.errors import BackendError
from tests.fakecluster import FakeCluster, seed_nodes
from tests.helpers import ROOT
from tests.k8s.helpers import PAIRS, SPEC, assert_clean, sweep
from tests.k8s.kubectl import DEBIAN_KUBECTL, kubectl

pytestmark = pytest.mark.k8s

IMAGE = "registry.example.com/benchfab-worker:test"


def kube_for(c: FakeCluster) -> Kube:
    return connect(ClusterOptions(kubeconfig=str(c.kubeconfig)))


def test_debian_kubectl_applies_what_render_prints(cluster: FakeCluster, tmp_path: Path) -> None:
    """``benchfab render SPEC | kubectl apply -f -`` with Debian's kubectl, then ``kubectl get pods``."""
    version = subprocess.run([str(DEBIAN_KUBECTL), "version", "--client"], capture_output=True, text=True, timeout=60)
    assert "v1.20" in version.stdout  # Debian bookworm's kubernetes-client, not a kubectl from PATH
    seed_nodes(cluster, 2)
    cluster.fail_pulls(IMAGE)  # the pods stay Pending: kubectl get must show why
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + PAIRS)
    render = subprocess.run([sys.executable, "-m", "benchfab", "render", str(spec), "--kubeconfig",
                             str(cluster.kubeconfig)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert render.returncode == 0, render.stderr
    rendered = [d for d in yaml.safe_load_all(render.stdout) if d]
    # --validate=false: client-side schema validation needs /openapi/v2, which the fake does
    # not serve; test_render_offline checks the same YAML against the 1.33 schemas instead.
    applied = kubectl(cluster, "apply", "--validate=false", "-f", "-", stdin=render.stdout)
    assert applied.returncode == 0, applied.stderr
    for doc in rendered:
        kind = doc["kind"].lower()
        group = {"pod": "", "service": "", "serviceaccount": "", "networkpolicy": ".networking.k8s.io"}
        prefix = kind + group.get(kind, ".rbac.authorization.k8s.io")
        assert f"{prefix}/{doc['metadata']['name']} created" in applied.stdout, applied.stdout
    pods = sorted(d["metadata"]["name"] for d in rendered if d["kind"] == "Pod")
    assert sorted(o["metadata"]["name"] for o in cluster.objects("pods")) == pods
    deadline = time.monotonic() + 30
    while True:
        got = kubectl(cluster, "get", "pods")
        assert got.returncode == 0, got.stderr
        rows = {ln.split()[0]: ln.split()[2] for ln in got.stdout.splitlines()[1:]}
        if set(rows.values()) == {"ImagePullBackOff"} or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sorted(rows) == pods and set(rows.values()) == {"ImagePullBackOff"}, got.stdout


def test_image_pull_failure_reaches_the_user_as_such(cluster: FakeCluster, tmp_path: Path) -> None:
    seed_nodes(cluster, 2)
    cluster.fail_pulls(IMAGE)
    text = (SPEC + PAIRS).replace("start_timeout: 20s", "start_timeout: 3s")
    result, _, _ = sweep(cluster, text, tmp_path)
    assert result.counts == {"failed": 1}
    reason = benchfab.load_run("r", tmp_path).tests["reason"][0]
    assert "the worker image cannot be pulled (ImagePullBackOff)" in reason or "(ErrImagePull)" in reason, reason
    assert "imagePullSecrets" in reason
    assert_clean(cluster)


def test_bookmarks_spare_a_relist_after_a_compaction(cluster: FakeCluster) -> None:
    """A quiet watch gets BOOKMARKs with the newest version; resuming from it after history
    the watch did not care about was compacted needs no relist. Without them it does."""
    kube = kube_for(cluster)
    for interval, relists in ((0.2, 1), (3600.0, 2)):
        cluster.bookmark_interval_s = interval
        cache = Cache(kube, "bench", label_selector="app=quiet", watch_timeout_s=1)
        cache.start()
        try:
            assert cache.synced.wait(10)
            seed_nodes(cluster, 3)  # versions move on, nothing the watch sees
            time.sleep(0.8)  # a bookmark (when they are sent) carries the new version
            cluster.compact(before=cluster.store.rv)
            time.sleep(1.8)  # the watch times out and resumes
            assert cache.relists == relists, (interval, cache.relists)
        finally:
            cache.stop()


def test_field_selectors_are_limited_per_kind(cluster: FakeCluster) -> None:
    kube = kube_for(cluster)
    with pytest.raises(BackendError, match=r"list pods: 400 .*spec\.containers\.image"):
        kube.list_pods("bench", field_selector="spec.containers.image=x")
    assert kube.list_pods(None, field_selector="status.phase!=Succeeded,spec.nodeName=a")["items"] == []
    assert kube.events_for("some-pod") == []  # involvedObject.name: allowed on events


def test_missing_crd_and_missing_namespace_are_404(cluster: FakeCluster) -> None:
    kube = kube_for(cluster)
    group, version, plural = "sriovnetwork.openshift.io", "v1", "sriovnetworknodepolicies"
    with pytest.raises(BackendError, match="404"):
        kube.call("list", kube.custom.list_cluster_custom_object, group, version, plural)
    assert kube.list_custom(group, version, plural) == []  # benchfab reads "not installed" as none
    cluster.put_custom(plural, {"apiVersion": f"{group}/{version}", "kind": "SriovNetworkNodePolicy",
                                "metadata": {"name": "p", "namespace": "nvidia-network-operator"}, "spec": {}})
    assert [o["metadata"]["name"] for o in kube.list_custom(group, version, plural)] == ["p"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "nope"},
           "spec": {"containers": [{"name": "c", "image": IMAGE}]}}
    with pytest.raises(BackendError, match='404 namespaces "nope" not found'):
        kube.create("Pod", pod)


def test_api_errors_are_typed_by_status_and_keep_their_cause(cluster: FakeCluster, tmp_path: Path) -> None:
    """Each refusal of the real server arrives as its class (all BackendErrors), raised from
    the client's ApiException; callers catch the class, never the message's text."""
    from kubernetes.client.exceptions import ApiException

    kube = kube_for(cluster)
    kube.attempts = 1  # the retried statuses (429, 5xx, dropped connections) surface at once
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "bench"},
           "spec": {"containers": [{"name": "c", "image": IMAGE}]}}

    def refused(call: Any, cls: type[BackendError]) -> BackendError:
        with pytest.raises(cls) as got:
            call()
        assert isinstance(got.value, BackendError)
        return got.value

    missing = refused(lambda: kube.call("read pod x", kube.core.read_namespaced_pod, "x", "bench"), NotFound)
    assert isinstance(missing, ApiError) and missing.status == 404 and isinstance(missing.__cause__, ApiException)
    assert missing.message.startswith('read pod x: 404 pods "x" not found')
    kube.call("create pod x", kube.core.create_namespaced_pod, "bench", pod)
    again = refused(lambda: kube.call("create pod x", kube.core.create_namespaced_pod, "bench", pod), Conflict)
    assert isinstance(again, ApiError) and again.status == 409
    stranger = connect(ClusterOptions(kubeconfig=str(cluster.kubeconfig_for("bench", "nobody"))))
    denied = refused(lambda: stranger.list_pods("bench"), Forbidden)
    assert denied.hint and "rbac.yaml" in denied.hint
    bogus = connect(ClusterOptions(kubeconfig=str(cluster._write_kubeconfig(tmp_path / "bogus", "bogus", "bench"))))
    refused(lambda: bogus.list_pods("bench"), Unauthorized)
    cluster.inject("GET", r"/api/v1/namespaces/bench/pods$", 503)
    down = refused(lambda: kube.list_pods("bench"), ServerError)
    assert isinstance(down, ApiError) and down.status == 503
    cluster.inject("GET", r"/api/v1/namespaces/bench/pods$", "reset")
    refused(lambda: kube.list_pods("bench"), Unreachable)
    cluster.inject("GET", r"/api/v1/namespaces/bench/pods\?.*watch=", 410)
    gone = refused(lambda: kube.stream("watch pods", kube.core.list_namespaced_pod, "bench", watch=True), Gone)
    assert isinstance(gone.__cause__, ApiException)
    assert kube.list_pods("bench")["items"][0]["metadata"]["name"] == "x"  # the faults are spent


def test_graceful_deletion_waits_the_grace_period(cluster: FakeCluster) -> None:
    seed_nodes(cluster, 1)
    kube = kube_for(cluster)
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    kube.create("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stubborn", "namespace": "bench"},
                        "spec": {"containers": [{"name": "c", "image": IMAGE, "command": ["python", "-c", stubborn]}]}})
    deadline = time.monotonic() + 20
    while not (cluster.process_alive("bench", "stubborn") and cluster.log_path("bench", "stubborn").exists()
               and b"up" in cluster.log_path("bench", "stubborn").read_bytes()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    kube.delete_pod("stubborn", grace_s=3)
    pod = cluster.store.get("pods", "bench", "stubborn")
    assert pod is not None and pod["metadata"]["deletionTimestamp"] and pod["metadata"]["deletionGracePeriodSeconds"] == 3
    time.sleep(1.5)  # SIGTERM ignored: within its grace period the pod and its process stay
    assert cluster.store.get("pods", "bench", "stubborn") is not None
    deadline = time.monotonic() + 10
    while cluster.store.get("pods", "bench", "stubborn") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert not cluster.process_alive("bench", "stubborn")
