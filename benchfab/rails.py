"""Per-rail pairwise placement: the pair rounds of a pattern, once per rail, all rails at once.

On a rail-optimized fabric every node has one NIC per GPU and NIC i of every node sits on
rail i (its own leaf switches, its own subnet). A pair test measures one path, so a
per-rail pass (``placement: {pattern: all-pairs, rails: R}``) measures every node pair
rail i <-> rail i for each i. This is an outer layer over the pattern's pair rounds
(placement.py): round k holds every pair of the pattern's round k on every rail, so the
pass takes exactly as many rounds as without rails, and slot r of a node is its rail r
(the pod at slot r requests rail r's resource and network: manifests.pod_rails).

The second pass judges each (node, rail) as its own subject, a *port*, named
``node#rail`` (node names are DNS-1123 labels and never hold ``#``): triage.py's rules
then run unchanged on ports, and ``rail_retest_rounds`` retests a suspect port only
against known-good ports of the same rail. Pure functions, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from .placement import Group, Member, retest_rounds

PORT_SEP = "#"


def port_name(node: str, rail: int) -> str:
    """The second pass's name of rail ``rail`` of ``node``: ``gpu-07#5``."""
    return f"{node}{PORT_SEP}{rail}"


def split_port(name: str) -> tuple[str, int | None]:
    """``gpu-07#5`` -> ("gpu-07", 5); a plain node name -> (name, None)."""
    node, sep, rail = name.rpartition(PORT_SEP)
    return (node, int(rail)) if sep and rail.isdigit() else (name, None)


def node_of(name: str) -> str:
    """The node of a port name (a node name is its own node)."""
    return split_port(name)[0]


def rail_rounds(rounds: Iterable[Sequence[Group]], rails: int) -> Iterator[list[tuple[Member, ...]]]:
    """Each round's groups on every rail at once: group (a, b) becomes the tests
    ((a, r), (b, r)) for r in 0..rails-1, in the same round. A group of port names (the
    retests) already names its rail: it stays one test on that rail. One round at a time,
    as the rounds are consumed (the planner streams big all-pairs plans)."""
    for rnd in rounds:
        tests: list[tuple[Member, ...]] = []
        for group in rnd:
            ports = [split_port(x) for x in group]
            if all(r is not None for _, r in ports):
                tests.append(tuple((x, int(r or 0)) for x, r in ports))
            else:
                tests.extend(tuple((x, r) for x in group) for r in range(rails))
        yield tests


def rail_retest_rounds(suspect_pairs: Sequence[tuple[str, str]], good: Sequence[str],
                       seed: int = 0) -> list[list[Group]]:
    """``retest_rounds`` for ports: each rail's suspects against that rail's known-good
    ports only (a rail-3 NIC says nothing of rail 5), the rails' round k run side by side."""
    by_rail: dict[int | None, list[tuple[str, str]]] = defaultdict(list)
    for a, b in suspect_pairs:
        by_rail[split_port(a)[1]].append((a, b))
    per_rail = [retest_rounds(pairs, [g for g in good if split_port(g)[1] == rail], seed)
                for rail, pairs in sorted(by_rail.items(), key=lambda kv: -1 if kv[0] is None else kv[0])]
    depth = max((len(r) for r in per_rail), default=0)
    return [[g for rounds in per_rail if k < len(rounds) for g in rounds[k]] for k in range(depth)]


def port_label(name: str) -> str:
    """A port as a person reads it: ``gpu-07 rail 5`` (a node name stays as it is)."""
    node, rail = split_port(name)
    return node if rail is None else f"{node} rail {rail}"
