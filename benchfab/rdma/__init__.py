"""Point-to-point fabric tests: RDMA WRITE bandwidth and latency (perftest semantics),
with the same loops over TCP, on the native engine or through perftest's binaries.

The worker calls one function::

    records = run_rdma_pair(role, params, exchange)

``role`` is "server" or "client"; ``params`` a dict (see RdmaParams in
benchfab.rdma.params, with the point-to-point rules: workload or test, sizes,
iterations, transport, engine, memory, device, gid_index, peer_host...);
``exchange(key, payload) -> peer_payload`` a two-sided out-of-band call both ranks make
with the same keys in the same order (SocketExchange here, or one over a TCPStore).
The client returns one record per message size (SI units, keys in RECORD_KEYS);
the server returns []. Failures raise benchfab.errors.WorkloadError (or
NativeUnavailable when the compiled module is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchfab.errors import WorkloadError

from .discovery import PortChoice, RdmaDevice, RdmaPort, default_gid_index, discover, select_port
from .oob import Exchange, ExchangeError, SocketExchange
from .params import RECORD_KEYS, RdmaParams, make_record


def run_rdma_pair(role: str, params: Mapping[str, Any] | RdmaParams,
                  exchange: Exchange) -> list[dict[str, Any]]:
    """Run one point-to-point test (all its message sizes) as ``role``."""
    if role not in ("server", "client"):
        raise WorkloadError(f"rdma role must be 'server' or 'client', not {role!r}")
    p = params if isinstance(params, RdmaParams) else RdmaParams.from_mapping(params)
    if p.transport == "tcp":
        from . import tcp_transport
        return tcp_transport.run_pair(role, p, exchange)
    if p.engine == "perftest":
        from . import perftest
        return perftest.run_pair(role, p, exchange)
    if p.engine == "python":
        raise WorkloadError("there is no pure-Python verbs engine",
                            hint="use engine: native (needs benchfab._native) or perftest")
    from . import verbs_transport
    return verbs_transport.run_pair(role, p, exchange)


__all__ = [
    "RECORD_KEYS",
    "Exchange",
    "ExchangeError",
    "PortChoice",
    "RdmaDevice",
    "RdmaParams",
    "RdmaPort",
    "SocketExchange",
    "default_gid_index",
    "discover",
    "make_record",
    "run_rdma_pair",
    "select_port",
]
