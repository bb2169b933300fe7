"""What a test needs from the host, decided before any rank starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchfab.capabilities import HostCapabilities, visible_gpus, why_unrunnable
from benchfab.spec import TestSpec, load_spec_text

BARE = HostCapabilities(gpus=0, rdma_devices=(), native=True, perftest=())
RDMA_HOST = HostCapabilities(gpus=0, rdma_devices=("rxe0",), native=True, perftest=("ib_write_bw", "ib_write_lat"))
GPU_HOST = HostCapabilities(gpus=8, rdma_devices=("mlx5_0", "mlx5_1"), native=True, perftest=())
SMALL_HOST = HostCapabilities(gpus=0, rdma_devices=(), native=True, perftest=(), memory_bytes=16 << 30)


def _test(fields: str) -> TestSpec:
    return load_spec_text(f"tests:\n  - {{{fields}}}\n").resolved_tests()[0]


@pytest.mark.parametrize("fields, host, expected", [
    ("workload: allreduce", BARE, None),
    ("workload: allreduce, device: auto", BARE, None),  # gloo on the CPU
    ("workload: allreduce, device: cuda, ranks: 4", BARE, "device: cuda needs 4 GPU(s), one per rank, and this host has 0"),
    ("workload: allreduce, device: cuda, ranks: 4", GPU_HOST, None),
    ("workload: rdma_write_bw", BARE, "it needs an RDMA device and this host has none"),
    ("workload: rdma_write_bw", RDMA_HOST, None),
    ("workload: rdma_write_bw, transport: tcp", BARE, None),
    ("workload: rdma_write_bw, rdma: {device: mlx5_0}", RDMA_HOST, "rdma.device mlx5_0 is not on this host (ACTIVE: rxe0)"),
    ("workload: rdma_write_lat, engine: perftest", RDMA_HOST, None),
    ("workload: rdma_write_lat, engine: perftest", GPU_HOST, "engine: perftest needs ib_write_lat on PATH"),
    ("workload: rdma_write_bw, memory: cuda", RDMA_HOST, "memory: cuda needs a GPU and this host has none"),
    ("workload: rdma_write_bw, memory: hugepages", RDMA_HOST, None),
    ("workload: rdma_write_bw, transport: tcp", HostCapabilities(0, (), False, ()), "benchfab._native is not built"),
    # Buffers checked against the host's memory (16 GiB here), not found at allocation time:
    ("workload: allreduce, ranks: 2, sizes: [1T]", SMALL_HOST,
     "its 2 rank(s) need about 6,144.0 GiB of host memory for buffers at size 1024G, and this host has 16.0 GiB"),
    ("workload: allreduce, ranks: 2, sizes: [1G]", SMALL_HOST, None),
    ("workload: allreduce, ranks: 2, sizes: [1T], device: cuda", HostCapabilities(2, (), True, (), 16 << 30), None),
    ("workload: rdma_write_bw, transport: tcp, sizes: [8G]", SMALL_HOST, "need about 32.0 GiB of host memory"),
])
def test_why_unrunnable(fields: str, host: HostCapabilities, expected: str | None) -> None:
    why = why_unrunnable(_test(fields), host)
    if expected is None:
        assert why is None
    else:
        assert why is not None and expected in why and "(fix:" in why and "\n" not in why


def test_visible_gpus_follows_the_driver_and_cuda_visible_devices(tmp_path: Path) -> None:
    proc, dev = tmp_path / "gpus", tmp_path / "dev"
    dev.mkdir()
    for bus in ("0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0"):
        (proc / bus).mkdir(parents=True)
    (dev / "nvidiactl").touch()  # not a GPU
    assert visible_gpus(proc, dev, {}) == 3
    assert visible_gpus(proc, dev, {"CUDA_VISIBLE_DEVICES": "1,2"}) == 2
    assert visible_gpus(proc, dev, {"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert visible_gpus(proc, dev, {"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == 1  # CUDA stops at an invalid entry
    assert visible_gpus(tmp_path / "none", dev, {}) == 0
    for i in range(2):
        (dev / f"nvidia{i}").touch()
    assert visible_gpus(tmp_path / "none", dev, {}) == 2  # device nodes without the driver's /proc folder


def test_host_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    from benchfab.capabilities import host_memory_bytes

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683584 kB\nMemFree:         1000 kB\n")
    assert host_memory_bytes(meminfo) == 24683584 * 1024
    assert host_memory_bytes(tmp_path / "missing") is None


@pytest.mark.parametrize("text", ["ranks: true", "iterations: yes", "warmup: false", "placement: {nodes: true}"])
def test_booleans_are_not_numbers(text: str) -> None:
    from benchfab.errors import SpecError

    with pytest.raises(SpecError, match=r"is a number, got (true|false) \(fix: write a number"):
        load_spec_text(f"tests:\n  - {{workload: allreduce, {text}}}\n")
