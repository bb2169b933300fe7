"""NCCL settings as a test axis (spec env: / sweep_env:), NCCL's log checked for their effect,
and the rest of the transport truth (GID index, a Socket-only log, a collective rank's NIC).
The NCCL logs are under tests/data/nccl/: written-*.log follow NCCL's line formats (their
headers say so), the others are real logs from public issues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchfab.backends.registry import load_spec_text
from benchfab.compare.keys import key_id, load_keys
from benchfab.errors import SpecError
from benchfab.fabrics import fabric_of
from benchfab.nccllog import parse_nccl_log, setting_check, settings_env, summary_columns
from benchfab.pcitopo import hca_names, nearest_hca, read_topology
from benchfab.records import MEASUREMENT_KEY, env_label
from benchfab.spec import Profile
from benchfab.spec.variants import env_variants
from benchfab.store import load_run
from tests.test_pcitopo import DATA as TOPOLOGY
from tests.test_pcitopo import build_sysfs

NCCL = Path(__file__).parent / "data" / "nccl"


def parsed(name: str):  # type: ignore[no-untyped-def]
    return parse_nccl_log((NCCL / name).read_text().splitlines())


def test_tuning_lines_gid_index_and_both_line_forms() -> None:
    new = parsed("written-roce-gid-tuning.log")
    assert new.tuned_algorithms == ["ring"] and new.tuned_protocols == ["simple", "ll"]
    assert new.gid_index == 3 and new.network == "IB" and new.hcas == ["mlx5_2"]
    cols = summary_columns(new)
    assert cols["nccl_gid_index"] == 3 and cols["nccl_protocols"] == "simple,ll" and cols["nccl_algorithms"] == "ring"
    old = parsed("written-old-tuning-socket.log")  # "N Bytes -> Algo 0 proto 0": tree, LL
    assert old.tuned_algorithms == ["tree"] and old.tuned_protocols == ["ll"]
    assert parsed("written-old-qp-gid.log").gid_index == 1  # NCCL 2.12's "NET/IB: Dev 0 Port 1 qpn ..." form


@pytest.mark.parametrize("name", ["written-old-tuning-socket.log", "nccl-226-socket-rings.log"])
def test_socket_channels_without_a_using_network_line_are_a_fallback(name: str) -> None:
    t = parsed(name)
    assert not any("Using network" in line for line in (NCCL / name).read_text().splitlines() if "NCCL INFO" in line)
    assert t.network == "Socket" and summary_columns(t)["nccl_network"] == "Socket"
    roce = Profile(fabric="roce")
    assert "fell back to sockets" in (fabric_of(roce).fallback_problem(roce, t.to_dict(), "host") or "")
    # an IB log without that line is not made a Socket one
    assert parsed("nccl-392-ib-without-gdr.log").network != "Socket"


@pytest.mark.parametrize(("env", "log", "status", "words"), [
    ({"NCCL_ALGO": "Tree"}, "written-roce-gid-tuning.log", "changed", "NCCL_ALGO=Tree, NCCL used ring"),
    ({"NCCL_ALGO": "ring,tree"}, "written-roce-gid-tuning.log", "honoured", ""),
    ({"NCCL_PROTO": "^LL"}, "written-roce-gid-tuning.log", "changed", "NCCL_PROTO=^LL, NCCL used ll"),
    ({"NCCL_PROTO": "LL"}, "written-old-tuning-socket.log", "honoured", ""),
    ({"NCCL_IB_GID_INDEX": "3"}, "written-roce-gid-tuning.log", "honoured", ""),
    ({"NCCL_IB_GID_INDEX": "5"}, "written-roce-gid-tuning.log", "changed", "NCCL used GID 3"),
    ({"NCCL_ALGO": "Tree"}, "nccl-392-ib-without-gdr.log", "not checked", "NCCL_ALGO"),  # no TUNING lines
    ({"NCCL_ALGO": "allreduce:tree;allgather:ring"}, "written-roce-gid-tuning.log", "not checked", "NCCL_ALGO"),
    ({"NCCL_MIN_NCHANNELS": "4"}, "written-roce-gid-tuning.log", "not checked", "these settings"),
])
def test_setting_check_reads_what_nccl_chose(env: dict[str, str], log: str, status: str, words: str) -> None:
    got, why = setting_check(env, parsed(log))
    assert got == status and words in why


def test_setting_check_without_nccl_and_without_settings() -> None:
    assert setting_check({"NCCL_ALGO": "Ring"}, None) == ("not checked", "no NCCL log (gloo, or a rank that did not "
                                                                         "start NCCL)")
    assert setting_check({}, parsed("written-roce-gid-tuning.log")) == (None, "")


def test_tuning_lines_are_asked_for_only_where_a_setting_needs_them() -> None:
    assert settings_env({"NCCL_ALGO": "Ring"})["NCCL_DEBUG_SUBSYS"] == "INIT,NET,ENV,TUNING"
    assert "NCCL_DEBUG_SUBSYS" not in settings_env({"NCCL_MIN_NCHANNELS": "4"})
    assert settings_env({"NCCL_PROTO": "LL", "NCCL_DEBUG_SUBSYS": "ALL"})["NCCL_DEBUG_SUBSYS"] == "ALL"


@pytest.mark.parametrize(("text", "words"), [
    ("tests: [{env: {PATH: /x}}]", "PATH is not a setting a test may change"),
    ("tests: [{env: {LD_PRELOAD: /x.so}}]", "LD_PRELOAD is not a setting a test may change"),
    ("tests: [{env: {NCCL_ALGO: true}}]", "NCCL_ALGO: a value is text or a whole number, not true"),
    ("tests: [{env: {NCCL_ALGO: [Ring]}}]", "a value is text or a whole number"),
    ("tests: [{env: {NCCL_DEBUG_FILE: /tmp/x}}]", "NCCL_DEBUG_FILE would move NCCL's log"),
    ("tests: [{sweep_env: {NCCL_ALGO: []}}]", "sweep_env.NCCL_ALGO lists no value"),
    ("tests: [{sweep_env: {NCCL_ALGO: [Ring, Ring]}}]", "sweep_env.NCCL_ALGO repeats 'Ring'"),
    ("tests: [{sweep_env: {NCCL_MIN_NCHANNELS: [1, 2, 3, 4, 5, 6, 7, 8, 9], NCCL_PROTO: [a, b, c, d, e, f, g, h]}}]",
     "expands into 72 variants; at most 64"),
])
def test_bad_settings_are_refused_in_one_line(text: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, source="s.yaml")
    assert words in str(info.value) and info.value.hint


def test_sweep_env_expands_into_named_variants_over_the_defaults_env() -> None:
    spec = load_spec_text("""
defaults: {env: {NCCL_MIN_NCHANNELS: 4}}
tests:
  - {name: ar, env: {NCCL_IB_QPS_PER_CONNECTION: 2}, sweep_env: {NCCL_ALGO: [Ring, Tree], NCCL_PROTO: [LL, Simple]}}
  - {workload: all_gather, env: {NCCL_ALGO: "Ring; touch /tmp/x"}}
""")
    tests = spec.resolved_tests()
    assert [t.name for t in tests] == ["ar.ALGO-Ring.PROTO-LL", "ar.ALGO-Ring.PROTO-Simple", "ar.ALGO-Tree.PROTO-LL",
                                       "ar.ALGO-Tree.PROTO-Simple", "all_gather-1"]
    assert tests[2].env == {"NCCL_MIN_NCHANNELS": "4", "NCCL_IB_QPS_PER_CONNECTION": "2", "NCCL_ALGO": "Tree",
                            "NCCL_PROTO": "LL"}
    assert tests[4].env["NCCL_ALGO"] == "Ring; touch /tmp/x"  # a value, never a command
    assert env_label(tests[2].env) == "NCCL_ALGO=Tree NCCL_IB_QPS_PER_CONNECTION=2 NCCL_MIN_NCHANNELS=4 NCCL_PROTO=LL"
    # values a name cannot hold apart: numbered variants, still distinct
    assert [n for n, _ in env_variants("t", {"NCCL_ALGO": ["Ring,Tree", "Ring_Tree"]})] == ["t.v0", "t.v1"]


def test_the_setting_is_part_of_the_key_and_its_id() -> None:
    assert "env" in MEASUREMENT_KEY
    base = {"workload": "allreduce", "profile": "p", "fabric": "ib", "mode": "shared", "memory": "cuda",
            "transport": "nccl", "engine": "torch", "ranks": 2, "nodes": 2, "hosts": "a,b", "dtype": "float32",
            "redop": "sum", "in_place": False, "size_bytes": 8 << 20}
    ids = {key_id(tuple({**base, "env": env}[k] for k in MEASUREMENT_KEY))
           for env in ("", "NCCL_ALGO=Ring", "NCCL_ALGO=Tree")}
    assert len(ids) == 3
    assert key_id(tuple({**base, "env": ""}[k] for k in MEASUREMENT_KEY)).endswith("/out/a,b")  # ids before settings


def test_a_collective_rank_pairs_with_the_nic_nearest_its_gpu(tmp_path: Path) -> None:
    layout = yaml.safe_load((TOPOLOGY / "nccl-933-8gpu-9nic.yaml").read_text())
    build_sysfs(tmp_path, layout)
    topo = read_topology(tmp_path)
    pci = [g.address for g in topo.gpus]
    present = [h.name for h in topo.hcas]
    rails = ["mlx5_1", "mlx5_2", "mlx5_3", "mlx5_4"]  # a pod's rails, in an order unlike its GPUs'
    # local rank 0 on GPU 0: rail 0 by index is mlx5_1, SYS away; the nearest is mlx5_2 (PIX)
    assert nearest_hca(topo, pci[0], rails, local_rank=0) == ("mlx5_2", "PIX")
    assert nearest_hca(topo, pci[5], rails, local_rank=1) == ("mlx5_3", "PIX")
    # nothing near: the rail by index stays (the pairing then records SYS)
    assert nearest_hca(topo, pci[7], ["mlx5_2", "mlx5_4"], local_rank=1) == ("mlx5_4", "SYS")
    pairing = topo.pairing(7, "mlx5_4")
    assert pairing is not None and pairing["sys_distance"] is True
    assert nearest_hca(topo, None, rails, local_rank=2) == ("mlx5_3", None)  # no address: by index
    assert hca_names("=mlx5_2:1,mlx5_3:1", present) == ["mlx5_2", "mlx5_3"]
    assert hca_names("^mlx5_0", present) == [h for h in present if h != "mlx5_0"]
    assert hca_names("mlx5", present) == present and hca_names(None, present) == present


@pytest.mark.slow
def test_a_sweep_runs_each_variant_with_its_settings(tmp_path: Path, cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    """gloo ranks (no NCCL here): each variant's ranks really get its settings, the rows carry
    them as part of their key, and the check says "not checked"."""
    spec = write_spec(f"""
results_dir: {tmp_path / 'results'}
defaults: {{sizes: [8, 4K], iterations: 3, warmup: 1, device: cpu, in_place: false}}
tests: [{{name: ar, ranks: 2, sweep_env: {{NCCL_ALGO: [Ring, Tree]}}, env: {{NCCL_PROTO: "LL; touch {tmp_path}/x"}}}}]
""")
    proc = cli("sweep", str(spec))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "000-ar.ALGO-Tree: allreduce, 2 ranks, gloo on cpu, NCCL_ALGO=Tree NCCL_PROTO=LL; touch" in proc.stdout
    assert not (tmp_path / "x").exists()
    shown = json.loads(cli("show", "latest", "--results", str(tmp_path / "results"), "-o", "json").stdout)
    rows = shown["summary"]
    assert {r["env"] for r in rows} == {f"NCCL_ALGO={a} NCCL_PROTO=LL; touch {tmp_path}/x" for a in ("Ring", "Tree")}
    assert {r["env_check"] for r in rows} == {"not checked"}
    run = load_run("latest", tmp_path / "results")
    for test_id, used in zip(run.tests["test_id"], run.tests["used"]):
        ranks = json.loads(used)["ranks"]
        assert len(ranks) == 2 and {r["env"]["NCCL_ALGO"] for r in ranks} == {test_id.rsplit("-", 1)[1]}  # each rank's
    # the two variants are two measurement keys of one run
    keys = load_keys(run.path, with_samples=False).keys
    assert {dict(zip(MEASUREMENT_KEY, k))["env"].split()[0] for k in keys} == {"NCCL_ALGO=Ring", "NCCL_ALGO=Tree"}
    report = cli("report", "latest", "--results", str(tmp_path / "results"))
    assert report.returncode == 0, report.stderr
    text = next((tmp_path / "results").glob("*/report/summary.md")).read_text()
    assert "| 000-ar.ALGO-Ring | NCCL_ALGO=Ring NCCL_PROTO=LL; touch" in text and "not checked |" in text


def test_compare_names_the_gid_index_nccl_used() -> None:
    from benchfab.compare.keys import _rank_facts

    nccl = parsed("written-roce-gid-tuning.log").to_dict()
    facts = _rank_facts(json.dumps({"hosts": ["a", "b"], "ranks": [{"rank": 0, "nccl": nccl}]}))
    assert facts["NCCL GID index"] == 3 and facts["NCCL network"] == "IB" and facts["GPUDirect RDMA"] == "on"
