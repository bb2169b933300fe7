"""This project's own all-pairs run for the example dataset: benchfab's tcp point-to-point
engine between agent pods on the fake Kubernetes cluster (tests/fakecluster: real HTTP, real
processes). Every fake node is this host, so each pair is two processes over loopback: the
matrix shows this host's run-to-run spread, not a fabric. Used by scripts/build-example-data.sh.

    python scripts/example_pairs.py RESULTS_DIR RUN_ID
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tests.fakecluster

from benchfab.backends.kubernetes.backend import KubernetesBackend
from benchfab.backends.kubernetes.client import ClusterOptions
from benchfab.spec import load_spec_text
from benchfab.sweep import run_sweep
from tests.fakecluster import FakeCluster, seed_nodes

NODES = 4
SPEC = f"""\
name: example-pairs
description: all-pairs tcp bandwidth and latency between {NODES} fake-cluster nodes (one host, loopback)
backend: kubernetes
namespace: bench
image: registry.example.com/benchfab-worker:example
profiles:
  loopback-pods: {{fabric: tcp, mode: none}}
nodes: {{topology_key: example.com/leaf}}
defaults: {{warmup: 2, device: cpu, timeout: 120s}}
kubernetes: {{start_timeout: 60s}}
tests:
  - {{name: bw, workload: rdma_write_bw, transport: tcp, sizes: [64K, 1M], iterations: 300, placement: {{pattern: all-pairs}}}}
  - {{name: lat, workload: rdma_write_lat, transport: tcp, sizes: [8], iterations: 300, placement: {{pattern: all-pairs}}}}
"""


def main(results_dir: str, run_id: str) -> int:
    with tempfile.TemporaryDirectory() as work:
        cluster = FakeCluster(Path(work) / "cluster").start()
        try:
            cluster.store.put("namespaces", {"metadata": {"name": "bench"}})
            seed_nodes(cluster, NODES)
            spec = load_spec_text(SPEC, source="scripts/example_pairs.py")
            backend = KubernetesBackend(spec, ClusterOptions(kubeconfig=str(cluster.kubeconfig)))
            out = io.StringIO()
            result = run_sweep(spec, SPEC, results_dir=results_dir, run_id=run_id, out=out, progress=False,
                               backend=backend)
            print(out.getvalue())
            return 0 if set(result.counts) == {"ok"} else 1
        finally:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
