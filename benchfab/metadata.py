"""Facts about the controller host and software, recorded in run.json."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import __version__


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
