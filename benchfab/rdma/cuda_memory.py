"""GPU buffers for GPUDirect RDMA, allocated with cuda-python's driver API.

The native endpoint only needs integers: a device pointer, a length and (for the dma-buf
path) a file descriptor from ``cuMemGetHandleForAddressRange``. Allocating here, in
Python, keeps CUDA out of the compiled module (no cuda.h at build time, no libcuda link).
``cuda-bindings`` is an optional dependency; asking for GPU memory without it is an error
that says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchfab.errors import WorkloadError

# perftest rounds GPU allocations up to 64 KiB; dma-buf export needs page alignment.
_ALIGN = 64 * 1024


def _driver() -> Any:
    try:
        from cuda.bindings import driver
    except ImportError:
        try:
            from cuda import cuda as driver  # type: ignore[no-redef, unused-ignore]
        except ImportError as exc:
            raise WorkloadError("GPU memory was requested but cuda-bindings is not installed",
                                hint="pip install cuda-bindings (the 'cuda' extra)") from exc
    return driver


def _check(drv: Any, result: Any, what: str) -> Any:
    """cuda-python returns (CUresult, value...) tuples; raise on anything but success."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != int(drv.CUresult.CUDA_SUCCESS):
        name = drv.cuGetErrorName(err)
        label = name[1].decode() if isinstance(name, tuple) and len(name) > 1 and name[1] else str(err)
        raise WorkloadError(f"{what} failed: {label}")
    if not rest:
        return None
    return rest[0] if len(rest) == 1 else tuple(rest)


@dataclass
class CudaBuffer:
    """Device memory plus, when exported, its dma-buf fd. ``close()`` frees both;
    ``write`` / ``read`` copy to and from it (the verbs tests' data check)."""

    addr: int
    length: int
    device: int
    dmabuf_fd: int = -1
    _drv: Any = None
    _ctx: Any = None  # the device's primary context, made current around each copy

    def write(self, offset: int, data: bytes) -> None:
        """Copy ``data`` to ``offset`` bytes into the buffer (cuMemcpyHtoD, which returns
        once the bytes are on the GPU)."""
        src = np.frombuffer(data, dtype=np.uint8)
        self._span(offset, src.size)
        if src.size:
            _check(self._drv, self._drv.cuMemcpyHtoD(self.addr + offset, src.ctypes.data, src.size),
                   f"cuMemcpyHtoD({src.size} bytes)")

    def read(self, offset: int, n: int) -> bytes:
        """``n`` bytes from ``offset`` bytes into the buffer (cuMemcpyDtoH, synchronous)."""
        self._span(offset, n)
        dst = np.empty(n, dtype=np.uint8)
        if n:
            _check(self._drv, self._drv.cuMemcpyDtoH(dst.ctypes.data, self.addr + offset, n),
                   f"cuMemcpyDtoH({n} bytes)")
        return dst.tobytes()

    def _span(self, offset: int, n: int) -> None:
        """Check [offset, offset+n) lies in the buffer and make its context current (a
        copy may run on another thread than the allocation did)."""
        if not self.addr or self._drv is None:
            raise WorkloadError("GPU buffer is closed")
        if offset < 0 or n < 0 or offset + n > self.length:
            raise ValueError(f"{offset}+{n} bytes exceed the {self.length}-byte GPU buffer")
        _check(self._drv, self._drv.cuCtxSetCurrent(self._ctx), "cuCtxSetCurrent")

    def close(self) -> None:
        if self.dmabuf_fd >= 0:
            os.close(self.dmabuf_fd)
            self.dmabuf_fd = -1
        if self.addr and self._drv is not None:
            self._drv.cuMemFree(self.addr)
            self.addr = 0

    def __del__(self) -> None:  # the endpoint keeps us alive while its MR exists
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _init(drv: Any) -> None:
    """cuInit, turning "no driver" and "no GPU" into errors that say so."""
    try:
        result = drv.cuInit(0)
    except Exception as exc:  # cuda-bindings raises (not returns) without libcuda
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WorkloadError("GPU memory was requested but the NVIDIA driver library (libcuda.so.1) "
                            f"could not be loaded: {detail}",
                            hint="run on a host with the NVIDIA driver, or set memory: host") from exc
    err = result[0] if isinstance(result, tuple) else result
    if int(err) == int(drv.CUresult.CUDA_ERROR_NO_DEVICE):
        raise WorkloadError("GPU memory was requested but no CUDA GPU is visible (cuInit: CUDA_ERROR_NO_DEVICE)",
                            hint="check nvidia-smi and CUDA_VISIBLE_DEVICES; in a pod, request nvidia.com/gpu")
    _check(drv, result, "cuInit")


def allocate(nbytes: int, device: int = 0, dmabuf: bool = True) -> CudaBuffer:
    """cuMemAlloc ``nbytes`` (rounded up to 64 KiB) on GPU ``device`` in its primary
    context; with ``dmabuf`` also export a dma-buf fd for ibv_reg_dmabuf_mr."""
    drv = _driver()
    length = (nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
    _init(drv)
    dev = _check(drv, drv.cuDeviceGet(device), f"cuDeviceGet({device})")
    if dmabuf:
        # Asking first gives "this GPU/driver cannot" instead of a bare CUDA error code.
        supported = _check(drv, drv.cuDeviceGetAttribute(
            drv.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED, dev),
            "cuDeviceGetAttribute(DMA_BUF_SUPPORTED)")
        if not supported:
            raise WorkloadError(f"GPU {device} cannot export memory as dma-buf "
                                "(CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED is 0)",
                                hint="needs the open NVIDIA kernel modules (>= 515) and CUDA >= 11.7; "
                                     "or use nvidia-peermem (memory: cuda-peermem)")
    ctx = _check(drv, drv.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
    _check(drv, drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    ptr = _check(drv, drv.cuMemAlloc(length), f"cuMemAlloc({length})")
    buf = CudaBuffer(addr=int(ptr), length=length, device=device, _drv=drv, _ctx=ctx)
    if not dmabuf:
        return buf
    try:
        # GPUDirect needs synchronous memory operations on the range (as perftest sets).
        attr = drv.CUpointer_attribute.CU_POINTER_ATTRIBUTE_SYNC_MEMOPS
        _check(drv, drv.cuPointerSetAttribute(1, attr, ptr), "cuPointerSetAttribute(SYNC_MEMOPS)")
        htype = drv.CUmemRangeHandleType.CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD
        fd = _check(drv, drv.cuMemGetHandleForAddressRange(ptr, length, htype, 0),
                    "cuMemGetHandleForAddressRange(DMA_BUF_FD)")
    except WorkloadError as exc:
        buf.close()
        raise WorkloadError(f"cannot export GPU memory as dma-buf: {exc.message}",
                            hint="needs NVIDIA open kernel modules >= 515 and CUDA >= 11.7") from exc
    buf.dmabuf_fd = int(fd)
    return buf
