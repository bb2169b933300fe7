"""The second pass on a simulated cluster with real, shaped links (tests/fakecluster/netsim.py).

Every node is a network namespace; its agent pod and workers run inside it, and the tcp
tests between pods cross veth links shaped by tc (htb + u32) and nftables drops. Faults
are seeded where a seed puts them; the verdicts must name each seeded fault and nothing
else. Needs root (CI runs as root); skipped with the reason elsewhere.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchfab.backends.kubernetes.backend import KubernetesBackend
from benchfab.backends.kubernetes.client import ClusterOptions
from benchfab.diagnosis import load_diagnosis
from benchfab.native import HAVE_NATIVE
from benchfab.report import markdown_summary, second_pass_marks
from benchfab.spec import load_spec_text
from benchfab.store import load_run
from benchfab.sweep import run_sweep
from tests.conftest import run_cli
from tests.fakecluster.netsim import why_unavailable
from tests.fakecluster.simcluster import SPEC_HEAD, SimCluster

_why = why_unavailable() or (None if HAVE_NATIVE else "benchfab._native is not built (the tcp engine)")
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(_why is not None, reason=_why or "")]

RATE, SLOW = 200.0, 50.0  # Mbit/s: every NIC, and a throttled NIC or link
# Small and short: a bandwidth test that a 50 Mbit/s link still finishes in about a second,
# and a ping-pong latency test long enough to meet a few retransmission stalls on a lossy node.
# The simulation shapes bandwidth and drops packets; it has no delay (no sch_netem), and
# ping-pong latency on two shared cores is the scheduler's (13 or 26 us, whichever core
# wakes): the latency rule is left to the real clusters it is for.
TESTS = """\
kubernetes: {start_timeout: 30s}
second_pass: {above_median: null}
defaults: {timeout: 60s}
tests:
  - {name: bw, workload: rdma_write_bw, transport: tcp, sizes: [256K], iterations: 20, warmup: 3,
     placement: {pattern: all-pairs, second_pass: %(second)s}}
  - {name: lat, workload: rdma_write_lat, transport: tcp, sizes: [8], iterations: 300, warmup: 20,
     placement: {pattern: all-pairs, second_pass: %(second)s}}
"""


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[list[SimCluster]]:
    made: list[SimCluster] = []
    yield made
    for sim in made:
        sim.stop()
        assert sim.net.leftovers() == [], "the simulation left namespaces or links behind"


def start(made: list[SimCluster], n: int, tmp: Path) -> SimCluster:
    sim = SimCluster.start(n, tmp / "cluster", RATE)
    made.append(sim)
    return sim


def sweep(sim: SimCluster, tmp: Path, second: bool = True) -> tuple[str, Path]:
    text = SPEC_HEAD + TESTS % {"second": str(second).lower()}
    spec = load_spec_text(text)
    backend = KubernetesBackend(spec, ClusterOptions(kubeconfig=str(sim.cluster.kubeconfig)))
    out = io.StringIO()
    result = run_sweep(spec, text, results_dir=str(tmp / "res"), run_id="r", out=out, progress=False, backend=backend)
    return out.getvalue(), result.path


def seed_faults(sim: SimCluster, seed: int) -> set[tuple[str, tuple[str, ...]]]:
    """One throttled NIC, one throttled link between two other nodes, one node losing 3 % of
    its packets, one node whose pods never start; where they go depends on the seed."""
    slow, a, b, lossy, dead = random.Random(seed).sample(sim.names, 5)
    sim.slow_node(slow, SLOW)
    sim.slow_link(a, b, SLOW)
    sim.lossy_node(lossy, 3.0)
    sim.dead_node(dead)
    return {("bad-node", (slow,)), ("bad-link", tuple(sorted((a, b)))), ("lossy-node", (lossy,)), ("dead", (dead,))}


def verdicts(run_path: Path) -> set[tuple[str, tuple[str, ...]]]:
    found = load_diagnosis(run_path)
    assert found is not None
    return {(f.kind, tuple(sorted(f.nodes))) for f in found.verdicts}


# Two seeds in CI; more where there is time: BENCHFAB_SIM_SEEDS=3,4,5 (or 1-10) pytest tests/sim
def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


@pytest.mark.parametrize("seed", _seeds(os.environ.get("BENCHFAB_SIM_SEEDS", "1,2")))
def test_seeded_faults_are_named_exactly(sim_factory: list[SimCluster], tmp_path: Path, seed: int) -> None:
    sim = start(sim_factory, 8, tmp_path)
    seeded = seed_faults(sim, seed)
    out, path = sweep(sim, tmp_path)
    assert verdicts(path) == seeded, out
    stored = json.loads((path / "diagnosis.json").read_text())
    meta = json.loads((path / "run.json").read_text())
    assert meta["diagnosis"] == {"file": "diagnosis.json", "verdicts": 4}
    by_kind = {v["kind"]: v for v in stored["verdicts"]}
    # Each verdict carries its figures; the bad node's retests ran against known-good nodes.
    slow = by_kind["bad-node"]
    assert any(e["test_id"].startswith("000-bw-retest") and e["perf"] < 0.5 for e in slow["evidence"]), slow
    assert f"kubectl cordon {slow['nodes'][0]}" in slow["actions"]
    link = by_kind["bad-link"]
    assert not any(c.startswith("kubectl") for c in link["actions"])  # only node verdicts cordon (or label)
    assert all(f"{n}'s interface with 10." in " ".join(link["actions"]) for n in link["nodes"])  # the two ports
    assert "kubectl label node" in out and "# to act on them (not run by benchfab):" in out
    report = markdown_summary(load_run(path), [])
    assert "## Second pass verdicts" in report and f"| bad-node | {slow['nodes'][0]} |" in report
    marks = second_pass_marks([load_run(path)])  # what the pair heatmaps mark
    assert marks is not None and set(marks.pairs) == {tuple(sorted(by_kind["bad-link"]["nodes"]))}
    assert set(marks.nodes) == {v["nodes"][0] for v in stored["verdicts"] if v["subject"] == "node"}


def test_fault_free_cluster_gets_no_verdict(sim_factory: list[SimCluster], tmp_path: Path) -> None:
    sim = start(sim_factory, 4, tmp_path)
    out, path = sweep(sim, tmp_path)
    assert verdicts(path) == set(), out
    assert "no verdicts" in out


def test_diagnose_reuses_what_the_pass_learned_and_sweep_and_diagnose_exit_alike(
        sim_factory: list[SimCluster], tmp_path: Path) -> None:
    """A dead node and a slow one: `sweep` with its second pass waits the start timeout once
    (the pass), and exits 1 on its verdicts even with --allow-failures; `diagnose` of the stored
    run starts pods for its retests only, never again on the dead node, and exits 1 the same way."""
    sim = start(sim_factory, 5, tmp_path)
    sim.dead_node("sim-node-4")
    sim.slow_node("sim-node-1", SLOW)
    start_timeout = 40
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_HEAD + f"kubernetes: {{start_timeout: {start_timeout}s}}\ndefaults: {{timeout: 60s}}\ntests:\n"
                    "  - {name: bw, workload: rdma_write_bw, transport: tcp, sizes: [256K], iterations: 20, warmup: 3,\n"
                    "     placement: {pattern: all-pairs, second_pass: true}}\n")
    kube = ["--kubeconfig", str(sim.cluster.kubeconfig)]
    res = str(tmp_path / "res")
    swept = run_cli("sweep", str(spec), "--results", res, "--run-id", "r", "--no-progress", "--allow-failures", *kube)
    assert swept.returncode == 1, swept.stdout + swept.stderr
    assert "--allow-failures accepts them, not the second pass's verdicts: exit 1" in swept.stderr
    assert verdicts(tmp_path / "res" / "r") == {("dead", ("sim-node-4",)), ("bad-node", ("sim-node-1",))}
    before = sim.cluster.store.rv
    t0 = time.monotonic()
    diag = run_cli("diagnose", "r", "--results", res, "--no-progress", *kube)
    took = time.monotonic() - t0
    assert diag.returncode == 1, diag.stdout + diag.stderr
    assert re.search(r"^bad-node +sim-node-1 ", diag.stdout, re.M) and re.search(r"^dead +sim-node-4 ", diag.stdout, re.M), \
        diag.stdout
    made = [obj["metadata"]["labels"].get("benchfab.io/node") for rv, kind, plural, obj in sim.cluster.store.history
            if rv > before and plural == "pods" and kind == "ADDED"]
    assert made and "sim-node-4" not in made, made  # pods for the retests, none on the dead node
    assert took < start_timeout, f"diagnose took {took:.0f} s: it waited for the dead node again"
