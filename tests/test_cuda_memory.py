"""GPU memory asked for on a host that cannot give it: a clear one-line error from the
real cuda-bindings, never a traceback and never host memory in its place. (The GPU lane,
tests/gpu, covers the host that can.)"""

from __future__ import annotations

import json

import pytest

from benchfab.errors import WorkloadError
from benchfab.rdma import cuda_memory


def _skip_where_cuda_works() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here: tests/gpu covers this host")


def test_allocate_without_a_driver_names_the_missing_piece() -> None:
    _skip_where_cuda_works()
    pytest.importorskip("cuda.bindings", reason="cuda-bindings is not installed (the 'test' extra)")
    for dmabuf in (True, False):
        with pytest.raises(WorkloadError) as info:
            cuda_memory.allocate(4096, device=0, dmabuf=dmabuf)
        message = str(info.value)
        assert "\n" not in message
        assert ("NVIDIA driver library (libcuda.so.1) could not be loaded" in message
                or "no CUDA GPU is visible" in message), message
        assert "memory: host" in message or "CUDA_VISIBLE_DEVICES" in message


def test_sweep_asking_for_gpu_memory_skips_that_test_before_starting_ranks(cli, write_spec, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through the whole stack: a host without a GPU is told at plan time; the test is
    recorded as skipped with the reason (no rank started) and the sweep goes on."""
    _skip_where_cuda_works()
    import benchfab

    spec = write_spec("""\
name: gpu-mem
tests:
  - {name: gpu, workload: rdma_write_bw, memory: cuda, sizes: [64K], iterations: 50, rdma: {cuda_device: 2}}
  - {name: after, workload: allreduce, ranks: 2, sizes: [1K], iterations: 3, warmup: 1, device: cpu}
""")
    plan = cli("plan", str(spec))
    assert plan.returncode == 0, plan.stderr
    assert "# note: 000-gpu will be skipped: memory: cuda needs a GPU and this host has none" in plan.stdout
    proc = cli("sweep", str(spec), "--results", str(tmp_path), "--run-id", "m1", "--no-progress")
    assert proc.returncode == 1, proc.stderr  # a test that is not ok fails the run
    tests = benchfab.load_run("m1", tmp_path).tests.set_index("test_name")
    assert tests.loc["after", "status"] == "ok"
    assert tests.loc["gpu", "status"] == "skipped"
    assert "memory: cuda needs a GPU" in str(tests.loc["gpu", "reason"])
    assert json.loads(tests.loc["gpu", "used"])["ranks"] == []  # no rank was started
    assert "Traceback" not in proc.stderr
