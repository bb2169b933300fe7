"""Out-of-band exchange of connection info over a plain TCP socket, authenticated.

The RDMA loops need the peer's QP number, PSN, GID, rkey and buffer address before
any RDMA can happen, plus a few barriers. ``run_rdma_pair`` takes any callable
``exchange(key, payload) -> peer_payload``; this module provides one over a socket for
two processes that can reach each other by IP.

Rank 0 listens, so anything on the network can connect to it: a port scanner, a
stray process, an attacker pointing the measurement at another address. Both ranks
therefore share a per-test secret (``SECRET_ENV``, made by the controller for each
test and handed only to that test's two ranks), and every message carries an
HMAC-SHA256 over the connection's nonce, the sender's role, a sequence number, the
key and the payload. The server sends a fresh nonce on each accepted connection and
takes a connection as its peer only once the first message verifies; a connection
that is silent, sends junk, oversized lines or a wrong MAC is closed, named on
stderr (the rank's log), and the server keeps accepting until the deadline.

Protocol: the server's nonce line ``{"nonce": HEX}``, then one JSON object per line,
``{"key": ..., "payload": {...}, "seq": N, "mac": HEX}``. Each call sends ours, then
reads the peer's and checks that both sides are at the same ``key`` (a mismatch
means the two sides' control flow diverged: fail loudly, do not guess).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from benchfab.errors import WorkloadError
from benchfab.task import TEST_SECRET_ENV
from benchfab.testsecret import read_test_secret

SECRET_ENV = TEST_SECRET_ENV  # benchfab.task says why it is an environment variable
MAX_LINE = 1 << 20  # far above any connection-info message (a few hundred bytes)
FIRST_MESSAGE_S = 5.0  # how long a new connection may stay silent before it is dropped


def new_test_secret() -> str:
    """A fresh secret for one test's ranks (the controller calls this per test)."""
    return secrets.token_hex(32)


def secret_from_env(environ: dict[str, str] | None = None) -> bytes:
    """The test's secret as handed to this rank; a clear error when the controller gave none."""
    return read_test_secret("the out-of-band channel has no secret to authenticate the peer", environ)


def _mac(secret: bytes, nonce: str, role: str, seq: int, key: str, payload: Any) -> str:
    body = json.dumps([nonce, role, seq, key, payload], separators=(",", ":"), sort_keys=True)
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()


def warn_stray(message: str, channel: str = "out-of-band") -> None:
    """Name a dropped connection in the rank's log (stderr)."""
    print(f"benchfab: {channel}: {message}", file=sys.stderr, flush=True)


class Exchange(Protocol):
    """Both sides call it with the same keys in the same order; each call returns the
    peer's payload for that key and doubles as a barrier."""

    def __call__(self, key: str, payload: dict[str, Any]) -> dict[str, Any]: ...


class ExchangeError(WorkloadError):
    """The out-of-band channel failed: peer gone, silent past the timeout, or out of step."""


Proof = TypeVar("Proof")
MAX_VETTING = 64  # connections proved at once; one more is closed at once (a flood cannot pile up threads)
# How often the accepting loop looks for a connection that proved itself, and how soon a
# client tries again after a refusal: both are paid by every test's rendezvous (the ranks
# of a round start within milliseconds of each other, in any order), and both are cheap.
_POLL_S = 0.01
_RETRY_S = 0.02


def accept_proven(listener: socket.socket, deadline: float, prove: Callable[[socket.socket], Proof],
                  on_stray: Callable[[str], None]) -> tuple[socket.socket, Proof] | None:
    """The first connection ``prove`` accepts, with what it returned; None at the deadline.

    Every connection is proved in its own thread, at the same time as the others, each with
    its own deadline (FIRST_MESSAGE_S): a silent or slow stray holds only its own thread,
    never the real peer behind it (nine silent connections used to delay the peer by 45 s).
    One that fails the proof (``prove`` raises OSError or ExchangeError, or stays silent)
    is closed and named through ``on_stray``; past MAX_VETTING at once a new one is closed
    unread. Both listeners a rank opens (this channel's and the tcp transport's data port)
    take their peer this way; ``prove`` must keep its state local (it runs concurrently)."""
    proven: queue.Queue[tuple[socket.socket, Proof]] = queue.Queue()
    vetting: dict[socket.socket, str] = {}  # connection -> "ip:port", while its proof runs
    lock = threading.Lock()  # vetting; and one stray line at a time (threads write them)
    done = threading.Event()

    def finished(sock: socket.socket) -> bool:
        """Whether this thread, not the accepting loop's end, settles ``sock`` (exactly one does)."""
        with lock:
            return vetting.pop(sock, None) is not None

    def stray(text: str) -> None:
        with lock:
            on_stray(text)

    def vet(sock: socket.socket, peer: str) -> None:
        try:
            sock.settimeout(min(FIRST_MESSAGE_S, max(0.1, deadline - time.monotonic())))
            proof = prove(sock)
        except (OSError, ExchangeError) as exc:
            sock.close()
            if finished(sock) and not done.is_set():
                stray(f"ignored a connection from {peer}: {_why(exc)}")
            return
        if finished(sock) and not done.is_set():
            proven.put((sock, proof))
        else:  # a peer was taken already, or accepting ended
            sock.close()

    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                return proven.get_nowait()
            except queue.Empty:
                pass
            listener.settimeout(min(_POLL_S, left))
            try:
                sock, (peer_ip, peer_port) = listener.accept()
            except TimeoutError:
                continue
            with lock:
                full = len(vetting) >= MAX_VETTING
                if not full:
                    vetting[sock] = f"{peer_ip}:{peer_port}"
            if full:
                sock.close()
                stray(f"ignored a connection from {peer_ip}:{peer_port}: {MAX_VETTING} others are being checked")
                continue
            threading.Thread(target=vet, args=(sock, f"{peer_ip}:{peer_port}"), daemon=True,
                             name="benchfab-oob-vet").start()
        try:  # one that proved itself in the last poll
            return proven.get_nowait()
        except queue.Empty:
            return None
    finally:
        done.set()
        with lock:  # strays still being checked: named once (their threads then say nothing), ended at once
            left_over = list(vetting.items())
            vetting.clear()
            for sock, peer in left_over:
                on_stray(f"ignored a connection from {peer}: it had not proved itself when accepting ended")
                _shut(sock)
        while True:  # proved too late, behind the one returned: closed, not left open
            try:
                proven.get_nowait()[0].close()
            except queue.Empty:
                break


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class SocketExchange:
    """A server/client pair of authenticated out-of-band endpoints over one TCP connection.

    The server binds in the constructor (``port=0`` picks a free port, see ``.port``);
    the connection is made on first use. The client retries connecting until
    ``timeout_s`` so that start order does not matter. ``secret`` is the test's shared
    secret (``secret_from_env()`` in a rank).
    """

    def __init__(self, role: str, host: str, port: int, timeout_s: float = 30.0, *, secret: bytes,
                 on_stray: Callable[[str], None] = warn_stray, listener: socket.socket | None = None) -> None:
        if role not in ("server", "client"):
            raise ValueError("role must be 'server' or 'client'")
        if len(secret) < 16:
            raise ValueError("the out-of-band secret must be at least 16 bytes")
        self.role = role
        self.peer_role = "client" if role == "server" else "server"
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._secret = secret
        self._on_stray = on_stray
        self._nonce = ""
        self._sent = 0
        self._received = 0
        self._pending: dict[str, Any] | None = None  # the peer's first message, read while authenticating it
        self._listener: socket.socket | None = None
        self._sock: socket.socket | None = None
        self._rfile: Any = None
        if role == "server":
            if listener is None:  # a listener bound elsewhere (workloads.rendezvous: MASTER_ADDR only) is taken as is
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((host, port))
                listener.listen(64)  # accept_proven takes each at once and checks it in its own thread
            self._listener = listener
            self.port = listener.getsockname()[1]

    def _open(self) -> socket.socket:
        if self._sock is None:
            self._accept_peer() if self._listener is not None else self._connect()
        assert self._sock is not None
        return self._sock

    def _accept_peer(self) -> None:
        """Accept until a connection proves it holds the secret, or the deadline passes."""
        assert self._listener is not None

        def prove(sock: socket.socket) -> tuple[Any, str, dict[str, Any]]:
            # Runs for several connections at once: its nonce stays local until one wins.
            nonce = secrets.token_hex(16)
            sock.sendall((json.dumps({"nonce": nonce}) + "\n").encode())
            rfile = sock.makefile("rb")
            return rfile, nonce, self._read_message(rfile, nonce, 0)

        got = accept_proven(self._listener, time.monotonic() + self.timeout_s, prove, self._on_stray)
        if got is None:
            raise ExchangeError(f"out-of-band: no authenticated peer connected to {self.host}:"
                                f"{self.port} within {self.timeout_s:g} s",
                                hint="is the other rank running, able to reach us, and given the same test secret?")
        sock, (rfile, nonce, first) = got
        self._listener.close()
        self._listener = None
        self._nonce, self._received = nonce, 1
        self._adopt(sock, rfile)
        self._pending = first

    def _connect(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2.0)
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ExchangeError(f"out-of-band: cannot connect to {self.host}:{self.port}: {exc}") from exc
                time.sleep(_RETRY_S)
                continue
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            rfile = sock.makefile("rb")
            try:
                line = rfile.readline(MAX_LINE)
                hello = json.loads(line) if line else None
            except (OSError, ValueError) as exc:
                sock.close()
                raise ExchangeError(f"out-of-band: {self.host}:{self.port} did not greet like a benchfab rank: "
                                    f"{_why(exc)}") from exc
            if not line and time.monotonic() < deadline:
                # Closed unread: the server is checking as many strays as it takes at once
                # (a flood); their deadlines free its slots, so try again.
                sock.close()
                time.sleep(_RETRY_S)
                continue
            break
        if not isinstance(hello, dict) or not isinstance(hello.get("nonce"), str):
            sock.close()
            raise ExchangeError(f"out-of-band: {self.host}:{self.port} did not greet like a benchfab rank",
                                hint="another program listens on the test's port; pick another master_port")
        self._nonce = hello["nonce"]
        self._adopt(sock, rfile)

    def _adopt(self, sock: socket.socket, rfile: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout_s)
        self._sock, self._rfile = sock, rfile

    def _read_message(self, rfile: Any, nonce: str, seq: int) -> dict[str, Any]:
        """The peer's message number ``seq`` on the connection of ``nonce``, verified;
        ExchangeError for anything else."""
        raw = rfile.readline(MAX_LINE)
        if not raw:
            raise ExchangeError("out-of-band: the peer closed the connection", hint="the peer failed; see its log")
        if not raw.endswith(b"\n"):
            raise ExchangeError(f"out-of-band: a message longer than {MAX_LINE} bytes")
        try:
            msg = json.loads(raw)
        except ValueError:
            raise ExchangeError("out-of-band: a message that is not JSON") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("key"), str) or not isinstance(msg.get("mac"), str):
            raise ExchangeError("out-of-band: a message without key and mac")
        expected = _mac(self._secret, nonce, self.peer_role, seq, msg["key"], msg.get("payload"))
        if msg.get("seq") != seq or not hmac.compare_digest(expected, msg["mac"]):
            raise ExchangeError("out-of-band: a message that does not carry this test's secret")
        payload = msg.get("payload")
        return {"key": msg["key"], "payload": payload if isinstance(payload, dict) else {}}

    def __call__(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        sock = self._open()
        mac = _mac(self._secret, self._nonce, self.role, self._sent, key, payload)
        line = json.dumps({"key": key, "payload": payload, "seq": self._sent, "mac": mac}, separators=(",", ":")) + "\n"
        try:
            sock.sendall(line.encode())
            self._sent += 1
            if self._pending is not None:  # read while the peer was being authenticated
                msg, self._pending = self._pending, None
            else:
                msg = self._read_message(self._rfile, self._nonce, self._received)
                self._received += 1
        except TimeoutError as exc:
            raise ExchangeError(f"out-of-band: peer did not answer {key!r} within {self.timeout_s:g} s",
                                hint="peer process dead or stuck") from exc
        except OSError as exc:
            raise ExchangeError(f"out-of-band: exchange {key!r} failed: {exc}") from exc
        if msg["key"] != key:
            raise ExchangeError(f"out-of-band: out of step, we are at {key!r} and the peer at {msg['key']!r}")
        result: dict[str, Any] = msg["payload"]
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


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"silent for {FIRST_MESSAGE_S:g} s"
    return str(exc).removeprefix("out-of-band: ") or type(exc).__name__
