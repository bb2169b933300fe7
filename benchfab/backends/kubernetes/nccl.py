"""NCCL per fabric: the environment a rank gets, and what its INFO log says it used.

``nccl_env`` turns a profile plus the pod's Multus network-status into NCCL
variables; ``parse_nccl_log`` reads NCCL_DEBUG=INFO output back into the
transport, HCAs and GPUDirect path really used, so a silent fall-back to
sockets (or to bounce buffers) is caught instead of reported as a slow fabric.
Pure functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ...fabrics import fabric_of, rank_env
from ...spec import KubeSettings, Profile


def attachment(network_status: str | None, network: str | None, namespace: str) -> dict[str, Any] | None:
    """The network-status entry of the profile's NAD (named "<ns>/<nad>" by Multus)."""
    if not network_status or not network:
        return None
    try:
        entries = json.loads(network_status)
    except json.JSONDecodeError:
        return None
    if not isinstance(entries, list):
        return None
    wanted = {network if "/" in network else f"{namespace}/{network}", network}
    for e in entries:
        if isinstance(e, dict) and e.get("name") in wanted and not e.get("default"):
            return e
    return None


def rdma_devices(entry: dict[str, Any] | None) -> list[str]:
    """HCAs the device plugin gave the pod (SR-IOV VFs carry device-info.pci.rdma-device)."""
    if not entry:
        return []
    pci = (entry.get("device-info") or {}).get("pci") or {}
    dev = pci.get("rdma-device") or ""
    return [d for d in str(dev).split(",") if d]


def net_env(profile: Profile, entry: dict[str, Any] | None) -> dict[str, str]:
    """Where a point-to-point rank should run its test: the address of its secondary
    interface (BENCHFAB_NET_IP: rank 1 gives it to rank 0 as the peer address, and on
    RoCE it picks the device and GID) and, where known, its HCA (BENCHFAB_NET_HCA)."""
    env: dict[str, str] = {}
    ips = [str(ip).split("/", 1)[0] for ip in (entry or {}).get("ips") or [] if ip]
    if ips:
        env["BENCHFAB_NET_IP"] = ips[0]
    hcas = [h.lstrip("=") for h in (profile.hca or "").split(",") if h] or rdma_devices(entry)
    if hcas and fabric_of(profile).uses_rdma:
        env["BENCHFAB_NET_HCA"] = hcas[0]
    return env


def nccl_env(profile: Profile, entry: dict[str, Any] | None, kube: KubeSettings) -> dict[str, str]:
    """A rank pod's NCCL variables: the profile's fabric given the pod's attachment
    (interface, HCAs), then the profile's own env."""
    hcas = [h for h in (profile.hca or "").split(",") if h] or rdma_devices(entry)
    return rank_env(profile, (entry or {}).get("interface"), hcas, kube.force_net)


@dataclass
class NcclTransport:
    """What NCCL's INFO log says a rank used."""

    network: str | None = None  # "IB", "Socket" or a plugin name
    hcas: list[str] = field(default_factory=list)  # from "NET/IB : Using [0]mlx5_0:1/IB ..."
    link_layers: list[str] = field(default_factory=list)  # IB / RoCE per HCA
    channels: list[str] = field(default_factory=list)  # distinct "via ..." paths
    gdr: bool | None = None  # True: a channel went via .../GDRDMA; False: NET channels without it
    dmabuf: bool = False  # "DMA-BUF is available"
    lines: int = 0  # NCCL lines seen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NET = re.compile(r"Using network (\S+)")
_PLUGIN = re.compile(r"NET/Plugin: Loaded net plugin (\S+)")
_IB_USING = re.compile(r"NET/IB ?: Using (.*?)(?:; OOB|$)")
_IB_DEV = re.compile(r"\[\d+\]([\w.-]+?):\d+/(IB|RoCE|UNSPECIFIED)")
_VIA = re.compile(r"via (NET/[\w/]+|P2P/\S+|SHM\S*)")


def parse_nccl_log(lines: Iterable[str]) -> NcclTransport:
    out = NcclTransport()
    channels: dict[str, None] = {}
    for line in lines:
        if "NCCL" not in line:
            continue
        out.lines += 1
        if m := _NET.search(line):
            out.network = m.group(1)
        elif m := _PLUGIN.search(line):
            out.network = out.network or m.group(1)
        if m := _IB_USING.search(line):
            for dev, layer in _IB_DEV.findall(m.group(1)):
                if dev not in out.hcas:
                    out.hcas.append(dev)
                    out.link_layers.append(layer)
        if "DMA-BUF is available" in line:
            out.dmabuf = True
        if m := _VIA.search(line):
            channels[m.group(1)] = None
    out.channels = list(channels)
    net_channels = [c for c in out.channels if c.startswith("NET/")]
    if net_channels:
        out.gdr = any(c.endswith("/GDRDMA") or "/GDRDMA/" in c for c in net_channels)
    return out


def fallback_problem(profile: Profile, nccl: NcclTransport | dict[str, Any] | None, memory: str = "host") -> str | None:
    """One line if NCCL did not use the fabric the profile asked for (None if fine or unknown)."""
    if nccl is None:
        return None
    data = nccl.to_dict() if isinstance(nccl, NcclTransport) else nccl
    return fabric_of(profile).fallback_problem(profile, data, memory)
