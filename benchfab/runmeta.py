"""What run.json says about a run as it goes: written first (so an interrupted run is
still a run), then ended with its status whatever ends it, and read back to resume it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import metadata
from .errors import SpecError, UsageError
from .spec import SECOND_PASS_PATTERNS, SweepSpec, load_spec_text, spec_to_dict
from .store import RunStore

if TYPE_CHECKING:
    from .backends.base import Backend
    from .planner import Plan


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def start_meta(store: RunStore, spec: SweepSpec, spec_text: str, backend: Backend, placed: Plan,
               resume: bool) -> dict[str, Any]:
    """run.json as the run starts (written first, so an interrupted run is still a run)."""
    meta: dict[str, Any] = store.read_meta() if resume else {}
    meta.update({
        "spec": spec_to_dict(spec),
        "spec_text": spec_text,
        "spec_path": spec.source,
        "inventory": backend.inventory(),
        "versions": metadata.versions(),
        "host": metadata.host(),
        "git": metadata.git_revision(),
        "status": "running",
        "planned_tests": [t.test_id for t in placed.tests],
        "left_out": [{"node": node, "reason": why} for node, why in placed.left_out],
        "estimate_s": placed.estimate_s,
    })
    meta.setdefault("started", _now())
    if resume:
        meta.setdefault("resumes", []).append(_now())
    store.write_meta(meta)
    return meta


def end_meta(store: RunStore, meta: dict[str, Any], status: str, counts: dict[str, int], reason: str = "") -> None:
    """run.json as the run ends: its status (complete, interrupted, failed with the reason) and counts."""
    meta.update({"status": status, "ended": _now(), "counts": dict(counts)})
    if reason:
        meta["reason"] = reason
    try:
        store.write_meta(meta)
    except OSError:
        if status == "complete":
            raise
        # Already on the way out with another error (a full disk, say): that one is reported.


def record_left_behind(store: RunStore, meta: dict[str, Any], left: list[str], command: str) -> None:
    """run.json names what the run's clean-up could not remove, and the command that removes it."""
    meta.update({"left_behind": list(left), "cleanup_command": command})
    try:
        store.write_meta(meta)
    except OSError:
        pass  # the clean-up error itself is reported, with the same list and command


# What a command that reruns part of a run (from its stored spec) says of an imported run, which has none.
IMPORTED_INSTEAD = {
    "resume": "an imported run is complete as imported: show, report or compare it "
              "(benchfab compare BASE RUN), or import the file again with another --run-id",
    "diagnose": "the second pass retests the node pairs of a run benchfab measured with placement.pattern "
                f"{' / '.join(SECOND_PASS_PATTERNS)}: run benchfab sweep SPEC, then benchfab diagnose latest; an "
                "imported run can be judged against another with benchfab compare BASE RUN",
}


def load_resume(results_dir: Path, run_id: str, purpose: str = "resume") -> tuple[SweepSpec, str]:
    """The spec a run was started with, re-validated from the text stored in its run.json.

    ``purpose`` ("resume" or "diagnose") words the error for an imported run, which
    has no spec, no placement and no pods: what to run instead."""
    store = RunStore(results_dir, run_id)
    meta = store.read_meta()
    imported = meta.get("imported_from")
    if isinstance(imported, dict):
        raise UsageError(f"cannot {purpose} run {run_id}: it was imported from a {imported.get('tool')} report "
                         f"({imported.get('path')}), so it has no spec, no placement of ranks on nodes and "
                         "nothing to rerun", hint=IMPORTED_INSTEAD[purpose])
    text = meta.get("spec_text")
    if not isinstance(text, str):
        raise SpecError("run.json holds no spec text", source=str(store.path / "run.json"))
    return load_spec_text(text, source=str(meta.get("spec_path") or "run.json")), text
