"""Per-rail second pass on the simulated cluster: NIC faults caught, false verdicts, and what a
per-rail pass costs (tests, rounds, wall time).

    sudo .venv/bin/python benchmarks/rails_sensitivity.py [--nodes 4] [--rails 2] [--seeds 1-5]
        [--fraction 0.5] [--loss 1.0] [--node-fault]

For each seed, on a fresh simulated cluster whose nodes have ``--rails`` NICs (one bridge and
/24 per rail, tests/fakecluster/netsim.py), one ``rdma_write_bw`` tcp sweep with
``placement: {pattern: all-pairs, rails: R, second_pass: true}`` and the default rules
(tests/sim/scenarios.py RailScenario): no fault (every verdict is a false alarm), one NIC
(the node and rail the seed picks) throttled to ``--fraction`` of its peers' rate, one NIC
losing ``--loss`` % of its packets, and with ``--node-fault`` one node throttled on every rail
(expected: bad-node, not R bad-nic). One line per run (the pass's tests and rounds, the
retests, wall time, verdicts), then the totals and the load average. Not a test
(tests/sim/test_rails_sim.py runs 4 x 2 with one seed in CI); docs/DIAGNOSIS.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchfab.placement import NodeInfo
from benchfab.planner import plan
from benchfab.spec import load_spec_text
from benchfab.store import load_run
from tests.fakecluster.netsim import why_unavailable
from tests.sim.scenarios import Outcome, RailScenario, run_seeds


def cost(o: Outcome, nodes: int) -> str:
    """The pass's tests and rounds (its plan on these nodes), and the retests, from the stored run."""
    run = load_run(o.result.path)
    retest = run.tests["test_name"].str.contains("-retest")
    spec = load_spec_text(json.loads((o.result.path / "run.json").read_text())["spec_text"])
    rounds = len(plan(spec, [NodeInfo(f"n{i}", slots={"tcp": 64}) for i in range(nodes)]).rounds)
    return f"pass {int((~retest).sum())} tests in {rounds} rounds, {int(retest.sum())} retests"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--rails", type=int, default=2)
    p.add_argument("--seeds", default="1-5")
    p.add_argument("--fraction", type=float, default=0.5, help="the throttled NIC's rate / its peers' (default 0.5)")
    p.add_argument("--loss", type=float, default=1.0, help="the lossy NIC's loss, percent (0: no lossy runs)")
    p.add_argument("--node-fault", action="store_true", help="also a node throttled on every rail")
    p.add_argument("--clean-only", action="store_true", help="only the fault-free runs")
    args = p.parse_args()
    if why := why_unavailable():
        print(f"rails_sensitivity: {why}", file=sys.stderr)
        return 2
    scenarios = [RailScenario("clean", args.rails)]
    if not args.clean_only:
        scenarios.append(RailScenario(f"nic{args.fraction:g}", args.rails, fraction=args.fraction))
        if args.loss:
            scenarios.append(RailScenario(f"lossynic{args.loss:g}", args.rails, loss_pct=args.loss))
        if args.node_fault:
            scenarios.append(RailScenario(f"node{args.fraction:g}", args.rails, fraction=args.fraction,
                                          every_rail=True))
    with tempfile.TemporaryDirectory(prefix="rails-") as tmp:
        run_seeds(scenarios, args.seeds, args.nodes, Path(tmp), cluster=f"{args.nodes} nodes x {args.rails} rails",
                  cost=lambda o: cost(o, args.nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
