"""A run's facts as summary.md lists them: spec (or the imported report), status, host,
versions, git revision.

A fact the run does not have is "-", never "None", and the list ends with one line
saying why those are missing: an imported report states no spec, torch or python of
its own (and a perftest report no host), a run made outside a git checkout has no
revision, a run that never ended has no end time.
"""

from __future__ import annotations

from typing import Any

from .tables import md_cell, missing, shown
from .untrusted import markdown_code

IMPORTED_WHY = "the imported report does not state"
MEASURED_WHY = {
    "spec": "the run was started without a spec file",
    "ended": "the run has not ended (still running, or its controller died)",
    "git": "benchfab did not run from a git checkout",
}


def run_facts(meta: dict[str, Any]) -> list[str]:
    """Markdown list lines of ``meta`` (a run.json), then the line explaining any "-"."""
    versions = meta.get("versions") or {}
    imported = meta.get("imported_from")
    spec_name = (meta.get("spec") or {}).get("name")
    lines: list[str] = []
    absent: list[str] = []

    # Everything here comes from run.json, which an imported report or a shared results
    # directory may have filled: inert in Markdown and on a terminal (untrusted.py).
    def fact(name: str, value: Any, code: bool = False) -> str:
        if missing(value) or value == "":
            absent.append(name)
            return shown(None)
        return markdown_code(value) if code else md_cell(value)

    if isinstance(imported, dict):
        source = f", from {imported['source_url']}" if imported.get("source_url") else ""
        version = f" {imported['version']}" if imported.get("version") else ""
        lines.append(f"- imported: {md_cell(imported.get('tool'))}{md_cell(version)} report `{markdown_code(imported.get('path'))}` "
                     f"(sha256 {md_cell(str(imported.get('sha256'))[:12])}...{md_cell(source)}); filed as spec {md_cell(spec_name)}")
    else:
        lines.append(f"- spec: `{fact('spec', meta.get('spec_path'), code=True)}` ({md_cell(spec_name)})")
    lines.append(f"- status: {md_cell(meta.get('status'))}; started {fact('started', meta.get('started'))}, "
                 f"ended {fact('ended', meta.get('ended'))}")
    lines.append(f"- host: {fact('host', (meta.get('host') or {}).get('hostname'))}; "
                 f"benchfab {fact('benchfab', versions.get('benchfab'))}, torch {fact('torch', versions.get('torch'))}, "
                 f"python {fact('python', versions.get('python'))}")
    lines.append(f"- git: {fact('git', (meta.get('git') or {}).get('revision'))}")
    if absent:
        why = (f"{IMPORTED_WHY} {', '.join(absent)}" if imported
               else "; ".join(f"{name}: {MEASURED_WHY.get(name, 'not in run.json')}" for name in absent))
        lines.append(f'- "-": not recorded ({why})')
    return lines
