"""What a fabric means for a rank: its NCCL environment, its GID, the link layer it
must show and how a silent fall-back from it is recognised.

A profile names a fabric (``ib``, ``roce``, ``tcp``, ``loopback``); everything that
differs between fabrics is a method of its ``Fabric`` here, so a backend or a report
never asks ``profile.fabric == "roce"``. A new fabric (say an EFA-like one) is a new
subclass and one line in ``FABRICS``. Pure: no I/O, no imports of benchfab.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Profile(Protocol):
    """What a fabric reads of a profile (spec.Profile: the spec sits above this module, and
    names its fabrics from FABRICS). Read-only, so the spec's Literal fields satisfy it."""

    @property
    def fabric(self) -> str: ...
    @property
    def gid_index(self) -> int | None: ...
    @property
    def line_rate(self) -> float | None: ...
    @property
    def env(self) -> Mapping[str, str]: ...


class Fabric:
    """The default: a fabric without RDMA (NCCL and gloo over sockets)."""

    name = "loopback"
    #: the link layer NCCL must report for the fabric's HCAs (None: no HCA expected)
    link_layer: str | None = None
    #: the usual line rate of one NIC, bit/s, when a profile gives no ``line_rate`` (the pod network)
    line_rate_bps: float = 10e9

    @property
    def uses_rdma(self) -> bool:
        return self.link_layer is not None

    def nccl_env(self, profile: Profile, ifname: str | None, hcas: Sequence[str], force_net: bool) -> dict[str, str]:
        """NCCL's variables for a rank on this fabric, before the profile's own ``env``."""
        return {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT,NET"}

    def gid_index(self, profile: Profile) -> int | None:
        """The GID a rank uses on this fabric (None: the device's own choice)."""
        return None

    def fallback_problem(self, profile: Profile, nccl: Mapping[str, Any], memory: str) -> str | None:
        """One line when NCCL did not use this fabric as the profile asked (None: fine or unknown)."""
        return None


class Sockets(Fabric):
    """TCP on a secondary network: NCCL's socket transport on purpose."""

    name = "tcp"
    line_rate_bps = 25e9  # what one TCP stream reaches on a 100 GbE secondary network, roughly

    def nccl_env(self, profile: Profile, ifname: str | None, hcas: Sequence[str], force_net: bool) -> dict[str, str]:
        env = {**super().nccl_env(profile, ifname, hcas, force_net), "NCCL_IB_DISABLE": "1"}
        if ifname:
            env["NCCL_SOCKET_IFNAME"] = f"={ifname}"
        return env


class InfiniBand(Fabric):
    name = "ib"
    link_layer = "IB"
    line_rate_bps = 400e9  # NDR

    def nccl_env(self, profile: Profile, ifname: str | None, hcas: Sequence[str], force_net: bool) -> dict[str, str]:
        env = {**super().nccl_env(profile, ifname, hcas, force_net), "NCCL_IB_DISABLE": "0"}
        if hcas:
            # NCCL matches HCA names by prefix (mlx5_1 would also take mlx5_10): '=' asks for exact names.
            env["NCCL_IB_HCA"] = "=" + ",".join(h.lstrip("=") for h in hcas)
        if force_net:
            env["NCCL_NET"] = "IB"
        return env

    def fallback_problem(self, profile: Profile, nccl: Mapping[str, Any], memory: str) -> str | None:
        network = nccl.get("network")
        if not network:
            return None
        if network == "Socket":
            return (f"NCCL fell back to sockets on a {self.name} profile (no usable HCA in the pod: "
                    "check the RDMA resource, the NAD and NCCL_IB_HCA)")
        layers = set(nccl.get("link_layers") or [])
        if layers and self.link_layer not in layers:
            return f"NCCL used {'/'.join(sorted(layers))} HCAs on a {self.name} profile"
        if memory == "cuda" and nccl.get("gdr") is False:
            return "NCCL moved GPU data without GPUDirect RDMA (no /GDRDMA channel): check nvidia-peermem or DMA-BUF"
        return None


class RoCE(InfiniBand):
    name = "roce"
    link_layer = "RoCE"

    def nccl_env(self, profile: Profile, ifname: str | None, hcas: Sequence[str], force_net: bool) -> dict[str, str]:
        env = super().nccl_env(profile, ifname, hcas, force_net)
        if ifname:
            # Bootstrap and the RoCE GID's IP live on the secondary interface.
            env["NCCL_SOCKET_IFNAME"] = f"={ifname}"
        gid = self.gid_index(profile)
        if gid is not None:
            # NCCL >= 2.21.5 picks the RoCE v2 IPv4 GID itself; an explicit index is for
            # older NCCL, or pods that see several IPv4 GIDs (macvlan).
            env["NCCL_IB_GID_INDEX"] = str(gid)
        return env

    def gid_index(self, profile: Profile) -> int | None:
        return profile.gid_index


FABRICS: dict[str, Fabric] = {f.name: f for f in (Fabric(), Sockets(), InfiniBand(), RoCE())}


def fabric_of(profile: Profile) -> Fabric:
    return FABRICS[profile.fabric]


def line_rate_of(profile: Profile) -> float:
    """The line rate a profile's NIC runs at, bit/s: its own ``line_rate``, else its fabric's usual."""
    return profile.line_rate if profile.line_rate is not None else fabric_of(profile).line_rate_bps


def rank_env(profile: Profile, ifname: str | None = None, hcas: Sequence[str] = (), force_net: bool = False) -> dict[str, str]:
    """The fabric's NCCL variables, then the profile's own ``env:`` (which wins: it is the
    user's tuning, e.g. NCCL_IB_QPS_PER_CONNECTION or NCCL_IB_TC)."""
    return {**fabric_of(profile).nccl_env(profile, ifname, hcas, force_net), **profile.env}
