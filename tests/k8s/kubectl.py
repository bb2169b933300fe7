"""Debian's kubectl (package kubernetes-client), as scripts/setup.sh unpacks it into
build/debian/, run against a fake cluster by absolute path: never whatever kubectl is on PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fakecluster import FakeCluster
from tests.helpers import ROOT

DEBIAN_KUBECTL = ROOT / "build" / "debian" / "kubernetes-client" / "usr" / "bin" / "kubectl"


def debian_kubectl() -> Path | None:
    return DEBIAN_KUBECTL if DEBIAN_KUBECTL.is_file() else None


def kubectl(cluster: FakeCluster, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``kubectl ARGS`` as the fake cluster's admin (its context's namespace is bench), through its
    insecure port: kubectl sends no credentials over plain HTTP (FakeCluster.insecure_kubeconfig).

    No ~/.kube cache: a discovery cache from another session's fake server (same address,
    other port) must not answer for this one.
    """
    if debian_kubectl() is None:
        raise AssertionError(f"Debian's kubectl is missing at {DEBIAN_KUBECTL}: run scripts/setup.sh")
    cache = cluster.workdir / "kubectl-cache"
    return subprocess.run([str(DEBIAN_KUBECTL), f"--kubeconfig={cluster.insecure_kubeconfig()}", f"--cache-dir={cache}", *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout)
