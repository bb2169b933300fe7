"""What a second-pass verdict says: the kind of fault, where it is, the figures that say
so, and what a platform team does about it.

A verdict (``Finding``) has a *kind* (``FAULTS``), a *subject* (one node, or a link: its
two ends, each with the port its tests used where they recorded it), a one-line *why*
with the figures, and its *evidence* (the tests). What to do is a method of the kind,
never an ``if`` on its name elsewhere:

- a node kind (``dead``, ``bad-node``, ``lossy-node``) cordons and labels that node (and
  names its port's error counters to read);
- a link kind (``bad-link``, ``lossy-link``) cordons and labels nothing: both ends are fine
  with other partners, so it names the two ports to inspect and the error counters to read
  there (and the switch ports between them);
- a NIC kind (``bad-nic``, ``lossy-nic``: one rail of a node, found by a per-rail pass, the
  node's other rails fine) cordons nothing either: it labels the node with the rail, so a
  scheduler or a person can keep rail-hungry jobs off it, and names that NIC's counters.

In a per-rail pass every verdict carries its ``rail``, and a node verdict there means every
rail of the node was bad (retests.rail_verdicts decides which).

An action that starts with ``#`` is advice for a person; the others are commands.

``evidence_lines`` are one-line facts that back a verdict besides its tests (error-counter
deltas on its ports, "port_rcv_errors +1,204 on gpu-07 mlx5_3 during 3 tests"): printed under
it, stored with it. Pure: no I/O.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

VERDICT_LABEL = "benchfab.io/verdict"
RAILS_LABEL = "benchfab.io/bad-rails"  # the rails a NIC verdict names (5, or 1.5): what --apply writes too

# The error counters of a port, per fabric, and where to read them (fleet-health practice:
# ibqueryerrors / NVSentinel's list for IB and RoCE ports, the netdev statistics for Ethernet).
RDMA_COUNTERS = ("symbol_error link_error_recovery link_downed port_rcv_errors port_xmit_discards "
                 "(/sys/class/infiniband/DEV/ports/PORT/counters/, perfquery; the switch side: ibqueryerrors)")
ETHERNET_COUNTERS = ("rx_crc_errors rx_errors rx_dropped rx_missed_errors tx_errors carrier_changes "
                     "(ethtool -S IFACE, /sys/class/net/IFACE/statistics/; and the switch port's counters)")
COUNTERS = {"ib": RDMA_COUNTERS, "roce": RDMA_COUNTERS}


@dataclass(frozen=True)
class Finding:
    """One verdict: what is wrong (``kind``, a key of ``FAULTS``), where, and the figures."""

    kind: str
    nodes: tuple[str, ...]  # one node, or the two ends of a link
    why: str  # one line with the numbers
    evidence: tuple[dict[str, Any], ...] = ()
    # Per end (same order as nodes): the port its tests used there, where they recorded it
    # (an RDMA device such as mlx5_0, or the test network's address); and the profile's fabric.
    ports: tuple[str | None, ...] = ()
    fabric: str | None = None
    rail: int | None = None  # a per-rail pass: the rail the verdict is about (None: every rail / not per rail)
    evidence_lines: tuple[str, ...] = ()  # facts beyond the tests that back it (error-counter deltas)

    @property
    def fault(self) -> Fault:
        return FAULTS[self.kind]

    @property
    def is_link(self) -> bool:
        return self.fault.subject == "link"

    @property
    def where(self) -> str:
        """``gpu-07``, ``gpu-03 - gpu-07``; on a rail: ``gpu-07 rail 5 mlx5_5``, ``gpu-03 - gpu-07 rail 5``."""
        if self.rail is None:
            return " - ".join(self.nodes)
        device = f" {self.device}" if self.device and len(self.nodes) == 1 else ""
        return f"{' - '.join(self.nodes)} rail {self.rail}{device}"

    @property
    def device(self) -> str | None:
        """The NIC of a one-node verdict, where its tests recorded it."""
        return self.ports[0] if len(self.nodes) == 1 and self.ports else None

    def actions(self) -> list[str]:
        """What a user would do (printed, never run by benchfab)."""
        return self.fault.actions(self)

    def port_of(self, node: str) -> str | None:
        i = self.nodes.index(node)
        return self.ports[i] if i < len(self.ports) else None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.fault.subject, "nodes": list(self.nodes), "why": self.why,
                "evidence": list(self.evidence), "ports": list(self.ports), "fabric": self.fabric,
                "rail": self.rail, "device": self.device, "evidence_lines": list(self.evidence_lines),
                "actions": self.actions()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        kind, nodes = str(data["kind"]), tuple(str(n) for n in data["nodes"])
        if kind == "lossy":  # schema 1 had one lossy kind for nodes and links
            kind = "lossy-link" if len(nodes) == 2 else "lossy-node"
        if kind not in FAULTS:
            raise KeyError(f"unknown verdict kind {kind!r}")
        rail = data.get("rail")
        return cls(kind, nodes, str(data["why"]), tuple(data.get("evidence") or ()),
                   tuple(data.get("ports") or ()), data.get("fabric"), int(rail) if rail is not None else None,
                   tuple(str(x) for x in data.get("evidence_lines") or ()))


@dataclass(frozen=True)
class Fault(ABC):
    """A kind of verdict: what its subject is and what it means; ``actions`` is its remediation."""

    name: str
    subject: str  # "node" or "link"
    means: str
    # The value of the benchfab.io/verdict label for this kind, printed in the actions and
    # written by --apply (node_marks.py): coarser than the kind (dead -> bad-node, lossy).
    label: str = ""

    @property
    def label_value(self) -> str:
        return self.label or self.name

    @abstractmethod
    def actions(self, finding: Finding) -> list[str]:
        """What to do about a verdict of this kind (printed, never run)."""


@dataclass(frozen=True)
class NodeFault(Fault):
    """The node is at fault whoever its partner is: take it out of scheduling, mark why, and
    (where its tests reached the fabric) read its port's counters."""

    inspect_port: bool = True

    def actions(self, finding: Finding) -> list[str]:
        node = finding.nodes[0]
        out = [f"kubectl cordon {node}", f"kubectl label node {node} {VERDICT_LABEL}={self.label_value} --overwrite"]
        if self.inspect_port:
            out.append(f"# then inspect {_port(finding, node)} and its switch port: {_counters(finding)}")
        return out


@dataclass(frozen=True)
class LinkFault(Fault):
    """Only the path between two nodes is at fault, each end is fine with other partners:
    cordoning either would take a healthy node out. Inspect the two ports and their counters."""

    def actions(self, finding: Finding) -> list[str]:
        a, b = finding.nodes
        return [f"# link {a} - {b}: cordon neither node (each is fine with known-good partners)",
                f"# inspect {_port(finding, a)}, {_port(finding, b)} and the switch ports between them: "
                f"{_counters(finding)}"]


@dataclass(frozen=True)
class NicFault(Fault):
    """One rail of a node is at fault, its other rails are fine: cordoning the node would take
    its healthy rails out too. Label the node with the rail, inspect that NIC."""

    def actions(self, finding: Finding) -> list[str]:
        node, rail = finding.nodes[0], finding.rail
        # the same labels `diagnose --apply` writes (backends/kubernetes/node_marks.py)
        return [f"kubectl label node {node} {VERDICT_LABEL}={self.label_value} {RAILS_LABEL}={rail} --overwrite",
                f"# rail {rail} only: the node's other rails are fine (cordon it only if its jobs need every rail)",
                f"# then inspect {_port(finding, node)} and its switch port: {_counters(finding)}"]
class GpuFault(NodeFault):
    """One GPU of the node failed its health checks (DCGM: an XID, a row-remap failure or
    pending remap, ``dcgmi diag``): take the node out, then check that GPU and its nearest NIC."""

    def actions(self, finding: Finding) -> list[str]:
        node = finding.nodes[0]
        gpus = [e for e in finding.evidence if isinstance(e, dict) and "gpu" in e]
        out = super().actions(finding)
        for e in gpus:
            nic = f", nearest NIC {e['nic']}" if e.get("nic") else ""
            out.append(f"# then on {node}: dcgmi diag -r 3 -i {e['gpu']} (GPU {e['gpu']}{nic}); "
                       "nvidia-smi -q -d ROW_REMAPPER,ECC; a pending remap needs a GPU reset, a failed one an RMA")
        return out


def _port(finding: Finding, node: str) -> str:
    port = finding.port_of(node)
    if not port:
        return f"{node}'s NIC on the test network"
    # An address (a tcp test's test-network IP) or a device name (an RDMA test's HCA).
    return f"{node}'s interface with {port}" if re.fullmatch(r"[0-9.:a-fA-F]+", port) and any(
        c in port for c in ".:") else f"{node}'s {port}"


def _counters(finding: Finding) -> str:
    return COUNTERS.get(finding.fabric or "", ETHERNET_COUNTERS)


FAULTS: dict[str, Fault] = {f.name: f for f in (
    NodeFault("dead", "node", "its pods never started", label="bad-node", inspect_port=False),
    NodeFault("bad-node", "node", "slow or failing with every partner, known-good ones too"),
    NodeFault("lossy-node", "node", "loses packets with several partners, known-good ones too", label="lossy"),
    GpuFault("bad-gpu", "node", "a GPU failed its DCGM health checks (XID, row remapping, dcgmi diag)",
             inspect_port=False),
    LinkFault("bad-link", "link", "slow or failing only between these two nodes, again when retested"),
    LinkFault("lossy-link", "link", "loses packets only between these two nodes, again when retested"),
    NicFault("bad-nic", "nic", "slow or failing on one rail of a node, with known-good partners on that rail too"),
    NicFault("lossy-nic", "nic", "loses packets on one rail of a node, with known-good partners on that rail too",
             label="lossy"),
)}
