"""Placement patterns: which nodes test together, round by round.

Pure functions over node *indices* or names; no I/O, no Kubernetes. A round is a
list of groups that run at the same time; a group is the nodes of one test. The
patterns follow what cluster-validation tools do (see docs/KUBERNETES.md):

- ``all_pairs_rounds``: round robin by the circle method, n-1 rounds of n/2
  disjoint pairs (n odd: n rounds, one node rests per round). Every pair once.
- ``ring_rounds``: each node with its ring neighbour, 2 rounds (3 if n is odd).
- ``k_groups``: disjoint groups of k; a short remainder is topped up with nodes
  from the first groups in a second round so every node is covered.
- ``topology_pairs``: round robin inside each leaf in parallel (same-leaf) or
  only the pairs that cross leaves (cross-leaf).
- ``one_group``: one all-reduce group of n nodes, picked leaf by leaf.
- ``retest_rounds``: the second pass's retests, every node of a suspect pair with a
  known-good partner and the pair itself again (triage.py judges them).
- ``assign_slots``: turns rounds of node groups into rounds of (node, slot)
  members, enforcing "no node or NIC/VF in two tests of a round" unless
  sharing is allowed, and each node's slot capacity (VFs, rdmaHcaMax, GPUs).

All-pairs on thousands of nodes is millions of pairs, so that pattern is
produced as numpy arrays, one round at a time (see benchmarks/planner_scale.py).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from .edgecolour import cross_colouring, fewest_rounds
from .errors import PlacementError

Group = tuple[str, ...]
Member = tuple[str, int]  # (node name, slot on that node: a GPU + NIC/VF pod)
LeafScope = Literal["same-leaf", "cross-leaf", "any"]
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True)
class NodeInfo:
    """What the planner knows of one node (filled by the backend's inventory)."""

    name: str
    leaf: str | None = None  # value of the topology label (rack / leaf switch)
    # Per profile: how many rank pods fit at once (free VFs or HCA shares, and GPUs).
    slots: Mapping[str, int] = field(default_factory=dict)
    # Per profile: why the node has no slot for it (cordoned, MOFED not ready, 0 allocatable
    # of the profile's resource, ...): the plan names every node it leaves out with this.
    unfit: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    # Cores the node's ranks share, where they share them (the local backend's one host);
    # None where each rank has a pod of its own.
    cpus: int | None = None


# ---------------------------------------------------------------------------
# All pairs (circle method)


def all_pairs_array(n: int) -> IntArray:
    """Round robin over nodes 0..n-1 as one (rounds, pairs, 2) int32 array.

    Circle method: node 0 (or a "bye" when n is odd) stays put, the other
    m-1 positions rotate one step per round; position i meets position m-1-i.
    Every unordered pair appears in exactly one round, and each round is a
    perfect matching (n even) or leaves exactly one node resting (n odd).
    Vectorised: 4,096 nodes (8.4 M pairs) take ~70 MB and a fraction of a second.
    """
    if n < 2:
        return np.zeros((0, 0, 2), dtype=np.int32)
    m = n if n % 2 == 0 else n + 1  # when n is odd, node m-1 == n is the bye
    half = m // 2
    r = np.arange(m - 1, dtype=np.int32)[:, None]
    i = np.arange(half, dtype=np.int32)[None, :]
    # Position p >= 1 holds node ((p - 1 - r) mod (m-1)) + 1 in round r; position 0 holds node 0.
    a = (i - 1 - r) % (m - 1) + 1
    a[:, 0] = 0
    b = (m - 2 - i - r) % (m - 1) + 1
    pairs = np.empty((m - 1, half, 2), dtype=np.int32)
    np.minimum(a, b, out=pairs[:, :, 0])
    np.maximum(a, b, out=pairs[:, :, 1])
    del a, b
    if m != n:
        # The bye is the largest index, so it is always the second of its pair: drop that column entry.
        keep = pairs[:, :, 1] < n
        pairs = pairs[keep].reshape(m - 1, half - 1, 2)
    return pairs


def all_pairs_round_count(n: int) -> int:
    """How many rounds ``all_pairs_rounds(n)`` yields: n-1 (n even) or n (n odd; one node rests)."""
    return 0 if n < 2 else (n - 1 if n % 2 == 0 else n)


def all_pairs_round(n: int, r: int) -> IntArray:
    """Round ``r`` of ``all_pairs_array(n)`` alone, as a (pairs, 2) int32 array: the same pairs
    in the same order, computed without the other rounds (16,384 nodes: 64 KB, not 1 GB)."""
    m = n if n % 2 == 0 else n + 1
    i = np.arange(m // 2, dtype=np.int64)
    a = (i - 1 - r) % (m - 1) + 1
    a[0] = 0
    b = (m - 2 - i - r) % (m - 1) + 1
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).astype(np.int32)
    return pairs[pairs[:, 1] < n] if m != n else pairs  # the bye (index n) is always second


def all_pairs_rounds(n: int) -> Iterator[IntArray]:
    """``all_pairs_array`` one round at a time, each computed when asked for: a (pairs, 2)
    int32 array per round, so a sweep of a huge fleet starts before the last round exists."""
    for r in range(all_pairs_round_count(n)):
        yield all_pairs_round(n, r)


def all_pairs(nodes: Sequence[str]) -> list[list[Group]]:
    """``all_pairs_rounds`` with names (fine up to a few hundred nodes)."""
    return [[(nodes[a], nodes[b]) for a, b in rnd.tolist()] for rnd in all_pairs_rounds(len(nodes))]


# ---------------------------------------------------------------------------
# Ring, k-groups, one group


def ring_rounds(nodes: Sequence[str]) -> list[list[Group]]:
    """Each node tested with its successor (n pairs; n=2 is one pair).

    Every node is in two pairs, so they split into rounds: alternate pairs for
    even n (2 rounds); odd n needs a third round for the closing pair.
    """
    n = len(nodes)
    if n < 2:
        return []
    if n == 2:
        return [[(nodes[0], nodes[1])]]
    pairs: list[Group] = [(nodes[i], nodes[(i + 1) % n]) for i in range(n)]
    if n % 2 == 0:
        return [pairs[0::2], pairs[1::2]]
    return [pairs[0:n - 1:2], pairs[1:n - 1:2], [pairs[n - 1]]]


def k_groups(nodes: Sequence[str], k: int) -> list[list[Group]]:
    """Disjoint groups of k nodes in one round; the remainder in a second round.

    A remainder of r < k nodes is topped up with k-r nodes from the start of
    the list so it still forms a full group (every node gets tested in a
    group of the same size, which keeps results comparable).
    """
    if k < 2:
        raise PlacementError(f"k-groups needs k >= 2, got {k}")
    n = len(nodes)
    if n < k:
        raise PlacementError(f"k-groups of {k} need at least {k} nodes, the inventory has {n}",
                             hint="lower placement.k or widen nodes.selector")
    full = n - n % k
    rounds: list[list[Group]] = [[tuple(nodes[i:i + k]) for i in range(0, full, k)]]
    rest = list(nodes[full:])
    if rest:
        fill = [x for x in nodes[:full] if x not in rest][: k - len(rest)]
        rounds.append([tuple(rest + fill)])
    return rounds


def leaf_order(nodes: Sequence[str], leaf: Mapping[str, str | None]) -> list[str]:
    """Nodes sorted so that each leaf's nodes are contiguous (leaves by name, nodes stable)."""
    pos = {x: i for i, x in enumerate(nodes)}
    return sorted(nodes, key=lambda x: (leaf.get(x) is None, leaf.get(x) or "", pos[x]))


def one_group(nodes: Sequence[str], count: int, leaf: Mapping[str, str | None] | None = None) -> Group:
    """``count`` nodes for one all-reduce group, filling one leaf before the next."""
    if count > len(nodes):
        raise PlacementError(f"a group of {count} nodes, the inventory has {len(nodes)}",
                             hint="lower placement.nodes or widen nodes.selector")
    ordered = leaf_order(nodes, leaf) if leaf else list(nodes)
    return tuple(ordered[:count])


# ---------------------------------------------------------------------------
# Topology-aware pairs


def topology_pairs(nodes: Sequence[str], leaf: Mapping[str, str | None], scope: LeafScope) -> list[list[Group]]:
    """Pairs that stay inside a leaf, or only pairs that cross leaves.

    same-leaf: an independent round robin in every leaf, run side by side
    (round r holds every leaf's round r), so the whole cluster is busy while
    each pair shares one leaf switch: as many rounds as the biggest leaf needs.
    cross-leaf: every cross pair exactly once in as few rounds as we can build
    (``cross_leaf_rounds``). Nodes with no topology label form their own "leaf" ("").
    """
    if scope == "any":
        return all_pairs(nodes)
    by_leaf: dict[str, list[str]] = defaultdict(list)
    for x in nodes:
        by_leaf[leaf.get(x) or ""].append(x)
    members = [m for _, m in sorted(by_leaf.items())]
    if scope == "same-leaf":
        per_leaf = [all_pairs(m) for m in members]
        depth = max((len(r) for r in per_leaf), default=0)
        return [[p for rounds in per_leaf if i < len(rounds) for p in rounds[i]] for i in range(depth)]
    return cross_leaf_rounds(nodes, members)


def bipartite_rounds(left: Sequence[str], right: Sequence[str]) -> list[list[Group]]:
    """Every (left, right) pair once in max(len) rounds, the minimum (each node of the
    bigger side has that many partners): round r pairs left[i] with right[(i + r) % m]."""
    small, big = (left, right) if len(left) <= len(right) else (right, left)
    if not small:
        return []
    m = len(big)
    return [[(small[i], big[(i + r) % m]) for i in range(len(small))] for r in range(m)]


def cross_leaf_rounds(nodes: Sequence[str], leaves: Sequence[Sequence[str]]) -> list[list[Group]]:
    """Every pair of nodes in different leaves once, in the fewest rounds possible
    (edgecolour.fewest_rounds: the most cross-leaf partners of any node, one more only for
    an odd node count whose pairs cannot fit). Leaves paired by a round robin of leaves,
    each leaf pair a bipartite round robin, where that is already the fewest (two leaves,
    an even number of equal leaves); else an edge colouring with exactly that many rounds
    (edgecolour.cross_colouring), or, should its seeded walk ever give up, the shorter of
    that leaf round robin and the global round robin without same-leaf pairs."""
    members = [list(m) for m in leaves if m]
    target = fewest_rounds([len(m) for m in members])
    by_leaves: list[list[Group]] = []
    for pairing in all_pairs_rounds(len(members)) if len(members) > 1 else []:
        blocks = [bipartite_rounds(members[a], members[b]) for a, b in pairing.tolist()]
        depth = max((len(b) for b in blocks), default=0)
        by_leaves.extend([p for b in blocks if i < len(b) for p in b[i]] for i in range(depth))
    if len(by_leaves) <= target:
        return by_leaves
    flat = [x for m in members for x in m]
    coloured = cross_colouring([len(m) for m in members])
    if coloured is not None:
        return [[(flat[a], flat[b]) for a, b in rnd] for rnd in coloured if rnd]
    leaf_of = {x: i for i, m in enumerate(members) for x in m}
    global_rr = [c for c in ([p for p in rnd if leaf_of[p[0]] != leaf_of[p[1]]] for rnd in all_pairs(flat)) if c]
    return min((by_leaves, global_rr), key=len)


# ---------------------------------------------------------------------------
# Second pass: suspects against known-good partners


def retest_rounds(suspect_pairs: Sequence[tuple[str, str]], good: Sequence[str], seed: int = 0) -> list[list[Group]]:
    """Pair each node of each suspect pair with a known-good node, and rerun the pair itself.

    A node that is bad with a good partner too is bad; a pair whose two nodes are fine with
    good partners but bad again together points at the link (cable, switch port) between
    them, and one that is fine together too was noise. A pair naming one node twice is that
    node alone (nothing to rerun). Good partners are spread round robin (seeded shuffle, so
    reruns are identical) and no node is in two tests of one round.
    """
    suspects = sorted({x for p in suspect_pairs for x in p})
    partners = [g for g in good if g not in suspects]
    if not suspects:
        return []
    if not partners:
        raise PlacementError("no known-good node left to retest the suspects against",
                             hint="run all-pairs on more nodes, or give nodes that passed before")
    rng = random.Random(seed)
    partners = partners[:]
    rng.shuffle(partners)
    wanted: list[Group] = [(s, partners[i % len(partners)]) for i, s in enumerate(suspects)]
    wanted += list(dict.fromkeys((min(a, b), max(a, b)) for a, b in suspect_pairs if a != b))
    return _greedy_rounds(wanted)


def _greedy_rounds(groups: Sequence[Group]) -> list[list[Group]]:
    """First-fit: put each group in the first round where none of its nodes is busy."""
    rounds: list[list[Group]] = []
    busy: list[set[str]] = []
    for g in groups:
        for i, used in enumerate(busy):
            if not used.intersection(g):
                rounds[i].append(g)
                used.update(g)
                break
        else:
            rounds.append([g])
            busy.append(set(g))
    return rounds


# ---------------------------------------------------------------------------
# Capacity: slots per node and sharing


def assign_slots(
    rounds: Sequence[Sequence[Group]],
    slots: Mapping[str, int],
    ranks_per_node: int = 1,
    allow_sharing: bool = False,
) -> tuple[list[list[tuple[Member, ...]]], list[str]]:
    """Rounds of node groups -> rounds of (node, slot) members, within capacity.

    Without sharing a node is in at most one test per round (the input
    rounds must already be disjoint; a violation is a planner bug and raises).
    With sharing, later rounds are pulled forward into earlier ones while
    every node keeps enough free slots (e.g. 8 GPU+VF slots let 8 pair tests
    share a node), which shortens a sweep on nodes with many NICs.
    A group that needs more slots on a node than it has is dropped with a
    note: one short node does not stop the sweep.
    """
    if not allow_sharing:
        return _disjoint_rounds(rounds, slots, ranks_per_node)
    notes: list[str] = []
    out: list[list[tuple[Member, ...]]] = []
    used: list[dict[str, int]] = []  # per output round: slots taken on each node
    for rnd in rounds:
        for group in rnd:
            if len(set(group)) != len(group):
                raise PlacementError(f"group {group} names a node twice")
            short = [x for x in group if slots.get(x, 0) < ranks_per_node]
            if short:
                notes.append(f"{'+'.join(group)} skipped: {short[0]} has {slots.get(short[0], 0)} free slot(s), "
                             f"a test needs {ranks_per_node}")
                continue
            # First fit: the earliest round with room on every node of the group.
            target = next((i for i, u in enumerate(used)
                           if all(u.get(x, 0) + ranks_per_node <= slots[x] for x in group)), None)
            if target is None:
                out.append([])
                used.append({})
                target = len(out) - 1
            members: list[Member] = []
            for x in group:
                start = used[target].get(x, 0)
                members.extend((x, start + j) for j in range(ranks_per_node))
                used[target][x] = start + ranks_per_node
            out[target].append(tuple(members))
    return [r for r in out if r], notes


def _disjoint_rounds(rounds: Sequence[Sequence[Group]], slots: Mapping[str, int],
                     ranks_per_node: int) -> tuple[list[list[tuple[Member, ...]]], list[str]]:
    """assign_slots without sharing: a node is in one group of a round, so its ranks take
    its first slots. One set per round checks that (an all-pairs round of 16,384 nodes in
    14 ms of CPU, where a check per group took 45 ms)."""
    notes: list[str] = []
    out: list[list[tuple[Member, ...]]] = []
    span = range(ranks_per_node)
    for rnd in rounds:
        flat = [x for group in rnd for x in group]
        if len(set(flat)) != len(flat):
            _refuse_overlap(rnd)
        placed = []
        for group in rnd:
            short = [x for x in group if slots.get(x, 0) < ranks_per_node]
            if short:
                notes.append(f"{'+'.join(group)} skipped: {short[0]} has {slots.get(short[0], 0)} free slot(s), "
                             f"a test needs {ranks_per_node}")
                continue
            placed.append(tuple((x, j) for x in group for j in span))
        if placed:
            out.append(placed)
    return out, notes


def _refuse_overlap(rnd: Sequence[Group]) -> None:
    """The PlacementError for a round whose groups share a node (a planner bug), naming it."""
    seen: set[str] = set()
    for group in rnd:
        if len(set(group)) != len(group):
            raise PlacementError(f"group {group} names a node twice")
        if seen.intersection(group):
            raise PlacementError(f"node {sorted(seen.intersection(group))[0]} is in two tests of one round")
        seen.update(group)


def check_rounds(rounds: Sequence[Sequence[tuple[Member, ...]]], slots: Mapping[str, int] | None = None) -> None:
    """Raise PlacementError if a (node, slot) is in two tests of a round or over capacity."""
    for i, rnd in enumerate(rounds):
        seen: set[Member] = set()
        for members in rnd:
            for m in members:
                if m in seen:
                    raise PlacementError(f"round {i}: {m[0]} slot {m[1]} is in two tests")
                if slots is not None and m[1] >= slots.get(m[0], 0):
                    raise PlacementError(f"round {i}: {m[0]} slot {m[1]} is beyond its {slots.get(m[0], 0)} slot(s)")
                seen.add(m)
