"""Facts about the controller host and software, recorded in run.json."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from .version import __version__


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    """Versions known without importing torch (workers report NCCL/CUDA they really used)."""
    from .native import native_status

    return {
        "benchfab": __version__,
        "python": platform.python_version(),
        "torch": _dist_version("torch"),
        "pandas": _dist_version("pandas"),
        "pyarrow": _dist_version("pyarrow"),
        "numpy": _dist_version("numpy"),
        "native": native_status(),
    }


def git_revision(path: Path | None = None) -> dict[str, Any]:
    """Revision of the benchfab source tree, when it is a git checkout."""
    where = path or Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return {}
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def host() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "argv": sys.argv,
    }


def _first_line(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return None
    return text.splitlines()[0].strip() if text else None


def _ofed_version() -> str | None:
    """MOFED / DOCA-OFED as ``ofed_info -s`` prints it (e.g. MLNX_OFED_LINUX-24.10-1.1.4.0:), None without it."""
    try:
        done = subprocess.run(["ofed_info", "-s"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return out.rstrip(":") if done.returncode == 0 and out else None


def node_software(sysfs: Path = Path("/sys"), proc: Path = Path("/proc")) -> dict[str, Any]:
    """What a node runs under the ranks: kernel, NVIDIA driver, MOFED/DOCA and each HCA's
    firmware (each None / absent where this node has none). Recorded per node: in run.json's
    inventory on the local backend, in every rank's env record (the tests' ``used``) everywhere."""
    driver = _first_line(sysfs / "module" / "nvidia" / "version")
    if driver is None:
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
        line = _first_line(proc / "driver" / "nvidia" / "version") or ""
        words = line.split("Kernel Module", 1)[-1].split() if "Kernel Module" in line else []
        driver = words[0] if words else None
    firmware = {}
    ib = sysfs / "class" / "infiniband"
    if ib.is_dir():
        for dev in sorted(ib.iterdir()):
            fw = _first_line(dev / "fw_ver")
            if fw:
                firmware[dev.name] = fw
    return {"kernel": platform.release(), "nvidia_driver": driver, "ofed": _ofed_version(), "hca_firmware": firmware}
