"""``engine: nccl-tests``: a collective measured by nccl-tests' own ``*_perf`` binary.

The same test as the torch engine (sizes, dtype, op, root, iterations, warm-up,
check, in-place both ways), run by the binary the worker image builds
(docker/Dockerfile), its output read by ``parse_nccl_tests`` and stored as the
same rows, so one spec can run both engines side by side (``engine`` is part of
the measurement key). Without MPI, nccl-tests drives all GPUs of one node from
one process (``-g N``): rank 0 of the test runs it for every rank of the node,
the other ranks only report where they ran. Over several nodes rank 0 runs it under
``mpirun``, one MPI rank per GPU, launched through benchfab's own agent instead of
sshd (workloads.nccl_tests_mpi).

Flags are nccl-tests' (src/common.cu), the vocabulary of ``benchfab run``
(benchfab.oneoff.nccl_tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import ToolOutputError, WorkloadError
from ..task import Task
from .catalog import NCCL_TYPE_NAMES
from .collective_kinds import COLLECTIVES
from .nccl_tests_output import NcclTestsRun, parse_nccl_tests

BIN_DIR_ENV = "BENCHFAB_NCCL_TESTS_DIR"  # where the *_perf binaries are (the image sets it)


def binary_path(workload: str) -> str | None:
    """The nccl-tests binary of ``workload``: in $BENCHFAB_NCCL_TESTS_DIR, else on PATH."""
    name = COLLECTIVES[workload].nccl_name
    folder = os.environ.get(BIN_DIR_ENV)
    if folder and (Path(folder) / name).is_file():
        return str(Path(folder) / name)
    return shutil.which(name)


def nccl_tests_argv(binary: str, task: Task, size: int, gpus: int) -> list[str]:
    """One size's command line: nccl-tests' -b/-e (one size), -g, -n, -w, -c, -d, -o, -r."""
    argv = [binary, "-b", str(size), "-e", str(size), "-g", str(gpus), "-w", str(task.warmup),
            "-c", "1" if task.check else "0", "-d", NCCL_TYPE_NAMES.get(task.dtype, task.dtype)]
    argv += ["-n", str(task.iterations)] if task.iterations is not None else ["-T", f"{task.duration:g}"]
    argv += COLLECTIVES[task.workload].nccl_tests_flags(task.op, task.root)
    if task.cuda_graph:
        argv += ["-G", str(task.cuda_graph)]
    return argv


def require_binary(task: Task) -> str:
    """The binary of ``task``'s collective; a WorkloadError saying where it was looked for."""
    binary = binary_path(task.workload)
    if binary is None:
        raise WorkloadError(f"engine: nccl-tests needs {COLLECTIVES[task.workload].nccl_name}, found neither in "
                            f"${BIN_DIR_ENV} nor on PATH",
                            hint="use the worker image (docker/, which builds nccl-tests) or set BENCHFAB_NCCL_TESTS_DIR")
    return binary


def run_nccl_tests(task: Task, world: int, local_world: int, timeout_s: float) -> list[NcclTestsRun]:
    """Every size of ``task`` through the binary, on this node's ``world`` GPUs."""
    if world != local_world:
        raise WorkloadError(f"engine: nccl-tests runs on one node here; this test has {world} ranks, "
                            f"{local_world} on this node",
                            hint="over several nodes rank 0 runs it under mpirun (workloads.nccl_tests_mpi)")
    binary = require_binary(task)
    runs = []
    for size in task.sizes:
        argv = nccl_tests_argv(binary, task, size, world)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise WorkloadError(f"{Path(binary).name} did not finish size {size} B in {timeout_s:.0f} s") from None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise WorkloadError(f"{Path(binary).name} exited with code {done.returncode}: {last[0][:300]}")
        runs.append(parse_size_output(binary, size, done.stdout))
    return runs


def parse_size_output(binary: str, size: int, text: str) -> NcclTestsRun:
    """One size's output as a run; a parse error names the size and the line."""
    try:
        return parse_nccl_tests(text, binary=Path(binary).name)
    except ToolOutputError as exc:  # the line is of this size's output, which the worker does not keep
        where = f" line {exc.line}" if exc.line is not None else ""
        raise ToolOutputError(f"{Path(binary).name} size {size} B, output{where}: {exc.message}",
                              line=exc.line, hint=exc.hint) from None
