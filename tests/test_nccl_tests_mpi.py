"""nccl-tests over MPI, the parts that need no simulated cluster: the launch channel's
authentication, what it agrees to start, mpirun's command line, and one mpirun -np 1 of the
MPI stand-in through the engine's own path (the two-node launch: tests/sim/test_mpi_launch.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from benchfab.errors import WorkloadError
from benchfab.task import TEST_SECRET_ENV, Task
from benchfab.workloads.base import RankContext
from benchfab.workloads.mpi_agent import AGENTS_ENV
from benchfab.workloads.mpi_remote import command_words, serve_launches
from benchfab.workloads.nccl_tests_mpi import MpiNode, hostfile_text, mpirun_argv, run_nccl_tests_over_mpi
from tests.fakecluster.mpi_standin import build_all_reduce_perf, why_no_mpi

SECRET = "s" * 64


def test_only_an_mpi_daemon_runs_and_nothing_is_shell_syntax() -> None:
    argv, env = command_words(["PATH=/opt/ompi/bin:$PATH", ";", "export", "PATH", ";", " orted", "-mca", "uri",
                               '"1.0;tcp://10.0.0.1:4000"', "$(id)"], {"PATH": "/usr/bin"})
    assert argv == ["orted", "-mca", "uri", "1.0;tcp://10.0.0.1:4000", "$(id)"]  # a literal word, never run
    assert env["PATH"] == "/opt/ompi/bin:/usr/bin"
    for words in (["sh", "-c", "orted"], ["touch", "/tmp/x", ";", "orted"], ["orted;", "rm"], []):
        with pytest.raises(WorkloadError, match="MPI launch"):
            command_words(words, {})


def test_mpiruns_command_line() -> None:
    argv = mpirun_argv("/usr/bin/mpirun", "/tmp/h", 16, ["/opt/nccl-tests/all_reduce_perf", "-g", "1"],
                       {"NCCL_IB_HCA": "mlx5_0", "NCCL_ALGO": "Ring", "HOME": "/root"}, True, "/venv/bin/python")
    assert argv[:2] == ["/usr/bin/mpirun", "--allow-run-as-root"]
    assert argv[argv.index("-np") + 1] == "16" and argv[argv.index("--hostfile") + 1] == "/tmp/h"
    assert "/venv/bin/python -m benchfab.workloads.mpi_agent" in argv and "plm_rsh_no_tree_spawn" in argv
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-x"] == ["NCCL_ALGO", "NCCL_IB_HCA"]
    assert argv[-3:] == ["/opt/nccl-tests/all_reduce_perf", "-g", "1"]
    assert "--allow-run-as-root" not in mpirun_argv("m", "h", 2, ["p"], {}, False, "py")
    assert hostfile_text([MpiNode("10.0.0.1", 0, 8), MpiNode("10.0.0.2", 8, 8, 41000)]) == \
        "10.0.0.1 slots=8\n10.0.0.2 slots=8\n"


def test_the_launcher_needs_the_tests_secret(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    server = threading.Thread(target=serve_launches, args=(listener, SECRET.encode(), stop), daemon=True)
    server.start()
    port = listener.getsockname()[1]
    marker = tmp_path / "ran"
    try:
        def launch(secret: str, *words: str) -> subprocess.CompletedProcess[str]:
            env = {**os.environ, TEST_SECRET_ENV: secret, AGENTS_ENV: f'{{"127.0.0.1": {port}}}'}
            return subprocess.run([sys.executable, "-m", "benchfab.workloads.mpi_agent", "127.0.0.1", *words],
                                  env=env, capture_output=True, text=True, timeout=60)

        wrong = launch("t" * 64, "orted", "--version")
        assert wrong.returncode == 255 and not marker.exists(), wrong.stderr
        refused = launch(SECRET, "touch", str(marker))
        assert refused.returncode == 127 and "may start only orted" in refused.stderr and not marker.exists()
        if why_no_mpi() is None:  # the real daemon runs there: its output and exit code come back as they were
            here = subprocess.run(["orted", "--version"], capture_output=True, text=True, timeout=60)
            there = launch(SECRET, "orted", "--version")
            assert (there.returncode, there.stdout) == (here.returncode, here.stdout) and "Usage: orted" in there.stderr
    finally:
        stop.set()
        listener.close()


def _task(**kw: object) -> Task:
    base: dict[str, object] = dict(test_id="t", workload="allreduce", ranks=1, sizes=[4096, 65536], dtype="float32",
                                   op="sum", iterations=5, duration=None, warmup=1, in_place=[False, True],
                                   check=True, root=0, device="cuda", cuda_graph=0, engine="nccl-tests")
    base.update(kw)
    return Task(**base)  # type: ignore[arg-type]


def _ctx(logs: list[str]) -> RankContext:
    with socket.socket() as s:  # a free port for rank 0's registration listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return RankContext(rank=0, world=1, local_world=1, local_rank=0, addr="127.0.0.1", port=port,
                       emit=lambda _r: None, log=logs.append)


@pytest.mark.skipif(why_no_mpi() is not None, reason=why_no_mpi() or "")
def test_mpirun_np_1_through_the_engines_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_all_reduce_perf(tmp_path)
    monkeypatch.setenv("BENCHFAB_NCCL_TESTS_DIR", str(tmp_path))
    monkeypatch.setenv(TEST_SECRET_ENV, SECRET)
    logs: list[str] = []
    runs = run_nccl_tests_over_mpi(_task(), _ctx(logs), 60)
    assert [r.rows[0].size_bytes for r in runs] == [4096, 65536]
    assert all(row.wrong == 0 and row.time_s and row.time_s > 0 for r in runs for row in r.rows)
    assert any("exit 0" in line for line in logs), logs
