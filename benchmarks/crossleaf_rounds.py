"""Cross-leaf rounds: how many, against the lower bound and the constructions used before,
and how long the edge colouring takes (benchfab/edgecolour.py).

    .venv/bin/python benchmarks/crossleaf_rounds.py

For each leaf layout: the rounds planned, the bound (the most cross-leaf partners of any
node, +1 only when overfull), the rounds of the leaf round robin of bipartite blocks and of
the global round robin without same-leaf pairs (the shorter of the two was the plan before),
and the wall time of the plan. Not a test: prints figures.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchfab.edgecolour import fewest_rounds, most_partners
from benchfab.placement import all_pairs, all_pairs_rounds, topology_pairs

LAYOUTS = [[4, 4, 4], [8, 8, 8], [2, 3, 4], [3, 3, 3], [16, 16, 16, 16], [12] * 16, [7, 9, 11, 13, 15, 17], [12] * 15,
           [20] * 15, [33] * 9, [8] * 31, [64, 64, 63, 1]]


def before(leaves: list[list[str]], nodes: list[str]) -> int:
    """The shorter of the two constructions cross_leaf_rounds used before the colouring."""
    by_leaves = 0
    for pairing in all_pairs_rounds(len(leaves)):
        by_leaves += max(max(len(leaves[a]), len(leaves[b])) for a, b in pairing.tolist())
    leaf_of = {x: i for i, m in enumerate(leaves) for x in m}
    global_rr = sum(1 for rnd in all_pairs(nodes) if any(leaf_of[a] != leaf_of[b] for a, b in rnd))
    return min(by_leaves, global_rr)


def main() -> None:
    print(f"{'leaves':<28} {'nodes':>5} {'rounds':>6} {'bound':>5} {'partners':>8} {'before':>6} {'time_s':>7}")
    for sizes in LAYOUTS:
        leaves = [[f"l{i}n{j}" for j in range(s)] for i, s in enumerate(sizes)]
        nodes = [x for m in leaves for x in m]
        leaf = {x: x.split("n")[0] for x in nodes}
        start = time.perf_counter()
        rounds = topology_pairs(nodes, leaf, "cross-leaf")
        took = time.perf_counter() - start
        shown = f"{len(sizes)}x{sizes[0]}" if len(set(sizes)) == 1 else "+".join(map(str, sizes))
        print(f"{shown:<28} {len(nodes):>5} {len(rounds):>6} {fewest_rounds(sizes):>5} {most_partners(sizes):>8} "
              f"{before(leaves, nodes):>6} {took:>7.2f}")


if __name__ == "__main__":
    main()
