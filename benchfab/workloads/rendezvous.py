"""Where rank 0 listens for its peers: the one address they reach it at, never every interface.

Rank 0 of a test opens a listener its peers connect to: torch's rendezvous store (TCPStore)
for collectives, the authenticated out-of-band channel for point-to-point tests. torch's
store accepts any connection and reads and writes keys without a credential, and left to
itself it listens on all interfaces (``*:PORT``): on a cluster node, anyone who can reach
the node could read the test's keys or write its own. So rank 0 binds the listener itself,
to MASTER_ADDR, the address the other ranks were told to use:

- locally, 127.0.0.1 (the local backend's MASTER_ADDR): nothing off this host can connect;
- on Kubernetes, rank 0's pod IP (the backend's MASTER_ADDR), where the run's NetworkPolicy
  admits only the run's own pods on the rendezvous ports; never the Multus secondary
  interfaces, which NetworkPolicy does not cover. A MASTER_ADDR that is not an address of
  this pod (a service name) falls back to POD_IP, the pod's own address.

docs/SECURITY.md says what a stranger who reaches such a port can still do.
"""

from __future__ import annotations

import os
import socket

from ..errors import WorkloadError

POD_IP_ENV = "POD_IP"  # the pod's address, from the downward API (backends/kubernetes/manifests.py)


def listen_socket(addr: str, port: int, backlog: int = 128) -> socket.socket:
    """A TCP listener on ``addr:port`` (MASTER_ADDR), or on POD_IP when ``addr`` is not an
    address of this host; a WorkloadError naming both when neither can be bound. Never the
    wildcard address."""
    tried = []
    for candidate in dict.fromkeys([addr, os.environ.get(POD_IP_ENV, "")]):
        if not candidate or candidate in ("0.0.0.0", "::"):
            continue
        try:
            return _bind(candidate, port, backlog)
        except OSError as exc:
            if "address already in use" in str(exc).lower():
                raise  # the local backend retries another port on exactly this
            tried.append(f"{candidate}:{port} ({exc.strerror or exc})")
    raise WorkloadError(f"rank 0 cannot listen for its peers on {', '.join(tried) or repr(addr)}",
                        hint="MASTER_ADDR must be an address of rank 0's host or pod (benchfab sets it); "
                             "it never listens on every interface")


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def own_address_towards(addr: str, port: int) -> str:
    """The local IP the kernel would use to reach addr (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((addr, port))
            return str(probe.getsockname()[0])
    except OSError:
        return socket.gethostbyname(socket.gethostname())
