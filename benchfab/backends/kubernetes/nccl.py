"""NCCL per fabric: the environment a rank gets, and what its INFO log says it used.

``nccl_env`` turns a profile plus the pod's Multus network-status into NCCL
variables; ``parse_nccl_log`` (benchfab.nccllog, shared with the local backend)
reads NCCL_DEBUG=INFO output back into the transport, HCAs and GPUDirect path
really used, so a silent fall-back to sockets (or to bounce buffers) is caught
instead of reported as a slow fabric. Pure functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...fabrics import fabric_of, rank_env
from ...nccllog import NcclTransport, parse_nccl_log, settings_env
from ...spec import Profile, Rail
from .options import KubeOptions


def attachments(network_status: str | None, networks: Sequence[str], namespace: str) -> list[dict[str, Any]]:
    """The network-status entries of a pod's attachments to ``networks``, in the order Multus
    lists them (net1, net2, ...; a NAD attached twice, one VF per rail, gives two entries)."""
    if not network_status or not networks:
        return []
    try:
        entries = json.loads(network_status)
    except json.JSONDecodeError:
        return []
    if not isinstance(entries, list):
        return []
    wanted = {n for net in networks for n in (net, _qualified(net, namespace))}
    return [e for e in entries if isinstance(e, dict) and e.get("name") in wanted and not e.get("default")]


def _qualified(network: str, namespace: str) -> str:
    return network if "/" in network else f"{namespace}/{network}"


def missing_attachments(network_status: str | None, rails: Sequence[Rail], one_per_rail: bool,
                        namespace: str) -> list[tuple[int, str]]:
    """(local rail index, network) of each of a pod's rails whose network its Multus
    network-status does not list: with ``one_per_rail`` (SR-IOV: a VF per rail) every rail
    needs an entry of its own, a NAD two rails share listed twice; else each distinct
    network once. Empty: every rail is attached."""
    wanted = [r.network for r in rails if r.network]
    listed: dict[str, int] = {}
    for e in attachments(network_status, wanted, namespace):
        name = _qualified(str(e.get("name")), namespace)
        listed[name] = listed.get(name, 0) + 1
    missing: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, rail in enumerate(rails):
        if not rail.network:
            continue
        name = _qualified(rail.network, namespace)
        if name in seen and not one_per_rail:
            continue
        seen.add(name)
        if listed.get(name, 0) > 0:
            listed[name] -= 1
        else:
            missing.append((i, rail.network))
    return missing


def rdma_devices(entry: dict[str, Any] | None) -> list[str]:
    """HCAs the device plugin gave the pod (SR-IOV VFs carry device-info.pci.rdma-device)."""
    if not entry:
        return []
    pci = (entry.get("device-info") or {}).get("pci") or {}
    dev = pci.get("rdma-device") or ""
    return [d for d in str(dev).split(",") if d]


def _rail_entry(entries: Sequence[dict[str, Any]], rail: int) -> dict[str, Any] | None:
    """Local rank ``rail``'s attachment: its own VF's where the pod has one per rail, else the one."""
    if not entries:
        return None
    return entries[rail] if rail < len(entries) else entries[0]


def net_env(profile: Profile, entries: Sequence[dict[str, Any]], rails: Sequence[Rail] = (),
            rail: int = 0) -> dict[str, str]:
    """Where a point-to-point rank (local rank ``rail`` of its pod) should run its test: the
    address of its secondary interface (BENCHFAB_NET_IP: rank 1 gives it to rank 0 as the
    peer address, and on RoCE it picks the device and GID) and, where known, its rail's HCA
    (BENCHFAB_NET_HCA)."""
    env: dict[str, str] = {}
    entry = _rail_entry(entries, rail)
    ips = [str(ip).split("/", 1)[0] for ip in (entry or {}).get("ips") or [] if ip]
    if ips:
        env["BENCHFAB_NET_IP"] = ips[0]
    named = rails[rail].hca if rail < len(rails) else None
    hcas = ([named] if named else []) or [h.lstrip("=") for h in (profile.hca or "").split(",") if h] \
        or rdma_devices(entry)
    if hcas and fabric_of(profile).uses_rdma:
        env["BENCHFAB_NET_HCA"] = hcas[0]
    return env


def pod_hcas(profile: Profile, entries: Sequence[dict[str, Any]], rails: Sequence[Rail] = ()) -> list[str]:
    """The HCAs of a pod's rails: the rails' names, else the profile's hca, else each
    attachment's SR-IOV VF (device-info.pci.rdma-device)."""
    named = [r.hca for r in rails if r.hca]
    if named:
        return list(dict.fromkeys(named))
    listed = [h for h in (profile.hca or "").split(",") if h]
    return listed or list(dict.fromkeys(d for e in entries for d in rdma_devices(e)))


def nccl_env(profile: Profile, entries: Sequence[dict[str, Any]], kube: KubeOptions,
             rails: Sequence[Rail] = ()) -> dict[str, str]:
    """A rank pod's NCCL variables: the profile's fabric given the pod's attachments (the
    first one's interface, every rail's HCA in NCCL_IB_HCA), then the profile's own env."""
    first = entries[0] if entries else {}
    return rank_env(profile, first.get("interface"), pod_hcas(profile, entries, rails), kube.force_net)


__all__ = ["NcclTransport", "attachments", "fallback_problem", "missing_attachments", "nccl_env",
           "net_env", "parse_nccl_log", "pod_hcas", "rdma_devices", "settings_env"]


def fallback_problem(profile: Profile, nccl: NcclTransport | dict[str, Any] | None, memory: str = "host") -> str | None:
    """One line if NCCL did not use the fabric the profile asked for (None if fine or unknown)."""
    if nccl is None:
        return None
    data = nccl.to_dict() if isinstance(nccl, NcclTransport) else nccl
    return fabric_of(profile).fallback_problem(profile, data, memory)
