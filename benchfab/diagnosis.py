"""The second pass's judgement: suspects from a pass, verdicts from the retests.

Pure functions over a stored run's frames (``store.Run``): no I/O but reading and writing
``diagnosis.json``. ``secondpass.py`` drives it: judge the pass, retest the suspects against
known-good nodes on the backend, judge again, store the verdicts.

- Every measurement (summary row) is compared with the same measurement of the pass's other
  tests (test entry, profile, workload, dtype, op, in-place, size: ``COMPARABLE``): bandwidth
  below ``below_median`` x their median (or ClusterKit's ``below_best`` x the best), latency
  above ``above_median`` x the median (or ``above_lowest`` x the lowest) makes the test *slow*;
  p99 / median of its timed iterations above ``spread_factor`` x the median of that ratio
  makes it *lossy* (retransmission stalls); a failed or timed-out test is *failed*.
- A node is a suspect when at least half of its tests (and two) are suspect; a suspect test
  none of whose nodes is such a suspect points at the link between them, and both its ends are
  retested. A test that could not run because a node's pod never started names that node dead.
- Retests pair each suspect with known-good nodes (``placement.retest_rounds``);
  ``placement.classify_suspects`` tells a bad node (bad with a good partner too) from a bad
  link (both ends fine elsewhere). A bad node whose retests were only lossy is *lossy*.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from . import junit
from .errors import NOT_STARTED_RE, StoreError
from .placement import classify_suspects
from .spec import SecondPassRules
from .store import atomic_write_bytes

DIAGNOSIS_FILE = "diagnosis.json"
DIAGNOSIS_SCHEMA = 1
RETEST_RE = re.compile(r"-retest\d+$")
# The columns that make two tests' rows the same measurement (the test entry by its pass-1 name).
COMPARABLE = ["entry", "profile", "workload", "dtype", "redop", "in_place", "size_bytes"]
VERDICT_LABEL = "benchfab.io/verdict"
Kind = Literal["bad-node", "bad-link", "lossy", "dead"]


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

    @property
    def failed(self) -> bool:
        return self.status != "ok"

    @property
    def suspect(self) -> bool:
        return self.failed or self.slow or self.lossy

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
    nodes: tuple[str, ...]  # suspect nodes to retest
    pairs: tuple[tuple[str, str], ...]  # suspect pairs of the pass (for classify_suspects)
    good: tuple[str, ...]  # known-good partners
    tests: tuple[Judged, ...]  # the suspect tests of the pass

    @property
    def any(self) -> bool:
        return bool(self.dead or self.nodes)


@dataclass(frozen=True)
class Finding:
    """One verdict: what is wrong, where, and the figures that say so."""

    kind: Kind
    nodes: tuple[str, ...]  # one node, or the two ends of a link
    why: str  # one line with the numbers
    evidence: tuple[dict[str, Any], ...] = ()

    def kubectl(self) -> list[str]:
        """What a user would run (printed, never executed): cordon a bad node, label every verdict."""
        cmds = [] if self.kind == "bad-link" else [f"kubectl cordon {self.nodes[0]}"]
        cmds.append(f"kubectl label node {' '.join(self.nodes)} {VERDICT_LABEL}={self.kind} --overwrite")
        return cmds

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "nodes": list(self.nodes), "evidence": list(self.evidence), "kubectl": self.kubectl()}


@dataclass
class Diagnosis:
    run_id: str
    rules: dict[str, Any]
    verdicts: list[Finding] = field(default_factory=list)
    suspects: list[str] = field(default_factory=list)
    good: list[str] = field(default_factory=list)
    retest_tests: list[str] = field(default_factory=list)
    unresolved: list[tuple[str, str]] = field(default_factory=list)

    def marked(self) -> tuple[set[str], set[tuple[str, str]]]:
        """Nodes and pairs to mark on a pair heatmap."""
        nodes = {f.nodes[0] for f in self.verdicts if len(f.nodes) == 1}
        pairs = {(f.nodes[0], f.nodes[1]) for f in self.verdicts if len(f.nodes) == 2}
        return nodes, pairs

    def to_json(self) -> dict[str, Any]:
        return {"schema": DIAGNOSIS_SCHEMA, "run_id": self.run_id, "rules": self.rules,
                "suspects": self.suspects, "good": self.good, "retest_tests": self.retest_tests,
                "unresolved": [list(p) for p in self.unresolved],
                "verdicts": [f.to_json() for f in self.verdicts]}


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


def _hosts(used: Any) -> tuple[str, ...]:
    """The nodes a test ran on, from its tests/ row's ``used`` JSON (none where it is missing)."""
    try:
        hosts = json.loads(used).get("hosts") if isinstance(used, str) and used else None
    except (ValueError, AttributeError):
        return ()
    return tuple(str(h) for h in hosts) if isinstance(hosts, list) else ()


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
    rows = rows.assign(perf=perf, spread_x=spread_x, slow=slow, lossy=lossy)
    by_test = {tid: g for tid, g in rows.groupby("test_id")}
    out = []
    for t in tests[tests["test_name"].isin(judge_names)].itertuples():
        g = by_test.get(str(t.test_id))
        hosts = _hosts(t.used)
        perf_v = float(g["perf"].min()) if g is not None and g["perf"].notna().any() else None
        spread_v = float(g["spread_x"].max()) if g is not None and g["spread_x"].notna().any() else None
        retrans_v = float(g["retrans"].max()) if g is not None and g["retrans"].notna().any() else None
        out.append(Judged(str(t.test_id), entry_of(str(t.test_name)), hosts, str(t.status), str(t.reason or ""),
                          perf_v, spread_v, retrans_v, bool(g is not None and g["slow"].any()),
                          bool(g is not None and g["lossy"].any())))
    return out


# -- suspects -------------------------------------------------------------------------------------


def find_suspects(judged: list[Judged], nodes: list[str]) -> Suspects:
    """Dead nodes, nodes to retest, the pass's suspect pairs and the known-good partners."""
    dead: dict[str, str] = {}
    for j in judged:
        if j.failed and (m := NOT_STARTED_RE.search(j.reason)):
            dead.setdefault(m.group("node"), j.reason)
    live = [j for j in judged if not dead.keys() & set(j.hosts)]
    total: dict[str, int] = defaultdict(int)
    bad: dict[str, int] = defaultdict(int)
    for j in live:
        for x in j.hosts:
            total[x] += 1
            bad[x] += j.suspect
    node_suspects = {x for x in total if bad[x] >= 2 and 2 * bad[x] >= total[x]}
    suspect_tests = [j for j in live if j.suspect]
    link_ends = {x for j in suspect_tests if not node_suspects & set(j.hosts) for x in j.hosts}
    retest = sorted(node_suspects | link_ends)
    good = [x for x in nodes if x in total and x not in retest and x not in dead]
    pairs = tuple((j.hosts[0], j.hosts[1]) for j in suspect_tests if len(j.hosts) == 2)
    return Suspects(dead, tuple(retest), pairs, tuple(good), tuple(suspect_tests))


# -- verdicts -------------------------------------------------------------------------------------


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} x"


def _losses(tests: list[Judged]) -> str:
    parts = [f"{100 * j.retrans:.1f} % retransmitted" if j.retrans is not None else f"spread {_x(j.spread_x)}"
             for j in tests if j.lossy]
    return ", ".join(parts) or "no loss seen"


def classify(suspects: Suspects, retests: list[Judged], pass_tests: list[Judged]) -> tuple[list[Finding], list[tuple[str, str]]]:
    """Verdicts from the pass's suspects and their retests (and the unresolved suspect pairs)."""
    found: list[Finding] = []
    for node, why in sorted(suspects.dead.items()):
        ev = tuple(j.evidence() for j in pass_tests if node in j.hosts and j.failed)
        found.append(Finding("dead", (node,), f"its pod never started, {len(ev)} test(s) could not run: {why[:160]}", ev))
    by_node: dict[str, list[Judged]] = defaultdict(list)
    outcome: dict[tuple[str, str], bool] = {}
    for r in retests:
        s = next((x for x in r.hosts if x in suspects.nodes), None)
        if s is None:
            continue
        by_node[s].append(r)
        partner = next((x for x in r.hosts if x != s), s)
        outcome[(s, partner)] = outcome.get((s, partner), True) and not r.suspect
    verdict = classify_suspects(suspects.pairs, outcome)
    for node in verdict.bad_nodes:
        rs = by_node[node]
        mine = [j for j in pass_tests if node in j.hosts]
        flagged = [j for j in mine if j.suspect]
        # Loss slows TCP too: a suspect that loses packets with good partners is lossy first.
        lossy = any(r.lossy for r in rs)
        kind: Kind = "lossy" if lossy else "bad-node"
        if not lossy:
            perf = [r.perf for r in rs if r.perf is not None]
            line = (f"slow or failing with {len(flagged)}/{len(mine)} partners in the pass and with known-good "
                    f"{', '.join(dict.fromkeys(p for r in rs for p in r.hosts if p != node))} in the retests "
                    f"(retests: {', '.join(_x(p) for p in perf) or 'failed'} of the median)")
        else:
            line = (f"loses packets with known-good partners too (retests: {_losses(rs)}); "
                    f"{len(flagged)}/{len(mine)} of its pass tests suspect")
        found.append(Finding(kind, (node,), line, tuple(j.evidence() for j in flagged + rs)))
    for a, b in verdict.bad_links:
        pair = [j for j in suspects.tests if set(j.hosts) == {a, b}]
        ends = by_node[a] + by_node[b]
        lossy = any(j.lossy for j in pair)
        kind = "lossy" if lossy else "bad-link"
        first = pair[0] if pair else None
        figure = _losses(pair) if lossy else f"{_x(first.perf if first else None)} of the median"
        found.append(Finding(kind, (a, b), f"{a}-{b} at {figure} in the pass; both ends fine with known-good partners "
                             f"({', '.join(_x(r.perf) for r in ends)})", tuple(j.evidence() for j in pair + ends)))
    return found, list(verdict.unresolved)


# -- the stored diagnosis --------------------------------------------------------------------------


def write_diagnosis(run_path: Path, diagnosis: Diagnosis) -> Path:
    path = Path(run_path) / DIAGNOSIS_FILE
    atomic_write_bytes(path, (json.dumps(diagnosis.to_json(), indent=2, sort_keys=True) + "\n").encode())
    return path


def load_diagnosis(run_path: str | Path) -> Diagnosis | None:
    """The verdicts stored with a run (None: no second pass ran for it)."""
    path = Path(run_path) / DIAGNOSIS_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        verdicts = [Finding(v["kind"], tuple(v["nodes"]), v["why"], tuple(v.get("evidence") or ()))
                    for v in data["verdicts"]]
        return Diagnosis(data["run_id"], data.get("rules") or {}, verdicts, list(data.get("suspects") or []),
                         list(data.get("good") or []), list(data.get("retest_tests") or []),
                         [(p[0], p[1]) for p in data.get("unresolved") or []])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise StoreError(f"{path} is damaged ({type(exc).__name__}: {exc})",
                         hint="rerun the second pass: benchfab diagnose RUN") from None


def verdict_table(diagnosis: Diagnosis) -> str:
    """The verdicts as a text table, then the kubectl commands a user would run (never run here)."""
    if not diagnosis.verdicts:
        return f"# diagnosis of {diagnosis.run_id}: no verdicts (every node and link looked fine)\n"
    width = max(len(" - ".join(f.nodes)) for f in diagnosis.verdicts)
    lines = [f"# diagnosis of {diagnosis.run_id}: {len(diagnosis.verdicts)} verdict(s)",
             f"{'verdict':<9} {'where':<{width}}  evidence"]
    lines += [f"{f.kind:<9} {' - '.join(f.nodes):<{width}}  {f.why}" for f in diagnosis.verdicts]
    if diagnosis.unresolved:
        lines.append("# unresolved suspect pairs (a retest is missing): "
                     + ", ".join(f"{a}-{b}" for a, b in diagnosis.unresolved))
    lines.append("# to act on them (not run by benchfab):")
    lines += [f"  {c}" for f in diagnosis.verdicts for c in f.kubectl()]
    return "\n".join(lines) + "\n"


def verdict_markdown(diagnosis: Diagnosis) -> list[str]:
    """The verdicts as a markdown section (the run's report)."""
    lines = ["", "## Second pass verdicts", ""]
    if not diagnosis.verdicts:
        return [*lines, "No verdicts: every node and link looked fine."]
    lines += ["| verdict | where | evidence | to act on it (not run by benchfab) |", "|---|---|---|---|"]
    for f in diagnosis.verdicts:
        why = f.why.replace("|", "\\|")
        lines.append(f"| {f.kind} | {' - '.join(f.nodes)} | {why} | {'<br>'.join(f'`{c}`' for c in f.kubectl())} |")
    return lines


def junit_suite(diagnosis: Diagnosis) -> ET.Element:
    """The second pass as a testsuite: a failure per verdict (its kind, nodes, evidence and
    kubectl commands as the diagnosis.json entry), a pass per node judged fine (known-good, or a
    suspect cleared by its retests), a skip per unresolved suspect pair."""
    def where(nodes: tuple[str, ...]) -> tuple[str, str]:
        return ("benchfab.diagnosis.link", " - ".join(nodes)) if len(nodes) == 2 else ("benchfab.diagnosis.node", nodes[0])

    cases = [junit.Case(*where(f.nodes), "failure", f"{f.kind}: {f.why}", f.kind, json.dumps(f.to_json(), indent=2))
             for f in diagnosis.verdicts]
    judged = {f.nodes for f in diagnosis.verdicts}
    unresolved = [p for p in diagnosis.unresolved if p not in judged]
    cases += [junit.Case(*where(p), "skipped", "unresolved suspect pair: a retest is missing") for p in unresolved]
    # The ends of a bad link are fine as nodes; a bad node, or an end of an unresolved pair, is not.
    not_fine = {f.nodes[0] for f in diagnosis.verdicts if len(f.nodes) == 1} | {n for p in unresolved for n in p}
    for node in dict.fromkeys(diagnosis.suspects + diagnosis.good):
        if node in not_fine:
            continue
        if node not in diagnosis.suspects:
            cases.append(junit.Case(*where((node,)), "passed", "fine in the pass (a known-good partner)"))
        elif diagnosis.retest_tests:
            cases.append(junit.Case(*where((node,)), "passed",
                                    "suspect in the pass, fine with known-good partners in the retests"))
        else:
            cases.append(junit.Case(*where((node,)), "skipped", "suspect in the pass, not retested "
                                    "(no known-good partner)"))
    return junit.suite(f"benchfab diagnose {diagnosis.run_id}", cases)
