"""``benchfab init``: the example specs ship with benchfab, and jobs/ stays their one copy.

From the source checkout (an editable install reads jobs/), and from a wheel built from an
sdist and installed with pip into a fresh virtual environment, run from a directory that
has no jobs/: what a pip-installed user meets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT

JOBS = {p.relative_to(ROOT / "jobs").as_posix(): p.read_bytes() for p in sorted((ROOT / "jobs").rglob("*.yaml"))}


def test_init_writes_the_readme_spec_and_never_clobbers_yours(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    listed = cli("init", "--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == sorted(name.removesuffix(".yaml") for name in JOBS)  # every example, k8s/rbac too
    assert "all-reduce and friends between local processes" in listed.stdout  # local.yaml's description

    first = cli("init", "local", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "jobs/local.yaml: written"
    assert (tmp_path / "jobs" / "local.yaml").read_bytes() == JOBS["local.yaml"]
    assert cli("validate", "jobs/local.yaml", cwd=tmp_path).returncode == 0  # the README's next command
    again = cli("init", "local", cwd=tmp_path)
    assert again.returncode == 0 and "jobs/local.yaml: unchanged" in again.stdout

    mine = tmp_path / "jobs" / "local.yaml"
    mine.write_text(mine.read_text() + "# mine\n")
    refused = cli("init", "local", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines() == ["benchfab: error: jobs/local.yaml exists and differs from the example local "
                                           "(fix: keep yours, pass --force to overwrite it, or --dir DIR to write elsewhere)"]
    assert mine.read_text().endswith("# mine\n")
    forced = cli("init", "local", "k8s/rbac", "--force", "--dir", "specs", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "specs" / "k8s" / "rbac.yaml").read_bytes() == JOBS["k8s/rbac.yaml"]
    typo = cli("init", "ib-vs-rcoe", cwd=tmp_path)
    assert typo.returncode == 2 and "(fix: did you mean ib-vs-roce?)" in typo.stderr


def _copy_source(dest: Path) -> Path:
    """What an sdist is built from, without the checkout's venv, results and build outputs."""
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.c", "examples")
    for folder in ("benchfab", "native", "jobs"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    return dest


@pytest.mark.slow
def test_a_wheel_from_the_sdist_ships_jobs_and_init_writes_them(tmp_path: Path) -> None:
    """sdist -> wheel -> pip install into a fresh venv (its dependencies from this one's
    site-packages, benchfab only from the wheel) -> benchfab init in an empty directory."""
    (tmp_path / "src").mkdir()
    src = _copy_source(tmp_path / "src")
    env = {**os.environ, "BENCHFAB_NO_NATIVE": "1"}  # the examples do not depend on the extension
    dist = tmp_path / "dist"
    sdist = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(dist)], cwd=src, env=env,
                           capture_output=True, text=True, timeout=300)
    assert sdist.returncode == 0, sdist.stderr
    (archive,) = dist.glob("benchfab-*.tar.gz")
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(dist), str(archive)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert wheel.returncode == 0, wheel.stderr
    (built,) = dist.glob("benchfab-*.whl")
    with zipfile.ZipFile(built) as z:
        packaged = {n.removeprefix("benchfab/examples/"): z.read(n) for n in z.namelist()
                    if n.startswith("benchfab/examples/")}
    assert packaged == JOBS  # the same files, byte for byte, and no others

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # torch, pandas... from this environment; its editable benchfab is not seen (a .pth line's
    # folder is added to sys.path, its own .pth files are not run).
    import pandas

    Path(purelib, "deps.pth").write_text(str(Path(pandas.__file__).parents[1]) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                              "--no-deps", "--no-index", str(built)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import benchfab.examples as e; print(e.examples_dir())"],
                           cwd=fresh, env=clean, capture_output=True, text=True, timeout=120)
    assert where.stdout.strip() == str(Path(purelib) / "benchfab" / "examples"), where.stderr
    init = subprocess.run([str(venv / "bin" / "benchfab"), "init", "local", "ib-vs-roce"], cwd=fresh, env=clean,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert (fresh / "jobs" / "local.yaml").read_bytes() == JOBS["local.yaml"]
    assert (fresh / "jobs" / "ib-vs-roce.yaml").read_bytes() == JOBS["ib-vs-roce.yaml"]
    valid = subprocess.run([str(venv / "bin" / "benchfab"), "validate", "jobs/local.yaml"], cwd=fresh, env=clean,
                           capture_output=True, text=True, timeout=120)
    assert valid.returncode == 0 and valid.stdout.startswith("jobs/local.yaml: ok"), valid.stderr
