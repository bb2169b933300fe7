"""On a GPU host: the verbs data check on GPU memory. CudaBuffer's copies, and (where an
RDMA NIC can register GPU memory) a native pair whose received GPU buffer is copied to
the host after the loop and checked, the record saying data_check: gpu-d2h."""

from __future__ import annotations

import pytest

from benchfab.errors import WorkloadError

pytestmark = pytest.mark.gpu


def _cuda_bindings() -> None:
    pytest.importorskip("cuda.bindings", reason="cuda-bindings is not installed (the 'cuda' extra)")


def test_cuda_buffer_copies_both_ways() -> None:
    _cuda_bindings()
    from benchfab.rdma import cuda_memory
    from benchfab.rdma.data_check import pattern

    buf = cuda_memory.allocate(2 * 65536, device=0, dmabuf=False)
    try:
        buf.write(65536, pattern(4096))
        buf.write(0, b"\x00" * 4096)
        assert buf.read(65536, 4096) == pattern(4096)
        assert buf.read(0, 4096) == b"\x00" * 4096
        assert buf.read(65536 + 100, 5) == pattern(4096)[100:105]
        with pytest.raises(ValueError, match="exceed"):
            buf.read(buf.length - 2, 4)
    finally:
        buf.close()
    with pytest.raises(WorkloadError, match="closed"):
        buf.read(0, 1)


@pytest.mark.parametrize("memory", ["cuda"])
def test_native_pair_checks_gpu_memory_on_the_host(memory: str) -> None:
    """Where a NIC takes GPU memory: the bytes written into the peer's GPU buffer are
    copied back and compared; nothing is silently skipped."""
    _cuda_bindings()
    from benchfab.native import HAVE_NATIVE
    from benchfab.rdma import discover

    if not HAVE_NATIVE:
        pytest.skip("benchfab._native is not built")
    if not discover():
        pytest.skip("no RDMA device on this GPU host")
    from tests.rdma.test_pair_api import _pair

    params = {"workload": "rdma_write_bw", "sizes": [8, 4096, 1 << 20], "iterations": 200, "memory": memory,
              "max_inline": 220}  # asked for, but never used on GPU memory
    try:
        _, client = _pair(params)
    except WorkloadError as exc:
        if "cannot be registered with the NIC" in str(exc):
            pytest.skip(f"this host's NIC cannot register GPU memory: {exc}")
        raise
    for r in client:
        assert r["memory"] in ("cuda-dmabuf", "cuda-peermem")
        assert r["data_check"] == "gpu-d2h" and r["wrong_bytes"] == 0
        assert r["inline_size"] == 0
