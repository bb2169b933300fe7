"""Every ``benchfab ...`` command the docs show works as written (exit 0).

Commands are collected from the code blocks of the documents in ``DOCS`` and from
the comment lines of ``jobs/*.yaml``: a line that starts with ``benchfab`` (or
``.venv/bin/benchfab``), or ``benchfab <word>`` anywhere in a code-block or
YAML comment (e.g. ``runs `benchfab sweep jobs/local.yaml`, draws ...``). A new
command in the README is therefore covered by default: it runs here unless it is
listed in ``EXCLUDED`` with the reason.

How a command runs: as a real process (``python -m benchfab ARGS``, real exit code),
``| less`` and other pipes, and redirections (``> FILE``), cut off, with
- cwd = a temporary directory holding a copy of ``jobs/``: relative paths in the
  docs resolve, and what a command writes (``results/`` of the spec) lands there,
  so ``benchfab runs`` / ``show latest`` / ``report latest`` as written find the
  run that ``benchfab sweep jobs/local.yaml`` made (it runs once, ~20 s, first)
  and nothing touches the repository's own ``results/``;
- HOME = an empty directory, KUBECONFIG and KUBERNETES_SERVICE_HOST unset: no
  cluster, so ``render`` / ``plan`` of Kubernetes specs show their offline fallback.

Synopsis lines (the CLI table: ``benchfab show RUN    print a run's tables``) end at
the first run of two spaces; their placeholders are filled from ``PLACEHOLDERS``
(an unknown placeholder fails the test: add a value or an exclusion) and
``[--option]`` runs with the option.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchfab.spec import load_spec
from tests.helpers import ROOT

DOCS = ["README.md", "docs/KUBERNETES.md", "docs/JSON.md"]
JOBS = sorted((ROOT / "jobs").glob("*.yaml"))

# Commands as written (whitespace collapsed) that this test does not run, and why.
CLUSTER = "needs a Kubernetes cluster; tests/k8s runs it against the fake API server"
EXCLUDED: dict[str, str] = {
    "benchfab preflight SPEC": CLUSTER + " (test_preflight_and_nccl.py)",
    "benchfab preflight jobs/ib-vs-roce.yaml": CLUSTER + " (test_preflight_and_nccl.py)",
    "benchfab preflight jobs/ib-vs-roce.yaml --context C": CLUSTER + " (test_preflight_and_nccl.py)",
    "benchfab preflight jobs/ib-vs-roce.yaml --context prod": CLUSTER + " (test_preflight_and_nccl.py)",
    "benchfab plan jobs/ib-vs-roce.yaml --context prod": CLUSTER + " (test_e2e.py::test_cli_plan_reads_the_cluster)",
    "benchfab render jobs/ib-vs-roce.yaml --profile ib-shared --context C": CLUSTER + " (test_manifests.py renders offline)",
    "benchfab sweep jobs/ib-vs-roce.yaml --context C": CLUSTER + " (test_e2e.py)",
    "benchfab sweep jobs/ib-vs-roce.yaml --context my-cluster": CLUSTER + " (test_e2e.py)",
    "benchfab sweep jobs/shared-vs-sriov.yaml --context my-cluster": CLUSTER + " (test_e2e.py)",
    "benchfab sweep jobs/ib-vs-roce.yaml --context prod -n gpu-bench": CLUSTER + " (test_e2e.py)",
    "benchfab diagnose RUN": "needs a run of many node pairs on a cluster; tests/sim runs it on the simulated "
                             "cluster (test_simcluster_cli.py)",
    "benchfab sweep SPEC --expect FILE": "a whole sweep again; tests/test_expectations.py runs sweep and compare "
                                         "with --expect FILE (met, below, and bad files)",
    # Applying verdicts writes onto a cluster's nodes: test_apply_verdicts.py (fake API server),
    # tests/sim/test_apply_on_sim.py (sweep --apply-verdicts on the simulated cluster).
    **dict.fromkeys(("benchfab verdicts apply RUN", "benchfab verdicts clear [--run RUN] [--node N]",
                     "benchfab verdicts clear [--run RUN] [--node NODE]",
                     "benchfab diagnose RUN --apply [--valid-for 24h]",
                     "benchfab sweep SPEC --apply-verdicts [--valid-for 24h]"),
                    CLUSTER + " (test_apply_verdicts.py, tests/sim/test_apply_on_sim.py)"),
    "benchfab sweep jobs/local-rdma.yaml": "needs an RDMA device; tests/rdma run it in the soft-RoCE VM "
                                           "(tests/rdma/run_in_vm.sh)",
    "benchfab import TOOL FILE --profile NAME": "its run would become `latest` for the commands after it; "
        "tests/test_import.py runs benchfab import on real reports",
    "benchfab import nccl-tests all_reduce.txt --profile ib-shared --fabric ib --source https://example.org/run":
        "an example file name; tests/test_import.py imports the real reports of results/fabrics/sources/",
    "benchfab import perftest ib_write_bw.txt --profile roce-sriov --mode sriov --hosts node-a,node-b":
        "an example file name; tests/test_import.py imports the real reports of results/fabrics/sources/",
}

# Values for the placeholders of synopsis lines, per subcommand ("*": any).
PLACEHOLDERS: dict[str, dict[str, str]] = {
    "SPEC": {"render": "jobs/ib-vs-roce.yaml", "preflight": "jobs/ib-vs-roce.yaml", "*": "jobs/local.yaml"},
    "RUN": {"*": "latest"},
    "RUN_ID": {"*": "{run_id}"},  # the run benchfab sweep jobs/local.yaml made
    "WORKLOAD": {"*": "allreduce"},  # benchfab run WORKLOAD [--print-spec]
    "BASE": {"*": "latest"},  # benchfab compare BASE NEW: the run against itself
    "NEW": {"*": "latest"},
    "NAME": {"init": "local", "*": "good"},  # benchfab init NAME; benchfab baseline set RUN --name NAME
}
PRODUCER = "benchfab sweep jobs/local.yaml"  # runs first; the run later commands read
# Subcommands that write state the commands after them read: each runs again where it is
# written. (`baseline set latest --name good` of the CLI table, run early, named the sweep;
# replayed from the cache at README's "baseline set ... compare good latest" block, it left
# `good` naming a run of another spec, and that block compared noise between two runs.)
STATE_WRITERS = {"baseline"}


# ``benchfab`` then a word: any subcommand, also one the CLI does not have (then the test fails, as it should).
START = re.compile(r"(?:^|(?<=[\s`$(]))(?:[\w.-]*/)*benchfab(?=\s+(?:--debug\s+)?[a-z][\w-]*)")


@dataclass(frozen=True)
class DocCommand:
    written: str  # as the doc writes it (whitespace collapsed, pipes cut off)
    where: str  # file:line
    synopsis: bool  # a line of the CLI table (placeholders, description after two spaces)


def _cut(text: str, synopsis: bool) -> str:
    text = re.split(r"`|\s#|\||;|&&|\s\d?>", text)[0]  # a comment, a pipe, the next command, a redirection
    if synopsis:
        text = re.split(r"\s{2,}", text.strip())[0]
    return " ".join(text.split())


def _commands_in(text: str, where: str, synopsis: bool) -> Iterator[DocCommand]:
    for m in START.finditer(text):
        cmd = _cut(text[m.start():], synopsis)
        cmd = " ".join(["benchfab", *cmd.split()[1:]])  # .venv/bin/benchfab -> benchfab
        yield DocCommand(cmd, where, synopsis)


def documented_commands() -> list[DocCommand]:
    found: list[DocCommand] = []
    for doc in DOCS:
        lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
        fence: str | None = None
        for no, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                fence = None if fence is not None else stripped[3:].strip()
                continue
            if fence is None or fence in ("python", "py") or stripped.startswith("benchfab:"):
                continue  # prose, Python, or a line of benchfab's output ("benchfab: error: ...")
            # A plain block whose line starts with benchfab and has no comment: the CLI synopsis table.
            synopsis = fence == "" and stripped.startswith("benchfab ") and "#" not in stripped
            found.extend(_commands_in(stripped, f"{doc}:{no}", synopsis))
    for path in JOBS:
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "#" in line:
                comment = line[line.index("#") + 1:]
                found.extend(_commands_in(comment, f"jobs/{path.name}:{no}", False))
    return found


COMMANDS = documented_commands()
UNIQUE = list({c.written: c for c in COMMANDS}.values())


def argv_for(cmd: DocCommand, run_id: str) -> list[str]:
    """The arguments to run: placeholders of a synopsis line filled, [--opt] brackets removed."""
    words = shlex.split(cmd.written)[1:]
    sub = next((w for w in words if not w.startswith("-")), "")
    out = []
    for w in words:
        w = w.strip("[]")
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", w):
            values = PLACEHOLDERS.get(w)
            if values is None:
                pytest.fail(f"{cmd.where}: {cmd.written!r}: no example value for placeholder {w}; add one to "
                            "PLACEHOLDERS in tests/test_readme_commands.py, or exclude the command with a reason")
            w = values.get(sub, values["*"]).format(run_id=run_id)
        out.append(w)
    return out


class Sandbox:
    """cwd with a copy of jobs/, an empty HOME and no Kubernetes configuration."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(ROOT / "jobs", root / "jobs")
        (root / "home").mkdir()
        self.env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
        self.env.update(HOME=str(root / "home"), MPLCONFIGDIR=str(root / "mpl"), PYTHONPATH=str(ROOT))
        self.done: dict[tuple[str, ...], subprocess.CompletedProcess[str]] = {}
        self.run_id = ""

    def run(self, argv: list[str], timeout: float = 300, again: bool = False) -> subprocess.CompletedProcess[str]:
        key = tuple(argv)
        if again or key not in self.done:
            self.done[key] = subprocess.run([sys.executable, "-m", "benchfab", *argv], cwd=self.root, env=self.env,
                                            capture_output=True, text=True, timeout=timeout)
        return self.done[key]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    box = Sandbox(tmp_path_factory.mktemp("readme"))
    proc = box.run(shlex.split(PRODUCER)[1:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r"^# run (\S+):", proc.stdout, re.M)
    assert m, proc.stdout[-2000:]
    box.run_id = m.group(1)
    return box


def test_the_docs_commands_are_found() -> None:
    """The extraction itself: a regex that finds nothing would pass every doc."""
    written = {c.written for c in COMMANDS}
    assert {PRODUCER, "benchfab render jobs/ib-vs-roce.yaml --nodes a,b", "benchfab render jobs/ib-vs-roce.yaml",
            "benchfab show RUN", "benchfab devices [--gids]", "benchfab sweep --resume RUN_ID"} <= written, written
    assert not [c for c in COMMANDS if "|" in c.written or c.written.endswith("less")]  # pipes cut off


def test_every_exclusion_is_still_documented() -> None:
    stale = set(EXCLUDED) - {c.written for c in COMMANDS}
    assert not stale, f"EXCLUDED names commands the docs no longer show: {sorted(stale)}"


@pytest.mark.parametrize("cmd", UNIQUE, ids=[c.written for c in UNIQUE])
def test_documented_command_works_as_written(cmd: DocCommand, sandbox: Sandbox) -> None:
    if cmd.written in EXCLUDED:
        pytest.skip(f"{cmd.where}: {EXCLUDED[cmd.written]}")
    argv = argv_for(cmd, sandbox.run_id)
    proc = sandbox.run(argv, again=argv[0] in STATE_WRITERS)
    assert proc.returncode == 0, (f"{cmd.where}: `{cmd.written}` (ran: benchfab {' '.join(argv)}) exited "
                                  f"{proc.returncode}:\n{proc.stderr[-3000:]}")
    assert "Traceback" not in proc.stderr
    if argv[0] in ("render", "plan") and "--nodes" not in argv and load_spec(sandbox.root / argv[1]).backend == "kubernetes":
        # No kubeconfig in the sandbox: a Kubernetes spec is placed offline, and the output says so.
        note = "no Kubernetes configuration found"
        assert note in (proc.stderr if argv[0] == "render" else proc.stdout), proc.stdout[:2000] + proc.stderr


def test_report_writes_the_files_the_readme_lists(sandbox: Sandbox) -> None:
    """README: busbw.png, time.png, p2p_bw.png, p2p_lat.png, summary.md, report.html (jobs/local.yaml has tcp p2p tests)."""
    proc = sandbox.run(["report", "latest"])
    assert proc.returncode == 0, proc.stderr
    written = {Path(line).name for line in proc.stdout.split()}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("busbw.png", "time.png", "p2p_bw.png", "p2p_lat.png", "summary.md", "report.html"):
        assert name in written and f"`{name}`" in readme, name
