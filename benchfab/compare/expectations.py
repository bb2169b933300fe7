"""A run judged against absolute expectations (benchfab.spec.expect): the spec's ``expect:``
and ``expect_by_node:`` of each test, and the entries of ``--expect FILE``.

Which expectation holds for a measurement: the rules that apply to its test (and, for a
rule with ``match``, whose labels every node of the measurement carries) are laid over
each other in order, a later one replacing an earlier one field by field: the test's
``expect`` (or the defaults'), its ``expect_by_node`` entries, then the file's entries in
file order. Each field is judged at the sizes its rule's ``at`` selects (default: the
largest size the test measured, where nccl-tests users read bus bandwidth). A figure that
misses its bound is a ``below-expectation`` verdict (a regression: exit 1); a field that
cannot be judged (no line rate known, no counters recorded) is ``not-judged``, said once per
field and test, never a silent pass. docs/SPEC.md ("Expectations") says the same for users.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import junit
from ..bounds import Bound, parse_bound
from ..errors import EXIT_ALL_OK, EXIT_TESTS_NOT_OK, BenchfabError
from ..records import MEASUREMENT_KEY, TEST_COLUMNS
from ..spec import load_spec_text
from ..spec.expect import Expectation, ExpectFile
from ..spec.models import SweepSpec, TestSpec
from ..store import atomic_write_bytes, read_columns, read_meta
from ..units import figure
from ..workloads import family_of
from .keys import key_id

EXPECTATIONS_FILE = "expectations.json"
BELOW = "below-expectation"
# The tests/ column holding a test's error-counter deltas (JSON, nested by node and port:
# counter_deltas reads it); judged where the store has it, "not-judged" where not.
COUNTERS_COLUMN = "counters"
_FIELDS = ("bandwidth", "latency", "line_rate")


@dataclass(frozen=True)
class Rule:
    """One expectation that may apply to a test: its bounds, the node labels it needs (None:
    any node) and where it was written (for the verdict line)."""

    expect: Expectation
    match: Mapping[str, str] | None
    origin: str

    @property
    def node_type(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in (self.match or {}).items()) or "any node"


@dataclass(frozen=True)
class Judged:
    """One field of one expectation judged on one measurement (a key; ``errors.*``: a test)."""

    verdict: str  # below-expectation | met | not-judged
    test_name: str
    key_id: str
    field: str  # bandwidth | latency | line_rate | errors.COUNTER
    expected: str  # the bound as written: ">= 45 GB/s"
    figure: float | None  # the judged figure, SI (B/s, s, a fraction, a count); None: not judged
    shown: str  # the figure as people read it: "38.200 GB/s", "85.0 % of 400 Gb/s"
    node_type: str
    origin: str
    workload: str
    cause: str = ""

    def line(self) -> str:
        if self.verdict == "not-judged":
            return f"{self.test_name} {self.field}: not judged: {self.cause}"
        return (f"{self.test_name} {self.key_id}: {self.field} {self.shown}, expected {self.expected} "
                f"(node type: {self.node_type}; {self.origin})")


@dataclass
class ExpectationResult:
    run: str
    sources: list[str]
    judged: list[Judged] = field(default_factory=list)

    @property
    def below(self) -> list[Judged]:
        return [j for j in self.judged if j.verdict == BELOW]

    @property
    def exit_code(self) -> int:
        return EXIT_TESTS_NOT_OK if self.below else EXIT_ALL_OK

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for j in self.judged:
            out[j.verdict] = out.get(j.verdict, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "sources": list(self.sources), "counts": self.counts(),
                "verdicts": [asdict(j) for j in self.judged]}


def spec_rules(test: TestSpec) -> list[Rule]:
    """A resolved test's own rules, in order: its expect (or the defaults'), then expect_by_node."""
    rules = [Rule(test.expect, None, f"spec test {test.name!r}")] if test.expect is not None else []
    rules += [Rule(n.expect, n.match, f"spec test {test.name!r} expect_by_node[{i}]")
              for i, n in enumerate(test.expect_by_node)]
    return rules


def file_rules(extra: ExpectFile | None, test_name: str, workload: str, profile: str) -> list[Rule]:
    """The file's entries whose selectors (test, workload, profile) all hold for a measurement."""
    if extra is None:
        return []
    return [Rule(e.expect, e.match, f"{extra.source or '--expect'} entry {i}") for i, e in enumerate(extra.expectations)
            if (e.test in (None, test_name)) and (e.workload in (None, workload)) and (e.profile in (None, profile))]


def node_labels(meta: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each node's labels as the run's inventory recorded them, by node name and hostname."""
    inventory = meta.get("inventory") or {}
    nodes = inventory.get("nodes") if isinstance(inventory, dict) else None
    out: dict[str, dict[str, str]] = {}
    for node in nodes if isinstance(nodes, list) else []:
        labels = node.get("labels") if isinstance(node, dict) else None
        if isinstance(labels, dict):
            for name in {node.get("name"), node.get("hostname")} - {None}:
                out[str(name)] = {str(k): str(v) for k, v in labels.items()}
    return out


def applies(rule: Rule, hosts: list[str], labels: Mapping[str, Mapping[str, str]]) -> bool:
    """A rule without ``match`` applies to any node; with one, every host must carry its labels."""
    if not rule.match:
        return True
    return bool(hosts) and all(all(labels.get(h, {}).get(k) == v for k, v in rule.match.items()) for h in hosts)


def effective(rules: list[Rule]) -> dict[str, tuple[object, str, Rule]]:
    """field -> (bound as written, size rule, the rule that set it): later rules win field by field."""
    out: dict[str, tuple[object, str, Rule]] = {}
    for rule in rules:
        at = rule.expect.at or "largest"
        for name in _FIELDS:
            value = getattr(rule.expect, name)
            if value is not None:
                out[name] = (value, at, rule)
        for counter, value in (rule.expect.errors or {}).items():
            out[f"errors.{counter}"] = (value, at, rule)
    return out


def selected_sizes(at: str, sizes: list[int]) -> list[int]:
    """The sizes an expectation judges: the largest (default), all, or those a size bound holds for."""
    if not sizes or at == "largest":
        return sizes[-1:]
    if at == "all":
        return sizes
    bound = parse_bound("size", at)
    return [s for s in sizes if bound.holds(s)]


def counter_deltas(value: Any) -> dict[str, tuple[float, str]] | None:
    """counter -> (its largest delta, where: node/port) from a test's recorded counters, or None
    when the record has none. Accepts the JSON text or mapping of the counters, nested by
    node and port, leaves counter: delta (the counters' record; the one place that reads it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if not isinstance(value, dict) or not value:
        return None
    found: dict[str, tuple[float, str]] = {}

    def walk(node: Mapping[str, Any], where: str) -> None:
        for name, child in node.items():
            if isinstance(child, Mapping):
                walk(child, f"{where}/{name}" if where else str(name))
            elif isinstance(child, (int, float)) and not isinstance(child, bool):
                if name not in found or child > found[name][0]:
                    found[str(name)] = (float(child), where or "-")

    walk(value, "")
    return found


def judge_counters(bounds: Mapping[str, Bound], counters: Mapping[str, tuple[float, str]] | None
                   ) -> dict[str, tuple[bool | None, float | None, str]]:
    """Each counter bound judged on a test's deltas: counter -> (met? None: not recorded,
    the delta, where or why not). The one function the error counters plug into."""
    out: dict[str, tuple[bool | None, float | None, str]] = {}
    for name, bound in bounds.items():
        if counters is None:
            out[name] = (None, None, "this test's record has no error counters")
        elif name not in counters:
            out[name] = (None, None, f"no counter {name!r} in this test's record (it has {', '.join(sorted(counters))})")
        else:
            delta, where = counters[name]
            out[name] = (bound.holds(delta), delta, where)
    return out


def judge_run(run_path: Path, extra: ExpectFile | None = None) -> ExpectationResult | None:
    """Every expectation of the run's spec and of ``extra`` judged on the run's stored rows;
    None when neither holds any expectation (nothing to say)."""
    meta = read_meta(run_path)
    spec = _spec_of(meta)
    tests = {t.name: t for t in spec.resolved_tests()} if spec else {}
    if extra is None and not any(t.expect is not None or t.expect_by_node for t in tests.values()):
        return None
    summary = read_columns(run_path, "summary", list(dict.fromkeys(
        (*MEASUREMENT_KEY, "test_id", "test_name", "status", "busbw_Bps", "bw_avg_Bps", "lat_median_s", "link_rate_bps"))))
    counters: dict[str, dict[str, tuple[float, str]] | None] = {}
    if COUNTERS_COLUMN in TEST_COLUMNS:  # a store whose tests/ rows carry the error counters' deltas
        test_rows = read_columns(run_path, "tests", ["test_id", COUNTERS_COLUMN])
        counters = {str(t): counter_deltas(c) for t, c in zip(test_rows["test_id"], test_rows[COUNTERS_COLUMN])}
    sources = ["spec"] * any(t.expect is not None or t.expect_by_node for t in tests.values())
    result = ExpectationResult(str(meta.get("run_id") or run_path.name), sources + ([extra.source or "--expect"] if extra else []))
    labels = node_labels(meta)
    # the line rate each profile states, bit/s (a fabric's usual rate is a guess for time
    # estimates, not a figure to judge against)
    rates = {name: p.line_rate for name, p in (spec.profiles if spec else {}).items() if p.line_rate is not None}
    summary = summary[summary["status"] == "ok"]
    size_free = [c for c in MEASUREMENT_KEY if c != "size_bytes"]
    unjudged: set[tuple[str, str]] = set()
    for (test_name, *_), group in summary.groupby(["test_name", *size_free], sort=True, dropna=True):
        first = group.iloc[0]
        hosts = [h for h in str(first["hosts"]).split(",") if h]
        test = tests.get(str(test_name))
        candidates = (spec_rules(test) if test else []) + file_rules(extra, str(test_name), str(first["workload"]),
                                                                     str(first["profile"]))
        rules = [r for r in candidates if applies(r, hosts, labels)]
        for rule in candidates:
            if rule.match and not any(labels.get(h) for h in hosts) and (str(test_name), rule.origin) not in unjudged:
                # a node-type bound must not pass silently where the run recorded no labels
                unjudged.add((str(test_name), rule.origin))
                result.judged.append(Judged("not-judged", str(test_name), "-", "match", rule.node_type, None, "-",
                                            rule.node_type, rule.origin, str(first["workload"]),
                                            f"node labels unknown: the run's inventory records none for {first['hosts']} "
                                            "(the local backend and imported runs have none)"))
        for name, (text, at, rule) in effective(rules).items():
            for j in _judge_field(name, text, at, rule, group, counters, rates):
                if j.verdict == "not-judged":
                    if (j.test_name, j.field) in unjudged:
                        continue
                    unjudged.add((j.test_name, j.field))
                result.judged.append(j)
    return result


def _spec_of(meta: dict[str, Any]) -> SweepSpec | None:
    """The run's spec; None for an imported run (it keeps none: only --expect FILE applies)."""
    text = meta.get("spec_text")
    if not isinstance(text, str):
        return None
    try:
        return load_spec_text(text)
    except BenchfabError:
        return None


def _judge_field(name: str, text: object, at: str, rule: Rule, group: pd.DataFrame,
                 counters: Mapping[str, dict[str, tuple[float, str]] | None], rates: Mapping[str, float]) -> list[Judged]:
    first = group.iloc[0]
    workload, test_name = str(first["workload"]), str(first["test_name"])
    metric = family_of(workload).judged_metric(workload)
    kind = "count" if name.startswith("errors.") else name
    bound = parse_bound(kind, text)  # type: ignore[arg-type]  # the field names are the kinds

    def made(verdict: str, key: Any, value: float | None, shown: str, cause: str = "") -> Judged:
        return Judged(verdict, test_name, key, name, bound.text, value, shown, rule.node_type, rule.origin, workload, cause)

    if name.startswith("errors."):
        counter = name.removeprefix("errors.")
        out = []
        for test_id in sorted(set(group["test_id"].astype(str))):
            met, delta, where = judge_counters({counter: bound}, counters.get(test_id))[counter]
            if met is None:
                out.append(made("not-judged", test_id, None, "-", where))
            else:
                out.append(made("met" if met else BELOW, test_id, delta, f"{delta:g} at {where}"))
        return out
    # bandwidth and line_rate judge a bandwidth test's figure, latency a latency test's
    if (name == "latency") == metric.higher_is_better:
        return []
    by_size = group.groupby("size_bytes", sort=True)
    sizes = [int(s) for s in by_size.groups]
    out = []
    for size in selected_sizes(at, sizes):
        rows = by_size.get_group(size)
        value = float(rows[metric.column].astype("float64").median())
        key = key_id(tuple(rows.iloc[0][c] for c in MEASUREMENT_KEY))
        if value != value:
            continue
        if name != "line_rate":
            out.append(made("met" if bound.holds(value) else BELOW, key, value, figure(metric.column, value)))
            continue
        measured = rows["link_rate_bps"].astype("float64").median()
        rate = measured if measured == measured and measured > 0 else rates.get(str(first["profile"]))
        if rate is None:
            out.append(made("not-judged", key, None, "-", f"line rate unknown: the records carry no link rate and profile "
                            f"{first['profile']!r} sets no line_rate (fix: set profiles.{first['profile']}.line_rate)"))
            continue
        share = value * 8 / rate
        out.append(made("met" if bound.holds(share) else BELOW, key, share,
                        f"{share * 100:.1f} % of {rate / 1e9:g} Gb/s ({figure(metric.column, value)})"))
    return out


def render_lines(result: ExpectationResult) -> list[str]:
    """What the terminal shows: a summary line, each verdict below its expectation, each
    field that could not be judged (met ones are counted; the JSON lists them)."""
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts().items())) or "nothing to judge"
    lines = [f"# expectations ({' + '.join(result.sources)}) on run {result.run}: {counts}"]
    lines += [f"{BELOW}  {j.line()}" for j in result.judged if j.verdict == BELOW]
    lines += [f"# note: {j.line()}" for j in result.judged if j.verdict == "not-judged"]
    return lines


def junit_suite(result: ExpectationResult) -> ET.Element:
    """One testcase per judged field: below-expectation a failure with the figure, the bound
    and the node type; not-judged skipped with why; met passed."""
    cases = []
    for j in result.judged:
        outcome: junit.Outcome = "failure" if j.verdict == BELOW else "skipped" if j.verdict == "not-judged" else "passed"
        message = j.line() if j.verdict != "not-judged" else f"not judged: {j.cause}"
        detail = json.dumps(asdict(j), indent=2) if j.verdict == BELOW else ""
        cases.append(junit.Case(f"benchfab.expect.{j.workload}", f"{j.key_id} {j.field}", outcome, message,
                                j.verdict, detail))
    return junit.suite(f"benchfab expectations {result.run}", cases)


def save_expectations(result: ExpectationResult, run_path: Path) -> Path:
    """expectations.json beside the run's tables (written atomically)."""
    path = run_path / EXPECTATIONS_FILE
    atomic_write_bytes(path, (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    return path
