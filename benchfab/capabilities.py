"""What a test needs from the host it runs on, and whether this host has it.

A sweep asks this at plan time, before any rank starts: a test that needs an RDMA
device, a GPU, the compiled hot path or perftest where the host has none is
skipped with the reason (and the whole sweep refused when no test can run), instead
of starting ranks that can only fail. Probing reads sysfs, /proc and PATH; it
imports neither torch nor pyverbs, so ``benchfab plan`` stays quick.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .units import format_size
from .workloads import family_of
from .workloads.p2p_workloads import perftest_binaries

if TYPE_CHECKING:
    from .spec import TestSpec

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class HostCapabilities:
    """What this host offers the workloads."""

    gpus: int
    rdma_devices: tuple[str, ...]  # devices with at least one ACTIVE port
    native: bool  # benchfab._native is built (verbs and tcp loops)
    perftest: tuple[str, ...]  # perftest binaries on PATH
    memory_bytes: int | None = None  # MemTotal; None: unknown (no check)


def visible_gpus(nvidia_proc: Path = NVIDIA_PROC, dev: Path = Path("/dev"), environ: dict[str, str] | None = None) -> int:
    """NVIDIA GPUs the driver lists, narrowed by CUDA_VISIBLE_DEVICES as CUDA would."""
    env = os.environ if environ is None else environ
    found = len(list(nvidia_proc.glob("*"))) if nvidia_proc.is_dir() else 0
    # Some containers get the device nodes without the driver's /proc folder.
    found = max(found, len([p for p in dev.glob("nvidia[0-9]*") if p.name[6:].isdigit()]))
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return found
    # CUDA stops at the first invalid entry; "" and "-1" hide every GPU.
    entries = [e.strip() for e in visible.split(",")]
    usable = 0
    for e in entries:
        if not e or e.startswith("-"):
            break
        usable += 1
    return min(found, usable)


def probe_host() -> HostCapabilities:
    from .rdma.discovery import discover_sysfs

    devices = tuple(d.name for d in discover_sysfs() if any(p.active for p in d.ports))
    return HostCapabilities(
        gpus=visible_gpus(),
        rdma_devices=devices,
        native=importlib.util.find_spec("benchfab._native") is not None,
        perftest=tuple(b for b in perftest_binaries(runs=True).values() if shutil.which(b)),
        memory_bytes=host_memory_bytes(),
    )


def host_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# A test whose buffers would take more than this share of the host's memory is not
# started: it would fail at allocation (or push the host into swap and measure that).
MEMORY_SHARE = 0.8


def why_unrunnable(spec: TestSpec, host: HostCapabilities) -> str | None:
    """Why ``spec`` cannot run on ``host`` (one line with the fix), or None if it can."""
    family = family_of(spec.workload)
    why = family.why_unrunnable(spec, host)
    if why is not None or host.memory_bytes is None:
        return why
    need = family.host_buffer_bytes(spec)
    if need > MEMORY_SHARE * host.memory_bytes:
        largest = max(spec.sizes)
        return (f"its {spec.ranks} rank(s) need about {need / 2**30:,.1f} GiB of host memory for buffers at "
                f"size {format_size(largest)}, and this host has {host.memory_bytes / 2**30:,.1f} GiB "
                f"(fix: lower the largest size, or run it where each rank has its own node)")
    return None
