"""Cross-leaf pairs in the fewest rounds: an edge colouring of a complete multipartite graph.

Nodes are vertices, leaves are the parts, every pair of nodes in different leaves is
an edge and a round is a colour (a matching: no node twice). Pure, no benchfab imports.

The fewest rounds possible (``fewest_rounds``) is the larger of two lower bounds:

- the most cross-leaf partners of any node, n - (the smallest leaf): a node meets at
  most one partner per round;
- the cross pairs over the most pairs one round holds, ceil(E / floor(n/2)).

The second exceeds the first only when n is odd and the graph is "overfull" (e.g. 3
leaves of 3 nodes: 27 pairs, 4 per round, 7 rounds where each node has 6 partners), and
then by exactly one. Hoffman and Rodger ("The chromatic index of complete multipartite
graphs", J. Graph Theory 16, 1992) proved that the larger bound is always reached: a
complete multipartite graph needs one round more than its most partners exactly when it
is overfull. tests/test_placement_crossleaf.py checks both facts on every leaf count and
size it draws.

The construction: colour the pairs one by one with exactly that many colours; when the
two nodes of a pair have no free colour in common, swap the two colours along the
alternating (Kempe) chain that starts at one of them, as Vizing's proof does, so one
colour becomes free at both. In a graph that is not bipartite that chain can end at the
other node; then a random coloured pair at one of them is uncoloured and queued again
(a seeded walk, so plans are reproducible). Every layout of 2 to 7 leaves of 1 to 7 nodes
(3,424) reached the bound when this was written, as did 15 leaves of 20 nodes (280 rounds,
1.6 s on a loaded 2-core host: benchmarks/crossleaf_rounds.py); the walk is bounded, and
``cross_colouring`` returns None rather than loop when it gives up (placement then keeps the
older constructions).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence

# Attempts (each a fresh seeded walk) before giving up, and steps per pair in one attempt.
_ATTEMPTS = 4
_STEPS_PER_PAIR = 50


def most_partners(sizes: Sequence[int]) -> int:
    """Cross-leaf partners of a node of the smallest leaf: the most any node has."""
    sizes = [s for s in sizes if s > 0]
    return sum(sizes) - min(sizes) if len(sizes) > 1 else 0


def fewest_rounds(sizes: Sequence[int]) -> int:
    """The fewest rounds that hold every cross-leaf pair once with no node twice in a round
    (see the module docstring: reached for every leaf count and sizes)."""
    n = sum(sizes)
    pairs = (n * n - sum(s * s for s in sizes)) // 2
    per_round = n // 2
    if not pairs:
        return 0
    return max(most_partners(sizes), -(-pairs // per_round))


def cross_colouring(sizes: Sequence[int], seed: int = 0) -> list[list[tuple[int, int]]] | None:
    """Rounds of (a, b) node index pairs, a < b, nodes numbered leaf after leaf, in exactly
    ``fewest_rounds(sizes)`` rounds; None if the seeded walks all gave up (never seen)."""
    rounds = fewest_rounds(sizes)
    leaf = [i for i, s in enumerate(sizes) for _ in range(s)]
    pairs = [(a, b) for a in range(len(leaf)) for b in range(a + 1, len(leaf)) if leaf[a] != leaf[b]]
    for attempt in range(_ATTEMPTS):
        partner = _colour(len(leaf), pairs, rounds, random.Random(seed * _ATTEMPTS + attempt))
        if partner is not None:
            return [sorted((a, b) for a, b in enumerate(row) if a < b) for row in zip(*partner)]
    return None


def _colour(n: int, pairs: list[tuple[int, int]], colours: int, rng: random.Random) -> list[list[int]] | None:
    """partner[x][c]: x's partner in round c (-1: none), or None when the walk gave up."""
    partner = [[-1] * colours for _ in range(n)]
    free = [set(range(colours)) for _ in range(n)]

    def link(a: int, b: int, c: int) -> None:
        partner[a][c], partner[b][c] = b, a
        free[a].discard(c)
        free[b].discard(c)

    def unlink(a: int, b: int, c: int) -> None:
        partner[a][c] = partner[b][c] = -1
        free[a].add(c)
        free[b].add(c)

    order = pairs[:]
    rng.shuffle(order)
    queue = deque(order)
    budget = _STEPS_PER_PAIR * len(pairs) + 1000
    while queue:
        budget -= 1
        if budget < 0:
            return None
        u, v = queue.pop()
        common = free[u] & free[v]
        if common:
            link(u, v, min(common))
            continue
        # Both have a free colour (the pair is uncoloured and no node has more partners than
        # colours): a free at u (taken at v), b free at v (taken at u).
        a = rng.choice(sorted(free[u]))
        b = rng.choice(sorted(free[v]))
        chain = [v]
        colour = a
        while partner[chain[-1]][colour] >= 0:
            chain.append(partner[chain[-1]][colour])
            colour = b if colour == a else a
        if chain[-1] != u:
            # Swap a and b along the chain: a becomes free at v and stays free at u.
            steps = [(chain[i], chain[i + 1], a if i % 2 == 0 else b) for i in range(len(chain) - 1)]
            for x, y, c in steps:
                unlink(x, y, c)
            for x, y, c in steps:
                link(x, y, b if c == a else a)
            link(u, v, a)
            continue
        # The chain closed on u: free a random round at u or v and try again later.
        w = rng.choice((u, v))
        c = rng.randrange(colours)
        z = partner[w][c]
        if z >= 0:
            unlink(w, z, c)
            queue.appendleft((min(w, z), max(w, z)))
        queue.append((u, v))
    return partner
