"""benchfab.nccllog on real NCCL INFO logs posted in public issues (tests/data/nccl/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchfab.fabrics import fabric_of
from benchfab.nccllog import parse_nccl_log, summary_columns
from benchfab.spec import Profile

DATA = Path(__file__).parent / "data" / "nccl"


def parsed(name: str):  # type: ignore[no-untyped-def]
    return parse_nccl_log((DATA / name).read_text().splitlines())


def test_merged_virtual_nics_are_read_as_nics_of_several_ports() -> None:
    t = parsed("nccl-tests-373-merged-roce.log")
    assert t.nics == [["mlx5_2", "mlx5_3"], ["mlx5_0", "mlx5_1"]] and t.merged
    assert t.hcas == ["mlx5_2", "mlx5_3", "mlx5_0", "mlx5_1"] and t.ports == [1, 1, 1, 1]
    assert t.link_layers == ["RoCE"] * 4 and t.relaxed_ordering
    assert t.network == "IBext_v8" and t.plugin == "IBext_v8" and t.cuda_driver == 12020
    assert t.channels == ["NET/IBext_v8/1"] and t.channel_count == 2 and t.gdr is False
    assert t.algorithms == ["tree"]
    # a plugin network on a RoCE profile is not a fall-back, but GPU data without GDRDMA is
    roce = Profile(fabric="roce")
    assert fabric_of(roce).fallback_problem(roce, t.to_dict(), "host") is None
    assert "without GPUDirect RDMA" in str(fabric_of(roce).fallback_problem(roce, t.to_dict(), "cuda"))
    # and an IB profile is told it ran on RoCE HCAs
    ib = Profile(fabric="ib")
    assert fabric_of(ib).fallback_problem(ib, t.to_dict(), "host") == "NCCL used RoCE HCAs on a ib profile"


def test_eight_hcas_one_nic_each_and_the_internal_plugin() -> None:
    t = parsed("vllm-27521-eight-roce-hcas.log")
    assert t.hcas == [f"mlx5_{i}" for i in range(8)] and t.nics == [[f"mlx5_{i}"] for i in range(8)]
    assert not t.merged and t.network == "IB" and t.plugin is None and t.version == "2.27.3+cuda12.9"
    cols = summary_columns(t)
    assert cols["nccl_hcas"] == ",".join(f"mlx5_{i}" for i in range(8)) and cols["nccl_link_layer"] == "RoCE"
    assert cols["nccl_merged_nics"] is False and cols["nccl_network"] == "IB"


@pytest.mark.parametrize(("name", "gdr", "channels", "count"), [
    ("nccl-1453-ibext-gdrdma.log", True, ["NET/IBext_v8/7/GDRDMA"], 8),
    ("nccl-392-ib-without-gdr.log", False, ["NET/IB/0"], 2),
    ("nccl-226-socket-rings.log", False, ["NET/Socket/0"], 1),
])
def test_gpudirect_is_read_from_the_channels(name: str, gdr: bool, channels: list[str], count: int) -> None:
    t = parsed(name)
    assert t.gdr is gdr and t.channels == channels and t.channel_count == count


def test_versions_old_forms_and_gdr_distances() -> None:
    v = parsed("nccl-1804-versions.log")
    assert v.version == "2.27.6+cuda12.9" and v.cuda_driver == 12090 and v.plugin is None
    old = parsed("deit-28-old-nccl-mlx4.log")
    assert old.hcas == ["mlx4_0"] and old.link_layers == ["RoCE"] and old.network == "IB" and not old.relaxed_ordering
    off = parsed("nccl-1151-gdr-disabled.log")
    assert off.gdr_pairs == [{"gpu": "ca000", "hca": "0", "enabled": False, "distance": 7, "limit": 4}]
    sock = parsed("nccl-226-socket-rings.log")
    assert sock.algorithms == ["tree"] and summary_columns(sock)["nccl_algorithms"] == "tree"
    assert summary_columns(None)["nccl_version"] is None


def test_node_software_reads_kernel_driver_and_hca_firmware(tmp_path: Path) -> None:
    import platform

    from benchfab.metadata import node_software

    here = node_software()  # this host, as it is
    assert here["kernel"] == platform.release() and isinstance(here["hca_firmware"], dict)
    sysfs, proc = tmp_path / "sys", tmp_path / "proc"
    (sysfs / "class" / "infiniband" / "mlx5_0").mkdir(parents=True)
    (sysfs / "class" / "infiniband" / "mlx5_0" / "fw_ver").write_text("fw-of-mlx5_0\n")
    (sysfs / "class" / "infiniband" / "rxe0").mkdir()  # soft-RoCE: no firmware file
    (proc / "driver" / "nvidia").mkdir(parents=True)
    (proc / "driver" / "nvidia" / "version").write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  driver-under-test  Tue Mar  5 22:14:54 UTC 2024\n")
    fake = node_software(sysfs, proc)
    assert fake["hca_firmware"] == {"mlx5_0": "fw-of-mlx5_0"} and fake["nvidia_driver"] == "driver-under-test"


def test_the_local_backend_reads_each_ranks_nccl_lines_into_its_env(tmp_path: Path) -> None:
    from benchfab.backends.base import TestOutcome
    from benchfab.backends.local import attach_nccl

    logs = [tmp_path / "t.rank0.log", tmp_path / "t.rank1.log"]
    logs[0].write_text("12:00:00 rank 0: joined\n" + (DATA / "nccl-tests-373-merged-roce.log").read_text())
    logs[1].write_text("12:00:00 rank 1: joined\n")  # gloo: no NCCL line, no nccl entry
    outcome = TestOutcome("t", "ok")
    outcome.env = [{"type": "env", "rank": 0}, {"type": "env", "rank": 1}]
    attach_nccl(outcome, logs)
    assert outcome.env[0]["nccl"]["nics"] == [["mlx5_2", "mlx5_3"], ["mlx5_0", "mlx5_1"]]
    assert "nccl" not in outcome.env[1]
