"""What the Kubernetes backend tests share: the spec they start from, a backend and a sweep on
the fake cluster (the ``cluster`` fixture, conftest.py), and the check that a run left nothing."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

from benchfab.backends.kubernetes.backend import KubernetesBackend
from benchfab.backends.kubernetes.client import ClusterOptions
from benchfab.spec import SweepSpec, load_spec_text
from benchfab.sweep import SweepResult, run_sweep
from tests.fakecluster import FakeCluster

SPEC = """\
name: k8s-e2e
backend: kubernetes
namespace: bench
image: registry.example.com/benchfab-worker:test
profiles:
  ib-shared: {fabric: ib, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
nodes: {topology_key: example.com/leaf}
defaults: {sizes: [8, 4K], iterations: 3, warmup: 1, device: cpu, timeout: 60s}
kubernetes: {start_timeout: 20s}
tests:
"""
PAIRS = "  - name: pairs\n    placement: {pattern: all-pairs}\n"
GROUP = "  - name: ar3\n    placement: {pattern: group, nodes: 3}\n"


def backend_for(cluster: FakeCluster, spec: SweepSpec, kubeconfig: Path | None = None) -> KubernetesBackend:
    """The Kubernetes backend on the fake cluster, as its admin unless ``kubeconfig`` says who."""
    return KubernetesBackend(spec, ClusterOptions(kubeconfig=str(kubeconfig or cluster.kubeconfig)))


def sweep(cluster: FakeCluster, text: str, results: Path, before: Callable[[KubernetesBackend], object] | None = None,
          *, run_id: str = "r", kubeconfig: Path | None = None) -> tuple[SweepResult, KubernetesBackend, str]:
    """One sweep of the spec ``text`` on the fake cluster, stored under ``results``: its result,
    its backend and what it printed. ``before``: called with the backend before the sweep (a
    test's own limits or counters)."""
    spec = load_spec_text(text)
    backend = backend_for(cluster, spec, kubeconfig)
    if before is not None:
        before(backend)
    out = io.StringIO()
    result = run_sweep(spec, text, results_dir=str(results), run_id=run_id, out=out, progress=False, backend=backend)
    return result, backend, out.getvalue()


def assert_clean(c: FakeCluster) -> None:
    """Nothing of benchfab's left in the cluster, and no agent process still running."""
    assert c.objects("pods", "app.kubernetes.io/name=benchfab") == []
    assert c.objects("configmaps", "app.kubernetes.io/name=benchfab") == []
    assert c.objects("services", "app.kubernetes.io/name=benchfab") == []
    assert c.objects("networkpolicies", "app.kubernetes.io/name=benchfab") == []
    assert c.objects("roles", "app.kubernetes.io/name=benchfab") == []
    assert c.objects("rolebindings", "app.kubernetes.io/name=benchfab") == []
    assert c.objects("serviceaccounts", "app.kubernetes.io/name=benchfab") == []
    deadline = time.time() + 5
    while c.live_processes() and time.time() < deadline:
        time.sleep(0.1)
    assert c.live_processes() == 0
