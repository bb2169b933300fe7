"""scripts/check_tools.py and the PATH the soft-RoCE lane gives virtme-ng.

The lane once passed only because virtme-run had been installed system-wide by
hand; on a fresh machine vng could not find it. These tests stage such stray copies
in temporary folders and check that the check names them, and that vng is started
with a PATH holding only its venv and the system folders.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "scripts" / "check_tools.py"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a Debian system (dpkg-query)")


def _executable(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), *args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, **(env or {})})


def test_the_host_lane_as_set_up_passes() -> None:
    venv = Path(sys.prefix)
    proc = _check("host", "--venv", str(venv))
    assert proc.returncode == 0, proc.stderr
    assert "every program and module comes from where the scripts put it" in proc.stderr


def test_a_hand_installed_program_that_shadows_the_package_is_named(tmp_path: Path) -> None:
    stray = _executable(tmp_path / "local" / "bin" / "gcc")
    proc = _check("host", "--venv", sys.prefix, "--path", f"{stray.parent}:{SYSTEM_PATH}")
    assert proc.returncode == 1
    line = next(x for x in proc.stderr.splitlines() if x.startswith("check_tools: gcc:"))
    assert f"resolved to {stray}" in line and "owned by no Debian package" in line and "(fix:" in line


def test_a_missing_program_says_which_script_installs_it(tmp_path: Path) -> None:
    proc = _check("host", "--venv", sys.prefix, "--path", str(tmp_path))
    assert proc.returncode == 1
    assert "gcc: not found in" in proc.stderr and "expected from Debian package gcc" in proc.stderr
    assert "fix: run scripts/setup.sh, as root for apt" in proc.stderr


def test_a_linter_from_outside_the_venv_is_named(tmp_path: Path) -> None:
    # scripts/test.sh calls the venv's ruff, mypy and lint-imports; a copy found first on
    # the lane's PATH (pipx, ~/.local/bin) is one setup did not install.
    stray = _executable(tmp_path / "local" / "bin" / "ruff")
    proc = _check("host", "--venv", sys.prefix, "--path", f"{stray.parent}:{sys.prefix}/bin:{SYSTEM_PATH}")
    assert proc.returncode == 1
    assert f"ruff: resolved to {stray}, outside {Path(sys.prefix).absolute()}" in proc.stderr
    assert "mypy: resolved" not in proc.stderr and "lint-imports: resolved" not in proc.stderr


def test_virtme_run_from_outside_the_vm_venv_fails_the_check(tmp_path: Path) -> None:
    # The machine the bug hid on: vng in .venv-vm, virtme-run found elsewhere on PATH.
    venv = tmp_path / "venv-vm"
    _executable(venv / "bin" / "vng")
    stray = _executable(tmp_path / "usr-local-bin" / "virtme-run")
    proc = _check("vm", "--vm-venv", str(venv), "--path", f"{venv}/bin:{stray.parent}:{SYSTEM_PATH}")
    assert proc.returncode == 1
    assert f"virtme-run: resolved to {stray}, outside {venv}" in proc.stderr
    assert "vng: resolved" not in proc.stderr  # the one in the venv is fine


def test_a_python_module_from_pythonpath_is_named(tmp_path: Path) -> None:
    shadow = tmp_path / "pp" / "yaml"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    proc = _check("host", "--venv", sys.prefix, env={"PYTHONPATH": str(tmp_path / "pp")})
    assert proc.returncode == 1
    assert f"python module yaml: loaded from {shadow / '__init__.py'}, outside" in proc.stderr
    assert "unset PYTHONPATH" in proc.stderr


@pytest.mark.skipif(not any(Path("/boot").glob("vmlinuz-*")), reason="no kernel in /boot (scripts/softroce-vm.sh setup)")
def test_vng_runs_with_only_its_venv_and_the_system_folders_on_path(tmp_path: Path) -> None:
    venv = tmp_path / "venv-vm"
    seen = tmp_path / "seen"
    # A stand-in vng that records what it was given instead of booting a VM.
    _executable(venv / "bin" / "vng", f'#!/bin/sh\necho "$PATH" > {seen}\ncommand -v virtme-run >> {seen} || echo none >> {seen}\n')
    _executable(venv / "bin" / "virtme-run")
    stray = _executable(tmp_path / "home-local-bin" / "virtme-run")
    env = {**os.environ, "BENCHFAB_VM_VENV": str(venv), "PATH": f"{stray.parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "softroce-vm.sh"), "--", "true"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env)
    assert proc.returncode != 0 and "did not report an exit status" in proc.stderr  # the stand-in booted nothing
    path_seen, virtme_run = seen.read_text().splitlines()
    assert path_seen == f"{venv}/bin:{SYSTEM_PATH}"
    assert virtme_run == str(venv / "bin" / "virtme-run")
