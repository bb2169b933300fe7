"""The stored second pass: ``diagnosis.json`` beside run.json, and its renderings (the
verdict table with what to do, the report's markdown section, the JUnit testsuite).

``triage.py`` judges (suspects from the pass, verdicts from the retests), ``faults.py``
says what each kind of verdict means and what to do about it, ``secondpass.py`` drives the
retests. Schema 3: a verdict has ``kind``, ``subject`` (node, link or nic), ``nodes``, ``ports``,
``fabric``, ``rail`` and ``device`` (a per-rail pass), ``why``, ``evidence``, ``evidence_lines``
and ``actions``; schema 2 (no rails, no nic kinds) and schema 1 files (one ``lossy`` kind for
nodes and links, ``kubectl`` instead of ``actions``) still load.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import junit
from .counter_evidence import CounterWarning
from .errors import StoreError
from .faults import FAULTS, Finding
from .gpuhealth import NodeHealth, health_summary
from .store import atomic_write_bytes

DIAGNOSIS_FILE = "diagnosis.json"
DIAGNOSIS_SCHEMA = 3


@dataclass
class Diagnosis:
    run_id: str
    rules: dict[str, Any]
    verdicts: list[Finding] = field(default_factory=list)
    suspects: list[str] = field(default_factory=list)  # every node the retests paired with known-good ones
    good: list[str] = field(default_factory=list)
    retest_tests: list[str] = field(default_factory=list)
    unresolved: list[tuple[str, str]] = field(default_factory=list)
    cleared: list[tuple[str, str, str]] = field(default_factory=list)  # suspect links whose rerun was fine: (a, b, why)
    warnings: list[CounterWarning] = field(default_factory=list)  # fine tests whose error counters moved
    gpu_health: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> DCGM's view (benchfab.gpuhealth)

    def gpu_line(self) -> str:
        """Where GPU health was checked, or "GPU health not checked" (never silence)."""
        return health_summary({n: NodeHealth.from_json(h) for n, h in self.gpu_health.items()})

    @property
    def has_faults(self) -> bool:
        """Whether a verdict names a fault: what makes ``sweep`` and ``diagnose`` exit 1."""
        return bool(self.verdicts)

    def marked(self) -> tuple[set[str], set[tuple[str, str]]]:
        """Nodes and pairs to mark on a pair heatmap."""
        nodes = {f.nodes[0] for f in self.verdicts if not f.is_link}
        pairs = {(f.nodes[0], f.nodes[1]) for f in self.verdicts if f.is_link}
        return nodes, pairs

    def to_json(self) -> dict[str, Any]:
        return {"schema": DIAGNOSIS_SCHEMA, "run_id": self.run_id, "rules": self.rules,
                "suspects": self.suspects, "good": self.good, "retest_tests": self.retest_tests,
                "unresolved": [list(p) for p in self.unresolved], "cleared": [list(c) for c in self.cleared],
                "verdicts": [f.to_json() for f in self.verdicts], "warnings": [w.to_json() for w in self.warnings],
                "gpu_health": self.gpu_health}


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
        verdicts = [Finding.from_json(v) for v in data["verdicts"]]
        return Diagnosis(data["run_id"], data.get("rules") or {}, verdicts, list(data.get("suspects") or []),
                         list(data.get("good") or []), list(data.get("retest_tests") or []),
                         [(p[0], p[1]) for p in data.get("unresolved") or []],
                         [(c[0], c[1], c[2]) for c in data.get("cleared") or []],
                         [CounterWarning(str(w["test_id"]), tuple(w.get("hosts") or ()), str(w["why"]))
                          for w in data.get("warnings") or []],
                         {str(n): dict(h) for n, h in (data.get("gpu_health") or {}).items()})
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise StoreError(f"{path} is damaged ({type(exc).__name__}: {exc})",
                         hint="rerun the second pass: benchfab diagnose RUN") from None


def verdict_table(diagnosis: Diagnosis) -> str:
    """The verdicts as a text table, then what a user would do about them (never run here)."""
    cleared = [f"# a suspect link that was noise: {a}-{b}: {why}" for a, b, why in diagnosis.cleared]
    cleared += [f"# WARNING {w.test_id} ({'-'.join(w.hosts)}): {w.why}" for w in diagnosis.warnings]
    if not diagnosis.verdicts:
        return "\n".join([f"# diagnosis of {diagnosis.run_id}: no verdicts (every node and link looked fine)",
                          *cleared, f"# {diagnosis.gpu_line()}"]) + "\n"
    kind_w = max(len(kind) for kind in FAULTS)  # the same columns whatever the verdicts are
    width = max(len(f.where) for f in diagnosis.verdicts)
    lines = [f"# diagnosis of {diagnosis.run_id}: {len(diagnosis.verdicts)} verdict(s)",
             f"{'verdict':<{kind_w}} {'where':<{width}}  evidence"]
    for f in diagnosis.verdicts:
        lines.append(f"{f.kind:<{kind_w}} {f.where:<{width}}  {f.why}")
        lines += [f"{'':<{kind_w}} {'':<{width}}  evidence: {e}" for e in f.evidence_lines]
    lines += cleared
    lines.append(f"# {diagnosis.gpu_line()}")
    if diagnosis.unresolved:
        lines.append("# unresolved suspect pairs (a retest is missing): "
                     + ", ".join(f"{a}-{b}" for a, b in diagnosis.unresolved))
    lines.append("# to act on them (not run by benchfab):")
    lines += [f"  {c}" for f in diagnosis.verdicts for c in f.actions()]
    return "\n".join(lines) + "\n"


def verdict_markdown(diagnosis: Diagnosis) -> list[str]:
    """The verdicts as a markdown section (the run's report)."""
    lines = ["", "## Second pass verdicts", "", f"{diagnosis.gpu_line()}.", ""]
    warnings = [f"- **warning** {w.test_id} ({'-'.join(w.hosts)}): {_cell(w.why)}" for w in diagnosis.warnings]
    if not diagnosis.verdicts:
        return [*lines, "No verdicts: every node and link looked fine.", *([""] + warnings if warnings else [])]
    lines += ["| verdict | where | evidence | to act on it (not run by benchfab) |", "|---|---|---|---|"]
    for f in diagnosis.verdicts:
        # An action line that starts with '#' is advice, not a command: plain text, not code.
        todo = "<br>".join(c.lstrip("# ") if c.startswith("#") else f"`{c}`" for c in f.actions())
        why = "<br>".join([f.why, *(f"evidence: {e}" for e in f.evidence_lines)])
        lines.append(f"| {f.kind} | {f.where} | {_cell(why)} | {_cell(todo)} |")
    return lines + ([""] + warnings if warnings else [])


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def junit_suite(diagnosis: Diagnosis) -> ET.Element:
    """The second pass as a testsuite: a failure per verdict (its kind, nodes, evidence and
    actions as the diagnosis.json entry), a pass per node judged fine (known-good, or a
    suspect cleared by its retests), a skip per unresolved suspect pair."""
    def where(nodes: tuple[str, ...]) -> tuple[str, str]:
        return ("benchfab.diagnosis.link", " - ".join(nodes)) if len(nodes) == 2 else ("benchfab.diagnosis.node", nodes[0])

    cases = [junit.Case(f"benchfab.diagnosis.{f.fault.subject}", f.where, "failure", f"{f.kind}: {f.why}", f.kind,
                        json.dumps(f.to_json(), indent=2)) for f in diagnosis.verdicts]
    judged = {f.nodes for f in diagnosis.verdicts}
    unresolved = [p for p in diagnosis.unresolved if p not in judged]
    cases += [junit.Case(*where(p), "skipped", "unresolved suspect pair: a retest is missing") for p in unresolved]
    # The ends of a bad link are fine as nodes; a bad node, or an end of an unresolved pair, is not.
    # (A per-rail pass names ports "gpu-07 rail 5": a NIC verdict is its rail's, a node verdict all of them.)
    not_fine = {f.nodes[0] if f.rail is None or f.fault.subject == "node" else f"{f.nodes[0]} rail {f.rail}"
                for f in diagnosis.verdicts if not f.is_link} | {n for p in unresolved for n in p}
    for node in dict.fromkeys(diagnosis.suspects + diagnosis.good):
        if node in not_fine or node.split(" rail ")[0] in not_fine:
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
