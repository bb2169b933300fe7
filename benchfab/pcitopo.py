"""GPU-NIC locality from the PCIe tree in sysfs, in ``nvidia-smi topo -m``'s words.

Each PCI device's directory under ``/sys/devices/pciDDDD:BB/...`` is the chain of
bridges above it; two devices' distance class is where their chains meet:

- PIX: through at most one PCIe switch (both below the same switch's ports)
- PXB: through several PCIe switches, without the host bridge
- PHB: through a PCIe host bridge (the root complex, typically the CPU)
- NODE: across host bridges within one NUMA node
- SYS: across the SMP interconnect between NUMA nodes (QPI/UPI, xGMI), or where a
  device's NUMA node is unknown (-1): GPUDirect RDMA over SYS is known to halve
  bandwidth or worse, so a SYS pairing is flagged

GPUs are NVIDIA display / 3D controllers (vendor 0x10de, class 0x03xxxx) in PCI bus
order, which is ``nvidia-smi``'s order and CUDA's with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``;
HCAs are ``/sys/class/infiniband/*/device``. Tested on trees built like published
8-GPU servers (tests/data/topology/, with the ``topo -m`` matrices they reproduce).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Distance = Literal["PIX", "PXB", "PHB", "NODE", "SYS"]
DISTANCES: tuple[Distance, ...] = ("PIX", "PXB", "PHB", "NODE", "SYS")  # nearest first
_PCI_ADDRESS = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$")
_ROOT = re.compile(r"^pci[0-9a-f]{4}:[0-9a-f]{2}$")
NVIDIA_VENDOR = "0x10de"


@dataclass(frozen=True)
class PciDevice:
    name: str  # GPU index ("0") or HCA name ("mlx5_0")
    address: str  # 0000:1b:00.0
    root: str  # pci0000:00: its host bridge
    bridges: tuple[str, ...]  # the PCI bridges between the host bridge and the device, top first
    numa: int  # -1: unknown

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "address": self.address, "numa": self.numa}


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _device(name: str, directory: Path) -> PciDevice | None:
    """A device from its sysfs directory (a link into /sys/devices/pci.../...)."""
    real = Path(os.path.realpath(directory))
    parts = real.parts
    roots = [i for i, p in enumerate(parts) if _ROOT.match(p)]
    if not roots or not _PCI_ADDRESS.match(real.name):
        return None
    chain = [p for p in parts[roots[0] + 1:] if _PCI_ADDRESS.match(p)]
    numa_text = _read(real / "numa_node")
    numa = int(numa_text) if re.fullmatch(r"-?\d+", numa_text) else -1
    return PciDevice(name, chain[-1], parts[roots[0]], tuple(chain[:-1]), numa)


def distance(a: PciDevice, b: PciDevice) -> Distance:
    """The nvidia-smi distance class between two devices."""
    if a.root != b.root:
        return "NODE" if a.numa == b.numa and a.numa >= 0 else "SYS"
    common = 0
    for x, y in zip(a.bridges, b.bridges):
        if x != y:
            break
        common += 1
    if common == 0:
        # Only the root port level would be shared, and it is not: they meet in the host bridge.
        return "PHB"
    # Below the deepest shared bridge: one more level on each side is one switch's ports.
    below = max(len(a.bridges) - common, len(b.bridges) - common)
    return "PIX" if below <= 1 else "PXB"


@dataclass(frozen=True)
class Topology:
    gpus: tuple[PciDevice, ...]
    hcas: tuple[PciDevice, ...]

    def hca(self, name: str) -> PciDevice | None:
        return next((h for h in self.hcas if h.name == name), None)

    def nearest_gpu(self, hca: str) -> int | None:
        """The index of the GPU nearest to ``hca`` (the first of the nearest, in PCI order), None if unknown."""
        nic = self.hca(hca)
        if nic is None or not self.gpus:
            return None
        best = min(range(len(self.gpus)), key=lambda i: DISTANCES.index(distance(self.gpus[i], nic)))
        return best

    def nearest_hca(self, gpu: int) -> str | None:
        """The name of the HCA nearest to GPU ``gpu`` (the first of the nearest, in name order), None if unknown."""
        if not 0 <= gpu < len(self.gpus) or not self.hcas:
            return None
        return min(self.hcas, key=lambda h: DISTANCES.index(distance(self.gpus[gpu], h))).name

    def pairing(self, gpu: int, hca: str) -> dict[str, object] | None:
        """What a rank on (GPU ``gpu``, ``hca``) records: both devices and their distance class."""
        nic = self.hca(hca)
        if nic is None or not 0 <= gpu < len(self.gpus):
            return None
        d = distance(self.gpus[gpu], nic)
        return {"gpu": gpu, "gpu_pci": self.gpus[gpu].address, "hca": hca, "hca_pci": nic.address,
                "distance": d, "sys_distance": d == "SYS"}

    def matrix(self) -> dict[str, dict[str, Distance]]:
        """GPU index -> HCA name -> distance: the GPU x NIC block of ``nvidia-smi topo -m``."""
        return {g.name: {h.name: distance(g, h) for h in self.hcas} for g in self.gpus}


def read_topology(sysfs: Path = Path("/sys")) -> Topology:
    """The GPUs and HCAs of this host (or of a sysfs tree shipped as test data)."""
    gpus: list[PciDevice] = []
    pci = sysfs / "bus" / "pci" / "devices"
    entries = sorted(pci.iterdir()) if pci.is_dir() else []
    for entry in entries:
        if _read(entry / "vendor") == NVIDIA_VENDOR and _read(entry / "class").startswith("0x03"):
            dev = _device(str(len(gpus)), entry)
            if dev is not None:
                gpus.append(dev)
    hcas: list[PciDevice] = []
    ib = sysfs / "class" / "infiniband"
    for entry in sorted(ib.iterdir()) if ib.is_dir() else []:
        dev = _device(entry.name, entry / "device")
        if dev is not None:
            hcas.append(dev)
    return Topology(tuple(gpus), tuple(hcas))


def nearest_visible_gpu(topo: Topology, hca: str | None, visible: list[str], local_rank: int) -> tuple[int, str | None]:
    """Which of the GPUs a rank sees (CUDA indices, by PCI address) to pair with ``hca``:
    the nearest (this rank's ``local_rank mod count`` when it is among the nearest), and the
    distance class; without a known HCA or addresses, ``local_rank mod count`` (None)."""
    count = len(visible)
    fallback = local_rank % count if count else 0
    nic = topo.hca(hca) if hca else None
    by_address = {g.address: g for g in topo.gpus}
    known = {i: by_address[a.lower()] for i, a in enumerate(visible) if a.lower() in by_address}
    if nic is None or not known:
        return fallback, None
    ranked = {i: DISTANCES.index(distance(g, nic)) for i, g in known.items()}
    best = min(ranked.values())
    nearest = [i for i, r in ranked.items() if r == best]
    return (fallback if fallback in nearest else nearest[0]), DISTANCES[best]


def hca_names(nccl_ib_hca: str | None, present: list[str]) -> list[str]:
    """The HCAs an NCCL_IB_HCA value lets NCCL use, of those ``present``: its list ("=" exact,
    ":port" suffixes dropped), all but the listed with "^", every present one without a value.
    NCCL matches names by prefix unless "=": "mlx5" allows mlx5_0, mlx5_1..."""
    value = (nccl_ib_hca or "").strip()
    if not value:
        return list(present)
    exclude = value.startswith("^")
    value = value.lstrip("^")
    exact = value.startswith("=")
    names = [n.split(":", 1)[0] for n in value.lstrip("=").split(",") if n.strip()]
    listed = [h for h in present if any(h == n if exact else h.startswith(n) for n in names)]
    return [h for h in present if h not in listed] if exclude else listed


def nearest_hca(topo: Topology, gpu_address: str | None, hcas: list[str], local_rank: int) -> tuple[str | None, Distance | None]:
    """The NIC a collective rank on the GPU at ``gpu_address`` goes through: of ``hcas``, the one
    nearest the GPU in the PCIe tree (this rank's rail, ``hcas[local_rank mod count]``, when it is
    among the nearest), with the distance class; without the GPU's address or the HCAs in the
    tree, the rail by index and None. The rail by index alone is wrong wherever the device plugin
    gave the pod GPUs and NICs in different orders."""
    if not hcas:
        return None, None
    fallback = hcas[local_rank % len(hcas)]
    gpu = next((g for g in topo.gpus if gpu_address and g.address == gpu_address.lower()), None)
    known = {h: topo.hca(h) for h in hcas}
    ranked = {h: DISTANCES.index(distance(gpu, dev)) for h, dev in known.items() if dev is not None and gpu is not None}
    if not ranked:
        return fallback, None
    best = min(ranked.values())
    nearest = [h for h in hcas if ranked.get(h) == best]
    return (fallback if fallback in nearest else nearest[0]), DISTANCES[best]
