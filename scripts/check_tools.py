#!/usr/bin/env python3
"""Check that every outside program and module a test lane uses comes from where
the project's scripts put it.

The scripts install what they need (Debian packages with apt, Python packages into
.venv and .venv-vm) and call programs with a PATH of their own: the venv's bin
folder and the system folders, never /usr/local/bin, ~/.local/bin or a pyenv shim.
A copy that someone installed by hand earlier can still stand in for a missing
install step (a file dropped into /usr/bin, a PYTHONPATH, a package left in a venv
that setup no longer installs); CI then stays green while a new machine's first run
fails. This check resolves each program the way the lane will and fails, one line
per problem, unless it is a file of the Debian package or the venv it is meant to
come from.

    scripts/check_tools.py host            # the pytest lane (run by scripts/test.sh)
    scripts/check_tools.py vm              # the soft-RoCE VM lane
    scripts/check_tools.py bench           # the peers the benchmarks compare against
    scripts/check_tools.py host vm --path DIR:DIR...   # resolve with another PATH

Exit 0 when everything is where it belongs, 1 otherwise. Standard library only:
it runs with the system python3 before any venv exists.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The only system folders a lane searches: what Debian's packages install into.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Program:
    """An executable a lane runs, and the Debian packages or venv it must come from."""

    name: str
    debs: tuple[str, ...] = ()  # any of these packages may own it
    venv: str | None = None  # "host" (.venv) or "vm" (.venv-vm)
    why: str = ""


@dataclass(frozen=True)
class Module:
    """A Python module a lane imports; it must load from inside that lane's venv."""

    name: str
    venv: str  # "host" or "vm"
    installed_by: str  # what puts it there, for the fix
    home: str = "venv"  # "venv": inside the venv; "repo": this checkout (editable install)


HOST_VENV_INSTALL = "scripts/setup.sh (pip install -e .[test])"
VM_VENV_INSTALL = "scripts/softroce-vm.sh setup (pip install virtme-ng)"

PROGRAMS: dict[str, tuple[Program, ...]] = {
    "host": (
        Program("gcc", debs=("gcc",), why="builds benchfab._native"),
        Program("chromium", debs=("chromium",), why="tests open report.html in it (headless, DevTools over a pipe)"),
        # scripts/test.sh's static checks, before pytest (the test extra installs them).
        Program("ruff", venv="host", why="scripts/test.sh lints with it"),
        Program("mypy", venv="host", why="scripts/test.sh type-checks with it"),
        Program("lint-imports", venv="host", why="scripts/test.sh checks the import contracts with it"),
        # The simulated cluster (tests/fakecluster/netsim.py, scripts/simcluster.sh), as root.
        Program("ip", debs=("iproute2",), why="the simulated cluster's namespaces and veths"),
        Program("tc", debs=("iproute2",), why="the simulated cluster's shaped links"),
        Program("nft", debs=("nftables",), why="the simulated cluster's packet drops"),
    ),
    "vm": (
        Program("vng", venv="vm", why="boots the soft-RoCE VM"),
        Program("virtme-run", venv="vm", why="vng starts it through PATH"),
        Program("qemu-system-x86_64", debs=("qemu-system-x86",), why="the VM itself"),
        Program("busybox", debs=("busybox-static", "busybox"), why="virtme-ng's guest tools"),
        Program("modprobe", debs=("kmod",), why="loads rdma_rxe in the guest"),
        Program("ip", debs=("iproute2",), why="the guest's dummy netdev"),
        Program("rdma", debs=("iproute2",), why="creates rxe0 in the guest"),
        Program("ib_write_bw", debs=("perftest",), why="the perftest engine and its peer tests"),
        Program("ib_write_lat", debs=("perftest",), why="the perftest engine and its peer tests"),
    ),
    "bench": (
        Program("iperf3", debs=("iperf3",), why="benchmarks/tcp_vs_iperf3.py's peer"),
        Program("qperf", debs=("qperf",), why="benchmarks/tcp_vs_iperf3.py's peer"),
        Program("valgrind", debs=("valgrind",), why="benchmarks/loop_cost_callgrind.py"),
    ),
}

MODULES: dict[str, tuple[Module, ...]] = {
    "host": tuple(
        Module(name, "host", HOST_VENV_INSTALL)
        for name in ("torch", "numpy", "pandas", "pyarrow", "matplotlib", "pydantic", "yaml", "kubernetes",
                     "pytest", "hypothesis", "kubernetes_validate", "cuda.bindings", "mypy", "importlinter",
                     "prometheus_client")
    ) + (Module("benchfab", "host", HOST_VENV_INSTALL, home="repo"),),
    "vm": (Module("virtme_ng", "vm", VM_VENV_INSTALL),),
    "bench": (),
}

# The PATH each lane runs its programs with (scripts/softroce-vm.sh gives vng the vm one,
# and the guest the system folders alone; the benchmarks look for their peers there too).
LANE_PATHS = {
    "host": lambda venvs: f"{venvs['host']}/bin:{SYSTEM_PATH}",
    "vm": lambda venvs: f"{venvs['vm']}/bin:{SYSTEM_PATH}",
    "bench": lambda venvs: SYSTEM_PATH,
}

DEB_INSTALL = {"host": "scripts/setup.sh", "vm": "scripts/softroce-vm.sh setup", "bench": "scripts/setup.sh"}


def deb_owners(path: str) -> set[str]:
    """Debian packages that ship this file, or an empty set.

    With merged /usr, a package may list /bin/ip while PATH finds /usr/sbin/ip (or the
    other way round), so every spelling of the path is asked for.
    """
    spellings = {path, os.path.realpath(path)}
    for p in list(spellings):
        for prefix in ("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"):
            if p.startswith(prefix):
                base = p[len(prefix):]
                spellings.update(f"{d}{base}" for d in ("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"))
    owners: set[str] = set()
    for p in sorted(spellings):
        try:
            out = subprocess.run(["dpkg-query", "-S", p], capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            return set()
        if out.returncode == 0:
            for line in out.stdout.splitlines():
                pkgs, _, listed = line.partition(": ")
                if listed.strip() == p:
                    owners.update(pkg.split(":")[0].strip() for pkg in pkgs.split(","))
    return owners


def _inside(path: str, folder: Path) -> bool:
    # Compared as given and with symlinks resolved: a venv's bin/python links out of
    # it, while a checkout reached through a symlink should still count as inside.
    for p, f in ((Path(os.path.abspath(path)), folder.absolute()), (Path(os.path.realpath(path)), folder.resolve())):
        if p == f or f in p.parents:
            return True
    return False


def check_program(prog: Program, lane: str, search_path: str, venvs: dict[str, Path]) -> str | None:
    """None if ``prog`` resolves to where it belongs under ``search_path``; else one line saying why not."""
    found = shutil.which(prog.name, path=search_path)
    installer = VM_VENV_INSTALL if prog.venv == "vm" else (HOST_VENV_INSTALL if prog.venv else DEB_INSTALL[lane])
    if found is None:
        source = f"{venvs[prog.venv]}/bin" if prog.venv else f"Debian package {' or '.join(prog.debs)}"
        as_root = ", as root for apt" if prog.debs else ""
        return (f"{prog.name}: not found in {search_path} ({prog.why}; expected from {source}) "
                f"(fix: run {installer}{as_root})")
    if prog.venv is not None:
        if _inside(found, venvs[prog.venv]):
            return None
        return (f"{prog.name}: resolved to {found}, outside {venvs[prog.venv]} where {installer} puts it "
                f"(fix: remove the stray copy, or rerun {installer})")
    owners = deb_owners(found)
    if owners & set(prog.debs):
        return None
    owned = f"owned by {', '.join(sorted(owners))}" if owners else "owned by no Debian package (installed by hand?)"
    return (f"{prog.name}: resolved to {found}, {owned}; the lane expects the one from "
            f"{' or '.join(prog.debs)} (fix: remove the stray copy and run {installer}, as root)")


_MODULE_PROBE = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        mod = importlib.import_module(name)
        out[name] = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", [])), None)
    except Exception as exc:
        out[name] = "!" + type(exc).__name__ + ": " + str(exc).splitlines()[0][:200] if str(exc) else "!" + type(exc).__name__
print(json.dumps(out))
"""


def check_modules(mods: tuple[Module, ...], venv: Path) -> list[str]:
    """One line per module that does not import from inside ``venv``."""
    if not mods:
        return []
    python = venv / "bin" / "python"
    if not python.exists():
        return [f"{venv}: no venv here (fix: run {mods[0].installed_by})"]
    # Same environment as the lane (PYTHONPATH included: a stray one would win there too).
    proc = subprocess.run([str(python), "-c", _MODULE_PROBE, *(m.name for m in mods)],
                          capture_output=True, text=True, timeout=300, cwd="/")
    if proc.returncode != 0:
        return [f"{python}: could not import-check modules: {proc.stderr.strip().splitlines()[-1:]}"]
    where = json.loads(proc.stdout)
    problems = []
    for m in mods:
        loc = where.get(m.name)
        if loc is None or loc.startswith("!"):
            problems.append(f"python module {m.name}: not importable in {venv} ({(loc or '!?')[1:]}) "
                            f"(fix: run {m.installed_by})")
        elif m.home == "repo" and not _inside(loc, ROOT / m.name):
            problems.append(f"python module {m.name}: loaded from {loc}, not from this checkout {ROOT} "
                            f"(fix: rerun {m.installed_by}, which installs it in editable mode)")
        elif m.home == "venv" and not _inside(loc, venv):
            problems.append(f"python module {m.name}: loaded from {loc}, outside {venv} "
                            f"(fix: unset PYTHONPATH or remove the stray copy; {m.installed_by} installs it)")
    return problems


# Debian packages a lane uses unpacked into build/debian/PKG by scripts/setup.sh (not installed:
# they would clash with a copy a machine may already have), and the file the tests run.
UNPACKED: dict[str, tuple[tuple[str, str, str], ...]] = {
    "host": (("kubernetes-client", "usr/bin/kubectl", "tests/k8s drive benchfab render's manifests through it"),),
    "vm": (),
    "bench": (),
}


def check_unpacked(lane: str, root: Path = ROOT) -> list[str]:
    """One line per unpacked Debian package of the lane that setup.sh has not put in place."""
    problems = []
    for pkg, program, why in UNPACKED[lane]:
        dest = root / "build" / "debian" / pkg
        if not (dest / "VERSION").is_file() or not (dest / program).is_file():
            problems.append(f"{pkg}: Debian's package is not unpacked in {dest} ({why}; the tests run "
                            f"{dest / program}) (fix: run {DEB_INSTALL[lane]})")
    return problems


def check_vm_kernel(boot: Path = Path("/boot")) -> list[str]:
    """The kernel the VM boots (the newest /boot/vmlinuz-*) must be a Debian linux-image package's."""
    kernels = sorted(boot.glob("vmlinuz-*"), key=lambda p: [int(x) if x.isdigit() else x for x in
                                                            p.name.replace("-", ".").split(".")])
    if not kernels:
        return [f"no kernel in {boot} for the VM (fix: run {DEB_INSTALL['vm']}, as root: it installs linux-image-amd64)"]
    owners = deb_owners(str(kernels[-1]))
    if any(o.startswith("linux-image-") for o in owners):
        return []
    return [f"{kernels[-1]}: the newest kernel, which the VM boots, is not from a Debian linux-image package "
            f"(fix: remove it or install its modules' package; the lane needs rdma_rxe from Debian's kernel)"]


def check(lanes: list[str], venvs: dict[str, Path], search_path: str | None = None) -> list[str]:
    """Every problem in the given lanes, one line each."""
    problems: list[str] = []
    for lane in lanes:
        lane_path = search_path or LANE_PATHS[lane](venvs)
        for prog in PROGRAMS[lane]:
            problem = check_program(prog, lane, lane_path, venvs)
            if problem:
                problems.append(problem)
        by_venv: dict[str, list[Module]] = {}
        for m in MODULES[lane]:
            by_venv.setdefault(m.venv, []).append(m)
        for venv_key, mods in by_venv.items():
            problems.extend(check_modules(tuple(mods), venvs[venv_key]))
        problems.extend(check_unpacked(lane))
        if lane == "vm":
            problems.extend(check_vm_kernel())
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lanes", nargs="+", choices=sorted(PROGRAMS), help="which lanes' tools to check")
    parser.add_argument("--venv", default=os.environ.get("BENCHFAB_VENV", ".venv"), help="the host venv (default .venv)")
    parser.add_argument("--vm-venv", default=os.environ.get("BENCHFAB_VM_VENV", ".venv-vm"),
                        help="virtme-ng's venv (default .venv-vm)")
    parser.add_argument("--path", help="search this PATH instead of the lane's own (venv bin + system folders)")
    args = parser.parse_args(argv)
    venvs = {"host": (ROOT / args.venv).absolute(), "vm": (ROOT / args.vm_venv).absolute()}
    problems = check(args.lanes, venvs, args.path)
    for line in problems:
        print(f"check_tools: {line}", file=sys.stderr)
    if problems:
        print(f"check_tools: {len(problems)} problem(s) in lane(s) {', '.join(args.lanes)}: the tests would run "
              "with programs the scripts did not install", file=sys.stderr)
        return 1
    print(f"check_tools: {', '.join(args.lanes)}: every program and module comes from where the scripts put it",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
