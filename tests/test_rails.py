"""Per-rail pairwise placement (``placement: {pattern: all-pairs, rails: R}``) and the
second pass's per-rail subjects: rounds, slots, ids, devices, and the spec's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import pytest
import yaml

from benchfab.diagnosis import Diagnosis, verdict_table
from benchfab.errors import SpecError
from benchfab.faults import Finding
from benchfab.placement import NodeInfo, all_pairs
from benchfab.planner import plan
from benchfab.rails import node_of, port_name, rail_retest_rounds, split_port
from benchfab.retests import classify, rail_verdicts
from benchfab.spec import SecondPassRules, load_spec_text
from benchfab.triage import Judged, find_suspects

RAILS_SPEC = """\
backend: kubernetes
image: x/y:1
profiles:
  ib:
    fabric: ib
    mode: sriov
    rails: [{{resource: nvidia.com/rail0_vf, network: rail0, hca: mlx5_0}},
            {{resource: nvidia.com/rail1_vf, network: rail1, hca: mlx5_3}},
            {{resource: nvidia.com/rail2_vf, network: rail2, hca: mlx5_4}},
            {{resource: nvidia.com/rail3_vf, network: rail3, hca: mlx5_5}}]
defaults: {{iterations: 20, warmup: 5}}
tests:
  - {{name: bw, workload: {workload}, sizes: [1M], placement: {{pattern: {pattern}, rails: {rails}}}}}
"""


def _spec(pattern: str = "all-pairs", rails: int = 4, workload: str = "rdma_write_bw") -> str:
    return RAILS_SPEC.format(pattern=pattern, rails=rails, workload=workload)


def _nodes(n: int, slots: int = 4) -> list[NodeInfo]:
    return [NodeInfo(f"gpu-{i:02d}", slots={"ib": slots}) for i in range(n)]


@pytest.mark.parametrize("n,rails", [(4, 2), (8, 4), (5, 3)])
def test_every_pair_on_every_rail_in_the_rounds_of_the_pattern_alone(n: int, rails: int) -> None:
    """All pairs x all rails, each once; as many rounds as all-pairs without rails; no (node,
    slot) twice in a round; each test's two ranks on the same rail, whose slot it is."""
    placed = plan(load_spec_text(_spec(rails=rails)), _nodes(n, slots=rails))
    assert len(placed.rounds) == len(all_pairs([f"x{i}" for i in range(n)]))
    seen = Counter((tuple(sorted(t.hosts)), t.rail) for t in placed.tests)
    assert set(seen.values()) == {1}
    assert len(seen) == n * (n - 1) // 2 * rails
    for rnd in placed.rounds:
        members = [m for t in rnd.tests for m in t.members]
        assert len(members) == len(set(members))
        for t in rnd.tests:
            assert {slot for _, slot in t.members} == {t.rail}
            assert t.test_id.endswith(f"-rail{t.rail}")


def test_each_test_names_its_rails_device_in_plan_json(tmp_path: Path) -> None:
    spec = tmp_path / "rails.yaml"
    spec.write_text(_spec(rails=4))
    proc = subprocess.run([sys.executable, "-m", "benchfab", "plan", str(spec), "--nodes", "4", "-o", "json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    tests = json.loads(proc.stdout)["tests"]
    assert len(tests) == 6 * 4
    assert {(t["rail"], t["device"]) for t in tests} == {(0, "mlx5_0"), (1, "mlx5_3"), (2, "mlx5_4"), (3, "mlx5_5")}
    assert len({t["round"] for t in tests}) == 3


def test_ring_and_k_groups_take_rails_too() -> None:
    ring = plan(load_spec_text(_spec("ring", 2)), _nodes(4, 2))
    assert len(ring.rounds) == 2 and len(ring.tests) == 4 * 2
    groups = plan(load_spec_text(_spec("k-groups", 2).replace("rails: 2", "rails: 2, k: 2")), _nodes(4, 2))
    assert len(groups.rounds) == 1 and len(groups.tests) == 2 * 2


def test_a_node_with_fewer_nics_than_rails_is_left_out_with_why() -> None:
    nodes = [*_nodes(3, slots=4), NodeInfo("gpu-short", slots={"ib": 2})]
    placed = plan(load_spec_text(_spec(rails=4)), nodes)
    assert all("gpu-short" not in t.hosts for t in placed.tests)
    assert any(node == "gpu-short" and "needs 4 per node" in why for node, why in placed.left_out)


@pytest.mark.parametrize("text,message", [
    (_spec(rails=4, workload="allreduce"), "rails: 4 with pattern all-pairs measures one pair per rail, "
                                            "allreduce is a collective"),
    (_spec(rails=5), "rails: 5 but profile 'ib' lists 4 rail(s)"),
    (_spec("local", 2), "rails: 2 with pattern local: one host's ranks have no rails to measure apart"),
])
def test_rails_the_spec_cannot_hold_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    assert message in str(err.value)


def test_the_command_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "rails.yaml"
    spec.write_text(_spec(rails=6))
    proc = subprocess.run([sys.executable, "-m", "benchfab", "plan", str(spec), "--nodes", "4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "rails: 6 but profile 'ib' lists 4 rail(s)" in proc.stderr and "Traceback" not in proc.stderr


def test_port_names_and_per_rail_retests() -> None:
    assert split_port(port_name("gpu-07", 5)) == ("gpu-07", 5) and split_port("gpu-07") == ("gpu-07", None)
    assert node_of("gpu-07#5") == "gpu-07"
    good = [port_name(f"g{i}", r) for i in range(3) for r in range(2)]
    rounds = rail_retest_rounds([("bad#1", "bad#1"), ("a#0", "b#0")], good)
    for rnd in rounds:
        for group in rnd:
            assert len({split_port(x)[1] for x in group}) == 1  # never across rails
    tested = {x for rnd in rounds for g in rnd for x in g}
    assert {"bad#1", "a#0", "b#0"} <= tested
    assert {split_port(x)[1] for x in tested} == {0, 1}


# -- the second pass on ports: NIC, node and link verdicts ----------------------------------------

NODES8 = [f"gpu-{i:02d}" for i in range(8)]


def _judged(a: str, b: str, rail: int, *, slow: bool = False, lossy: bool = False, name: str = "bw") -> Judged:
    perf = 0.25 if slow else 1.0
    return Judged(f"000-{name}-{a}+{b}-rail{rail}", name.split("-retest")[0], (port_name(a, rail), port_name(b, rail)),
                  "ok", "", perf, None, 0.03 if lossy else 0.0, slow, lossy, perf, "ib", (f"mlx5_{rail}", f"mlx5_{rail}"),
                  f"mlx5_{rail}")


def _rail_verdicts(bad: Callable[[str, str, int], bool], lossy: bool = False) -> list[Finding]:
    """A 4-rail all-pairs pass on 8 nodes where ``bad(a, b, rail)`` tests are slow (or lossy),
    its retests judged by the same rule, and the verdicts named per rail."""
    passed = [_judged(a, b, r, slow=bad(a, b, r) and not lossy, lossy=bad(a, b, r) and lossy)
              for a, b in combinations(NODES8, 2) for r in range(4)]
    suspects = find_suspects(passed, NODES8, SecondPassRules())
    assert all(split_port(g)[1] is not None for g in suspects.good)
    retests = []
    for k, rnd in enumerate(rail_retest_rounds(list(suspects.links) + [(s, s) for s in suspects.retested],
                                               list(suspects.good))):
        for a, b in rnd:
            (na, ra), (nb, _) = split_port(a), split_port(b)
            retests.append(_judged(na, nb, int(ra or 0), slow=bad(na, nb, int(ra or 0)) and not lossy,
                                   lossy=bad(na, nb, int(ra or 0)) and lossy, name=f"bw-retest{k + 1}"))
    found = classify(suspects, retests, passed, SecondPassRules())
    return rail_verdicts(found.verdicts, passed + retests)


def test_a_bad_nic_is_named_by_node_rail_and_device_and_labelled_not_cordoned() -> None:
    found = _rail_verdicts(lambda a, b, r: r == 2 and "gpu-05" in (a, b))
    assert [(f.kind, f.nodes, f.rail, f.device) for f in found] == [("bad-nic", ("gpu-05",), 2, "mlx5_2")]
    nic = found[0]
    assert nic.where == "gpu-05 rail 2 mlx5_2"
    assert nic.actions()[0] == "kubectl label node gpu-05 benchfab.io/verdict=bad-nic benchfab.io/bad-rails=2 --overwrite"
    assert not any(a.startswith("kubectl cordon") for a in nic.actions())
    stored = nic.to_json()
    assert (stored["subject"], stored["rail"], stored["device"]) == ("nic", 2, "mlx5_2")
    assert Finding.from_json(stored) == nic
    table = verdict_table(Diagnosis("r", {}, found))
    assert "bad-nic" in table and "gpu-05 rail 2 mlx5_2" in table


def test_a_lossy_nic_is_lossy_nic() -> None:
    found = _rail_verdicts(lambda a, b, r: r == 1 and "gpu-03" in (a, b), lossy=True)
    assert [(f.kind, f.nodes, f.rail) for f in found] == [("lossy-nic", ("gpu-03",), 1)]


def test_a_node_bad_on_every_rail_is_a_bad_node_and_is_cordoned() -> None:
    found = _rail_verdicts(lambda a, b, r: "gpu-06" in (a, b))
    assert [(f.kind, f.nodes, f.rail) for f in found] == [("bad-node", ("gpu-06",), None)]
    assert found[0].why.startswith("bad on every rail it was tested on (4: 0, 1, 2, 3)")
    assert found[0].actions()[0] == "kubectl cordon gpu-06"


def test_a_bad_cable_is_one_link_on_one_rail_and_cordons_nothing() -> None:
    found = _rail_verdicts(lambda a, b, r: r == 3 and {a, b} == {"gpu-01", "gpu-04"})
    assert [(f.kind, f.nodes, f.rail) for f in found] == [("bad-link", ("gpu-01", "gpu-04"), 3)]
    assert found[0].where == "gpu-01 - gpu-04 rail 3"
    assert not any(a.startswith("kubectl") for a in found[0].actions())


def test_a_clean_multi_rail_pass_has_no_verdict() -> None:
    assert _rail_verdicts(lambda a, b, r: False) == []


def test_evidence_lines_are_printed_under_their_verdict() -> None:
    f = Finding("bad-nic", ("gpu-07",), "slow", (), ("mlx5_5",), "ib", 5, ("port_rcv_errors +1,204 on gpu-07 mlx5_5",))
    table = verdict_table(Diagnosis("r", {}, [f]))
    assert "evidence: port_rcv_errors +1,204 on gpu-07 mlx5_5" in table
    assert Finding.from_json(f.to_json()) == f


def test_render_gives_each_rail_its_own_pod_resource_and_network(tmp_path: Path) -> None:
    """Slot r of a node is rail r: its pod requests rail r's VF and attaches rail r's network."""
    spec = tmp_path / "rails.yaml"
    spec.write_text(_spec(rails=2))
    proc = subprocess.run([sys.executable, "-m", "benchfab", "render", str(spec), "--nodes", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pods = [d for d in yaml.safe_load_all(proc.stdout) if d and d.get("kind") == "Pod"]
    assert len(pods) == 2 * 2
    for pod in pods:
        rail = int(pod["metadata"]["name"].rsplit("-", 1)[1])
        assert pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == f"rail{rail}"
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits[f"nvidia.com/rail{rail}_vf"] == "1" and f"nvidia.com/rail{1 - rail}_vf" not in limits
