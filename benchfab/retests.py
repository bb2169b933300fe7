"""The second pass's verdicts: what the retests of the suspects (``triage.find_suspects``)
decided (docs/DIAGNOSIS.md, "Retests and verdicts"). Pure functions over judged tests.

A subject here is a node or, in a per-rail pass, a port (``rails.port_name``: one rail of
a node): the rules are the same; ``rail_verdicts`` then names what the ports' verdicts mean
for the NICs and nodes they belong to.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from statistics import median

from .faults import Finding
from .rails import node_of, port_label, split_port
from .spec import SecondPassRules
from .triage import Judged, Pair, Suspects

# -- verdicts -------------------------------------------------------------------------------------


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} x"


def _losses(tests: list[Judged], most: int = 4) -> str:
    parts = [f"{100 * j.retrans:.1f} % retransmitted" if j.retrans is not None else f"spread {_x(j.spread_x)}"
             for j in tests if j.lossy]
    return ", ".join(parts[:most]) + (f" and {len(parts) - most} more" if len(parts) > most else "") or "no loss seen"


def _figures(tests: list[Judged]) -> str:
    """Each test's figure / the median, entry by entry ('bw 0.24 x, 0.25 x; lat 1.01 x')."""
    return "; ".join(f"{g[0].entry} " + ", ".join(_x(j.bw if j.bw is not None else j.perf) for j in g)
                     for g in _by_entry(tests))


def _suspicion(j: Judged | None) -> str:
    """What made a pass test suspect, in its figures."""
    if j is None:
        return "n/a"
    if j.failed:
        return j.status
    return _losses([j]) if j.lossy else f"{_x(j.perf)} of the median"


def _port(tests: list[Judged], node: str) -> str | None:
    return next((j.ports[j.hosts.index(node)] for j in tests if node in j.hosts and len(j.ports) == len(j.hosts)
                 and j.ports[j.hosts.index(node)]), None)


def _fabric(tests: list[Judged]) -> str | None:
    return next((j.fabric for j in tests if j.fabric), None)


@dataclass(frozen=True)
class Triage:
    """What the retests decided: the verdicts, the suspect links that were noise, the
    suspect pairs no retest could decide."""

    verdicts: list[Finding]
    cleared: list[tuple[str, str, str]]  # (a, b, why): a suspect link whose rerun was fine
    unresolved: list[Pair]


def _by_entry(tests: list[Judged]) -> list[list[Judged]]:
    """Tests grouped by their test entry: each entry is its own measurement (a latency entry
    says nothing of a throttled link, whose bandwidth entry does)."""
    groups: dict[str, list[Judged]] = defaultdict(list)
    for j in tests:
        groups[j.entry].append(j)
    return list(groups.values())


def _mostly_slow(tests: list[Judged]) -> bool:
    """Most tests of one of the entries are slow or failed (one dip can be noise)."""
    return any(2 * sum(j.failed or j.slow for j in g) > len(g) for g in _by_entry(tests))


def _node_is_bad(rs: list[Judged], rules: SecondPassRules) -> bool:
    """Slow or failing with known-good partners: most of those retests of an entry are, or
    their median bandwidth is below the node rule (the figure that made a node at 80 % a suspect)."""
    if _mostly_slow(rs):
        return True
    limit = rules.node_below_median
    return limit is not None and any(bool(bws) and median(bws) < limit
                                     for g in _by_entry(rs) if (bws := [r.bw for r in g if r.bw is not None]))


def classify(suspects: Suspects, retests: list[Judged], pass_tests: list[Judged],
             rules: SecondPassRules) -> Triage:
    """Verdicts from the pass's suspects and their retests (docs/DIAGNOSIS.md, "Retests and verdicts")."""
    found: list[Finding] = []
    for node, why in sorted(suspects.dead.items()):
        ev = tuple(j.evidence() for j in pass_tests if node in {node_of(h) for h in j.hosts} and j.failed)
        found.append(Finding("dead", (node,), f"its pods never started, {len(ev)} test(s) could not run: {why[:160]}", ev))
    retested = set(suspects.retested)
    with_good: dict[str, list[Judged]] = defaultdict(list)  # suspect -> its retests with a known-good partner
    rerun: dict[Pair, list[Judged]] = defaultdict(list)  # suspect link -> its own reruns
    for r in retests:
        inside = [x for x in r.hosts if x in retested]
        if len(inside) == 1:
            with_good[inside[0]].append(r)
        elif len(r.hosts) == 2 and len(inside) == 2:
            rerun[(min(r.hosts), max(r.hosts))].append(r)
    bad: dict[str, Finding] = {}
    unresolved: list[Pair] = []
    for node in sorted(retested):
        rs = with_good.get(node, [])
        if not rs and node in suspects.nodes:  # never retested (no known-good partner placed)
            unresolved += [(min(j.hosts), max(j.hosts)) for j in suspects.tests if node in j.hosts and len(j.hosts) == 2]
            continue
        lossy = any(r.lossy for r in rs)
        if not lossy and not _node_is_bad(rs, rules):
            continue
        mine = [j for j in pass_tests if node in j.hosts]
        flagged = [j for j in mine if j.suspect]
        partners = ", ".join(dict.fromkeys(port_label(p) for r in rs if (p := r.partner(node))))
        if lossy:
            line = (f"loses packets with known-good {partners} too (retests: {_losses(rs)}); "
                    f"{len(flagged)}/{len(mine)} of its pass tests suspect")
        else:
            line = (f"slow or failing with {len(flagged)}/{len(mine)} partners in the pass (median "
                    f"{_x(suspects.node_bw.get(node))}) and with known-good {partners} in the retests "
                    f"({_figures(rs)})")
        bad[node] = Finding("lossy-node" if lossy else "bad-node", (node,), line,
                            tuple(j.evidence() for j in flagged + rs), (_port(mine + rs, node),), _fabric(rs))
    bad.update(_lossy_with_several(sorted(retested - bad.keys()), pass_tests + retests))
    links: list[_Link] = []
    cleared: list[tuple[str, str, str]] = []
    for a, b in suspects.links:
        if a in bad or b in bad:
            continue  # the bad node explains its pair
        first = [j for j in suspects.tests if set(j.hosts) == {a, b}]
        again, ends = rerun.get((a, b), []), with_good.get(a, []) + with_good.get(b, [])
        if not again or not with_good.get(a) or not with_good.get(b):
            unresolved.append((a, b))
            continue
        figures = _figures(again)
        # Loss on a clean path does not happen (0 retransmissions on every clean simulated run):
        # one lossy rerun confirms it; slowness needs most reruns of an entry, one dip can be noise.
        if not any(j.lossy for j in again) and not _mostly_slow(again):
            cleared.append((a, b, f"{_suspicion(first[0] if first else None)} in the pass, fine when rerun ({figures})"))
            continue
        lossy = any(j.lossy for j in first + again)
        what = _losses(first + again) if lossy else _suspicion(first[0] if first else None)
        links.append(_Link(a, b, lossy, f"{port_label(a)}-{port_label(b)} at {what} in the pass and again when rerun ({figures})",
                           f"both ends fine with known-good partners ({_figures(ends)})",
                           first + again, ends))
    found += list(bad.values()) + [link.finding() for link in links]
    return Triage(found, cleared, list(dict.fromkeys(unresolved)))


def _lossy_with_several(nodes: list[str], tests: list[Judged]) -> dict[str, Finding]:
    """Nodes that lost packets with two or more partners (in the pass or the retests), each of
    which lost none with anyone else: that node's loss, however intermittent (a 1 % loss shows
    in some 256 KiB tests and not in others). Loss is not noise: no clean simulated run showed
    a retransmission above max_retrans, so two partners are not a coincidence."""
    with_whom: dict[str, set[str]] = defaultdict(set)
    for j in tests:
        if j.lossy and len(j.hosts) == 2:
            a, b = j.hosts
            with_whom[a].add(b)
            with_whom[b].add(a)
    found = {}
    for node in nodes:
        partners = sorted(p for p in with_whom[node] if with_whom[p] <= {node})
        if len(partners) < 2:
            continue
        mine = [j for j in tests if node in j.hosts and j.lossy]
        found[node] = Finding("lossy-node", (node,), f"loses packets with {len(partners)} partners "
                              f"({', '.join(map(port_label, partners))}), each of which loses none with any other node "
                              f"({_losses(mine)})", tuple(j.evidence() for j in mine), (_port(mine, node),),
                              _fabric(mine))
    return found


@dataclass(frozen=True)
class _Link:
    """A suspect link the reruns confirmed."""

    a: str
    b: str
    lossy: bool
    seen: str  # what the pass and the reruns measured
    ends: str  # how its two ends did with known-good partners
    tests: list[Judged]  # the pass's test and the reruns
    end_tests: list[Judged]

    def finding(self) -> Finding:
        return Finding("lossy-link" if self.lossy else "bad-link", (self.a, self.b), f"{self.seen}; {self.ends}",
                       tuple(j.evidence() for j in self.tests + self.end_tests),
                       (_port(self.tests, self.a), _port(self.tests, self.b)), _fabric(self.tests))


def rail_verdicts(found: list[Finding], tests: list[Judged]) -> list[Finding]:
    """A per-rail pass's verdicts on ports, named for what they mean (nothing changes for a
    pass without rails): a node bad on every rail it was tested on is a bad (lossy) node;
    bad on some rails, each of those is a bad (lossy) NIC: ``gpu-07 rail 5 mlx5_5``; a link
    is a link on its rail. ``tests``: the pass's and the retests' (the rails each node was
    tested on, each rail's device)."""
    rails_of: dict[str, set[int]] = defaultdict(set)
    device_of: dict[str, str] = {}  # port -> its rail's device as the plan named it
    for j in tests:
        for x in j.hosts:
            node, rail = split_port(x)
            if rail is not None:
                rails_of[node].add(rail)
                if j.rail_device:
                    device_of[x] = j.rail_device
    if not rails_of:
        return found
    out: list[Finding] = []
    on_node: dict[str, list[Finding]] = defaultdict(list)
    for f in found:
        ends = [split_port(x) for x in f.nodes]
        if any(rail is None for _, rail in ends):  # dead: the node itself
            out.append(f)
        elif f.is_link:
            out.append(replace(f, nodes=tuple(n for n, _ in ends), rail=ends[0][1],
                               ports=tuple(_device(x, f.port_of(x), device_of) for x in f.nodes)))
        else:
            on_node[ends[0][0]].append(f)
    for node, fs in on_node.items():
        rails = sorted(split_port(f.nodes[0])[1] or 0 for f in fs)
        lossy = any(f.kind == "lossy-node" for f in fs)
        if set(rails) == rails_of[node]:
            why = (f"bad on every rail it was tested on ({len(rails)}: {', '.join(map(str, rails))}), each with "
                   f"known-good partners on that rail; rail {rails[0]}: {fs[0].why}")
            out.append(Finding("lossy-node" if lossy else "bad-node", (node,), why,
                               tuple(e for f in fs for e in f.evidence), (), fs[0].fabric))
            continue
        for f in fs:
            port = f.nodes[0]
            out.append(replace(f, kind="lossy-nic" if f.kind == "lossy-node" else "bad-nic", nodes=(node,),
                               rail=split_port(port)[1], ports=(_device(port, f.port_of(port), device_of),)))
    return out


def _device(port: str, used: str | None, device_of: dict[str, str]) -> str | None:
    """A port's NIC as a verdict names it: the RDMA device its rank used; for a test-network
    address, the rail's device (its network) with the address."""
    named = device_of.get(port)
    if used and not re.fullmatch(r"[0-9.:a-fA-F]+", used):
        return used
    if named:
        return f"{named} ({used})" if used else named
    return used
