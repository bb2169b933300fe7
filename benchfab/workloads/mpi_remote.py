"""Open MPI's remote launch without sshd: an authenticated channel between a test's pods.

``mpirun`` starts its daemon (``orted``) on every other node through a remote shell, by
default ssh: it runs ``AGENT HOST orted -mca ...`` (``--mca plm_rsh_agent``). benchfab
names its own launcher as that agent (``python -m benchfab.workloads.mpi_agent``), and the
worker of each other node runs ``serve_launches``: a listener that takes a command only
from a peer holding the test's secret (``TEST_SECRET_ENV``, made by the controller per
test), starts it without a shell, and relays its stdout, stderr and exit code, as ssh
would. No sshd, no keys, no MPI Operator.

What ssh would hand to a remote shell arrives here as words (Open MPI quotes them for a
shell); they are split like a POSIX shell splits words (``shlex``) and run as an argv
list, never through a shell (``command_words``). Only Open MPI's
daemons (``ALLOWED_PROGRAMS``) may be started, so even a peer holding the secret cannot
run anything else through this door.

Wire format, one JSON object per line, like the out-of-band channel (rdma.oob): the
listening side first sends ``{"nonce": HEX}``; every later line carries ``seq`` (a
counter per direction) and ``mac``, an HMAC-SHA256 over the nonce, the sender's role,
``seq`` and the body, so a line cannot be forged, replayed on another connection or
reordered. A connection whose first line does not verify is closed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from typing import IO, Any

from ..errors import WorkloadError
from ..testsecret import read_test_secret

ALLOWED_PROGRAMS = frozenset({"orted", "prted"})  # Open MPI 4's and 5's daemons
MAX_LINE = 1 << 22  # a command line or one chunk of output is far smaller
FIRST_LINE_S = 5.0  # how long a new connection may stay silent before it is dropped


def test_secret(environ: dict[str, str] | None = None) -> bytes:
    """The test's secret as the controller handed it; a clear error when none was."""
    return read_test_secret("the MPI launch has no secret to authenticate its peers", environ)


class ChannelError(WorkloadError):
    """The peer is gone, silent, or sent a line that does not verify."""


class Channel:
    """One authenticated connection: ``send`` and ``recv`` JSON bodies, MAC-checked."""

    def __init__(self, sock: socket.socket, secret: bytes, nonce: str, role: str, peer_role: str) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.secret, self.nonce, self.role, self.peer_role = secret, nonce, role, peer_role
        self.sent = self.received = 0

    @classmethod
    def accept(cls, sock: socket.socket, secret: bytes, role: str, peer_role: str) -> Channel:
        """The listening side: send a fresh nonce; the peer's first line must verify."""
        nonce = secrets.token_hex(16)
        sock.sendall(json.dumps({"nonce": nonce}).encode() + b"\n")
        return cls(sock, secret, nonce, role, peer_role)

    @classmethod
    def connect(cls, sock: socket.socket, secret: bytes, role: str, peer_role: str) -> Channel:
        """The connecting side: read the listener's nonce."""
        reader = sock.makefile("rb")
        line = reader.readline(MAX_LINE)
        try:
            nonce = str(json.loads(line)["nonce"])
        except (ValueError, KeyError, TypeError):
            raise ChannelError("the peer did not open with a nonce") from None
        channel = cls(sock, secret, nonce, role, peer_role)
        channel.reader = reader
        return channel

    def _mac(self, role: str, seq: int, body: Any) -> str:
        text = json.dumps([self.nonce, role, seq, body], separators=(",", ":"), sort_keys=True)
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def send(self, body: dict[str, Any]) -> None:
        line = {"body": body, "seq": self.sent, "mac": self._mac(self.role, self.sent, body)}
        self.sent += 1
        self.sock.sendall(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def recv(self) -> dict[str, Any] | None:
        """The peer's next body; None at a clean end of the connection."""
        raw = self.reader.readline(MAX_LINE)
        if not raw:
            return None
        try:
            line = json.loads(raw)
            body, seq, mac = line["body"], int(line["seq"]), str(line["mac"])
        except (ValueError, KeyError, TypeError):
            raise ChannelError("an unreadable line") from None
        if seq != self.received or not isinstance(body, dict) or \
                not hmac.compare_digest(mac, self._mac(self.peer_role, seq, body)):
            raise ChannelError("a line that does not verify (wrong secret, replayed or out of order)")
        self.received += 1
        return body

    def close(self) -> None:
        for part in (self.reader, self.sock):
            try:
                part.close()
            except OSError:
                pass


def command_words(words: list[str], environ: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """What Open MPI asked the remote shell to run, as (argv, environment), never interpreted
    by a shell: the words split as a POSIX shell splits them; before the command, only
    ``NAME=VALUE ;`` and ``export NAME ;`` (the PATH and LD_LIBRARY_PATH that mpirun's prefix
    adds, where ``$NAME`` in VALUE is the variable's value so far); the command must be an
    MPI daemon. Anything else is a WorkloadError."""
    import re
    import shlex

    lexer = shlex.shlex(" ".join(words), posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token == ";":
                segments.append([])
            else:
                segments[-1].append(token)
    except ValueError as exc:  # an unbalanced quote
        raise WorkloadError(f"the MPI launch cannot read the command: {exc}") from None
    env = dict(environ)
    *settings, argv = [seg for seg in segments if seg] or [[]]
    for seg in settings:
        assignment = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", seg[0]) if len(seg) == 1 else None
        if assignment:
            name, before = assignment[1], environ.get(assignment[1], "")
            env[name] = re.sub(rf"\$(\{{{name}\}}|{name}\b)", lambda _m, old=before: old, assignment[2])
        elif not (seg[0] == "export" and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", w) for w in seg[1:])):
            raise WorkloadError(f"the MPI launch takes only NAME=VALUE and export before the command, not {seg[0]!r}")
    if not argv or os.path.basename(argv[0]) not in ALLOWED_PROGRAMS:
        shown = argv[0] if argv else "nothing"
        raise WorkloadError(f"the MPI launch may start only {', '.join(sorted(ALLOWED_PROGRAMS))}, not {shown!r}")
    return argv, env


def warn(message: str) -> None:
    print(f"benchfab: MPI launch: {message}", file=sys.stderr, flush=True)


# -- the node's side: run what the launcher asks ---------------------------------------------------


def serve_launches(listener: socket.socket, secret: bytes, stop: threading.Event) -> None:
    """Accept launcher connections on ``listener`` until ``stop`` is set, each in its own thread."""
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, peer = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return  # the listener was closed: the test is over
        threading.Thread(target=_serve_one, args=(conn, peer, secret, stop), daemon=True).start()


def _serve_one(conn: socket.socket, peer: Any, secret: bytes, stop: threading.Event) -> None:
    conn.settimeout(FIRST_LINE_S)
    try:
        channel = Channel.accept(conn, secret, "agent", "launcher")
        first = channel.recv()
    except (ChannelError, OSError) as exc:
        warn(f"dropped a connection from {peer[0]}: {exc}")
        conn.close()
        return
    conn.settimeout(None)
    if first is None:
        channel.close()
        return
    try:
        argv, env = command_words([str(w) for w in first.get("words") or []], dict(os.environ))
    except WorkloadError as exc:
        warn(f"refused a command from {peer[0]}: {exc.message}")
        _finish(channel, {"err": f"benchfab: {exc.message}\n"}, {"exit": 127})
        return
    warn(f"starting {os.path.basename(argv[0])} for mpirun at {peer[0]}")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    lock = threading.Lock()

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def pump(stream: IO[bytes], name: str) -> None:
        while chunk := os.read(stream.fileno(), 65536):
            try:
                with lock:
                    channel.send({name: chunk.decode("latin-1")})  # latin-1: every byte, unchanged
            except OSError:
                kill()  # the launcher is gone (mpirun ended or died): so is its daemon

    def watch() -> None:
        # The launcher sends nothing more; its end of the connection (or the test's) ends the daemon.
        try:
            channel.recv()
        except (ChannelError, OSError):
            pass
        if proc.poll() is None:
            kill()

    assert proc.stdout is not None and proc.stderr is not None
    pumps = [threading.Thread(target=pump, args=(proc.stdout, "out"), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, "err"), daemon=True)]
    for t in pumps:
        t.start()
    threading.Thread(target=watch, daemon=True).start()
    while proc.poll() is None:
        if stop.wait(0.2):
            kill()
    code = proc.wait()
    for t in pumps:
        t.join(timeout=5)
    with lock:
        _finish(channel, {"exit": code})


def _finish(channel: Channel, *bodies: dict[str, Any]) -> None:
    try:
        for body in bodies:
            channel.send(body)
    except OSError:
        pass
    channel.close()
