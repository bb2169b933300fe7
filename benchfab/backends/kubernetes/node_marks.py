"""What a second pass's verdicts write onto the nodes when applying is asked for
(``benchfab diagnose RUN --apply``, ``sweep --apply-verdicts``, ``verdicts apply RUN``):
the labels, annotations and taint of each node, as merge patches. Pure: no API calls
(``apply_verdicts.py`` sends them).

One table, ``MARKS``, maps a verdict kind to its mark: the ``benchfab.io/verdict`` label
value, whether the node is tainted ``NoSchedule`` (node-level faults only) and, for a
verdict about one part of a node, the label naming the parts (``benchfab.io/bad-rails=5``,
``benchfab.io/bad-gpus=3``). A link kind has no entry: both ends are fine with other
partners, so neither is marked. A node no verdict names gets nothing, except a node that
was measured and is clean (a known-good partner, or a suspect cleared by its retests):
``ok``. Never a cordon, never a drain.

Label values are at most 63 characters of ``[A-Za-z0-9._-]`` (beginning and ending with
a letter or digit): a run id that is not one is shortened with a hash (the full id goes
in an annotation), and the valid-until time is written ``20261205T190131Z``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ...diagnosis import Diagnosis
from ...faults import FAULTS, RAILS_LABEL, VERDICT_LABEL, Finding

PREFIX = "benchfab.io/"
RUN_LABEL = PREFIX + "verdict-run"
UNTIL_LABEL = PREFIX + "verdict-until"
GPUS_LABEL = PREFIX + "bad-gpus"
WHY_ANNOTATION = PREFIX + "verdict-why"
RUN_ANNOTATION = PREFIX + "verdict-run"  # the run id in full (the label may be shortened)
UNTIL_ANNOTATION = PREFIX + "verdict-until"  # RFC 3339
TAINT_KEY = VERDICT_LABEL
TAINT_EFFECT = "NoSchedule"
# Every key benchfab writes: ``verdicts clear`` removes these and nothing else.
OWNED_LABELS = (VERDICT_LABEL, RUN_LABEL, UNTIL_LABEL, RAILS_LABEL, GPUS_LABEL)
OWNED_ANNOTATIONS = (WHY_ANNOTATION, RUN_ANNOTATION, UNTIL_ANNOTATION)
MAX_LABEL_VALUE = 63
MAX_WHY = 1000
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
_UNTIL_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class MarkRule:
    """What a verdict kind writes on its node."""

    value: str  # the benchfab.io/verdict label value
    severity: int  # the worst verdict of a node decides its label
    taint: bool  # NoSchedule: a node-level fault only
    parts_label: str | None = None  # the label naming the faulty parts (rails, GPUs)
    parts_field: str | None = None  # the evidence field naming a part ("rail", "gpu")


MARKS: dict[str, MarkRule] = {
    "dead": MarkRule(FAULTS["dead"].label_value, 40, True),
    "bad-node": MarkRule(FAULTS["bad-node"].label_value, 40, True),
    "bad-gpu": MarkRule(FAULTS["bad-gpu"].label_value, 30, True, GPUS_LABEL, "gpu"),
    "lossy-node": MarkRule(FAULTS["lossy-node"].label_value, 20, True),
    # One NIC (rail) of the node: jobs that avoid that rail can still use the node.
    "bad-nic": MarkRule(FAULTS["bad-nic"].label_value, 10, False, RAILS_LABEL, "rail"),
    "lossy-nic": MarkRule(FAULTS["lossy-nic"].label_value, 10, False, RAILS_LABEL, "rail"),
}
OK = MarkRule("ok", 0, False)


@dataclass(frozen=True)
class NodeMark:
    """What one node gets: its verdict label, the parts labels, the taint, and why."""

    node: str
    rule: MarkRule
    parts: dict[str, str] = field(default_factory=dict)  # parts label -> value
    why: str = "measured, and clean"

    def describe(self) -> str:
        """One line for the terminal: what was written on the node."""
        bits = [f"{VERDICT_LABEL}={self.rule.value}", *(f"{k}={v}" for k, v in sorted(self.parts.items()))]
        if self.rule.taint:
            bits.append(f"taint {TAINT_KEY}={self.rule.value}:{TAINT_EFFECT}")
        return ", ".join(bits)


def label_value(text: str) -> str:
    """``text`` as a label value: itself when valid, else its allowed characters cut to fit
    with 8 hex digits of its hash (two different texts never share a value in practice)."""
    if _LABEL_VALUE.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    kept = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("._-")[:MAX_LABEL_VALUE - 9].rstrip("._-")
    return f"{kept}-{digest}" if kept else digest


def until_text(when: datetime) -> str:
    """A time as a label value: 20261205T190131Z (UTC)."""
    return when.astimezone(timezone.utc).strftime(_UNTIL_FORMAT)


def parse_until(text: str | None) -> datetime | None:
    """The time of an until label; None when absent or not benchfab's format."""
    try:
        return datetime.strptime(text or "", _UNTIL_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def marks_for(diagnosis: Diagnosis) -> list[NodeMark]:
    """The marks a diagnosis puts on nodes: each node verdict's node (its worst verdict wins,
    the parts of all of them are named), and ``ok`` on every node measured and clean. A link
    verdict's ends and an unresolved pair's ends get nothing."""
    named: dict[str, list[Finding]] = {}
    untouched: set[str] = set()
    for finding in diagnosis.verdicts:
        rule = MARKS.get(finding.kind)
        if finding.is_link or rule is None:
            untouched.update(finding.nodes)
            continue
        named.setdefault(finding.nodes[0], []).append(finding)
    untouched |= {n for pair in diagnosis.unresolved for n in pair}
    marks = [_node_mark(node, findings) for node, findings in named.items()]
    measured = dict.fromkeys([*diagnosis.good, *diagnosis.suspects])
    marks += [NodeMark(n, OK) for n in measured if n not in named and n not in untouched]
    return sorted(marks, key=lambda m: m.node)


def _node_mark(node: str, findings: list[Finding]) -> NodeMark:
    worst = max((MARKS[f.kind] for f in findings), key=lambda r: r.severity)
    parts: dict[str, list[str]] = {}
    for f in findings:
        rule = MARKS[f.kind]
        if rule.parts_label is None or rule.parts_field is None:
            continue
        key = rule.parts_field
        names = [str(e[key]) for e in f.evidence if isinstance(e, dict) and e.get(key) is not None]
        if key == "rail" and f.rail is not None:  # a per-rail pass's verdict carries its rail
            names.append(str(f.rail))
        if not names and key == "rail":  # a NIC verdict without a rail names its device
            names = [p for p in f.ports if p]
        parts.setdefault(rule.parts_label, []).extend(names)
    return NodeMark(node, worst, {k: label_value(".".join(dict.fromkeys(v))) for k, v in parts.items() if v},
                    "; ".join(f"{f.kind}: {f.why}" for f in findings))


def mark_patch(node: dict[str, Any], mark: NodeMark, run_id: str, until: datetime) -> dict[str, Any]:
    """The merge patch that writes ``mark`` on ``node`` (its object as read): benchfab's
    labels and annotations replaced, benchfab's taint set or removed, other taints kept."""
    labels: dict[str, str | None] = {k: None for k in OWNED_LABELS}
    labels.update({VERDICT_LABEL: mark.rule.value, RUN_LABEL: label_value(run_id), UNTIL_LABEL: until_text(until)})
    labels.update(mark.parts)
    annotations: dict[str, str | None] = {WHY_ANNOTATION: mark.why[:MAX_WHY], RUN_ANNOTATION: run_id,
                                          UNTIL_ANNOTATION: until.astimezone(timezone.utc).isoformat()}
    taints = _foreign_taints(node)
    if mark.rule.taint:
        taints.append({"key": TAINT_KEY, "value": mark.rule.value, "effect": TAINT_EFFECT})
    return _patch(node, labels, annotations, taints)


def clear_patch(node: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that removes what benchfab wrote on ``node``; None: nothing of benchfab's there."""
    meta = node.get("metadata") or {}
    owned = [k for k in OWNED_LABELS if k in (meta.get("labels") or {})]
    owned += [k for k in OWNED_ANNOTATIONS if k in (meta.get("annotations") or {})]
    taints = _foreign_taints(node)
    if not owned and len(taints) == len((node.get("spec") or {}).get("taints") or []):
        return None
    return _patch(node, dict.fromkeys(OWNED_LABELS), dict.fromkeys(OWNED_ANNOTATIONS), taints)


def _foreign_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != TAINT_KEY]


def _patch(node: dict[str, Any], labels: dict[str, str | None], annotations: dict[str, str | None],
           taints: list[dict[str, Any]]) -> dict[str, Any]:
    # A merge patch replaces the whole taint list: the resourceVersion read makes the API
    # server refuse it (409) when the node changed since, instead of dropping another's taint.
    meta: dict[str, Any] = {"labels": labels, "annotations": annotations}
    version = (node.get("metadata") or {}).get("resourceVersion")
    if version:
        meta["resourceVersion"] = version
    return {"metadata": meta, "spec": {"taints": taints or None}}


def mark_of(node: dict[str, Any]) -> tuple[str | None, str | None, datetime | None]:
    """(verdict, run id, valid until) of what benchfab wrote on a node; Nones where nothing."""
    meta = node.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    return (labels.get(VERDICT_LABEL), notes.get(RUN_ANNOTATION) or labels.get(RUN_LABEL),
            parse_until(labels.get(UNTIL_LABEL)))


def verdicts_rbac(namespace: str, account: str = "benchfab-controller") -> list[dict[str, Any]]:
    """The separate ClusterRole (and its binding to the controller's account) that applying
    verdicts needs: nodes get/list/patch. Rendered only with ``render --apply-verdicts``."""
    group = "rbac.authorization.k8s.io"
    name = "benchfab-verdicts"
    return [
        {"apiVersion": f"{group}/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]}]},
        {"apiVersion": f"{group}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]
