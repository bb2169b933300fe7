"""Writing verdicts onto the cluster's nodes, and taking them off again: the API calls
over ``node_marks`` (which says what each node gets).

Opt-in only (``diagnose --apply``, ``sweep --apply-verdicts``, ``verdicts apply``). Each
node is read, then patched with the resourceVersion read (a node that changed in between
is read again), so another controller's taints are never lost. Marks whose valid-until
time has passed are cleared whenever verdicts are applied or cleared. Patching nodes needs
the separate ClusterRole ``benchfab-verdicts`` (``benchfab render SPEC --apply-verdicts``):
without it the first patch is refused with one line that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from ...diagnosis import Diagnosis
from .api_errors import Conflict, Forbidden
from .client import Kube
from .node_marks import RUN_LABEL, UNTIL_LABEL, NodeMark, clear_patch, label_value, mark_of, mark_patch, marks_for

RBAC_HINT = ("applying verdicts needs patch on nodes, in a separate ClusterRole: "
             "benchfab render SPEC --apply-verdicts | kubectl apply -f - (docs/KUBERNETES.md)")
ATTEMPTS = 3  # reads and patches of one node that changed in between


@dataclass
class Changes:
    """What a call changed, one line per node, for the terminal and -o json."""

    applied: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # nodes named by a verdict that no longer exist

    def lines(self) -> list[str]:
        return ([f"# applied: {line}" for line in self.applied] + [f"# cleared: {line}" for line in self.cleared]
                + [f"# not applied: node {n} no longer exists" for n in self.missing])

    def to_json(self) -> dict[str, list[str]]:
        return {"applied": self.applied, "cleared": self.cleared, "missing": self.missing}


def apply_diagnosis(kube: Kube, diagnosis: Diagnosis, valid_for: timedelta, now: datetime | None = None) -> Changes:
    """Write the diagnosis's marks on its nodes (valid for ``valid_for``), after clearing
    every expired mark of an earlier run."""
    now = now or datetime.now(timezone.utc)
    until = now + valid_for
    marks = marks_for(diagnosis)
    changes = clear_expired(kube, now, keep={m.node for m in marks})
    for mark in marks:
        if _update(kube, mark.node, partial(_write, mark=mark, run_id=diagnosis.run_id, until=until)) is None:
            changes.missing.append(mark.node)
        else:
            changes.applied.append(f"node {mark.node}: {mark.describe()} (run {diagnosis.run_id}, "
                                   f"until {until.strftime('%Y-%m-%d %H:%M')} UTC)")
    return changes


def clear_marks(kube: Kube, run: str | None = None, node: str | None = None, now: datetime | None = None) -> Changes:
    """Remove what benchfab wrote: on every node, or only ``node``'s, or only run ``run``'s
    (its id as given to apply); expired marks are cleared too."""
    now = now or datetime.now(timezone.utc)
    changes = Changes()
    for obj in _marked_nodes(kube):
        name = obj["metadata"]["name"]
        _verdict, marked_run, until = mark_of(obj)
        expired = until is not None and until <= now
        chosen = (node is None or name == node) and (run is None or marked_run == run
                                                     or (obj["metadata"].get("labels") or {}).get(RUN_LABEL)
                                                     == label_value(run))
        if chosen or expired:
            if _update(kube, name, clear_patch) is not None:
                changes.cleared.append(f"node {name}: benchfab's labels, annotations and taint (run {marked_run}"
                                       + (", expired)" if expired and not chosen else ")"))
    return changes


def clear_expired(kube: Kube, now: datetime, keep: set[str] | None = None) -> Changes:
    """Clear every mark whose valid-until time has passed (except on ``keep``: about to be rewritten)."""
    changes = Changes()
    for obj in _marked_nodes(kube):
        name = obj["metadata"]["name"]
        _verdict, marked_run, until = mark_of(obj)
        if until is not None and until <= now and name not in (keep or set()):
            if _update(kube, name, clear_patch) is not None:
                changes.cleared.append(f"node {name}: expired verdict of run {marked_run} "
                                       f"(valid until {until.strftime('%Y-%m-%d %H:%M')} UTC)")
    return changes


def _write(node: dict[str, Any], *, mark: NodeMark, run_id: str, until: datetime) -> dict[str, Any]:
    return mark_patch(node, mark, run_id, until)


def _marked_nodes(kube: Kube) -> list[dict[str, Any]]:
    """The nodes carrying a benchfab mark (its until label is on every one)."""
    core: Any = kube.core
    try:
        found = kube.call("list nodes", core.list_node, label_selector=UNTIL_LABEL)
    except Forbidden as exc:
        raise Forbidden(exc.message, status=403, hint=RBAC_HINT) from exc
    return list(found.get("items") or [])


def _update(kube: Kube, name: str, patch_of: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any] | None:
    """Read node ``name`` and patch it with ``patch_of(node)``; None when the node does not exist."""
    core: Any = kube.core
    for attempt in range(ATTEMPTS):
        try:
            node = kube.call(f"get node {name}", core.read_node, name, ok_missing=True)
            if node is None:
                return None
            patch = patch_of(node)
            if patch is None:
                return dict(node)
            got = kube.call(f"patch node {name}", core.patch_node, name, patch,
                            _content_type="application/merge-patch+json", ok_missing=True)
            return None if got is None else dict(got)
        except Forbidden as exc:
            raise Forbidden(exc.message, status=403, hint=RBAC_HINT) from exc
        except Conflict:
            if attempt + 1 == ATTEMPTS:
                raise
    return None
