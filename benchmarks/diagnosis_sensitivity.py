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
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakecluster.netsim import why_unavailable
from tests.sim.scenarios import Scenario, run_seeds


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
    with tempfile.TemporaryDirectory(prefix="sensitivity-") as tmp:
        run_seeds(scenarios, args.seeds, args.nodes, Path(tmp), cluster=f"{args.nodes} nodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
