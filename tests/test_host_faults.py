"""A controller that meets a hostile host: read-only and full disks, a results
directory under /proc, names that would become bad file names, a sweep started in
the background from a shell that ignores SIGINT.

Disks are real tmpfs mounts (root only: they are skipped elsewhere), the sweeps are
the real CLI in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, worker_pids_of

SPEC = """\
name: faults
tests:
  - {name: a, workload: allreduce, ranks: 2, sizes: [8, 1K, 64K], iterations: 2, warmup: 1}
  - {name: b, workload: allreduce, ranks: 2, sizes: [8, 1K, 64K], iterations: 2, warmup: 1}
"""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def _tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    yield from _tmpfs(tmp_path / "ro", "ro,size=1m")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    # Room for run.json and a log or two, not for the first test's Parquet parts.
    yield from _tmpfs(tmp_path / "small", "size=48k")


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("benchfab: error: ") and "(fix: " in line, line
    return line


@needs_root
def test_read_only_results_directory(cli, write_spec, read_only_disk: Path) -> None:  # type: ignore[no-untyped-def]
    line = _one_line_error(cli("sweep", str(write_spec(SPEC)), "--results", str(read_only_disk), "--no-progress"))
    assert "Read-only file system" in line and "writable" in line


@needs_root
def test_full_disk_marks_the_run_failed_and_says_what_to_free(cli, write_spec, small_disk: Path) -> None:  # type: ignore[no-untyped-def]
    line = _one_line_error(cli("sweep", str(write_spec(SPEC)), "--results", str(small_disk), "--no-progress"))
    assert "No space left on device" in line and "free space" in line
    (meta_path,) = small_disk.glob("*/run.json")
    meta = json.loads(meta_path.read_text())
    assert meta["status"] == "failed" and "No space left" in meta["reason"]
    listing = cli("runs", "--results", str(small_disk))
    assert " failed " in listing.stdout


def test_results_under_proc(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    line = _one_line_error(cli("sweep", str(write_spec(SPEC)), "--results", "/proc/self", "--no-progress"))
    assert "/proc" in line and "real disk" in line


def test_names_that_become_file_names_are_checked(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("profiles:\n  ib/shared: {fabric: ib}\ntests: [{workload: allreduce, profiles: [ib/shared]}]\n")
    proc = cli("validate", str(spec))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "profile name 'ib/shared'" in line and "(fix: rename it, e.g. ib-shared)" in line


def test_reserved_env_names_are_refused(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    for name in ("POD_NAME", "MASTER_ADDR", "BENCHFAB_TEST_SECRET"):
        spec = write_spec(f"backend: kubernetes\nimage: r/w:1\nkubernetes:\n  env: {{{name}: x}}\ntests: [{{workload: allreduce}}]\n")
        proc = cli("validate", str(spec))
        assert proc.returncode == 2 and f"kubernetes.env: {name} is set by benchfab" in proc.stderr, proc.stderr


def test_background_sweep_from_a_shell_still_stops_on_sigint(write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`sh -c 'benchfab sweep ... &'`: the shell starts the job with SIGINT ignored."""
    spec = write_spec("tests:\n  - {name: slow, workload: allreduce, ranks: 2, sizes: [8], duration: 60, in_place: false}\n")
    results = tmp_path / "results"
    pid_file = tmp_path / "pid"
    script = (f"{sys.executable} -m benchfab sweep {spec} --results {results} --run-id bg --no-progress "
              f"> {tmp_path / 'out'} 2>&1 & echo $! > {pid_file}; wait")
    shell = subprocess.Popen(["sh", "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            meta = results / "bg" / "run.json"
            if pid_file.exists() and meta.exists() and list((results / "bg" / "logs").glob("*.log")):
                break
            time.sleep(0.2)
        time.sleep(2)  # the ranks are up
        os.kill(int(pid_file.read_text()), signal.SIGINT)
        assert shell.wait(timeout=60) == 0
        meta = json.loads((results / "bg" / "run.json").read_text())
        assert meta["status"] == "interrupted", (tmp_path / "out").read_text()
    finally:
        if shell.poll() is None:
            shell.kill()


def test_the_rank_that_died_first_is_named_not_its_peers_connection_reset(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("tests:\n  - {name: victim, workload: allreduce, ranks: 3, sizes: [8], duration: 60, in_place: false}\n")
    results = tmp_path / "results"
    sweep = subprocess.Popen([sys.executable, "-m", "benchfab", "sweep", str(spec), "--results", str(results),
                              "--run-id", "k1", "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        pids: list[int] = []
        while time.monotonic() < deadline and not pids:
            log = results / "k1" / "logs" / "000-victim.rank1.log"
            if log.exists() and "start" in log.read_text():  # rank 1 is inside the timed loop
                pids = worker_pids_of("RANK=1", cmdline_marker="000-victim")
            time.sleep(0.3)
        assert pids, "rank 1 never started measuring"
        os.kill(pids[0], signal.SIGKILL)
        out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 1, err
    import benchfab

    reason = benchfab.load_run("k1", results).tests["reason"].iloc[0]
    assert reason.startswith("rank 1 killed by SIGKILL first"), reason
