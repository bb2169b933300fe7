"""The same write_bw / write_lat tests over a TCP socket: the baseline every fabric is
compared with, and the fallback where there is no RDMA device.

The loops run in benchfab._native (send/recv without the GIL). Where the extension is
not built, a Python loop with the same shape runs instead and the records say
engine="python", so nobody mistakes its numbers for the native ones. The data
connection is the one that presents a token the peer got through the authenticated
out-of-band channel (``_accept_peer``).
"""

from __future__ import annotations

import hmac
import secrets
import socket
import time
from typing import Any

import numpy as np

from benchfab.errors import WorkloadError
from benchfab.native import HAVE_NATIVE, lib, require_native

from . import stats
from .oob import Exchange, ExchangeError, accept_proven, warn_stray
from .params import RdmaParams, make_record

# The data connection's proof: the server sends a fresh token through the authenticated
# out-of-band channel, the client's first bytes on the data socket are that token.
# Anything else that connects first (a scanner, another test's rank) is closed and named,
# and the server keeps accepting until its deadline, as the out-of-band listener does.
TOKEN_BYTES = 16


def _connect(role: str, p: RdmaParams, exchange: Exchange) -> socket.socket:
    if role == "server":
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind((p.listen_host, p.tcp_port))
        lst.listen(64)  # accept_proven takes each at once and checks it in its own thread
        token = secrets.token_bytes(TOKEN_BYTES)
        try:
            exchange("tcp-listen", {"port": lst.getsockname()[1], "token": token.hex()})
            sock = _accept_peer(lst, token, p.timeout_s)
        finally:
            lst.close()
    else:
        info = exchange("tcp-listen", {})
        if not p.peer_host:
            raise WorkloadError("tcp transport: the client needs peer_host (the server's address)")
        try:
            sock = socket.create_connection((p.peer_host, int(info["port"])), timeout=p.timeout_s)
            sock.sendall(bytes.fromhex(str(info["token"])))
        except OSError as exc:
            raise WorkloadError(f"tcp: cannot connect to {p.peer_host}:{info['port']}: {exc}") from exc
    # Latency needs Nagle off. Bandwidth keeps it on, like iperf3: with it off the tail
    # of every large write leaves as its own small segment.
    if not p.workload.bandwidth:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)  # the loops use SO_RCVTIMEO/SO_SNDTIMEO, i.e. blocking fds
    return sock


def _accept_peer(lst: socket.socket, token: bytes, timeout_s: float) -> socket.socket:
    """The first connection whose first bytes are the token, within timeout_s."""

    def prove(sock: socket.socket) -> None:
        got = bytearray(TOKEN_BYTES)
        try:
            _recv_exact(sock, memoryview(got))
        except WorkloadError:  # closed before the token's last byte
            raise ExchangeError("it did not send the token") from None
        if not hmac.compare_digest(bytes(got), token):
            raise ExchangeError("it sent another token")

    got = accept_proven(lst, time.monotonic() + timeout_s, prove, lambda m: warn_stray(m, channel="tcp data"))
    if got is None:
        raise WorkloadError(f"tcp: no peer connected with this test's token within {timeout_s:g} s")
    return got[0]


def run_pair(role: str, p: RdmaParams, exchange: Exchange) -> list[dict[str, Any]]:
    native = p.engine != "python" and HAVE_NATIVE
    if p.engine == "native" and not HAVE_NATIVE:
        require_native()  # raises NativeUnavailable with the reason
    engine = "native" if native else "python"
    sock = _connect(role, p, exchange)
    records: list[dict[str, Any]] = []
    try:
        for size in p.sizes:
            if p.workload.bandwidth:
                res = _bw(role, p, sock, size, native)
            else:
                res = _lat(role, p, sock, size, native)
            outcome = exchange(f"tcp-{p.test}-{size}", {"ok": True})
            if "error" in outcome:
                raise WorkloadError(f"tcp {p.test} peer failed: {outcome['error']}")
            if role == "client" and res is not None:
                records.append(make_record(p, res, engine=engine, transport="tcp",
                                           device=None, port=None, gid_index=None,
                                           link_layer=None, link_rate_bps=None, mtu=None, cq_mod=1,
                                           tx_depth=1))
        counts = connection_counters(sock) if role == "client" else None
        if counts is not None:
            for rec in records:
                rec["tcp_segments"], rec["tcp_retrans"] = counts
    finally:
        sock.close()
    return records


# struct tcp_info (linux/tcp.h): u32 tcpi_total_retrans at byte 100, u32 tcpi_segs_out at 136.
_TCP_INFO_BYTES = 144
_TOTAL_RETRANS_AT, _SEGS_OUT_AT = 100, 136


def connection_counters(sock: socket.socket) -> tuple[int, int] | None:
    """(segments sent, segments retransmitted) on this connection alone (TCP_INFO): a test's
    loss, not its namespace's, whose other tests run beside it (the rails of a per-rail pass
    share a node's namespace). None where the kernel does not say (not Linux, before 4.2)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except (OSError, AttributeError):
        return None
    if len(info) < _TCP_INFO_BYTES:
        return None
    return (int.from_bytes(info[_SEGS_OUT_AT:_SEGS_OUT_AT + 4], "little"),
            int.from_bytes(info[_TOTAL_RETRANS_AT:_TOTAL_RETRANS_AT + 4], "little"))


def _bw(role: str, p: RdmaParams, sock: socket.socket, size: int,
        native: bool) -> dict[str, Any] | None:
    fd = sock.fileno()
    if native:
        if role == "client":
            res: dict[str, Any] = lib.tcp_write_bw(fd, size, p.iters(), p.warmup, p.timeout_s)
            return res
        lib.tcp_sink_bw(fd, size, p.iters(), p.warmup, p.timeout_s)
        return None
    sock.settimeout(p.timeout_s)
    try:
        if role == "client":
            return _py_write_bw(sock, size, p.iters(), p.warmup)
        _py_sink(sock, size * p.warmup, bool(p.warmup))
        _py_sink(sock, size * p.iters(), True)
        return None
    finally:
        sock.settimeout(None)


def _lat(role: str, p: RdmaParams, sock: socket.socket, size: int,
         native: bool) -> dict[str, Any] | None:
    initiator = role == "server"
    if native:
        res: dict[str, Any] = lib.tcp_write_lat(
            sock.fileno(), size, p.iters(), initiator, p.warmup, p.timeout_s)
        return res
    sock.settimeout(p.timeout_s)
    try:
        return _py_write_lat(sock, size, p.iters(), p.warmup, initiator)
    finally:
        sock.settimeout(None)


# -- pure-Python fallbacks (same shapes, far slower per message) -------------------------

def _recv_exact(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise WorkloadError("tcp: peer closed the connection")
        got += n


def _py_sink(sock: socket.socket, total: int, ack: bool) -> None:
    buf = memoryview(bytearray(1 << 16))
    while total > 0:
        n = sock.recv_into(buf[: min(total, len(buf))])
        if n == 0:
            raise WorkloadError("tcp: peer closed the connection")
        total -= n
    if ack:
        sock.sendall(b"\1")


def _py_write_bw(sock: socket.socket, size: int, iters: int, warmup: int) -> dict[str, Any]:
    data = bytes(size)
    ack = memoryview(bytearray(1))
    for _ in range(warmup):
        sock.sendall(data)
    if warmup:
        _recv_exact(sock, ack)
    tp = np.zeros(iters, dtype=np.uint64)
    tc = np.zeros(iters, dtype=np.uint64)
    now = time.clock_gettime_ns
    clk = time.CLOCK_MONOTONIC_RAW
    for i in range(iters):
        tp[i] = now(clk)
        sock.sendall(data)
        tc[i] = now(clk)
    _recv_exact(sock, ack)
    tc[-1] = now(clk)
    out: dict[str, Any] = {"tposted_ns": tp, "tcompleted_ns": tc, "size_bytes": size}
    out.update(stats.bw_figures(tp, tc, size))
    return out


def _py_write_lat(sock: socket.socket, size: int, iters: int, warmup: int,
                  initiator: bool) -> dict[str, Any]:
    data = bytes(size)
    buf = memoryview(bytearray(size))
    total = iters + warmup
    tp = np.zeros(total, dtype=np.uint64)
    now = time.clock_gettime_ns
    clk = time.CLOCK_MONOTONIC_RAW
    for i in range(total):
        if not (initiator and i == 0):
            _recv_exact(sock, buf)
        tp[i] = now(clk)
        sock.sendall(data)
    if initiator:
        _recv_exact(sock, buf)
    out: dict[str, Any] = {"tposted_ns": tp[warmup:], "size_bytes": size}
    out.update(stats.lat_figures(tp[warmup:], rtt_factor=2))
    return out
