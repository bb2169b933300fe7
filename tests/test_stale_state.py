"""Stale state and specs that used to be misread (issue #22 items 7 and 8): one status
everywhere for a run whose controller was killed, baselines that point only at complete runs
of their own results directory, YAML merge keys as YAML 1.1 defines them, the right fix for a
Kubernetes test without a placement, and sizes no node can hold.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchfab.errors import SpecError
from benchfab.spec import load_spec_text
from tests.helpers import ROOT

EXAMPLE = ROOT / "results" / "example"

HOLD = """\
import sys, time
from pathlib import Path
from benchfab.runlock import RunLock
RunLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(120)
"""


def _killed_mid_sweep(root: Path, run_id: str) -> Path:
    """The example run as a sweep killed with -9 leaves it: run.json says running, and the
    controller's flock on .owner died with it."""
    run = root / run_id
    shutil.copytree(EXAMPLE, run, ignore=shutil.ignore_patterns("report"))
    meta = json.loads((run / "run.json").read_text())
    meta.update(run_id=run_id, status="running", ended=None)
    (run / "run.json").write_text(json.dumps(meta))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    return run


def test_a_killed_sweep_is_abandoned_everywhere_and_no_baseline_without_force(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "results"
    run = _killed_mid_sweep(root, "20261201-000001-killed")
    listed = cli("runs", "--results", str(root))
    assert f"{run.name:<48} abandoned" in listed.stdout, listed.stdout
    shown = cli("show", run.name, "--results", str(root), "-o", "json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "abandoned"  # it said "running"
    refused = cli("baseline", "set", run.name, "--name", "good", "--results", str(root))
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"benchfab: error: run {run.name} is abandoned, not complete (fix: choose a "
                                      "complete run (benchfab runs), finish it with benchfab sweep --resume "
                                      f"{run.name}, or pass --force to name it anyway)")
    assert not (root / "baselines.json").exists()
    forced = cli("baseline", "set", run.name, "--name", "good", "--results", str(root), "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((root / "baselines.json").read_text())["baselines"]["good"]["run"] == run.name


def test_a_baseline_never_points_at_a_run_of_another_directory(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    for where in (root, elsewhere):  # the same run id in both: recording the basename would pick the wrong one
        shutil.copytree(EXAMPLE, where / "nightly", ignore=shutil.ignore_patterns("report"))
    proc = cli("baseline", "set", "../elsewhere/nightly", "--name", "good", "--results", str(root), cwd=root)
    assert proc.returncode == 2
    assert "benchfab: error: run ../elsewhere/nightly is not in the results directory" in proc.stderr
    assert "--results ../elsewhere" in proc.stderr
    assert not (root / "baselines.json").exists()
    ok = cli("baseline", "set", "nightly", "--name", "good", "--results", str(elsewhere))
    assert ok.returncode == 0, ok.stderr


def test_merge_keys_override_as_yaml_1_1_says() -> None:
    text = """\
defaults: &common {iterations: 20, warmup: 2}
tests:
  - <<: *common
    name: a
    iterations: 5          # the mapping's own key overrides the merged one (it was a "duplicate key")
  - name: b
    <<: [{iterations: 3}, *common]  # of several merged mappings, the first wins
  - {name: c, <<: *common}
"""
    a, b, c = load_spec_text(text, source="m.yaml").resolved_tests()
    assert (a.iterations, a.warmup) == (5, 2)
    assert (b.iterations, b.warmup) == (3, 2)
    assert (c.iterations, c.warmup) == (20, 2)
    with pytest.raises(SpecError, match=r"m\.yaml:3: tests\[0\]\.name: duplicate key 'name'"):
        load_spec_text("tests:\n  - name: a\n    name: b\n", source="m.yaml")


def test_a_kubernetes_test_without_placement_gets_the_fix_that_works(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("name: k\nbackend: kubernetes\nimage: x\ntests:\n  - {name: ar, workload: allreduce, ranks: 2}\n")
    for command in (["validate", str(spec)], ["plan", str(spec), "--nodes", "4"]):
        proc = cli(*command)
        assert proc.returncode == 2
        (line,) = proc.stderr.strip().splitlines()
        assert "a kubernetes test needs a placement" in line, line
        assert "add e.g. placement: {pattern: all-pairs}" in line and "--nodes" not in line, line  # it said "pass more nodes"


@pytest.mark.parametrize("sizes, shown", [("[8, 100000000000000000000000000000000000000]", "sizes[1]"),
                                          ("{min: 8, max: 2T}", "sizes.max")])
def test_sizes_no_node_can_hold_are_refused(cli, write_spec, sizes: str, shown: str) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec(f"tests:\n  - name: ar\n    workload: allreduce\n    sizes: {sizes}\n")
    proc = cli("validate", str(spec))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert f"tests[0].{shown}: size" in line and "more than one node can hold" in line, line
    assert "(fix: use sizes up to 1T" in line
    assert cli("validate", str(write_spec("tests:\n  - {name: ar, workload: allreduce, sizes: [8, 1T]}\n"))).returncode == 0
