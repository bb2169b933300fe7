"""engine: nccl-tests across simulated nodes (issue #26 item 1): rank 0's pod runs mpirun,
benchfab's launcher starts Open MPI's daemon in the other node's pod (no sshd), and an MPI
program standing in for all_reduce_perf (tests/fakecluster/nccl_tests_standin.c, Debian's
Open MPI) sums every rank's values with MPI_Allreduce across the nodes' shaped links. Its
table is stored like any benchfab run.

Needs root (network namespaces) and openmpi-bin + libopenmpi-dev (scripts/setup.sh).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchfab.backends.kubernetes.backend import KubernetesBackend
from benchfab.backends.kubernetes.client import ClusterOptions
from benchfab.spec import load_spec_text
from benchfab.store.parts import read_table
from benchfab.sweep import run_sweep
from tests.fakecluster.mpi_standin import build_all_reduce_perf, why_no_mpi
from tests.fakecluster.netsim import why_unavailable
from tests.fakecluster.simcluster import SPEC_HEAD, SimCluster

_why = why_unavailable() or why_no_mpi()
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.netns, pytest.mark.skipif(_why is not None, reason=_why or "")]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimCluster]:
    cluster = SimCluster.start(2, tmp_path / "cluster")
    try:
        yield cluster
    finally:
        cluster.stop()
        assert cluster.net.leftovers() == [], "the simulation left namespaces or links behind"


def test_nccl_tests_over_mpi_across_two_simulated_nodes(sim: SimCluster, tmp_path: Path) -> None:
    bin_dir = tmp_path / "nccl-tests"
    build_all_reduce_perf(bin_dir)
    # The worker image sets it (docker/); the fake kubelet hands it to every pod here.
    sim.cluster.kubelet.extra_pod_env["BENCHFAB_NCCL_TESTS_DIR"] = str(bin_dir)
    text = SPEC_HEAD + """\
kubernetes: {start_timeout: 30s, env: {NCCL_ALGO: Ring}}
defaults: {timeout: 90s}
tests:
  - {name: ar, workload: allreduce, engine: nccl-tests, device: cpu, dtypes: [float32], sizes: [64K, 1M],
     iterations: 5, warmup: 1, placement: {pattern: group, nodes: 2}}
"""
    spec = load_spec_text(text)
    backend = KubernetesBackend(spec, ClusterOptions(kubeconfig=str(sim.cluster.kubeconfig)))
    out = io.StringIO()
    began = time.monotonic()
    result = run_sweep(spec, text, results_dir=str(tmp_path / "res"), run_id="mpi", out=out, progress=False,
                       backend=backend)
    elapsed = time.monotonic() - began
    assert result.counts == {"ok": 1}, out.getvalue()
    summary = read_table(result.path, "summary")
    # Both sizes, out-of-place and in-place, each checked by the program (rank + 1 summed over 2 ranks).
    assert sorted(zip(summary["size_bytes"], summary["in_place"])) == \
        [(65536, False), (65536, True), (1048576, False), (1048576, True)], summary.T
    assert (summary["wrong"] == 0).all() and (summary["time_s"] > 0).all(), summary.T
    # The sum crossed the shaped link: 1 MiB through ring all-reduce moves 1 MiB each way, about
    # 42 ms at 200 Mbit/s; two ranks on one host would take well under a millisecond.
    large = summary[summary["size_bytes"] == 1048576]
    assert (large["time_s"] > 0.03).all(), large.T
    assert set(summary["engine"]) == {"nccl-tests"}, summary.T
    run = result.path
    log = "\n".join(p.read_text(errors="replace") for p in run.rglob("*.log"))
    assert "2 nodes registered" in log and "launch listener" in log and "starting orted for mpirun" in log and "exit 0" in log, log[-3000:]
    timings = [line.split("rank 0: ", 1)[-1] for line in log.splitlines() if "registered in" in line or "mpirun " in line]
    print(f"\nnccl-tests over MPI on 2 simulated nodes: sweep {elapsed:.1f} s; " + "; ".join(timings))
