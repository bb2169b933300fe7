"""What NCCL really did, read from its ``NCCL_DEBUG=INFO`` log.

Pure parsing, no I/O: a rank's log lines in, an ``NcclTransport`` out. Every
backend uses it (the Kubernetes agent on its worker's output, the local backend
on each rank's log file), and the summary rows carry its fields as columns
(``nccl_*``), so a silent fall-back to sockets, a missing GPUDirect path or a
merged NIC shows up next to the bandwidth it explains.

Lines it reads (shapes taken from real logs kept under tests/data/nccl/, with
their sources):

- ``NCCL version 2.27.5+cuda12.9`` and ``cudaDriverVersion 13010``
- ``NET/Plugin: Loaded net plugin AWS Libfabric (v6)``, ``P2P plugin IBext_v8``,
  ``Using network IB`` / ``Socket`` / ``IBext_v8``
- ``NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB [RO]; OOB eth0:...`` (one NIC per
  HCA port) and the merged / virtual NIC form of NCCL >= 2.20
  ``NET/IB : Using [0]={[0] mlx5_2:1/RoCE, [1] mlx5_3:1/RoCE} [1]={...} [RO]; OOB ...``
  (one virtual NIC over several ports); older NCCL ends the list with `` ; OOB``
- ``GPU Direct RDMA Enabled for GPU 0 / HCA 0 (distance 9 <= 9), read 1 mode Default``
  and ``... Disabled for GPU ca000 / HCA 0 (distance 7 > 4)``
- ``Channel 07/0 : 8[0] -> 7[7] [send] via NET/IB/0/GDRDMA``, ``via P2P/IPC``,
  ``via SHM/direct/direct``, ``Ring 00 : 3 -> 10 [send] via NET/IB/0/GDRDMA``
- ``Trees [0] 1/-1/-1->2->0 ...`` and ``Connected all rings`` / ``Connected all trees``
- RoCE queue pairs, with the GID index NCCL used (net_ib's connect INFO line; older NCCL
  prints the ``NET/IB: Dev 0 Port 1 qpn 1234 mtu 5 GID 3 (...)`` form):
  ``NET/IB: NCCL Dev 0 IbDev 0 Port 1 qpn 1234 mtu 5 GID 3 (0/9B00A8C0FFFF0000) fifoRkey=...``
- the algorithm and protocol NCCL chose per collective, with ``NCCL_DEBUG_SUBSYS`` holding
  TUNING: ``Best tuning, algorithm, RING, protocol, SIMPLE`` (NCCL >= 2.27) or
  ``8388608 Bytes -> Algo 1 proto 2 time 133.2`` (older: NCCL's algorithm and protocol
  numbers, Tree 0, Ring 1, ... and LL 0, LL128 1, Simple 2)

A log whose NET channels all go ``via NET/Socket`` says the network is Socket even
without a ``Using network`` line (NCCL prints that one only in some versions and debug
subsystems): a socket fall-back must never pass for an unknown network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class NcclTransport:
    """What NCCL's INFO log says a rank used."""

    network: str | None = None  # "IB", "Socket" or a plugin's network name (IBext_v8, AWS Libfabric)
    plugin: str | None = None  # an external net plugin NCCL loaded, None: NCCL's internal IB/Socket
    version: str | None = None  # NCCL's own, e.g. 2.27.5+cuda12.9
    cuda_driver: int | None = None  # cudaDriverVersion, e.g. 13010 (CUDA 13.1)
    hcas: list[str] = field(default_factory=list)  # every HCA port NCCL uses, "mlx5_0:1"-less names
    link_layers: list[str] = field(default_factory=list)  # IB / RoCE per entry of hcas
    ports: list[int] = field(default_factory=list)  # the HCA port per entry of hcas
    nics: list[list[str]] = field(default_factory=list)  # NCCL's NICs: each its HCAs (more than one: merged)
    merged: bool = False  # a virtual NIC fuses several ports (NCCL_IB_MERGE_NICS)
    relaxed_ordering: bool = False  # "[RO]": PCIe relaxed ordering on
    channels: list[str] = field(default_factory=list)  # distinct "via ..." paths
    channel_count: int = 0  # distinct channel numbers seen
    gdr: bool | None = None  # True: a NET channel went via .../GDRDMA; False: NET channels without it
    gdr_pairs: list[dict[str, Any]] = field(default_factory=list)  # "GPU Direct RDMA Enabled/Disabled" lines
    algorithms: list[str] = field(default_factory=list)  # "ring", "tree" (connected, or chosen in TUNING lines)
    gid_index: int | None = None  # RoCE: the GID index of NCCL's queue pairs (the first seen)
    tuned_algorithms: list[str] = field(default_factory=list)  # chosen per collective (TUNING lines): "ring"
    tuned_protocols: list[str] = field(default_factory=list)  # chosen per collective (TUNING lines): "simple"
    dmabuf: bool = False  # "DMA-BUF is available"
    lines: int = 0  # NCCL lines seen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NET = re.compile(r"Using network (.+?)\s*$")
_PLUGIN = re.compile(r"NET/Plugin ?: Loaded net plugin (.+?)\s*(?:\(v\d+\))?\s*$")
_P2P_PLUGIN = re.compile(r"P2P plugin (?:v\d+ )?(\S+)")
_VERSION = re.compile(r"NCCL version (\S+)")
_DRIVER = re.compile(r"cudaDriverVersion (\d+)")
_IB_USING = re.compile(r"NET/IB ?: Using (.*?)(?:;\s*OOB|$)")
_IB_DEV = re.compile(r"\[\d+\]\s*([\w.-]+?):(\d+)/(IB|RoCE|UNSPECIFIED)")
_MERGED = re.compile(r"\[\d+\]=\{([^}]*)\}")
_VIA = re.compile(r"via (NET/[\w/()]+|P2P/\S+|SHM\S*|NVL\S*|CollNet\S*)")
_CHANNEL = re.compile(r"(?:Channel|Ring) (\d+)(?:/\d+)? :")
_GDR_PAIR = re.compile(r"GPU Direct RDMA (Enabled|Disabled) for GPU (\S+) / HCA (\S+) \(distance (\d+) ([<>]=?) (\d+)\)")
_TUNING_OLD = re.compile(r"Bytes -> Algo (\d+) proto (\d+)")
_TUNING_NEW = re.compile(r"Best tuning, algorithm, (\w+), protocol, (\w+)")
_QP_GID = re.compile(r"NET/IB ?: .*\bPort \d+ (?:qpn|qp_num) \d+ mtu \d+ GID (\d+) \(")
# NCCL's numbering of algorithms and protocols (src/include/device.h), for the older TUNING line.
ALGORITHMS = ("tree", "ring", "collnet_direct", "collnet_chain", "nvls", "nvls_tree", "pat")
PROTOCOLS = ("ll", "ll128", "simple")


def _named(names: tuple[str, ...], number: str) -> str:
    index = int(number)
    return names[index] if index < len(names) else number


def _devices(text: str) -> list[tuple[str, int, str]]:
    return [(dev, int(port), layer) for dev, port, layer in _IB_DEV.findall(text)]


def _read_ib_using(out: NcclTransport, listing: str) -> None:
    """``[0]mlx5_0:1/IB [1]...`` (one NIC per port) or ``[0]={[0] mlx5_2:1/RoCE, [1] ...}`` (merged)."""
    groups = _MERGED.findall(listing)
    nics = [_devices(g) for g in groups] if groups else [[d] for d in _devices(listing)]
    out.relaxed_ordering = out.relaxed_ordering or "[RO]" in listing
    for nic in nics:
        names = [dev for dev, _, _ in nic]
        if names and names not in out.nics:
            out.nics.append(names)
        out.merged = out.merged or len(nic) > 1
        for dev, port, layer in nic:
            if dev not in out.hcas:
                out.hcas.append(dev)
                out.ports.append(port)
                out.link_layers.append(layer)


def parse_nccl_log(lines: Iterable[str]) -> NcclTransport:
    """Everything the INFO lines of one rank's log say about its transport."""
    out = NcclTransport()
    channels: dict[str, None] = {}
    numbers: set[int] = set()
    algorithms: dict[str, None] = {}
    tuned_algos: dict[str, None] = {}
    tuned_protos: dict[str, None] = {}
    for line in lines:
        if "NCCL" not in line:
            continue
        out.lines += 1
        if m := _NET.search(line):
            out.network = m.group(1)
        if m := _PLUGIN.search(line):
            out.plugin = m.group(1).strip()
        elif (m := _P2P_PLUGIN.search(line)) and out.plugin is None:
            out.plugin = m.group(1)
        if out.version is None and (m := _VERSION.search(line)):
            out.version = m.group(1)
        if out.cuda_driver is None and (m := _DRIVER.search(line)):
            out.cuda_driver = int(m.group(1))
        if m := _IB_USING.search(line):
            _read_ib_using(out, m.group(1))
        if m := _GDR_PAIR.search(line):
            pair = {"gpu": m.group(2), "hca": m.group(3), "enabled": m.group(1) == "Enabled",
                    "distance": int(m.group(4)), "limit": int(m.group(6))}
            if pair not in out.gdr_pairs:
                out.gdr_pairs.append(pair)
        if "DMA-BUF is available" in line:
            out.dmabuf = True
        if m := _VIA.search(line):
            channels[m.group(1)] = None
            if c := _CHANNEL.search(line):
                numbers.add(int(c.group(1)))
        if "Connected all rings" in line:
            algorithms["ring"] = None
        if "Connected all trees" in line or "Trees [" in line:
            algorithms["tree"] = None
        if m := _TUNING_NEW.search(line):
            tuned_algos[m.group(1).lower()] = None
            tuned_protos[m.group(2).lower()] = None
        elif m := _TUNING_OLD.search(line):
            tuned_algos[_named(ALGORITHMS, m.group(1))] = None
            tuned_protos[_named(PROTOCOLS, m.group(2))] = None
        if out.gid_index is None and (m := _QP_GID.search(line)):
            out.gid_index = int(m.group(1))
    out.channels = list(channels)
    out.channel_count = len(numbers)
    out.algorithms = list(dict.fromkeys([*algorithms, *tuned_algos]))
    out.tuned_algorithms = list(tuned_algos)
    out.tuned_protocols = list(tuned_protos)
    net_channels = [c for c in out.channels if c.startswith("NET/")]
    if out.network is None and net_channels and all(c.startswith("NET/Socket") for c in net_channels):
        out.network = "Socket"
    if net_channels:
        out.gdr = any(c.endswith("/GDRDMA") or "/GDRDMA/" in c for c in net_channels)
    return out


def summary_columns(nccl: NcclTransport | dict[str, Any] | None) -> dict[str, Any]:
    """The ``nccl_*`` summary columns of a test, from its rank 0's transport (None: no NCCL log)."""
    data = nccl.to_dict() if isinstance(nccl, NcclTransport) else (nccl or {})
    hcas, layers = data.get("hcas") or [], data.get("link_layers") or []
    return {
        "nccl_version": data.get("version"),
        "nccl_network": data.get("network"),
        "nccl_plugin": data.get("plugin"),
        "nccl_hcas": ",".join(hcas) if hcas else None,
        "nccl_link_layer": "/".join(sorted(set(layers))) if layers else None,
        "nccl_merged_nics": bool(data.get("merged")) if data else None,
        "nccl_gdr": data.get("gdr"),
        "nccl_channels": int(data.get("channel_count") or 0) if data else None,
        "nccl_algorithms": ",".join(data.get("algorithms") or []) or None,
        "nccl_gid_index": data.get("gid_index"),
        "nccl_protocols": ",".join(data.get("tuned_protocols") or []) or None,
    }


# Settings whose effect the log shows: the variable, and the NcclTransport field of what NCCL chose.
CHECKED_SETTINGS = {"NCCL_ALGO": "tuned_algorithms", "NCCL_PROTO": "tuned_protocols"}


def settings_env(env: Mapping[str, str]) -> dict[str, str]:
    """A test's settings (spec env: / sweep_env:) as its ranks get them, over the fabric's and
    the profile's: plus TUNING in NCCL_DEBUG_SUBSYS where it sets NCCL_ALGO or NCCL_PROTO, as
    NCCL prints the algorithm and protocol it chose only then (a line per collective call, so
    only for such tests), unless the test sets NCCL_DEBUG_SUBSYS itself."""
    if "NCCL_DEBUG_SUBSYS" in env or not any(name in env for name in CHECKED_SETTINGS):
        return dict(env)
    return {**env, "NCCL_DEBUG_SUBSYS": "INIT,NET,ENV,TUNING"}


def _allowed(value: str) -> tuple[set[str], bool] | None:
    """NCCL_ALGO / NCCL_PROTO's names, lower case, and whether they are excluded ("^Tree");
    None for the per-collective form ("allreduce:tree;allgather:ring"), not read here."""
    if ":" in value or ";" in value:
        return None
    excluded = value.startswith("^")
    return {n.strip().lower() for n in value.lstrip("^").split(",") if n.strip()}, excluded


def setting_check(env: Mapping[str, str], nccl: NcclTransport | Mapping[str, Any] | None) -> tuple[str | None, str]:
    """Whether NCCL honoured a test's NCCL_ALGO / NCCL_PROTO / NCCL_IB_GID_INDEX, from rank 0's
    log: ("honoured" | "changed" | "not checked", why), or (None, "") for a test without settings.
    "changed": NCCL chose an algorithm or protocol the setting rules out (e.g. Tree asked, no tree
    AllGather exists, Ring used), or another GID. A gloo test has no NCCL log: not checked."""
    if not env:
        return None, ""
    if nccl is None:
        return "not checked", "no NCCL log (gloo, or a rank that did not start NCCL)"
    data = nccl.to_dict() if isinstance(nccl, NcclTransport) else dict(nccl)
    changed: list[str] = []
    unread: list[str] = []
    for name, fieldname in CHECKED_SETTINGS.items():
        if name not in env:
            continue
        rule, used = _allowed(env[name]), [str(x) for x in data.get(fieldname) or []]
        if rule is None or not used:
            unread.append(name)
            continue
        names, excluded = rule
        off = [u for u in used if (u in names) == excluded]
        if off:
            changed.append(f"{name}={env[name]}, NCCL used {','.join(off)}")
    if "NCCL_IB_GID_INDEX" in env:
        if data.get("gid_index") is None:
            unread.append("NCCL_IB_GID_INDEX")
        elif str(data["gid_index"]) != env["NCCL_IB_GID_INDEX"].strip():
            changed.append(f"NCCL_IB_GID_INDEX={env['NCCL_IB_GID_INDEX']}, NCCL used GID {data['gid_index']}")
    if changed:
        return "changed", "; ".join(changed)
    if unread or not any(n in env for n in (*CHECKED_SETTINGS, "NCCL_IB_GID_INDEX")):
        what = ", ".join(unread) if unread else "these settings"
        return "not checked", f"NCCL's log does not show the effect of {what}"
    return "honoured", ""
