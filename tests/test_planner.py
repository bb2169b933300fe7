"""Planner: expansion of spec entries into tests, ids, rounds and estimates."""

from __future__ import annotations

import pytest
import yaml

from benchfab.costs import POD_PROFILE_START_S, local_costs
from benchfab.errors import PlacementError, SpecError
from benchfab.placement import NodeInfo
from benchfab.planner import local_nodes, plan
from benchfab.spec import SweepSpec, load_spec_text
from benchfab.units import format_duration
from benchfab.workloads.collectives import estimate_op_seconds

SPEC = """\
name: p
profiles:
  lo-a: {fabric: loopback}
  lo-b: {fabric: tcp}
defaults: {iterations: 10, warmup: 2}
tests:
  - name: ar
    sizes: {min: 1K, max: 1M, factor: 32}
    dtypes: [float32, bfloat16]
    ops: [sum, max]
  - name: bc
    workload: broadcast
    profiles: lo-a
    sizes: [8]
    repeat: 2
    duration: 1s
"""


def test_expansion_ids_and_rounds() -> None:
    placed = plan(load_spec_text(SPEC), local_nodes(2))
    ids = [t.test_id for t in placed.tests]
    assert ids[:4] == ["000-ar-lo-a-float32-sum", "000-ar-lo-a-float32-max", "000-ar-lo-a-bfloat16-sum", "000-ar-lo-a-bfloat16-max"]
    assert len(ids) == 2 * 2 * 2 + 2 and len(set(ids)) == len(ids)
    assert ids[-2:] == ["001-bc-rep0", "001-bc-rep1"]
    # local backend: one test per round, in spec order
    assert [len(r.tests) for r in placed.rounds] == [1] * len(ids)
    assert [r.index for r in placed.rounds] == list(range(len(ids)))
    ar = placed.tests[0]
    assert ar.spec.sizes == [1024, 32768, 1048576] and ar.units == 6
    assert ar.task().labels == {"profile": "lo-a", "fabric": "loopback", "mode": "none"}
    assert {t.profile.fabric for t in placed.tests} == {"loopback", "tcp"}


def test_ids_are_stable_between_plans() -> None:
    a = [t.test_id for t in plan(load_spec_text(SPEC), local_nodes(2)).tests]
    b = [t.test_id for t in plan(load_spec_text(SPEC), local_nodes(8)).tests]
    assert a == b


def test_estimate_grows_with_work_and_sets_timeout() -> None:
    small = plan(load_spec_text("tests:\n  - {sizes: [8], iterations: 10}\n"), local_nodes(2))
    big = plan(load_spec_text("tests:\n  - {sizes: [8, 64M], iterations: 100}\n"), local_nodes(2))
    assert big.estimate_s > small.estimate_s > 0
    t = small.tests[0]
    assert t.timeout_s == pytest.approx(60 + 4 * t.estimate_s)
    fixed = plan(load_spec_text("tests:\n  - {sizes: [8], timeout: 7s}\n"), local_nodes(2))
    assert fixed.tests[0].timeout_s == 7.0
    timed = plan(load_spec_text("tests:\n  - {sizes: [8, 16], duration: 2s}\n"), local_nodes(2))
    assert timed.estimate_s >= 2 * 2 * 2.0  # sizes x in-place x duration


def test_op_estimate_accounts_for_oversubscription() -> None:
    two_cores = local_costs(2)
    assert estimate_op_seconds("allreduce", 1 << 20, 8, two_cores) > estimate_op_seconds("allreduce", 1 << 20, 2, two_cores)


def test_local_pattern_is_refused_on_a_cluster_and_local_needs_one_node() -> None:
    text = "backend: kubernetes\nimage: x/y:1\ntests:\n  - {ranks: 2}\n"
    from benchfab.backends.registry import load_spec_text as load_with_backends

    with pytest.raises(SpecError, match="a kubernetes test needs a placement"):  # validate says so first
        load_with_backends(text)
    spec = SweepSpec.model_validate(yaml.safe_load(text))  # the models alone, without load_spec's checks
    with pytest.raises(PlacementError, match="is for the local backend"):
        plan(spec, local_nodes())
    with pytest.raises(PlacementError, match="one node"):
        plan(load_spec_text(SPEC), [NodeInfo("a"), NodeInfo("b")])


def test_cli_plan_prints_tests_and_estimate(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    proc = cli("plan", str(write_spec(SPEC)))
    assert proc.returncode == 0, proc.stderr
    assert "10 test(s) in 10 round(s), estimated" in proc.stdout
    assert "000-ar-lo-a-float32-sum" in proc.stdout and "1K..1M (3)" in proc.stdout


FABRIC_SPEC = """\
backend: kubernetes
image: x/y:1
profiles:
  ib: {fabric: ib, mode: shared, resource: rdma/ib}
  slow: {fabric: ib, mode: shared, resource: rdma/ib, line_rate: 1Gbit}
defaults: {iterations: 20, warmup: 5, timeout: 2m}
tests:
  - {name: big, workload: allreduce, sizes: {min: 1K, max: 8G, factor: 2}, dtypes: bfloat16,
     placement: {pattern: group, nodes: 8, gpus_per_node: 8}}
"""


def test_a_kubernetes_estimate_is_the_profiles_fabric_not_this_hosts_cpu() -> None:
    """64 ranks of all_reduce up to 8 GiB: about a minute on a 400 Gbit/s fabric, where the local
    CPU model (gloo at 1.5 GB/s) said 23 minutes; the same test at a profile's 1 Gbit/s is slower
    than its 2-minute timeout, which the plan says with the fix."""
    spec = load_spec_text(FABRIC_SPEC)
    nodes = [NodeInfo(f"n{i}", slots={"ib": 8, "slow": 8}) for i in range(8)]
    placed = plan(spec, nodes)
    by_profile = {t.profile_name: t for t in placed.tests}
    fast, slow = by_profile["ib"], by_profile["slow"]
    assert 20 < fast.estimate_s < 120
    local_model = plan(load_spec_text(FABRIC_SPEC.replace("backend: kubernetes\nimage: x/y:1\n", "")
                                      .replace("placement: {pattern: group, nodes: 8, gpus_per_node: 8}", "ranks: 64")),
                       local_nodes(1 << 20))
    assert local_model.tests[0].estimate_s > 10 * fast.estimate_s
    assert slow.estimate_s > 100 * fast.estimate_s  # 400 x slower bytes, the same start-up
    notes = [n for n in placed.notes if "over its timeout" in n]
    assert notes == [f"big: estimated {format_duration(slow.estimate_s)}, over its timeout 2m00s (fix: raise its "
                     f"timeout: to at least {format_duration(2 * slow.estimate_s)}, or cut its sizes or iterations)"]
    # Each profile's first round also pays its pods' start-up.
    assert [r.overhead_s for r in placed.rounds] == [POD_PROFILE_START_S, POD_PROFILE_START_S]


def test_cli_plan_warns_when_a_test_outlasts_its_timeout(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    proc = cli("plan", str(write_spec(FABRIC_SPEC)), "--nodes", "8")
    assert proc.returncode == 0, proc.stderr
    (note,) = [line for line in proc.stdout.splitlines() if "over its timeout" in line]
    assert note.startswith("# note: big: estimated ") and "(fix: raise its timeout: to at least" in note
