"""Seeded faults on the simulated cluster and a sweep with its second pass over them: what
the sensitivity tests (tests/sim/test_sensitivity.py) and the benchmark that measures the
second pass over many seeds (benchmarks/diagnosis_sensitivity.py, rails_sensitivity.py) share,
down to the loop over seeds and its totals (``run_seeds``)."""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path

from benchfab.backends.kubernetes.backend import KubernetesBackend
from benchfab.backends.kubernetes.client import ClusterOptions
from benchfab.diagnosis import load_diagnosis
from benchfab.screen import screen_order
from benchfab.spec import load_spec_text
from benchfab.sweep import SweepResult, run_sweep
from tests.fakecluster.simcluster import SimCluster, all_pairs_tests, rails_spec_head, spec_head

RATE_MBIT = 200.0
# The bandwidth test the second-pass tests use: all pairs (per rail on a RailScenario), with the
# second pass's default rules (simcluster.all_pairs_tests says its size).
BW_TEST = all_pairs_tests(second_pass=True)
Verdicts = set[tuple[str, tuple[str, ...]]]


class TimedLines(io.StringIO):
    """A stream that notes when each line was written (the progress lines' real times)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[float, str]] = []
        self._partial = ""

    def write(self, text: str) -> int:
        now = time.monotonic()
        self._partial += text
        *done, self._partial = self._partial.split("\n")
        self.times += [(now, line) for line in done]
        return super().write(text)


@dataclass(frozen=True)
class Scenario:
    """One fault (or none) where a seed puts it: a node throttled to ``fraction`` of its peers'
    rate (an htb class on its veth, both ways), or losing ``loss_pct`` % of its packets."""

    name: str
    fraction: float | None = None
    loss_pct: float | None = None

    def seed(self, sim: SimCluster, seed: int) -> Verdicts:
        """Apply the fault; the verdicts a right second pass gives."""
        node = random.Random(seed).choice(sim.names)
        if self.fraction is not None:
            sim.slow_node(node, RATE_MBIT * self.fraction)
            return {("bad-node", (node,))}
        if self.loss_pct is not None:
            sim.lossy_node(node, self.loss_pct)
            return {("lossy-node", (node,))}
        return set()


@dataclass(frozen=True)
class RailScenario:
    """One fault on one rail of one node (or none) where a seed puts it: that NIC throttled to
    ``fraction`` of its peers' rate, or losing ``loss_pct`` % of its packets; ``every_rail``:
    the same on all the node's rails (a bad node, not a NIC)."""

    name: str
    rails: int
    fraction: float | None = None
    loss_pct: float | None = None
    every_rail: bool = False

    def seed(self, sim: SimCluster, seed: int) -> Verdicts:
        rng = random.Random(seed)
        node, rail = rng.choice(sim.names), rng.randrange(self.rails)
        if self.fraction is not None:
            for r in range(self.rails) if self.every_rail else [rail]:
                sim.slow_nic(node, r, RATE_MBIT * self.fraction)
            return {("bad-node", (node,))} if self.every_rail else {("bad-nic", (node, f"rail {rail}"))}
        if self.loss_pct is not None:
            sim.lossy_nic(node, rail, self.loss_pct)
            return {("lossy-nic", (node, f"rail {rail}"))}
        return set()

    @property
    def tests(self) -> str:
        """Every pair on every rail (rails run side by side in a round)."""
        return all_pairs_tests(second_pass=True, rails=self.rails)


@dataclass(frozen=True)
class Outcome:
    scenario: str
    seed: int
    expected: Verdicts
    found: Verdicts
    wall_s: float
    result: SweepResult
    started: float  # time.monotonic() when the sweep started
    progress: list[tuple[float, str]] = field(default_factory=list)  # its progress lines, when asked for

    @property
    def caught(self) -> bool:
        return self.expected <= self.found

    @property
    def false_verdicts(self) -> Verdicts:
        return self.found - self.expected


def run_scenario(scenario: Scenario | RailScenario | Mixed, seed: int, nodes: int, workdir: Path, tests: str = BW_TEST,
                 progress: bool = False) -> Outcome:
    """A fresh simulated cluster of ``nodes`` (with the scenario's rails), the scenario's fault, one
    sweep with its second pass (``progress``: with its progress lines on stderr, captured with
    their times). A verdict on a rail is found as (kind, (node..., "rail R"))."""
    rails = scenario.rails if isinstance(scenario, RailScenario) else 1
    sim = SimCluster.start(nodes, workdir / f"cluster-{scenario.name}-{seed}", RATE_MBIT, rails=rails)
    try:
        expected = scenario.seed(sim, seed)
        if isinstance(scenario, RailScenario):
            text = rails_spec_head(rails, RATE_MBIT) + scenario.tests
        else:
            text = spec_head(RATE_MBIT) + tests
        spec = load_spec_text(text)
        backend = KubernetesBackend(spec, ClusterOptions(kubeconfig=str(sim.cluster.kubeconfig)))
        lines = TimedLines()
        t0 = time.monotonic()
        with redirect_stderr(lines):
            result = run_sweep(spec, text, results_dir=str(workdir / "res"), run_id=f"{scenario.name}-{seed}",
                               out=io.StringIO(), progress=progress, backend=backend)
        wall = time.monotonic() - t0
    finally:
        sim.stop()
    found = load_diagnosis(result.path)
    named = {(f.kind, (*sorted(f.nodes), *([f"rail {f.rail}"] if f.rail is not None else [])))
             for f in (found.verdicts if found else [])}
    return Outcome(scenario.name, seed, expected, named, wall, result, t0, lines.times)


def parse_seeds(text: str) -> list[int]:
    """``1-5``, ``3``, ``1,4-6``: the seeds a person asked for."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def run_seeds(scenarios: Sequence[Scenario | RailScenario], seeds: str, nodes: int, workdir: Path, *, cluster: str,
              cost: Callable[[Outcome], str] | None = None) -> list[Outcome]:
    """Every scenario on every seed (a fresh cluster each), one line per run as it ends (``cost``:
    what the run cost, added to its line), then per faulty scenario how often it was caught and
    the false verdicts over all runs, with ``cluster`` (its shape, in words) and the load average."""
    width = max(len(s.name) for s in scenarios)
    loads = [os.getloadavg()[0]]
    outcomes: list[Outcome] = []
    for seed in parse_seeds(seeds):
        for scenario in scenarios:
            o = run_scenario(scenario, seed, nodes, workdir)
            loads.append(os.getloadavg()[0])
            outcomes.append(o)
            spent = f"; {cost(o)}" if cost else ""
            print(f"seed {seed:>2} {o.scenario:<{width}} {'caught' if o.caught else 'MISSED'} "
                  f"false={sorted(o.false_verdicts) or '-'} found={sorted(o.found) or '-'}{spent} "
                  f"({o.wall_s:.0f} s, load {loads[-1]:.1f})", flush=True)
    for scenario in scenarios[1:]:
        mine = [o for o in outcomes if o.scenario == scenario.name]
        print(f"{scenario.name}: caught {sum(o.caught for o in mine)}/{len(mine)}")
    false = sum(len(o.false_verdicts) for o in outcomes)
    clean = [o for o in outcomes if o.scenario == "clean"]
    print(f"false verdicts: {false} over {len(outcomes)} runs ({sum(len(o.found) for o in clean)} on the "
          f"{len(clean)} clean runs); {cluster}, seeds {seeds}; 1-min load average "
          f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} cores")
    return outcomes


# The adaptive all-pairs pass (placement.adaptive): a ring screen, then all-pairs among the
# nodes it flags and ``SAMPLE`` sampled good ones; the second pass judges both.
ADAPTIVE_BW_TEST = BW_TEST.replace("second_pass: true}", "second_pass: true, adaptive: {screen: SCREEN, sample: SAMPLE}}")


def adaptive_test(screen: str = "ring", sample: int = 1) -> str:
    return ADAPTIVE_BW_TEST.replace("SCREEN", screen).replace("SAMPLE", str(sample))


@dataclass(frozen=True)
class Mixed:
    """Several faults where a seed puts them (as benchmarks/second_pass_makespan.py seeds them): a
    node and a link throttled to ``SLOW_MBIT``, a node losing ``LOSS_PCT`` % (each optional).
    ``ring_link``: the slow link joins two neighbours of an adaptive ring screen of seed 0
    (screen.screen_order) away from the slow node and its neighbours, where that screen meets
    it; else any two other nodes."""

    name: str
    slow_node: bool = True
    slow_link: bool = True
    lossy_node: bool = False
    ring_link: bool = False

    def seed(self, sim: SimCluster, seed: int) -> Verdicts:
        # The screen shuffles the inventory, which lists the nodes by name (as the API server does).
        names, rng = screen_order(sorted(sim.names), 0) if self.ring_link else sim.names, random.Random(seed)
        expected: Verdicts = set()
        if self.ring_link:
            x = rng.randrange(len(names))
            slow, a, b = names[x], names[(x + 3) % len(names)], names[(x + 4) % len(names)]
            lossy = names[(x + 6) % len(names)]
        else:
            slow, a, b, lossy = rng.sample(names, 4)
        if self.slow_node:
            sim.slow_node(slow, SLOW_MBIT)
            expected.add(("bad-node", (slow,)))
        if self.slow_link:
            sim.slow_link(a, b, SLOW_MBIT)
            expected.add(("bad-link", tuple(sorted((a, b)))))
        if self.lossy_node:
            sim.lossy_node(lossy, LOSS_PCT)
            expected.add(("lossy-node", (lossy,)))
        return expected


SLOW_MBIT, LOSS_PCT = 50.0, 3.0
