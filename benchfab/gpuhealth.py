"""GPU health beside the fabric: what DCGM says about each GPU of a node, and which GPUs
fail (a ``bad-gpu`` verdict naming the GPU index and its nearest NIC).

Two sources, either or both, found on the node where a rank runs:

- the DCGM exporter's metrics endpoint (``http://$HOST_IP:9400/metrics``: the node's address,
  or the URL in ``$DCGM_EXPORTER_URL``): Prometheus text, one sample per GPU (label ``gpu``) of
  ``DCGM_FI_DEV_XID_ERRORS`` (the last XID seen), the row-remap fields
  (``DCGM_FI_DEV_ROW_REMAP_FAILURE``, ``..._ROW_REMAP_PENDING``,
  ``..._UNCORRECTABLE_REMAPPED_ROWS``), retired pages (``DCGM_FI_DEV_RETIRED_PENDING``) and
  double-bit ECC (``DCGM_FI_DEV_ECC_DBE_VOL_TOTAL``), whichever the exporter is set to serve;
- the ``dcgmi`` CLI on PATH: ``dcgmi diag -r 1 -j``, the quick diagnostic, per test and per
  GPU (``{"DCGM Diagnostic": {"test_categories": [{"tests": [{"name", "results": [{"entity_id",
  "status", "warnings"}]}]}]}}``; older DCGM wrote ``gpu_id`` instead of ``entity_id``).

A GPU fails on: an XID of the hardware kind (``FATAL_XIDS``: uncorrectable ECC, row-remap
failure, NVLink, fallen off the bus, ...), a failed or pending row remap, a pending page
retirement, a double-bit ECC error, or a failed ``dcgmi diag`` test. Other XIDs (13, 31, 43:
usually the application's) are recorded, not judged. Without either source the node is
"not checked", and the report says so.

Parsing and judging are pure; ``collect`` runs on the node (the worker calls it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faults import Finding
from .pcitopo import read_topology

# {host_ip}: the node's address ($HOST_IP, which the agent pods get from the downward API:
# a pod has its own network namespace, so 127.0.0.1 would be the pod's), else 127.0.0.1.
EXPORTER_URL = "http://{host_ip}:9400/metrics"
EXPORTER_ENV = "DCGM_EXPORTER_URL"  # (not BENCHFAB_*: those are benchfab's own) another URL (it may hold {host_ip}), or "off"
DIAG_COMMAND = ("dcgmi", "diag", "-r", "1", "-j")
DIAG_TIMEOUT_S = 180.0
DIAG_CACHE_S = 3600.0  # one quick diagnostic per node per hour, not per test
MAX_EXPORTER_BYTES = 8 << 20
# XIDs of failing hardware (NVIDIA's XID catalog, the A100/H100 memory error management guide):
# 48 uncorrectable ECC, 64 row-remap recording failed, 74 NVLink error, 79 fallen off the bus,
# 92 high single-bit ECC rate, 94/95 contained/uncontained ECC, 119/120 GSP errors,
# 160 memory marked for repair.
FATAL_XIDS = frozenset({48, 64, 74, 79, 92, 94, 95, 119, 120, 160})
# Exporter fields: name -> what a non-zero value means (None: recorded, not judged).
FIELDS: dict[str, str | None] = {
    "DCGM_FI_DEV_XID_ERRORS": None,  # judged by FATAL_XIDS
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": "row remapping failed (an RMA criterion once a field diagnostic confirms it)",
    "DCGM_FI_DEV_ROW_REMAP_PENDING": "a row remap is pending (the GPU needs a reset)",
    "DCGM_FI_DEV_RETIRED_PENDING": "a page retirement is pending (the GPU needs a reset)",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": "double-bit (uncorrectable) ECC errors since the driver loaded",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": None,
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": None,
    "DCGM_FI_DEV_RETIRED_DBE": None,
    "DCGM_FI_DEV_RETIRED_SBE": None,
}
_SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


@dataclass
class GpuState:
    """One GPU as DCGM reported it."""

    index: int
    pci: str | None = None
    fields: dict[str, float] = field(default_factory=dict)
    diag_failures: list[str] = field(default_factory=list)
    nic: str | None = None  # the nearest HCA (pcitopo), where the node's topology is known

    def problems(self) -> list[str]:
        """What makes this GPU fail, one phrase each (empty: healthy)."""
        out = []
        xid = int(self.fields.get("DCGM_FI_DEV_XID_ERRORS", 0))
        if xid in FATAL_XIDS:
            out.append(f"XID {xid}")
        out += [what for name, what in FIELDS.items() if what and self.fields.get(name, 0) > 0]
        out += [f"dcgmi diag -r 1: {f}" for f in self.diag_failures]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"gpu": self.index, "pci": self.pci, "nic": self.nic, "fields": self.fields,
                "diag_failures": self.diag_failures, "problems": self.problems()}


@dataclass
class NodeHealth:
    """A node's GPUs as DCGM saw them; ``sources`` empty: not checked (``why_not`` says why)."""

    sources: list[str] = field(default_factory=list)
    gpus: dict[int, GpuState] = field(default_factory=dict)
    why_not: str | None = None

    @property
    def checked(self) -> bool:
        return bool(self.sources)

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "sources": self.sources, "why_not": self.why_not,
                "gpus": [g.to_json() for _, g in sorted(self.gpus.items())]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeHealth:
        gpus = {}
        for g in data.get("gpus") or []:
            state = GpuState(int(g["gpu"]), g.get("pci"), {str(k): float(v) for k, v in (g.get("fields") or {}).items()},
                             [str(f) for f in g.get("diag_failures") or []], g.get("nic"))
            gpus[state.index] = state
        return cls([str(s) for s in data.get("sources") or []], gpus, data.get("why_not"))

    def gpu(self, index: int) -> GpuState:
        return self.gpus.setdefault(index, GpuState(index))


def parse_exporter(text: str, health: NodeHealth | None = None) -> NodeHealth:
    """The DCGM exporter's /metrics text (Prometheus exposition format) into per-GPU fields."""
    health = health or NodeHealth()
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match is None or match["name"] not in FIELDS:
            continue
        labels = dict(_LABEL.findall(match["labels"] or ""))
        if not labels.get("gpu", "").isdigit():
            continue  # a GPU instance (MIG) or another entity: judged by its GPU's own sample
        try:
            value = float(match["value"])
        except ValueError:
            continue
        gpu = health.gpu(int(labels["gpu"]))
        gpu.pci = gpu.pci or _pci(labels.get("pci_bus_id"))
        gpu.fields[match["name"]] = value
    health.sources.append("dcgm-exporter")
    return health


def parse_diag(text: str, health: NodeHealth | None = None) -> NodeHealth:
    """``dcgmi diag -r 1 -j``'s JSON into each GPU's failed tests. A text that is not that JSON
    raises ValueError (the collector records it as not checked, with the reason)."""
    health = health or NodeHealth()
    data = json.loads(text)
    body = data.get("DCGM Diagnostic") if isinstance(data, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("test_categories"), list):
        raise ValueError('no "DCGM Diagnostic" with "test_categories"')
    for category in body["test_categories"]:
        for test in (category or {}).get("tests") or []:
            for result in test.get("results") or []:
                group = str(result.get("entity_group", "GPU"))
                index = result.get("entity_id", result.get("gpu_id"))
                if group != "GPU" or index is None or not str(index).isdigit():
                    continue
                gpu = health.gpu(int(index))
                if str(result.get("status", "")).lower() == "fail":
                    gpu.diag_failures.append(f"{test.get('name', '?')} failed" + _warning(result.get("warnings")))
    health.sources.append("dcgmi diag -r 1")
    return health


def _warning(warnings: Any) -> str:
    if not isinstance(warnings, list) or not warnings:
        return ""
    first = warnings[0]
    text = first.get("warning") if isinstance(first, dict) else first
    return f" ({str(text).strip()[:200]})" if text else ""


def _pci(text: str | None) -> str | None:
    """DCGM's 00000000:1B:00.0 as sysfs writes it: 0000:1b:00.0."""
    if not text:
        return None
    m = re.fullmatch(r"[0-9A-Fa-f]*?([0-9A-Fa-f]{4}):([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2})\.([0-7])", text.strip())
    return f"{m[1]}:{m[2]}:{m[3]}.{m[4]}".lower() if m else None


def collect(sysfs: Path = Path("/sys"), exporter_url: str | None = None, run_diag: bool = True,
            cache: Path | None = None) -> NodeHealth:
    """This node's GPU health from whichever DCGM source is here (bounded: the exporter read
    times out in 3 s, the diagnostic in DIAG_TIMEOUT_S), each GPU with its nearest NIC.
    ``cache``: where the diagnostic's output is kept for DIAG_CACHE_S, so the ranks of later
    tests on the node read it instead of running it again. ``$DCGM_EXPORTER_URL=off``
    skips the exporter."""
    health = NodeHealth()
    why: list[str] = []
    url = (exporter_url or os.environ.get(EXPORTER_ENV) or EXPORTER_URL).replace(
        "{host_ip}", os.environ.get("HOST_IP") or "127.0.0.1")
    if url != "off":
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:
                parse_exporter(answer.read(MAX_EXPORTER_BYTES).decode("utf-8", "replace"), health)
        except (OSError, ValueError) as exc:
            why.append(f"no DCGM exporter at {url} ({type(exc).__name__})")
    if run_diag and shutil.which(DIAG_COMMAND[0]):
        try:
            parse_diag(_diag_output(cache), health)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            why.append(f"dcgmi diag -r 1 -j gave no result ({type(exc).__name__}: {str(exc)[:120]})")
    elif run_diag:
        why.append("no dcgmi on PATH")
    if not health.checked:
        health.why_not = "; ".join(why)
    _nearest_nics(health, sysfs)
    return health


def _diag_output(cache: Path | None) -> str:
    """``dcgmi diag -r 1 -j``'s output: the cached one when fresh, else run now (and cached)."""
    if cache is not None:
        try:
            if time.time() - cache.stat().st_mtime < DIAG_CACHE_S:
                return cache.read_text()
        except OSError:
            pass
    done = subprocess.run(DIAG_COMMAND, capture_output=True, text=True, timeout=DIAG_TIMEOUT_S, check=False)
    if cache is not None and done.stdout.strip():
        try:
            cache.write_text(done.stdout)
        except OSError:
            pass  # another rank's write, or a read-only temp dir: run it again next time
    return done.stdout


def _nearest_nics(health: NodeHealth, sysfs: Path) -> None:
    topo = read_topology(sysfs)
    by_pci = {g.address: int(g.name) for g in topo.gpus}
    for gpu in health.gpus.values():
        index = by_pci.get(gpu.pci or "", gpu.index)
        gpu.nic = topo.nearest_hca(index)


def gpu_verdicts(per_node: dict[str, NodeHealth]) -> list[Finding]:
    """A ``bad-gpu`` verdict per node with a failing GPU: each GPU's index, nearest NIC and problems."""
    out = []
    for node, health in sorted(per_node.items()):
        bad = [g for _, g in sorted(health.gpus.items()) if g.problems()]
        if not bad:
            continue
        why = "; ".join(f"GPU {g.index}" + (f" (nearest NIC {g.nic})" if g.nic else "") + ": "
                        + ", ".join(g.problems()) for g in bad)
        out.append(Finding("bad-gpu", (node,), why, tuple({**g.to_json(), "source": ", ".join(health.sources)}
                                                       for g in bad)))
    return out


def health_by_node(used_values: Iterable[Any]) -> dict[str, NodeHealth]:
    """Each node's GPU health as the ranks of a run's tests recorded it (their ``used``
    documents' ``gpu_health`` entries; the last one of a node wins)."""
    out: dict[str, NodeHealth] = {}
    for used in used_values:
        try:
            doc = json.loads(used) if isinstance(used, str) else used
            entries = doc.get("gpu_health") or [] if isinstance(doc, dict) else []
        except (ValueError, AttributeError):
            continue
        for entry in entries:
            node = entry.get("node") or entry.get("host") if isinstance(entry, dict) else None
            if node and isinstance(entry.get("health"), dict):
                try:
                    out[str(node)] = NodeHealth.from_json(entry["health"])
                except (KeyError, TypeError, ValueError):
                    continue  # a damaged entry: that node counts as not checked
    return out


def health_summary(per_node: dict[str, NodeHealth]) -> str:
    """One line for the verdict table and the report: where GPU health was checked, or that it was not."""
    checked = sorted(n for n, h in per_node.items() if h.checked)
    if not checked:
        why = next((h.why_not for h in per_node.values() if h.why_not), None)
        return "GPU health not checked" + (f": {why}" if why else ": no DCGM (dcgmi or the DCGM exporter) on the nodes")
    missing = sorted(n for n, h in per_node.items() if not h.checked)
    sources = sorted({s for h in per_node.values() for s in h.sources})
    line = f"GPU health checked on {len(checked)} node(s) ({', '.join(sources)})"
    return line + (f"; not checked on {', '.join(missing)}" if missing else "")
