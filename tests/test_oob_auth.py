"""Rank 0's out-of-band listener against hostile connections (real sockets, real threads).

Each probe connects before the real peer does: a silent connection, junk, a forged
hello without the secret, a line of 8 MiB with no newline. The exchange must drop
each one, name it on stderr, and still pair with the real peer, whose payload (and
only whose) it returns.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from benchfab.errors import WorkloadError
from benchfab.rdma.oob import FIRST_MESSAGE_S, MAX_VETTING, SECRET_ENV, SocketExchange, new_test_secret, secret_from_env

SECRET = new_test_secret().encode()


def _silent(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port))


def _junk(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\x00\xffGET / HTTP/1.0\r\n\r\n{{{not json\n")
    return s


def _forged_hello(port: int) -> socket.socket:
    """What redirected the measurement before: a well-formed hello naming another host."""
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(4096)  # the nonce
    s.sendall((json.dumps({"key": "worker-hello", "payload": {"host": "192.0.2.66"}, "seq": 0,
                           "mac": "00" * 32}) + "\n").encode())
    return s


def _huge_line(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(4096)
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(8):
            s.sendall(chunk)
    except OSError:
        pass  # the server closed on us: what it should do
    return s


def _wrong_secret(port: int) -> socket.socket:
    """A real benchfab client of another test (another secret) on the same port."""
    other = SocketExchange("client", "127.0.0.1", port, timeout_s=3, secret=new_test_secret().encode())
    try:
        other("worker-hello", {"host": "198.51.100.7"})
    except WorkloadError:
        pass
    assert other._sock is not None
    return other._sock


PROBES: dict[str, Callable[[int], socket.socket]] = {
    "silent": _silent, "junk": _junk, "forged-hello": _forged_hello, "huge-line": _huge_line,
    "wrong-secret": _wrong_secret,
}


@pytest.mark.parametrize("probe", sorted(PROBES), ids=sorted(PROBES))
def test_stray_connection_is_dropped_named_and_the_real_peer_still_pairs(probe: str) -> None:
    strays: list[str] = []
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=30, secret=SECRET, on_stray=strays.append)
    box: dict[str, Any] = {}
    server = threading.Thread(target=lambda: box.setdefault("got", srv("worker-hello", {})))
    server.start()
    attacker = threading.Thread(target=lambda: box.setdefault("stray", PROBES[probe](srv.port)))
    attacker.start()
    time.sleep(0.3)  # the stray is first in line
    cli = SocketExchange("client", "127.0.0.1", srv.port, timeout_s=30, secret=SECRET)
    try:
        assert cli("worker-hello", {"host": "127.0.0.1"}) == {}
        server.join(30)
        assert box["got"] == {"host": "127.0.0.1"}  # the real peer's hello, never the forged one
        again = threading.Thread(target=lambda: box.setdefault("next", srv("next", {"n": 0})))
        again.start()
        assert cli("next", {"n": 1}) == {"n": 0}  # the pairing goes on as usual
        again.join(30)
        assert box["next"] == {"n": 1}
        assert len(strays) == 1 and strays[0].startswith("ignored a connection from 127.0.0.1:"), strays
    finally:
        attacker.join(30)
        if "stray" in box:
            box["stray"].close()
        cli.close()
        srv.close()


def test_twenty_silent_strays_cannot_delay_the_peer() -> None:
    """Issue #22 item 4: connections are checked at once, each with its own deadline. Twenty
    silent ones connect first; the server's whole deadline (4 s) is shorter than the time one
    silent connection may take (FIRST_MESSAGE_S, 5 s), so vetting them one by one would never
    reach the real peer; checked concurrently, the peer pairs and the strays are named."""
    assert FIRST_MESSAGE_S > 4
    strays: list[str] = []
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=4, secret=SECRET, on_stray=strays.append)
    silent = [_silent(srv.port) for _ in range(20)]
    box: dict[str, Any] = {}
    server = threading.Thread(target=lambda: box.setdefault("got", srv("worker-hello", {})))
    server.start()
    time.sleep(0.3)  # the twenty are accepted and waiting first
    cli = SocketExchange("client", "127.0.0.1", srv.port, timeout_s=10, secret=SECRET)
    try:
        assert cli("worker-hello", {"host": "127.0.0.1"}) == {}
        server.join(10)
        assert box["got"] == {"host": "127.0.0.1"}
        assert len(strays) == 20 and all(s.startswith("ignored a connection from 127.0.0.1:") for s in strays)
    finally:
        for s in silent:
            s.close()
        cli.close()
        srv.close()


def test_the_tcp_data_port_takes_its_peer_past_twenty_silent_strays() -> None:
    """The tcp transport's data port (the second listener of a tcp test) vets the same way."""
    from benchfab.rdma.tcp_transport import TOKEN_BYTES, _accept_peer

    token = b"t" * TOKEN_BYTES
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(64)
    port = lst.getsockname()[1]
    silent = [_silent(port) for _ in range(20)]
    wrong = socket.create_connection(("127.0.0.1", port))
    wrong.sendall(b"w" * TOKEN_BYTES)
    peer = socket.create_connection(("127.0.0.1", port))
    peer.sendall(token + b"payload")
    try:
        got = _accept_peer(lst, token, timeout_s=4)  # < FIRST_MESSAGE_S: one by one, the peer was never reached
        assert got.recv(7) == b"payload"
        got.close()
    finally:
        for s in [*silent, wrong, peer, lst]:
            s.close()


def test_a_flood_of_connections_is_bounded() -> None:
    """More connections at once than MAX_VETTING: the extra ones are closed unread, the peer still pairs."""
    strays: list[str] = []
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=10, secret=SECRET, on_stray=strays.append)
    flood = []
    box: dict[str, Any] = {}
    server = threading.Thread(target=lambda: box.setdefault("got", srv("worker-hello", {})))
    server.start()
    try:
        for _ in range(MAX_VETTING + 20):
            flood.append(_silent(srv.port))
        time.sleep(0.5)
        cli = SocketExchange("client", "127.0.0.1", srv.port, timeout_s=10, secret=SECRET)
        assert cli("worker-hello", {}) == {}
        server.join(10)
        assert "got" in box
        assert sum("others are being checked" in s for s in strays) >= 20
        cli.close()
    finally:
        for s in flood:
            s.close()
        srv.close()


def test_silent_strays_cannot_lock_the_peer_out_past_the_deadline() -> None:
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=2, secret=SECRET, on_stray=lambda _m: None)
    stray = _silent(srv.port)
    try:
        with pytest.raises(WorkloadError, match="no authenticated peer connected"):
            srv("worker-hello", {})
    finally:
        stray.close()
        srv.close()


def test_a_tampered_message_after_pairing_is_an_error_not_a_crash() -> None:
    srv = SocketExchange("server", "127.0.0.1", 0, timeout_s=10, secret=SECRET)
    cli = SocketExchange("client", "127.0.0.1", srv.port, timeout_s=10, secret=SECRET)
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.setdefault("a", srv("a", {})))
    t.start()
    cli("a", {})
    t.join()
    assert cli._sock is not None
    cli._sock.sendall(b'{"key": "b", "payload": {"qpn": 1}, "seq": 1, "mac": "ab"}\n')  # replayed seq, bad mac
    with pytest.raises(WorkloadError, match="does not carry this test's secret"):
        srv("b", {})
    cli.close()
    srv.close()


def test_ranks_without_a_secret_refuse_to_start() -> None:
    with pytest.raises(WorkloadError, match=SECRET_ENV):
        secret_from_env({})
    assert secret_from_env({SECRET_ENV: "a" * 64}) == b"a" * 64


def test_both_channels_read_the_secret_by_one_rule() -> None:
    """The out-of-band channel and the MPI launch share one reader: same variable, same length
    rule (a value shorter than the controller's secrets is refused), each naming its channel."""
    from benchfab.workloads.mpi_remote import test_secret

    for reader, channel in ((secret_from_env, "out-of-band channel"), (test_secret, "MPI launch")):
        with pytest.raises(WorkloadError, match=f"{SECRET_ENV} is not set: the {channel}"):
            reader({SECRET_ENV: "a" * 31})
        assert reader({SECRET_ENV: "b" * 32}) == b"b" * 32
