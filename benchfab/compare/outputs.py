"""A comparison written out: a terminal table, markdown, JSON (the verdicts.json document)
and JUnit XML (one testcase per key; a regression is a failure that carries the numbers),
and saved beside the new run as verdicts.json + verdicts.junit.xml.

The base and new columns mix metrics (a collective's busbw, a link test's BW average, a
latency), so each of their cells carries its unit (units.figure: GB/s, Gb/s, us); the
JSON document keeps the stored SI values, in the unit its ``metric`` names."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from .. import junit
from ..store import atomic_write_bytes
from ..units import figure
from ..verdicts import VERDICTS_FILE, Verdict, noise_text
from .expectations import junit_suite as expectations_suite
from .expectations import render_lines as expectation_lines
from .judge import Comparison

JUNIT_FILE = "verdicts.junit.xml"
FORMATS = ("table", "markdown", "json", "junit")


def _ratio(v: Verdict) -> str:
    return "-" if v.ratio is None else f"{v.ratio:.3f}"


def _method(c: Comparison) -> str:
    return f"{c.method.test}, factor {c.method.factor:g}, z {c.method.z:g}"


def summary_line(c: Comparison) -> str:
    if c.damaged:
        return f"# compare {c.base_label} -> {c.new}: damaged: stored data could not be read; no verdict stands on it"
    counts = ", ".join(f"{n} {k}" for k, n in sorted(c.counts().items())) or "no keys"
    regress = len(c.regressions)
    return (f"# compare {c.base_label} -> {c.new} ({_method(c)}): {counts}; "
            + (f"{regress} regression(s)" if regress else "no regression"))


def _notes(c: Comparison) -> list[str]:
    out = [f"damaged: {d}" for d in c.damaged] + [f"note: {n}" for n in c.notes]
    for side, what in (("base_only", "only the base has"), ("new_only", "only the new run has")):
        keys = (c.unmatched or {}).get(side) or []
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more (-o json lists them)" if len(keys) > 5 else "")
            out.append(f"unmatched: {len(keys)} key(s) {what}: {shown}")
    if c.incomplete:
        first = c.incomplete[0]
        out.append(f"note: {len(c.incomplete)} row(s) left out, key incomplete (e.g. run {first['run']} test "
                   f"{first['test_id']} lacks {', '.join(first['missing'])})")
    return out


def _label(c: Comparison, v: Verdict) -> str:
    return v.label(c.method.factor)


def render_table(c: Comparison) -> str:
    rows = [(_label(c, v), v.key_id, v.metric, figure(v.metric, v.base_median), figure(v.metric, v.new_median),
             _ratio(v), noise_text(v.noise), v.cause or "") for v in c.verdicts]
    head = ("verdict", "key", "metric", "base", "new", "ratio", "noise", "cause")
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head[:-1])]
    lines = [summary_line(c)] + [f"# {n}" for n in _notes(c)]
    if rows:
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  cause")
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + ("  " + r[-1] if r[-1] else "") for r in rows]
    if c.expectations is not None:
        lines += expectation_lines(c.expectations)
    return "\n".join(line.rstrip() for line in lines)


def render_markdown(c: Comparison) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"## {summary_line(c).lstrip('# ')}", ""] + [f"- {n}" for n in _notes(c)]
    if c.notes or c.incomplete or c.damaged:
        lines.append("")
    lines += ["| verdict | key | metric | base | new | ratio | noise | cause |", "|---|---|---|---:|---:|---:|---:|---|"]
    for v in c.verdicts:
        verdict = f"**{v.verdict}**" if v.regression else _label(c, v)
        lines.append(f"| {verdict} | `{cell(v.key_id)}` | {v.metric} | {figure(v.metric, v.base_median)} | "
                     f"{figure(v.metric, v.new_median)} | {_ratio(v)} | {noise_text(v.noise)} | {cell(v.cause or '')} |")
    if c.expectations is not None:
        lines += [""] + [f"- {cell(line.lstrip('# '))}" for line in expectation_lines(c.expectations)]
    return "\n".join(lines)


def render_json(c: Comparison) -> str:
    return json.dumps(c.to_dict(), indent=2)


def junit_suite(c: Comparison) -> ET.Element:
    """One testsuite; one testcase per key (classname: the workload); worse, failed, changed
    and missing are failures whose message holds the numbers, removed keys are skipped; a
    damaged store is one failing testcase naming the file."""
    cases = [junit.Case("benchfab.store", "damaged", "failure", d, "damaged", d) for d in c.damaged]
    for v in c.verdicts:
        numbers = (f"{v.metric} base {figure(v.metric, v.base_median)}, new {figure(v.metric, v.new_median)}, "
                   f"ratio {_ratio(v)}, noise {noise_text(v.noise)}")
        message = f"{_label(c, v)}: {numbers}" + (f"; {v.cause}" if v.cause else "")
        outcome: junit.Outcome = "failure" if v.regression else "skipped" if v.verdict == "removed" else "passed"
        detail = json.dumps({"key": v.key, "verdict": v.verdict, "base_median": v.base_median,
                             "new_median": v.new_median, "ratio": v.ratio, "noise": v.noise,
                             "cause": v.cause}, indent=2) if v.regression else ""
        cases.append(junit.Case(f"benchfab.{v.key['workload']}", v.key_id, outcome, message, v.verdict, detail))
    return junit.suite(f"benchfab compare {c.base_label} -> {c.new}", cases)


def suites(c: Comparison) -> list[ET.Element]:
    """The comparison's testsuite, and the expectations' when the new run was judged on any."""
    return [junit_suite(c)] + ([expectations_suite(c.expectations)] if c.expectations is not None else [])


def render_junit(c: Comparison) -> str:
    return junit.document(suites(c))


RENDERERS = {"table": render_table, "markdown": render_markdown, "json": render_json, "junit": render_junit}


def save(c: Comparison, run_path: Path) -> list[Path]:
    """verdicts.json (the contract's document) and the JUnit file, beside the new run's tables."""
    written = []
    for name, text in ((VERDICTS_FILE, render_json(c) + "\n"), (JUNIT_FILE, render_junit(c))):
        atomic_write_bytes(run_path / name, text.encode())
        written.append(run_path / name)
    return written
