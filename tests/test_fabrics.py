"""Fabric as behaviour: a profile's NCCL environment, GID and fall-back check come from
its fabric, and its free ``env:`` goes last."""

from __future__ import annotations

import pytest

from benchfab.errors import SpecError
from benchfab.fabrics import FABRICS, fabric_of, rank_env
from benchfab.planner import local_nodes, plan
from benchfab.spec import Fabric, Profile, load_spec_text


def test_every_fabric_the_spec_accepts_has_a_behaviour() -> None:
    import typing

    assert set(typing.get_args(Fabric)) == set(FABRICS)


@pytest.mark.parametrize("fabric, expected", [
    ("ib", {"NCCL_IB_DISABLE": "0", "NCCL_IB_HCA": "=mlx5_0,mlx5_3", "NCCL_NET": "IB"}),
    ("roce", {"NCCL_IB_DISABLE": "0", "NCCL_IB_HCA": "=mlx5_0,mlx5_3", "NCCL_NET": "IB",
              "NCCL_SOCKET_IFNAME": "=net1", "NCCL_IB_GID_INDEX": "3"}),
    ("tcp", {"NCCL_IB_DISABLE": "1", "NCCL_SOCKET_IFNAME": "=net1"}),
    ("loopback", {}),
])
def test_nccl_env_per_fabric(fabric: str, expected: dict[str, str]) -> None:
    profile = Profile(fabric=fabric, gid_index=3)  # type: ignore[arg-type]
    env = rank_env(profile, "net1", ["mlx5_0", "=mlx5_3"], force_net=True)
    assert env == {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT,NET", **expected}


def test_the_profiles_own_env_goes_last() -> None:
    profile = Profile(fabric="roce", env={"NCCL_IB_TC": "106", "NCCL_DEBUG": "WARN"})
    env = rank_env(profile, "net1", ["mlx5_0"])
    assert env["NCCL_IB_TC"] == "106" and env["NCCL_DEBUG"] == "WARN"


def test_profile_env_refuses_names_benchfab_sets() -> None:
    with pytest.raises(SpecError, match=r"profiles\.roce\.env: MASTER_PORT is set by benchfab"):
        load_spec_text("profiles:\n  roce: {fabric: roce, env: {MASTER_PORT: '1'}}\ntests: [{workload: allreduce}]\n")


@pytest.mark.parametrize("fabric, nccl, problem", [
    ("roce", {"network": "Socket"}, "NCCL fell back to sockets on a roce profile"),
    ("ib", {"network": "IB", "link_layers": ["RoCE"]}, "NCCL used RoCE HCAs on a ib profile"),
    ("roce", {"network": "IB", "link_layers": ["RoCE"], "gdr": False}, "without GPUDirect RDMA"),
    ("roce", {"network": "IB", "link_layers": ["RoCE"], "gdr": True}, None),
    ("tcp", {"network": "Socket"}, None),  # sockets are what a tcp profile asks for
])
def test_fallback_is_judged_by_the_fabric(fabric: str, nccl: dict[str, object], problem: str | None) -> None:
    profile = Profile(fabric=fabric)  # type: ignore[arg-type]
    found = fabric_of(profile).fallback_problem(profile, nccl, memory="cuda")
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_point_to_point_tests_take_the_profiles_gid() -> None:
    spec = load_spec_text("""\
profiles:
  roce: {fabric: roce, gid_index: 3}
  ib: {fabric: ib, gid_index: 5}
tests:
  - {name: bw, workload: rdma_write_bw}
  - {name: own, workload: rdma_write_bw, rdma: {gid_index: 1}}
""")
    tasks = {t.test_id: t.task() for t in plan(spec, local_nodes(2)).tests}
    assert tasks["000-bw-roce"].rdma["gid_index"] == 3
    assert tasks["000-bw-ib"].rdma["gid_index"] is None  # IB addresses by LID: no GID to give
    assert tasks["001-own-roce"].rdma["gid_index"] == 1  # the test's own setting wins


def test_every_backend_the_spec_accepts_is_registered() -> None:
    from benchfab.backends.registry import BACKENDS, load_spec_text
    from benchfab.errors import SpecError

    for kind in BACKENDS:
        spec = load_spec_text(f"backend: {kind.name}\nimage: x\ntests: [{{ranks: 2, placement: {{pattern: group}}}}]\n")
        assert spec.backend == kind.name
    with pytest.raises(SpecError, match=r"unknown backend 'slurm' \(fix: use one of: local, kubernetes\)"):
        load_spec_text("backend: slurm\ntests: [{ranks: 2}]\n")
