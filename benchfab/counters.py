"""Fabric error counters read around a test: the NIC's port counters, the interface's
drop/error counters and the namespace's TCP retransmits, before and after, as deltas.

Each rank reads once before its first timed loop and once after its last (never per
iteration: a port has 20-60 counter files) and emits one ``counters`` record; the
controller stores the deltas with the test (``TestRow.counters``, JSON). Sources:

- ``rdma``: ``<sys>/class/infiniband/<dev>/ports/<port>/counters/*`` (the IBA PMA port
  counters: symbol_error, port_rcv_errors, ...; absent on soft-RoCE) and ``hw_counters/*``
  (the driver's: mlx5's out_of_sequence, np_cnp_sent, ...; rxe's sent_pkts, rcvd_seq_err, ...);
- ``net``: ``<sys>/class/net/<if>/statistics/*`` of the interface carrying the test's address;
- ``tcp``: the ``Tcp:`` line of ``<proc>/net/snmp``, which is per network namespace.

A counter a device lacks is *not exposed*: absent from its deltas, never 0. A counter that
went down between the two reads was reset (or wrapped): it is listed under ``reset`` and has
no delta, as a negative one would be nonsense. Pure over the two roots, so tests point it at
trees built in a temporary directory. hw_counters are cached by the kernel for their
``lifespan`` (10 ms by default): the after-read may miss the last few ms of a test.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYS_ROOT = Path("/sys")
PROC_ROOT = Path("/proc")

# Counters that only move when something went wrong on the path (loss, corruption, a link that
# flapped, a retry, a drop): what makes a test's counters *evidence*. The rest are traffic or
# congestion signals (CNPs, ECN marks, xmit_wait): shown, never alarming on their own.
ERROR_COUNTERS = frozenset({
    # IBA port counters (IB and RoCE ports of NICs with a PMA, e.g. mlx5)
    "symbol_error", "link_downed", "link_error_recovery", "port_rcv_errors", "port_xmit_discards",
    "port_rcv_remote_physical_errors", "local_link_integrity_errors", "excessive_buffer_overrun_errors",
    "port_rcv_constraint_errors", "port_xmit_constraint_errors", "VL15_dropped",
    # mlx5 hw_counters
    "out_of_sequence", "packet_seq_err", "local_ack_timeout_err", "implied_nak_seq_err", "out_of_buffer",
    "duplicate_request", "rnr_nak_retry_err", "req_cqe_error", "resp_cqe_error", "req_remote_access_errors",
    "resp_remote_access_errors", "req_remote_invalid_request", "resp_local_length_error", "rx_icrc_encapsulated",
    "roce_adp_retrans", "roce_adp_retrans_to",
    # rxe (soft-RoCE) hw_counters
    "out_of_seq_request", "rcvd_seq_err", "retry_exceeded_err", "retry_rnr_exceeded_err", "completer_retry_err",
    "send_err", "rcvd_rnr_err", "send_rnr_err",
    # netdev statistics
    "rx_errors", "tx_errors", "rx_dropped", "tx_dropped", "rx_crc_errors", "rx_frame_errors", "rx_missed_errors",
    "rx_fifo_errors", "rx_over_errors", "rx_length_errors", "tx_aborted_errors", "tx_carrier_errors",
    "tx_fifo_errors", "tx_heartbeat_errors", "tx_window_errors", "collisions",
    # TCP in the rank's network namespace
    "RetransSegs", "InErrs", "InCsumErrors",
})

# The counters the issue and fleet practice name per kind of source: one of these that a
# device does not have is reported as "not exposed" (the operator then knows to look elsewhere).
WATCHED = {
    "rdma": ("symbol_error", "link_downed", "link_error_recovery", "port_rcv_errors", "port_xmit_discards",
             "port_rcv_remote_physical_errors", "local_link_integrity_errors", "excessive_buffer_overrun_errors",
             "port_xmit_wait", "out_of_sequence", "packet_seq_err", "local_ack_timeout_err", "np_cnp_sent",
             "rp_cnp_handled", "np_ecn_marked_roce_packets"),
    "net": ("rx_errors", "tx_errors", "rx_dropped", "tx_dropped", "rx_crc_errors", "rx_missed_errors"),
    "tcp": ("RetransSegs", "InErrs"),
}
_TCP_GAUGES = frozenset({"RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn", "CurrEstab"})
_NOT_COUNTERS = frozenset({"lifespan"})  # hw_counters/lifespan is the cache setting (ms), not a count


@dataclass(frozen=True, order=True)
class Source:
    """One thing whose counters are read: an RDMA port, a network interface, or TCP."""

    kind: str  # rdma | net | tcp
    device: str  # mlx5_0 | eth0 | tcp (the rank's network namespace)
    port: int | None = None

    @property
    def label(self) -> str:
        return f"{self.device}:{self.port}" if self.port is not None else self.device


Snapshot = dict[Source, dict[str, int]]


def _read_dir(folder: Path, into: dict[str, int]) -> None:
    """Every integer file of ``folder`` (one that cannot be read, e.g. a counter the firmware
    refuses with EINVAL, is not exposed)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        if name in _NOT_COUNTERS:
            continue
        try:
            into[name] = int((folder / name).read_text(encoding="ascii").split()[0])
        except (OSError, ValueError, IndexError, UnicodeDecodeError):
            continue


def read_rdma_port(device: str, port: int, sys_root: Path = SYS_ROOT) -> dict[str, int]:
    """The port counters and hw_counters of one RDMA port ({} where it has none)."""
    base = sys_root / "class" / "infiniband" / device / "ports" / str(port)
    values: dict[str, int] = {}
    _read_dir(base / "counters", values)
    _read_dir(base / "hw_counters", values)
    return values


def read_net(interface: str, sys_root: Path = SYS_ROOT) -> dict[str, int]:
    values: dict[str, int] = {}
    _read_dir(sys_root / "class" / "net" / interface / "statistics", values)
    return values


def read_tcp(proc_root: Path = PROC_ROOT) -> dict[str, int]:
    """The Tcp: counters of /proc/net/snmp ({} where unreadable), without its gauges (CurrEstab,
    RtoMin...), which go down without a reset."""
    try:
        text = (proc_root / "net" / "snmp").read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return {}
    lines = [line.split() for line in text.splitlines() if line.startswith("Tcp:")]
    if len(lines) < 2:
        return {}
    out: dict[str, int] = {}
    for name, value in zip(lines[0][1:], lines[1][1:]):
        if name in _TCP_GAUGES:
            continue
        try:
            out[name] = int(value)
        except ValueError:
            continue
    return out


def rdma_ports(device: str, sys_root: Path = SYS_ROOT) -> list[int]:
    try:
        return sorted(int(p) for p in os.listdir(sys_root / "class" / "infiniband" / device / "ports") if p.isdigit())
    except OSError:
        return []


def rdma_devices(sys_root: Path = SYS_ROOT) -> list[str]:
    try:
        return sorted(os.listdir(sys_root / "class" / "infiniband"))
    except OSError:
        return []


def read(sources: Iterable[Source], sys_root: Path = SYS_ROOT, proc_root: Path = PROC_ROOT) -> Snapshot:
    """One reading of every source."""
    snap: Snapshot = {}
    for s in sources:
        if s.kind == "rdma":
            snap[s] = read_rdma_port(s.device, s.port or 1, sys_root)
        elif s.kind == "net":
            snap[s] = read_net(s.device, sys_root)
        else:
            snap[s] = read_tcp(proc_root)
    return snap


def deltas(before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
    """Per source: ``deltas`` (after - before, for counters in both readings), ``reset`` (counters
    that went down), ``not_exposed`` (the watched counters the source lacks)."""
    out = []
    for source in sorted(before.keys() & after.keys()):
        b, a = before[source], after[source]
        both = sorted(b.keys() & a.keys())
        out.append({
            "kind": source.kind, "device": source.device, "port": source.port,
            "deltas": {k: a[k] - b[k] for k in both if a[k] >= b[k]},
            "reset": [k for k in both if a[k] < b[k]],
            "not_exposed": [k for k in WATCHED.get(source.kind, ()) if k not in a],
        })
    return out


def error_deltas(entry: Mapping[str, Any]) -> dict[str, int]:
    """The error counters of one stored entry that moved."""
    moved = entry.get("deltas") or {}
    return {k: int(v) for k, v in moved.items() if k in ERROR_COUNTERS and isinstance(v, int) and v > 0}


# -- what a rank reads: its sources ---------------------------------------------------------------


def interface_of(ip: str | None) -> str | None:
    """The local interface holding IPv4 address ``ip`` (None where none does, or it is no IPv4)."""
    if not ip:
        return None
    try:
        wanted = socket.inet_aton(ip)
    except OSError:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                # SIOCGIFADDR: the interface's IPv4 address (bytes 20..24 of the ifreq)
                raw = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            if raw[20:24] == wanted:
                return name
    return None


def nccl_hcas(value: str | None, sys_root: Path = SYS_ROOT) -> list[str]:
    """The RDMA devices NCCL_IB_HCA selects ("mlx5_0:1,mlx5_1", "=mlx5_0", "^mlx5_2"); every
    device of the host where it is unset."""
    present = rdma_devices(sys_root)
    if not value:
        return present
    exclude = value.startswith("^")
    exact = value.lstrip("^").startswith("=")
    names = [part.split(":")[0] for part in value.lstrip("^").lstrip("=").split(",") if part]
    def chosen(dev: str) -> bool:
        return any(dev == n if exact else dev.startswith(n) for n in names)
    return [d for d in present if chosen(d) != exclude]


def sources_for(rdma: Iterable[tuple[str, int | None]] = (), address: str | None = None, tcp: bool = False,
                sys_root: Path = SYS_ROOT) -> list[Source]:
    """What a rank reads: each RDMA device (its given port, else all its ports), the interface
    holding ``address``, and TCP when the test's traffic is TCP."""
    out = [Source("rdma", dev, p) for dev, port in rdma for p in ([port] if port else rdma_ports(dev, sys_root))]
    interface = interface_of(address)
    if interface is not None:
        out.append(Source("net", interface))
    if tcp:
        out.append(Source("tcp", "tcp"))
    return out


class CounterWatch:
    """Read before a test's timed loops (``start``), again after (``record``): one record of deltas."""

    def __init__(self, sources: list[Source], sys_root: Path = SYS_ROOT, proc_root: Path = PROC_ROOT) -> None:
        self.sources, self.sys_root, self.proc_root = sources, sys_root, proc_root
        self.before: Snapshot = {}

    def start(self) -> CounterWatch:
        self.before = read(self.sources, self.sys_root, self.proc_root)
        return self

    def record(self, test_id: str, rank: int) -> dict[str, Any]:
        after = read(self.sources, self.sys_root, self.proc_root)
        return {"type": "counters", "test_id": test_id, "rank": rank, "host": socket.gethostname(),
                "sources": deltas(self.before, after)}


# -- stored with the test -------------------------------------------------------------------------


def stored_entries(records: Iterable[Mapping[str, Any]], hosts: list[str] | tuple[str, ...],
                   ranks: int) -> list[dict[str, Any]] | None:
    """The ranks' records as the test stores them: one entry per node and source, tagged with
    the node (the test's hosts in rank order, ranks laid out node by node), ranks of one node
    reading the same NIC counted once. None when no rank reported (an older worker, an import)."""
    recs = sorted((r for r in records if isinstance(r.get("sources"), list)), key=lambda r: int(r.get("rank") or 0))
    if not recs:
        return None
    per_node = max(1, ranks // len(hosts)) if hosts else 1
    seen: set[tuple[str, str, str, Any]] = set()
    out = []
    for rec in recs:
        rank = int(rec.get("rank") or 0)
        node = str(hosts[min(rank // per_node, len(hosts) - 1)]) if hosts else str(rec.get("host") or "?")
        for src in rec["sources"]:
            key = (node, str(src.get("kind")), str(src.get("device")), src.get("port"))
            if key in seen:
                continue
            seen.add(key)
            out.append({"node": node, "rank": rank, **src})
    return out
