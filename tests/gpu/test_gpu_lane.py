"""On a GPU host: CUDA memory for GPUDirect RDMA, and collectives timed with CUDA events.

Run on the GPU machine with ``.venv/bin/python -m pytest -m gpu tests/gpu -v``. Two
NCCL ranks cannot share one GPU, so the sweep here uses one rank.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import benchfab
from benchfab.errors import WorkloadError

pytestmark = pytest.mark.gpu


def _cuda_bindings() -> None:
    pytest.importorskip("cuda.bindings", reason="cuda-bindings is not installed (the 'cuda' extra)")


def test_allocate_and_export_dmabuf() -> None:
    _cuda_bindings()
    from benchfab.rdma import cuda_memory

    buf = cuda_memory.allocate(100_000, device=0, dmabuf=True)
    try:
        assert buf.addr != 0 and buf.length % (64 * 1024) == 0 and buf.length >= 100_000
        assert buf.dmabuf_fd >= 0  # cuMemGetHandleForAddressRange(DMA_BUF_FD) worked
    finally:
        buf.close()
    assert buf.dmabuf_fd == -1 and buf.addr == 0
    plain = cuda_memory.allocate(4096, device=0, dmabuf=False)
    try:
        assert plain.addr != 0 and plain.dmabuf_fd == -1
    finally:
        plain.close()


def test_gpu_memory_without_a_nic_fails_and_names_the_cause() -> None:
    """Asked for GPU memory, the verbs path must fail clearly, never fall back to host."""
    _cuda_bindings()
    from benchfab.native import HAVE_NATIVE
    from benchfab.rdma import run_rdma_pair

    if not HAVE_NATIVE:
        pytest.skip("benchfab._native is not built")

    def no_peer(key: str, payload: dict) -> dict:  # type: ignore[type-arg]
        raise AssertionError("must fail before talking to a peer")

    with pytest.raises(WorkloadError) as info:
        run_rdma_pair("client", {"workload": "rdma_write_bw", "sizes": [65536], "memory": "cuda"}, no_peer)
    message = str(info.value).lower()
    assert any(word in message for word in ("rdma device", "dma-buf", "dmabuf", "peermem", "peer-memory", "no usable"))


def test_one_rank_nccl_sweep_with_cuda_graph(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("""\
name: gpu
tests:
  - {name: eager, ranks: 1, device: cuda, sizes: [8, 1M, 64M], iterations: 20, warmup: 5}
  - {name: graph, ranks: 1, device: cuda, sizes: [8, 1M, 64M], iterations: 20, warmup: 5, cuda_graph: 10}
""")
    proc = cli("sweep", str(spec), "--results", str(tmp_path), "--run-id", "g1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run = benchfab.load_run("g1", tmp_path)
    assert set(run.tests["status"]) == {"ok"}, run.tests[["test_id", "reason"]]
    s = run.summary
    assert set(s["transport"]) == {"nccl"} and set(s["memory"]) == {"cuda"}
    assert (s["wrong"] == 0).all() and (s["time_s"] > 0).all()
    eager = s[(s.test_name == "eager") & (s.size_bytes == 8) & s.in_place]["time_s"].iloc[0]
    graph = s[(s.test_name == "graph") & (s.size_bytes == 8) & s.in_place]["time_s"].iloc[0]
    # The graph takes Python launch overhead out of small messages (nccl-tests -G).
    assert graph < eager
    print(s[["test_name", "size_bytes", "in_place", "time_s", "algbw_Bps"]].to_string())
