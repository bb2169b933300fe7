"""The data check of the native verbs tests: the pattern the sender writes, how the
receiver reads back what landed, and how many bytes differ.

Both happen outside the timed loop. Host memory is read in place; GPU memory through a
device-to-host copy of the receive region (``CudaBuffer.read``), so corruption on the
GPUDirect path is caught as on the host path. A record's ``data_check`` says which ran:
"host", "gpu-d2h", or "skipped" (``verify: false``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .cuda_memory import CudaBuffer

DataCheck = Literal["host", "gpu-d2h", "skipped"]


def pattern(size: int) -> bytes:
    """The bytes a test of ``size`` sends. They depend on the size, so that a stale
    buffer from an earlier size cannot pass."""
    return ((np.arange(size, dtype=np.uint32) * 131 + size * 7 + 1) & 0xFF).astype(np.uint8).tobytes()


def lat_expected(size: int, rounds: int) -> bytes:
    """What the receive region holds after a ping-pong of ``rounds`` rounds in which the
    peer sent ``pattern(size)``: its last byte carries the final round's stamp."""
    want = bytearray(pattern(size))
    want[-1] = rounds & 0xFF
    return bytes(want)


def wrong_bytes(got: bytes, want: bytes) -> int:
    """How many of ``want``'s bytes ``got`` does not hold (a short ``got`` misses the rest)."""
    a = np.frombuffer(got, dtype=np.uint8)[:len(want)]
    b = np.frombuffer(want, dtype=np.uint8)
    return int(np.count_nonzero(a != b[:a.size])) + b.size - a.size


@dataclass
class Regions:
    """Python's way to an endpoint's two regions: the endpoint's own host buffer, or the
    GPU buffer it registered (``gpu``). The send region starts at 0, the receive region
    at the endpoint's ``buf_size`` (see RdmaEndpoint)."""

    ep: Any
    gpu: CudaBuffer | None = None

    @property
    def check(self) -> DataCheck:
        return "host" if self.gpu is None else "gpu-d2h"

    def fill_send(self, data: bytes) -> None:
        if self.gpu is None:
            self.ep.write_local(data)
        else:
            self.gpu.write(0, data)

    def read_recv(self, n: int) -> bytes:
        if self.gpu is None:
            return bytes(self.ep.read_local(n))
        return self.gpu.read(int(self.ep.buf_size), n)

    def count_wrong(self, want: bytes) -> int:
        """Bytes of the receive region that differ from ``want`` (read after the loop)."""
        return wrong_bytes(self.read_recv(len(want)), want)
