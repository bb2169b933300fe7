"""Which RDMA devices and ports this host has, and which GID to use.

Source: pyverbs when it imports (Debian's python3-pyverbs under the system python, or
a pod image with the distro package), else sysfs (/sys/class/infiniband), which every
RDMA-capable kernel has. GID *types* (RoCE v1/v2) and their netdevs come from sysfs in
both cases: pyverbs 44 has no portable call for them.

Fabric naming: link layer InfiniBand -> "ib", Ethernet -> "roce".
Default GID on RoCE: a RoCE v2 entry holding an IPv4-mapped address (::ffff:a.b.c.d),
the one NCCL >= 2.21.5 and most operators pick; on IB: none (LID routing, like perftest).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from benchfab.errors import WorkloadError

SYSFS_ROOT = Path(os.environ.get("BENCHFAB_SYSFS_IB", "/sys/class/infiniband"))
_ZERO_GID = "0000:0000:0000:0000:0000:0000:0000:0000"
_MTU_BYTES = {1: 256, 2: 512, 3: 1024, 4: 2048, 5: 4096}


@dataclass(frozen=True)
class GidEntry:
    index: int
    gid: str                 # colon-separated hex, as sysfs and show_gids print it
    type: str | None         # "RoCE v2", "IB/RoCE v1" (None when unknown)
    ndev: str | None         # netdev the GID belongs to (RoCE)

    @property
    def ipv4(self) -> str | None:
        """The IPv4 address of an IPv4-mapped GID, else None."""
        try:
            addr = ipaddress.IPv6Address(self.gid)
        except ValueError:
            return None
        mapped = addr.ipv4_mapped
        return str(mapped) if mapped is not None else None


@dataclass(frozen=True)
class RdmaPort:
    device: str
    port: int
    state: str               # "ACTIVE", "DOWN", ...
    link_layer: str          # "InfiniBand" | "Ethernet"
    rate: str | None         # e.g. "400 Gb/sec (4X NDR)"
    lid: int
    active_mtu: int | None   # bytes, when known
    gids: tuple[GidEntry, ...] = ()

    @property
    def fabric(self) -> str:
        return "roce" if self.link_layer.lower() == "ethernet" else "ib"

    @property
    def active(self) -> bool:
        return self.state.upper() == "ACTIVE"

    @property
    def rate_gbps(self) -> float | None:
        if not self.rate:
            return None
        try:
            return float(self.rate.split()[0])
        except (ValueError, IndexError):
            return None


@dataclass(frozen=True)
class RdmaDevice:
    name: str
    node_guid: str | None
    ports: tuple[RdmaPort, ...] = field(default_factory=tuple)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:   # unset GID types read as EINVAL; absent files as ENOENT
        return None


def _sysfs_gids(port_dir: Path) -> tuple[GidEntry, ...]:
    entries = []
    gid_dir = port_dir / "gids"
    if not gid_dir.is_dir():
        return ()
    for name in sorted(os.listdir(gid_dir), key=lambda s: int(s) if s.isdigit() else -1):
        if not name.isdigit():
            continue
        gid = _read(gid_dir / name)
        if not gid or gid == _ZERO_GID:
            continue
        idx = int(name)
        entries.append(GidEntry(idx, gid, _read(port_dir / "gid_attrs" / "types" / name),
                                _read(port_dir / "gid_attrs" / "ndevs" / name)))
    return tuple(entries)


def _state_word(raw: str | None) -> str:
    # sysfs prints "4: ACTIVE"
    if not raw:
        return "UNKNOWN"
    return raw.split(":", 1)[-1].strip()


def discover_sysfs(root: Path = SYSFS_ROOT) -> list[RdmaDevice]:
    """Devices and ports as the kernel reports them under /sys/class/infiniband."""
    if not root.is_dir():
        return []
    devices = []
    for dev in sorted(os.listdir(root)):
        ddir = root / dev
        ports = []
        pdir = ddir / "ports"
        if pdir.is_dir():
            for pname in sorted(os.listdir(pdir), key=lambda s: int(s) if s.isdigit() else 0):
                if not pname.isdigit():
                    continue
                p = pdir / pname
                lid_raw = _read(p / "lid") or "0"
                try:
                    lid = int(lid_raw, 16)
                except ValueError:
                    lid = 0
                ports.append(RdmaPort(
                    device=dev, port=int(pname), state=_state_word(_read(p / "state")),
                    link_layer=_read(p / "link_layer") or "InfiniBand",
                    rate=_read(p / "rate"), lid=lid, active_mtu=None,
                    gids=_sysfs_gids(p)))
        devices.append(RdmaDevice(dev, _read(ddir / "node_guid"), tuple(ports)))
    return devices


def discover_pyverbs() -> list[RdmaDevice] | None:
    """Devices via pyverbs; None when pyverbs does not import or cannot list devices."""
    try:
        import pyverbs.device as pvd
        import pyverbs.enums as pve
    except ImportError:
        return None
    try:
        dev_list = pvd.get_device_list()
    except Exception:  # noqa: BLE001 - PyverbsRDMAError when no driver: fall back to sysfs
        return None
    state_names = {getattr(pve, f"IBV_PORT_{n}", -1): n for n in
                   ("NOP", "DOWN", "INIT", "ARMED", "ACTIVE", "ACTIVE_DEFER")}
    out = []
    for d in dev_list:
        name = d.name.decode() if isinstance(d.name, bytes) else str(d.name)
        ports = []
        with pvd.Context(name=name) as ctx:
            attr = ctx.query_device()
            for pnum in range(1, attr.phys_port_cnt + 1):
                pattr = ctx.query_port(pnum)
                eth = pattr.link_layer == pve.IBV_LINK_LAYER_ETHERNET
                port_dir = SYSFS_ROOT / name / "ports" / str(pnum)
                ports.append(RdmaPort(
                    device=name, port=pnum,
                    state=state_names.get(pattr.state, str(pattr.state)),
                    link_layer="Ethernet" if eth else "InfiniBand",
                    rate=_read(port_dir / "rate"), lid=int(pattr.lid),
                    active_mtu=_MTU_BYTES.get(int(pattr.active_mtu)),
                    gids=_sysfs_gids(port_dir)))
        out.append(RdmaDevice(name, None, tuple(ports)))
    return out


def discover() -> list[RdmaDevice]:
    """All RDMA devices (pyverbs if importable, else sysfs). Empty when there are none."""
    found = discover_pyverbs()
    return found if found is not None else discover_sysfs()


def default_gid_index(port: RdmaPort) -> int:
    """RoCE: the RoCE v2 IPv4-mapped GID (else any RoCE v2, else the first GID);
    IB: -1 (no GRH)."""
    if port.fabric == "ib":
        return -1
    v2 = [g for g in port.gids if (g.type or "").lower() == "roce v2"]
    for g in v2:
        if g.ipv4:
            return g.index
    if v2:
        return v2[0].index
    if port.gids:
        return port.gids[0].index
    raise WorkloadError(f"{port.device} port {port.port} (RoCE) has no usable GID",
                        hint="give the netdev an IP address so the kernel adds RoCE GIDs")


@dataclass(frozen=True)
class PortChoice:
    device: str
    port: int
    gid_index: int
    link_layer: str       # "ib" | "roce"
    gid: str | None
    rate_gbps: float | None = None  # the port's signalling rate (sysfs rate), for "% of line rate"

    @property
    def link_rate_bps(self) -> float | None:
        return self.rate_gbps * 1e9 if self.rate_gbps else None


def select_port(device: str | None = None, port: int | None = None,
                gid_index: int | None = None, prefer_ip: str | None = None) -> PortChoice:
    """Resolve the user's (possibly partial) choice to an ACTIVE port and a GID index on
    this host's devices. Raises WorkloadError naming what was looked for and what exists."""
    return choose_port(discover(), device, port, gid_index, prefer_ip)


def choose_port(devices: list[RdmaDevice], device: str | None = None, port: int | None = None,
                gid_index: int | None = None, prefer_ip: str | None = None) -> PortChoice:
    """``select_port`` over given devices. ``prefer_ip`` is the address of the network
    the test should use (a pod's secondary interface): among the ACTIVE ports allowed,
    the one with a RoCE GID for that IPv4 address wins, with that GID. Where no GID
    carries it (InfiniBand, or an address on another NIC) the usual defaults apply."""
    if not devices:
        raise WorkloadError("no RDMA devices on this host",
                            hint="load the NIC driver (or rdma_rxe for soft-RoCE); in a pod "
                                 "request the RDMA resource")
    candidates = [p for d in devices for p in d.ports
                  if (device is None or d.name == device) and (port is None or p.port == port)]
    if not candidates:
        have = ", ".join(f"{p.device}:{p.port}" for d in devices for p in d.ports)
        raise WorkloadError(f"RDMA device {device or '*'} port {port or '*'} not found "
                            f"(have: {have or 'none'})")
    active = [p for p in candidates if p.active]
    if not active:
        states = ", ".join(f"{p.device}:{p.port}={p.state}" for p in candidates)
        raise WorkloadError(f"no ACTIVE RDMA port among {states}",
                            hint="check the link (and the subnet manager on InfiniBand)")
    chosen, gidx = active[0], gid_index
    if prefer_ip:
        # RoCE v2 first: an address has a v1 and a v2 GID, and v2 is what gets routed.
        for p in active:
            on_ip = sorted((g for g in p.gids if g.ipv4 == prefer_ip),
                           key=lambda g: (g.type or "").lower() != "roce v2")
            if on_ip and p.fabric == "roce":
                chosen = p
                if gid_index is None:
                    gidx = on_ip[0].index
                break
    if gidx is None:
        gidx = default_gid_index(chosen)
    gid = next((g.gid for g in chosen.gids if g.index == gidx), None)
    return PortChoice(chosen.device, chosen.port, int(gidx), chosen.fabric, gid, chosen.rate_gbps)
