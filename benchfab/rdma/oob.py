"""Out-of-band exchange of connection info over a plain TCP socket.

The RDMA loops need the peer's QP number, PSN, GID, rkey and buffer address before
any RDMA can happen, plus a few barriers. ``run_rdma_pair`` takes any callable
``exchange(key, payload) -> peer_payload``; this module provides one over a socket for
tests and for two processes that can reach each other by IP. (The worker can instead
pass one built on torch.distributed's TCPStore.)

Protocol: one JSON object per line, ``{"key": ..., "payload": {...}}``. Each call sends
ours, then reads the peer's and checks that both sides are at the same ``key`` (a
mismatch means the two sides' control flow diverged: fail loudly, do not guess).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Protocol

from benchfab.errors import WorkloadError


class Exchange(Protocol):
    """Both sides call it with the same keys in the same order; each call returns the
    peer's payload for that key and doubles as a barrier."""

    def __call__(self, key: str, payload: dict[str, Any]) -> dict[str, Any]: ...


class ExchangeError(WorkloadError):
    """The out-of-band channel failed: peer gone, silent past the timeout, or out of step."""


class SocketExchange:
    """A server/client pair of out-of-band endpoints over one TCP connection.

    The server binds in the constructor (``port=0`` picks a free port, see ``.port``);
    the connection is made on first use. The client retries connecting until
    ``timeout_s`` so that start order does not matter.
    """

    def __init__(self, role: str, host: str, port: int, timeout_s: float = 30.0) -> None:
        if role not in ("server", "client"):
            raise ValueError("role must be 'server' or 'client'")
        self.role = role
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._listener: socket.socket | None = None
        self._sock: socket.socket | None = None
        self._rfile: Any = None
        if role == "server":
            lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lst.bind((host, port))
            lst.listen(1)
            self._listener = lst
            self.port = lst.getsockname()[1]

    def _open(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        if self._listener is not None:
            self._listener.settimeout(self.timeout_s)
            try:
                sock, _ = self._listener.accept()
            except TimeoutError as exc:
                raise ExchangeError(f"out-of-band: no peer connected to {self.host}:"
                                    f"{self.port} within {self.timeout_s:g} s",
                                    hint="is the client running and able to reach us?") from exc
            self._listener.close()
            self._listener = None
        else:
            deadline = time.monotonic() + self.timeout_s
            while True:
                try:
                    sock = socket.create_connection((self.host, self.port), timeout=2.0)
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        raise ExchangeError(f"out-of-band: cannot connect to {self.host}:"
                                            f"{self.port}: {exc}") from exc
                    time.sleep(0.1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout_s)
        self._sock = sock
        self._rfile = sock.makefile("rb")
        return sock

    def __call__(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        sock = self._open()
        line = json.dumps({"key": key, "payload": payload}, separators=(",", ":")) + "\n"
        try:
            sock.sendall(line.encode())
            raw = self._rfile.readline()
        except TimeoutError as exc:
            raise ExchangeError(f"out-of-band: peer did not answer {key!r} within "
                                f"{self.timeout_s:g} s",
                                hint="peer process dead or stuck") from exc
        except OSError as exc:
            raise ExchangeError(f"out-of-band: exchange {key!r} failed: {exc}") from exc
        if not raw:
            raise ExchangeError(f"out-of-band: peer closed the connection before {key!r}",
                                hint="the peer failed; see its log")
        msg = json.loads(raw)
        if msg.get("key") != key:
            raise ExchangeError(f"out-of-band: out of step, we are at {key!r} and the peer "
                                f"at {msg.get('key')!r}")
        result: dict[str, Any] = msg.get("payload") or {}
        return result

    def close(self) -> None:
        for obj in (self._rfile, self._sock, self._listener):
            if obj is not None:
                try:
                    obj.close()
                except OSError:
                    pass
        self._rfile = self._sock = self._listener = None

    def __enter__(self) -> SocketExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
