"""Build the nccl-tests stand-in (nccl_tests_standin.c) with Debian's mpicc, for tests
that launch MPI where there is no GPU; None with the reason when Open MPI is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("nccl_tests_standin.c")


def why_no_mpi() -> str | None:
    missing = [tool for tool in ("mpicc", "mpirun", "orted") if shutil.which(tool) is None]
    return f"Open MPI is not installed ({', '.join(missing)} missing; scripts/setup.sh installs openmpi-bin libopenmpi-dev)" \
        if missing else None


def build_all_reduce_perf(folder: Path) -> Path:
    """all_reduce_perf in ``folder`` (point BENCHFAB_NCCL_TESTS_DIR there)."""
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "all_reduce_perf"
    subprocess.run(["mpicc", "-O2", "-o", str(binary), str(SOURCE)], check=True, capture_output=True, text=True)
    return binary
