"""Sensitivity and false alarms of the second pass, measured on the simulated cluster.

    sudo .venv/bin/python benchmarks/diagnosis_sensitivity.py [--nodes 8] [--seeds 1-10] [--fraction 0.8]
        [--loss 1.0]

For each seed, on a fresh simulated cluster (tests/fakecluster: every node a network
namespace, 200 Mbit/s veth links shaped by tc), one all-pairs ``rdma_write_bw`` tcp sweep
with ``second_pass: true`` and the default rules (tests/sim/scenarios.py), three times:
no fault (every verdict is a false alarm), one node throttled to ``--fraction`` of its
peers' rate (an htb class on its veth, both ways; the node the seed picks), and one node
losing ``--loss`` % of its packets (``--loss 0``: skip). Prints one line per run, then the
totals: slow nodes caught, lossy nodes caught, false verdicts over all runs, and the load
average the runs shared the host with. Not a test (tests/sim/test_sensitivity.py checks
seeds 1-2 in CI); docs/DIAGNOSIS.md quotes its figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakecluster.netsim import why_unavailable
from tests.sim.scenarios import Outcome, Scenario, run_scenario


def seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--seeds", default="1-5")
    p.add_argument("--fraction", type=float, default=0.8, help="the throttled node's rate / its peers' (default 0.8)")
    p.add_argument("--loss", type=float, default=1.0, help="the lossy node's loss, percent (0: no lossy runs)")
    args = p.parse_args()
    if why := why_unavailable():
        print(f"diagnosis_sensitivity: {why}", file=sys.stderr)
        return 2
    scenarios = [Scenario("clean"), Scenario(f"slow{args.fraction:g}", fraction=args.fraction)]
    if args.loss:
        scenarios.append(Scenario(f"lossy{args.loss:g}", loss_pct=args.loss))
    loads = [os.getloadavg()[0]]
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="sensitivity-") as tmp:
        for seed in seeds(args.seeds):
            for scenario in scenarios:
                o = run_scenario(scenario, seed, args.nodes, Path(tmp))
                loads.append(os.getloadavg()[0])
                outcomes.append(o)
                print(f"seed {seed:>2} {o.scenario:<10} {'caught' if o.caught else 'MISSED'} "
                      f"false={sorted(o.false_verdicts) or '-'} found={sorted(o.found) or '-'} "
                      f"({o.wall_s:.0f} s, load {loads[-1]:.1f})", flush=True)
    for scenario in scenarios[1:]:
        mine = [o for o in outcomes if o.scenario == scenario.name]
        print(f"{scenario.name}: caught {sum(o.caught for o in mine)}/{len(mine)}")
    false = sum(len(o.false_verdicts) for o in outcomes)
    clean = [o for o in outcomes if o.scenario == "clean"]
    print(f"false verdicts: {false} over {len(outcomes)} runs ({sum(len(o.found) for o in clean)} on the "
          f"{len(clean)} clean runs); {args.nodes} nodes, seeds {args.seeds}; 1-min load average "
          f"{min(loads):.1f}..{max(loads):.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
