"""The second pass's judgement of tests: each test against its pass, and the suspects.

Pure functions over a stored run's frames (``store.Run``); ``retests.py`` turns the
suspects and their retests into verdicts, ``secondpass.py`` drives them (judge the pass,
retest the suspects on the backend, judge again) and ``diagnosis.py`` stores the result. The rules (``spec.SecondPassRules``; docs/DIAGNOSIS.md):

- Every measurement (summary row) is compared with the same measurement of the pass's other
  tests (``COMPARABLE``): bandwidth below ``below_median`` x their median (or ClusterKit's
  ``below_best`` x the best), latency above ``above_median`` x the median (or
  ``above_lowest`` x the lowest) makes the test *slow*; retransmissions above
  ``max_retrans`` (or an iteration spread above ``spread_factor`` x the usual) make it
  *lossy*; a failed or timed-out test is *failed*.
- A node is a suspect when at least half of its tests (and two) are suspect, or when the
  median of its tests' bandwidth (each at its largest size, relative to the median) is below
  ``node_below_median``: one test per partner is noisy, a node's median over its partners is
  not, so a node at 80 % of its peers stands out where no single test does. A suspect test
  none of whose nodes is a suspect points at the link between them. A test that could not
  run because a node's pod never started names that node dead.
- The retests pair every suspect node, and both ends of every suspect link, with known-good
  nodes, and rerun each suspect link itself, so that noise is ruled out before a verdict
  (``classify``). A node that lost packets with two partners that lose none elsewhere is
  that node's loss, not two lossy links.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from statistics import median
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .errors import NOT_STARTED_RE
from .rails import node_of, port_name, split_port
from .spec import SecondPassRules

# A retest round's tests, and an adaptive entry's focus (screen.focus_name), are judged as their entry.
RETEST_RE = re.compile(r"-(retest\d+|focus)$")
# The columns that make two tests' rows the same measurement (the test entry by its pass-1 name).
COMPARABLE = ["entry", "profile", "workload", "dtype", "redop", "in_place", "size_bytes"]
Pair = tuple[str, str]


def retest_name(entry: str, round_no: int) -> str:
    """The test name of a retest of ``entry`` (its round's tests keep the entry's rules)."""
    return f"{entry}-retest{round_no}"


def entry_of(test_name: str) -> str:
    return RETEST_RE.sub("", test_name)


@dataclass(frozen=True)
class Judged:
    """One test, judged against the pass's comparable tests."""

    test_id: str
    entry: str
    hosts: tuple[str, ...]
    status: str
    reason: str
    perf: float | None  # worst over its rows: its figure / the median (latency inverted): < 1 is worse
    spread_x: float | None  # worst over its rows: p99/median of its iterations / the pass's median of that
    retrans: float | None  # tcp: fraction of the segments its rank 0 sent that were retransmitted
    slow: bool
    lossy: bool
    bw: float | None = None  # its bandwidth at its largest size / the median (the node rule's figure)
    fabric: str | None = None
    ports: tuple[str | None, ...] = ()  # per host: the RDMA device or test-network address its rank used
    # A per-rail test's rail device as the plan named it (the rail's HCA, else its network);
    # its hosts are then ports (rails.port_name: "gpu-07#5"), each rail judged on its own.
    rail_device: str | None = None

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    @property
    def suspect(self) -> bool:
        return self.failed or self.slow or self.lossy

    def partner(self, node: str) -> str | None:
        """The other node of a two-node test (None for a group or a test on one node)."""
        others = [h for h in self.hosts if h != node]
        return others[0] if len(self.hosts) == 2 and len(others) == 1 else None

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"test_id": self.test_id, "hosts": list(self.hosts), "status": self.status}
        if self.perf is not None:
            out["perf"] = round(self.perf, 3)
        if self.spread_x is not None:
            out["spread_x"] = round(self.spread_x, 1)
        if self.retrans is not None:
            out["retrans_pct"] = round(100 * self.retrans, 2)
        if self.failed:
            out["reason"] = self.reason[:200]
        return out


@dataclass(frozen=True)
class Suspects:
    dead: dict[str, str]  # node -> why (its pod never started)
    nodes: tuple[str, ...]  # nodes a node rule names: retested against known-good partners
    links: tuple[Pair, ...]  # suspect pairs no end of which explains them: rerun, ends retested
    ends: tuple[str, ...]  # nodes of suspect group tests none of whose nodes is a suspect node
    good: tuple[str, ...]  # known-good partners
    tests: tuple[Judged, ...]  # the suspect tests of the pass
    node_bw: dict[str, float]  # node -> the median of its tests' ``bw`` in the pass

    @property
    def retested(self) -> tuple[str, ...]:
        """Every node the retests pair with known-good partners."""
        return tuple(sorted({*self.nodes, *self.ends, *(x for p in self.links for x in p)}))

    @property
    def any(self) -> bool:
        return bool(self.dead or self.retested)


# -- judging tests ---------------------------------------------------------------------------


def _rows(summary: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """One row per measurement: its figure (bandwidth or latency) and its iterations' spread."""
    s = summary.copy()
    s["entry"] = s["test_name"].map(entry_of)
    bw = s["bw_avg_Bps"] if "bw_avg_Bps" in s else pd.Series(np.nan, index=s.index)
    lat = s["lat_median_s"] if "lat_median_s" in s else pd.Series(np.nan, index=s.index)
    s["is_latency"] = bw.isna() & s["busbw_Bps"].isna() & lat.notna()
    s["figure"] = np.where(s["is_latency"], lat, bw.fillna(s["busbw_Bps"]))
    if "tcp_retrans" in s and "tcp_segments" in s:
        segments = pd.to_numeric(s["tcp_segments"], errors="coerce")
        s["retrans"] = pd.to_numeric(s["tcp_retrans"], errors="coerce") / segments.where(segments > 0)
    else:
        s["retrans"] = np.nan
    if raw.empty:
        s["spread"] = np.nan
        return s
    keys = ["test_id", "size_bytes", "in_place"]
    spread = raw.groupby(keys)["time_s"].agg(lambda t: float(np.percentile(t, 99) / max(np.median(t), 1e-12)))
    return s.merge(spread.rename("spread").reset_index(), on=keys, how="left")


def _baseline(rows: pd.DataFrame) -> pd.DataFrame:
    ok = rows[(rows["status"] == "ok") & rows["figure"].notna()]
    return ok.groupby(COMPARABLE, dropna=False).agg(
        median=("figure", "median"), best=("figure", "max"), lowest=("figure", "min"),
        spread_median=("spread", "median")).reset_index()


class _Used(NamedTuple):
    hosts: tuple[str, ...]
    ports: tuple[str | None, ...]
    rail_device: str | None = None


def _used(used: Any) -> _Used:
    """The nodes a test ran on (for a per-rail test, the ports: each node's rail) and, per
    node, the port its rank used (an RDMA device where the test named one, else its
    test-network address), from its tests/ row's ``used`` JSON."""
    try:
        data = json.loads(used) if isinstance(used, str) and used else {}
    except ValueError:
        return _Used((), ())
    hosts = data.get("hosts") if isinstance(data, dict) else None
    if not isinstance(hosts, list):
        return _Used((), ())
    ranks = sorted((r for r in data.get("ranks") or [] if isinstance(r, dict)), key=_rank)
    # One rank per host (a pair test): its port; a pod of several ranks names no single port.
    ports = tuple(str(r.get("rdma_device") or r.get("net_ip") or "") or None for r in ranks) \
        if len(ranks) == len(hosts) else ()
    rail, device = data.get("rail"), data.get("rail_device")
    if isinstance(rail, int) and not isinstance(rail, bool):
        return _Used(tuple(port_name(str(h), rail) for h in hosts), ports, str(device) if device else None)
    return _Used(tuple(str(h) for h in hosts), ports)


def _rank(env: dict[str, Any]) -> int:
    rank = env.get("rank")
    return rank if isinstance(rank, int) else 0


def _largest_size_bw(rows: pd.DataFrame) -> dict[str, float]:
    """test id -> its bandwidth ratio at its largest size (median over in-place flags)."""
    bw = rows[~rows["is_latency"].astype(bool) & rows["ratio"].notna()]
    if bw.empty:
        return {}
    top = bw[bw["size_bytes"] == bw.groupby("test_id")["size_bytes"].transform("max")]
    return {str(k): float(v) for k, v in top.groupby("test_id")["ratio"].median().items()}


def judge(summary: pd.DataFrame, raw: pd.DataFrame, tests: pd.DataFrame, rules: SecondPassRules,
          baseline_from: set[str], judge_names: set[str]) -> list[Judged]:
    """Judge the tests whose name is in ``judge_names`` against the comparable tests of the
    entries in ``baseline_from`` (the pass; retests are judged against the pass, not each other)."""
    rows = _rows(summary, raw)
    base = _baseline(rows[rows["test_name"].isin(baseline_from)])
    rows = rows[rows["test_name"].isin(judge_names)].merge(base, on=COMPARABLE, how="left")
    lat = rows["is_latency"].astype(bool)
    ratio = rows["figure"] / rows["median"]
    perf = np.where(lat, 1.0 / ratio, ratio)
    slow = pd.Series(False, index=rows.index)
    if rules.below_median is not None:
        slow |= ~lat & (ratio < rules.below_median)
    if rules.below_best is not None:
        slow |= ~lat & (rows["figure"] < rules.below_best * rows["best"])
    if rules.above_median is not None:
        slow |= lat & (ratio > rules.above_median)
    if rules.above_lowest is not None:
        slow |= lat & (rows["figure"] > rules.above_lowest * rows["lowest"])
    spread_x = rows["spread"] / rows["spread_median"]
    lossy = pd.Series(False, index=rows.index)
    if rules.spread_factor is not None:
        lossy |= spread_x > rules.spread_factor
    if rules.max_retrans is not None:
        lossy |= rows["retrans"] > rules.max_retrans
    rows = rows.assign(perf=perf, ratio=ratio, spread_x=spread_x, slow=slow, lossy=lossy)
    by_test = {tid: g for tid, g in rows.groupby("test_id")}
    bw_of = _largest_size_bw(rows)
    out = []
    for t in tests[tests["test_name"].isin(judge_names)].itertuples():
        g = by_test.get(str(t.test_id))
        hosts, ports, rail_device = _used(t.used)
        perf_v = float(g["perf"].min()) if g is not None and g["perf"].notna().any() else None
        spread_v = float(g["spread_x"].max()) if g is not None and g["spread_x"].notna().any() else None
        retrans_v = float(g["retrans"].max()) if g is not None and g["retrans"].notna().any() else None
        fabric = getattr(t, "fabric", None)
        out.append(Judged(str(t.test_id), entry_of(str(t.test_name)), hosts, str(t.status), str(t.reason or ""),
                          perf_v, spread_v, retrans_v, bool(g is not None and g["slow"].any()),
                          bool(g is not None and g["lossy"].any()), bw_of.get(str(t.test_id)),
                          str(fabric) if isinstance(fabric, str) else None, ports, rail_device))
    return out


# -- suspects -------------------------------------------------------------------------------------


def find_suspects(judged: list[Judged], nodes: list[str], rules: SecondPassRules) -> Suspects:
    """Dead nodes, suspect nodes and links to retest, and the known-good partners."""
    dead: dict[str, str] = {}
    for j in judged:
        if j.failed and (m := NOT_STARTED_RE.search(j.reason)):
            dead.setdefault(m.group("node"), j.reason)
    live = [j for j in judged if not dead.keys() & {node_of(x) for x in j.hosts}]
    total: dict[str, int] = defaultdict(int)
    bad: dict[str, int] = defaultdict(int)
    bws: dict[str, list[float]] = defaultdict(list)
    for j in live:
        for x in j.hosts:
            total[x] += 1
            bad[x] += j.suspect
            if j.bw is not None:
                bws[x].append(j.bw)
    node_bw = {x: float(median(v)) for x, v in bws.items() if v}
    limit = rules.node_below_median
    node_suspects = {x for x in total if (bad[x] >= 2 and 2 * bad[x] >= total[x])
                     or (limit is not None and len(bws[x]) >= 2 and node_bw[x] < limit)}
    suspect_tests = [j for j in live if j.suspect]
    unexplained = [j for j in suspect_tests if not node_suspects & set(j.hosts)]
    # A suspect node with fine partners too may be the end of a bad link rather than bad
    # itself (its retests decide), so its flagged pairs are rerun as well, unless the other
    # end is flagged with (nearly) every partner of that entry, which explains the pair (seen:
    # a node with a throttled link, a slow and a lossy partner retested fine, the link unnamed).
    clearly_bad = _flagged_with_nearly_all(live)
    links = tuple(sorted({(min(j.hosts), max(j.hosts)) for j in suspect_tests if len(j.hosts) == 2
                          and (j in unexplained or not any((x, j.entry) in clearly_bad for x in j.hosts))}))
    ends = tuple(sorted({x for j in unexplained if len(j.hosts) > 2 for x in j.hosts}))
    retested = node_suspects | set(ends) | {x for p in links for x in p}
    # Known-good partners in the inventory's order (a node's ports rail by rail).
    order = {x: i for i, x in enumerate(nodes)}
    good = sorted((x for x in total if node_of(x) in order and x not in retested and node_of(x) not in dead),
                  key=lambda x: (order[node_of(x)], split_port(x)[1] or 0))
    return Suspects(dead, tuple(sorted(node_suspects)), links, ends, tuple(good), tuple(suspect_tests), node_bw)


def _flagged_with_nearly_all(live: list[Judged]) -> set[tuple[str, str]]:
    """(node, entry) where the node's two-node tests of that entry are suspect with all its
    partners but at most one (and at least two)."""
    total: dict[tuple[str, str], int] = defaultdict(int)
    flagged: dict[tuple[str, str], int] = defaultdict(int)
    for j in live:
        if len(j.hosts) == 2:
            for x in j.hosts:
                total[(x, j.entry)] += 1
                flagged[(x, j.entry)] += j.suspect
    return {k for k, n in total.items() if flagged[k] >= max(2, n - 1)}
