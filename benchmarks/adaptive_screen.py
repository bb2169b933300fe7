"""Adaptive all-pairs against full all-pairs on the simulated cluster: tests, rounds, wall,
faults found, and both projected to 1,024 nodes.

    sudo .venv/bin/python benchmarks/adaptive_screen.py [--nodes 12] [--seeds 1-3] [--screen ring]
        [--sample 2] [--clean] [--ring-link] [--flagged 32] [--fabric-gbps 400]

For each seed, on two fresh simulated clusters with the same seeded faults (a node and a link
throttled to 50 Mbit/s, a node losing 3 % of its packets, where the seed puts them:
tests/sim/scenarios.Mixed, as benchmarks/second_pass_makespan.py seeds them), one all-pairs
``rdma_write_bw`` tcp sweep with ``second_pass: true`` and one with ``adaptive: {screen,
sample}`` added. ``--ring-link`` puts the slow link between ring neighbours (where a ring
screen meets it); by default it is anywhere, so the runs show what a screen misses.
``--clean``: no fault (every verdict is a false alarm). Prints per seed and run: the pass's
tests (screen + focus for adaptive) and rounds, the retests, the wall time and the verdicts
against the seeded faults (exact, missed, false); then a summary line.

The projection: a round costs the same whether its pairs are a screen's or all-pairs' (they
run side by side), so a sweep costs rounds x (orchestration per round + measuring). The
measuring is second_pass_makespan.py's (its sizes and iterations at ``--fabric-gbps``); the
orchestration per round is measured here (the all-pairs pass's wall / its rounds, less what
its tests spent measuring). 1,024 nodes all-pairs: 1,023 rounds; adaptive: the screen's
rounds plus all-pairs among ``--flagged`` flagged nodes and the sample (an assumption,
printed; the second pass is left out of both). Not a test (tests/sim/test_adaptive_sim.py
checks one seed in CI); docs/DIAGNOSIS.md quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from diagnosis_sensitivity import seeds
from second_pass_makespan import PROJECTED_ITERATIONS, PROJECTED_SIZES

from benchfab.placement import all_pairs_round_count, ring_rounds
from benchfab.screen import focus_bounds, pairs
from benchfab.store import load_run
from tests.fakecluster.netsim import why_unavailable
from tests.sim.scenarios import BW_TEST, Mixed, Outcome, adaptive_test, run_scenario


def screen_rounds(screen: str, n: int) -> int:
    return len(ring_rounds([str(i) for i in range(n)])) if screen == "ring" else (1 if n % 2 == 0 else 2)


def figures(o: Outcome, screen: str | None, nodes: int) -> dict[str, float]:
    """What one sweep did: its pass's tests and rounds, retests, measuring per test, wall, verdicts."""
    run = load_run(o.result.path)
    names = run.tests["test_name"]
    retests = int(names.str.contains("-retest").sum())
    summary = run.summary[~run.summary["test_name"].str.contains("-retest")]
    measured = float((summary["time_s"] * summary["iterations"]).median()) if len(summary) else 0.0
    if screen is None:
        tests, rounds, flagged = int((names == "bw").sum()), all_pairs_round_count(nodes), nodes
    else:
        chosen = json.loads((o.result.path / "run.json").read_text())["adaptive"]["bw"]
        focus_nodes = len(chosen["flagged"]) + len(chosen["sampled"])
        tests = int(names.isin(["bw", "bw-focus"]).sum())
        rounds = screen_rounds(screen, nodes) + all_pairs_round_count(focus_nodes)
        flagged = len(chosen["flagged"])
    pass_wall = run.tests[~names.str.contains("-retest")]
    pass_s = float(pass_wall["ended"].max() - pass_wall["started"].min())
    return {"tests": tests, "rounds": rounds, "retests": retests, "wall_s": o.wall_s, "pass_s": pass_s,
            "measured_s": measured, "flagged": flagged, "exact": float(o.found == o.expected),
            "missed": len(o.expected - o.found), "false": len(o.found - o.expected)}


def line(seed: int, kind: str, f: dict[str, float], o: Outcome) -> str:
    missed = ", ".join(f"{k} {'+'.join(n)}" for k, n in sorted(o.expected - o.found))
    false = ", ".join(f"{k} {'+'.join(n)}" for k, n in sorted(o.found - o.expected))
    return (f"seed {seed} {kind:<9}: {f['tests']:>3.0f} tests in {f['rounds']:>2.0f} rounds (+{f['retests']:.0f} retests), "
            f"wall {f['wall_s']:5.1f} s; "
            + (f"{f['flagged']:.0f} flagged; " if kind != "all-pairs" else "")
            + ("exact" if f["exact"] else "NOT exact") + (f"; missed: {missed}" if missed else "")
            + (f"; false: {false}" if false else ""))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=12)
    p.add_argument("--seeds", type=seeds, default=seeds("1-3"), help="e.g. 1-3 or 1,4,7")
    p.add_argument("--screen", choices=["ring", "k-groups"], default="ring")
    p.add_argument("--sample", type=int, default=2)
    p.add_argument("--clean", action="store_true", help="no fault: every verdict is a false alarm")
    p.add_argument("--ring-link", action="store_true", help="the slow link between ring neighbours")
    p.add_argument("--flagged", type=int, default=32, help="flagged nodes assumed for the 1,024-node projection")
    p.add_argument("--fabric-gbps", type=float, default=400.0, help="the real fabric's rate for the projection")
    args = p.parse_args()
    why = why_unavailable()
    if why:
        print(f"adaptive_screen: {why}", file=sys.stderr)
        return 2
    faults = Mixed("mixed", slow_node=not args.clean, slow_link=not args.clean, lossy_node=not args.clean,
                   ring_link=args.ring_link)
    adaptive_spec = adaptive_test(args.screen, args.sample)
    by_kind: dict[str, list[dict[str, float]]] = {"all-pairs": [], "adaptive": []}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="adaptive-") as tmp:
            for kind, tests, screen in (("all-pairs", BW_TEST, None), ("adaptive", adaptive_spec, args.screen)):
                o = run_scenario(faults, seed, args.nodes, Path(tmp) / kind, tests=tests)
                f = figures(o, screen, args.nodes)
                by_kind[kind].append(f)
                print(line(seed, kind, f, o), flush=True)
    print(f"load (1/5/15 min): {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    how = f"{args.screen} screen, sample {args.sample}, "
    for kind, runs in by_kind.items():
        print(f"summary {kind:<9}: {args.nodes} nodes, {len(runs)} seed(s), {how if kind == 'adaptive' else ''}"
              f"median {median(r['tests'] for r in runs):.0f} tests in {median(r['rounds'] for r in runs):.0f} rounds "
              f"(+{median(r['retests'] for r in runs):.0f} retests), median wall {median(r['wall_s'] for r in runs):.1f} s; "
              f"exact {sum(int(r['exact']) for r in runs)}/{len(runs)}, missed {sum(int(r['missed']) for r in runs)}, "
              f"false {sum(int(r['false']) for r in runs)}")
    full = by_kind["all-pairs"]
    overhead = median(r["pass_s"] / r["rounds"] - r["measured_s"] for r in full)
    measure = sum(PROJECTED_SIZES) * PROJECTED_ITERATIONS / (args.fabric_gbps * 1e9 / 8)
    per_round = overhead + measure
    n = 1024
    full_rounds = all_pairs_round_count(n)
    focus_tests, focus_rounds = focus_bounds(n, args.sample, args.flagged)
    screen_r = screen_rounds(args.screen, n)
    screen_tests = n if args.screen == "ring" else n // 2
    print(f"per round: {overhead:.2f} s orchestration (measured: all-pairs pass wall / rounds - measuring) "
          f"+ {measure:.2f} s measuring (1M, 16M, 256M x {PROJECTED_ITERATIONS} at {args.fabric_gbps:.0f} Gbit/s) "
          f"= {per_round:.2f} s")
    print(f"projection all-pairs {n} nodes: {pairs(n):,} tests in {full_rounds:,} rounds = "
          f"{full_rounds * per_round / 60:.0f} min")
    print(f"projection adaptive {n} nodes ({args.screen} screen, {args.flagged} flagged nodes assumed + "
          f"{args.sample} sampled): {screen_tests + focus_tests:,} tests in {screen_r + focus_rounds:,} rounds = "
          f"{(screen_r + focus_rounds) * per_round / 60:.1f} min")
    for flagged in (8, 128, 512):
        t, r = focus_bounds(n, args.sample, flagged)
        print(f"  with {flagged} flagged: {screen_tests + t:,} tests in {screen_r + r:,} rounds = "
              f"{(screen_r + r) * per_round / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
