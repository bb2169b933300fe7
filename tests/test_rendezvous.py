"""Rank 0's listeners bind the address its peers use, never every interface (issue #22 item 3).

torch's rendezvous store takes any connection and lets it read and write keys; left to
torch, it listened on all interfaces, so a client on the host's external address could
read and write a local sweep's keys. The end-to-end test runs a real local all-reduce
sweep, finds rank 0's store in /proc/net/tcp while the test runs, and connects to it
from this host's external address.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchfab.errors import WorkloadError
from benchfab.workloads.rendezvous import POD_IP_ENV, listen_socket
from tests.helpers import ROOT


def _external_ipv4() -> str | None:
    """An address of this host that is not loopback (the route a packet to a TEST-NET host would take)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # UDP: no packet is sent
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* write them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_listen_socket_binds_the_given_address_or_pod_ip_never_the_wildcard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(POD_IP_ENV, raising=False)
    sock = listen_socket("127.0.0.1", 0)
    assert sock.getsockname()[0] == "127.0.0.1"
    sock.close()
    with pytest.raises(WorkloadError, match=r"rank 0 cannot listen for its peers on 192\.0\.2\.77:0"):
        listen_socket("192.0.2.77", 0)  # not an address of this host (TEST-NET-1)
    monkeypatch.setenv(POD_IP_ENV, "127.0.0.1")  # a pod told a service name: its own address instead
    sock = listen_socket("192.0.2.77", 0)
    assert sock.getsockname()[0] == "127.0.0.1"
    sock.close()
    monkeypatch.setenv(POD_IP_ENV, "0.0.0.0")
    with pytest.raises(WorkloadError):
        listen_socket("0.0.0.0", 0)  # the wildcard is never taken, even when asked for


SPEC = """\
name: rdv
backend: local
tests:
  - name: ar
    workload: allreduce
    ranks: 2
    sizes: [4M]
    iterations: 300
    warmup: 1
    check: false
"""


@pytest.mark.slow
def test_a_local_sweeps_rendezvous_store_is_loopback_only(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    sweep = subprocess.Popen([sys.executable, "-m", "benchfab", "sweep", str(spec), "--results", str(tmp_path / "r"),
                              "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port, listening = None, []
    try:
        deadline = time.monotonic() + 120
        while sweep.poll() is None and time.monotonic() < deadline and not listening:
            port = port or _master_port(sweep.pid)
            listening = _listeners(port) if port else []
            time.sleep(0.05)
        assert listening, "rank 0's store was never seen listening"
        # 0100007F: 127.0.0.1 in /proc/net/tcp's byte order; never 00000000 (every interface)
        assert set(listening) == {"0100007F"}, listening
        external = _external_ipv4()
        if external is not None:
            stranger = socket.socket()
            stranger.settimeout(5)
            try:
                assert stranger.connect_ex((external, port)) == errno.ECONNREFUSED
            finally:
                stranger.close()
    finally:
        out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err
    assert "1 ok" in out


def _master_port(sweep_pid: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
        except OSError:
            continue
        if environ.get(b"BENCHFAB_PARENT_PID") == str(sweep_pid).encode() and environ.get(b"RANK") == b"0":
            return int(environ[b"MASTER_PORT"])
    return None


def test_the_local_backend_keeps_nccl_and_gloo_on_loopback() -> None:
    from benchfab.backends.local import LocalBackend

    env = LocalBackend()._env(0, 2, 29500)
    assert env["MASTER_ADDR"] == "127.0.0.1"
    assert env.get("GLOO_SOCKET_IFNAME", "lo") == os.environ.get("GLOO_SOCKET_IFNAME", "lo")
    assert env.get("NCCL_SOCKET_IFNAME") == os.environ.get("NCCL_SOCKET_IFNAME", "lo")
