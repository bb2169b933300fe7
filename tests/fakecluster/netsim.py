"""A simulated network of nodes on this host: one network namespace per node, real shaped links.

Each node is a network namespace (``ip netns``) whose ``eth0`` is one end of a veth pair; the
other end sits in a bridge in the host namespace, which holds the simulation's gateway address
(the fake API server listens there, so agents reach it the way pods reach a real API server).
Every address is inside the simulation's own /24 (10.213.B.0/24, B picked free), and nothing it
starts talks to any other address.

Links are shaped with tc, which this kernel has (no sch_netem: see
shared/reference/netns-simulation.md):

- every node's NIC: an htb class at ``rate_mbit`` on its ``eth0`` (what it sends) and on the
  bridge-side peer (what it receives): both ways, so a slow NIC is slow whichever end it is;
- one slow link A-B: an extra htb class on A's ``eth0`` with a u32 filter on B's address, and
  the same on B's towards A;
- a lossy node: an nftables ``numgen random`` drop rule in its namespace on the packets it
  sends to other nodes (the table lives and dies with the namespace).

With ``rails`` R > 1 every node has R NICs, as on a rail-optimized fabric: ``eth<r>`` in its
namespace on rail r's own bridge and /24 (rail 0's holds the gateway), so rail r of one node
reaches only rail r of the others. A fault can then sit on one rail of one node (``slow_nic``,
``lossy_nic``), on one link of one rail (``slow_link(..., rail=r)``), or on every rail of a node
(``slow_node``, ``lossy_node``).

Rates are tens to a few hundred Mbit/s so that two cores fill them: the CPU is never what a
measurement sees. ``down()`` stops what runs in each namespace (by pid: a process inside keeps
a namespace and its veth alive), then deletes the namespaces (their veths and qdiscs go with
them) and the bridge. Every command is an argv list, never a shell string.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

IP = "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "ip"
TC = "/usr/sbin/tc" if Path("/usr/sbin/tc").exists() else "tc"
NFT = "/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else "nft"
NFT_TABLE = "benchfab_sim"
BASE_NET = "10.213"


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def why_unavailable() -> str | None:
    """Why this host cannot run the simulation (None: it can)."""
    if os.geteuid() != 0:
        return "the netns simulation needs root (network namespaces, veth, tc, nftables)"
    for tool in (IP, TC, NFT):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh installs iproute2 and nftables as root)"
    return None


def _used_subnets() -> set[str]:
    out = _run([IP, "-4", "-o", "addr", "show"]).stdout
    return {".".join(w.split("/")[0].split(".")[:3]) for line in out.splitlines() for w in line.split()
            if w.count(".") == 3 and "/" in w}


@dataclass
class NodeNet:
    """One simulated node's namespace, interfaces and address."""

    index: int
    netns: str
    host_veth: str  # the bridge-side end, in the host namespace
    address: str  # rail 0's
    addresses: list[str] = field(default_factory=list)  # per rail: eth<r>'s address
    host_veths: list[str] = field(default_factory=list)  # per rail: the bridge-side end of eth<r>


@dataclass
class NetSim:
    """One simulated network; ``up()`` builds it, ``down()`` removes every trace of it."""

    count: int
    rate_mbit: float = 200.0
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    subnet: str = ""  # "10.213.B"; picked free in up() when empty
    nodes: list[NodeNet] = field(default_factory=list)
    rails: int = 1  # NICs per node, each on its own bridge and subnet
    subnets: list[str] = field(default_factory=list)  # per rail (rail 0's is ``subnet``)
    # What shaping is applied, for the tests and the person reading simcluster's state.
    slow_nodes: dict[int, float] = field(default_factory=dict)
    slow_links: dict[tuple[int, int, int], float] = field(default_factory=dict)  # (a, b, rail)
    lossy_nodes: dict[int, float] = field(default_factory=dict)
    slow_nics: dict[tuple[int, int], float] = field(default_factory=dict)  # (node, rail)
    lossy_nics: dict[tuple[int, int], float] = field(default_factory=dict)  # (node, rail)

    @property
    def prefix(self) -> str:
        return f"bfs{self.tag}"  # interface names must stay under 16 characters

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    def rail_bridge(self, rail: int) -> str:
        return self.bridge if rail == 0 else f"{self.prefix}br{rail}"

    @property
    def gateway(self) -> str:
        """The host namespace's address on the bridge (where the fake API server listens)."""
        return f"{self.subnet}.1"

    def up(self) -> NetSim:
        if not 2 <= self.count <= 250:
            raise ValueError(f"a simulated cluster has 2..250 nodes, got {self.count}")
        if not 1 <= self.rails <= 8:
            raise ValueError(f"a simulated node has 1..8 rails, got {self.rails}")
        if not self.subnet or len(self.subnets) < self.rails:
            used = _used_subnets() | set(self.subnets)
            free = [f"{BASE_NET}.{b}" for b in range(256) if f"{BASE_NET}.{b}" not in used]
            if len(free) < self.rails:
                raise RuntimeError(f"no {self.rails} free /24 left in {BASE_NET}.0.0/16")
            start = int(self.tag, 16) % len(free)
            picked = [free[(start + k) % len(free)] for k in range(self.rails)]
            self.subnet = self.subnet or picked[0]
            self.subnets = [self.subnet] + [x for x in picked if x != self.subnet][: self.rails - 1]
        try:
            for r in range(self.rails):
                _run([IP, "link", "add", self.rail_bridge(r), "type", "bridge"])
                if r == 0:
                    _run([IP, "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
                _run([IP, "link", "set", self.rail_bridge(r), "up"])
            for i in range(self.count):
                self._add_node(i)
        except BaseException:
            self.down()
            raise
        return self

    def _add_node(self, i: int) -> None:
        veths = [f"{self.prefix}h{i}" + (f"r{r}" if r else "") for r in range(self.rails)]
        addresses = [f"{self.subnets[r]}.{i + 2}" for r in range(self.rails)]
        node = NodeNet(i, f"{self.prefix}-n{i}", veths[0], addresses[0], addresses, veths)
        self.nodes.append(node)
        _run([IP, "netns", "add", node.netns])
        inside = [IP, "-n", node.netns]
        for r in range(self.rails):
            _run([IP, "link", "add", veths[r], "type", "veth", "peer", "name", f"eth{r}", "netns", node.netns])
            _run([IP, "link", "set", veths[r], "master", self.rail_bridge(r), "up"])
            _run([*inside, "addr", "add", f"{addresses[r]}/24", "dev", f"eth{r}"])
            _run([*inside, "link", "set", f"eth{r}", "up"])
        _run([*inside, "link", "set", "lo", "up"])
        self._shape(node)

    # -- shaping ----------------------------------------------------------------------------
    def _shape(self, node: NodeNet) -> None:
        """(Re)build both ends' htb trees of every NIC of the node."""
        for r in range(self.rails):
            self._shape_nic(node, r)

    def _shape_nic(self, node: NodeNet, rail: int) -> None:
        """(Re)build both ends' htb trees of one NIC: its rate, and one class per slow link."""
        rate = min(self.slow_nodes.get(node.index, self.rate_mbit), self.slow_nics.get((node.index, rail), self.rate_mbit))
        links = [(b if a == node.index else a, mbit) for (a, b, r), mbit in sorted(self.slow_links.items())
                 if node.index in (a, b) and r == rail]
        for ns, dev, direction in ((node.netns, f"eth{rail}", "dst"), (None, node.host_veths[rail], "src")):
            tc = [TC, *(["-n", ns] if ns else [])]
            _run([*tc, "qdisc", "del", "dev", dev, "root"], check=False)
            _run([*tc, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10"])
            _run([*tc, "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
                  "rate", f"{rate}mbit", "ceil", f"{rate}mbit"])
            _run([*tc, "class", "add", "dev", dev, "parent", "1:1", "classid", "1:10", "htb",
                  "rate", f"{rate}mbit", "ceil", f"{rate}mbit"])
            if ns is None:
                continue  # a slow link is shaped where each end sends (its own eth0)
            for k, (peer, mbit) in enumerate(links):
                cls = f"1:{20 + k}"
                _run([*tc, "class", "add", "dev", dev, "parent", "1:1", "classid", cls, "htb",
                      "rate", f"{min(mbit, rate)}mbit", "ceil", f"{min(mbit, rate)}mbit"])
                _run([*tc, "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                      "match", "ip", direction, f"{self.nodes[peer].addresses[rail]}/32", "flowid", cls])

    def slow_node(self, i: int, mbit: float) -> None:
        """Node i's NIC runs at ``mbit`` both ways (every pair with it is slow)."""
        self.slow_nodes[i] = mbit
        self._shape(self.nodes[i])

    def slow_link(self, a: int, b: int, mbit: float, rail: int = 0) -> None:
        """Only the link between nodes a and b (on ``rail``) runs at ``mbit`` (both ends fine with others)."""
        self.slow_links[(min(a, b), max(a, b), rail)] = mbit
        self._shape_nic(self.nodes[a], rail)
        self._shape_nic(self.nodes[b], rail)

    def slow_nic(self, i: int, rail: int, mbit: float) -> None:
        """Node i's NIC on ``rail`` runs at ``mbit`` both ways (its other rails are fine)."""
        self.slow_nics[(i, rail)] = mbit
        self._shape_nic(self.nodes[i], rail)

    def lossy_nic(self, i: int, rail: int, percent: float) -> None:
        """Node i's NIC on ``rail`` loses ``percent`` % of its packets both ways (as ``lossy_node``)."""
        self.lossy_nics[(i, rail)] = percent
        for node in self.nodes:
            self._apply_loss(node)

    def lossy_node(self, i: int, percent: float) -> None:
        """Node i loses ``percent`` % of the packets it sends to and receives from other nodes.

        Dropped where they arrive (the input hook of the receiving namespace), as a bad cable
        or NIC loses them: a drop on the sender's own output hook would be a local error that
        TCP retries at once, not a loss it has to detect and retransmit.
        """
        self.lossy_nodes[i] = percent
        for node in self.nodes:
            self._apply_loss(node)

    def _apply_loss(self, node: NodeNet) -> None:
        rules = []
        every = range(self.rails)
        faults = [(j, every, pct) for j, pct in sorted(self.lossy_nodes.items())]
        faults += [(j, range(r, r + 1), pct) for (j, r), pct in sorted(self.lossy_nics.items())]
        for j, rails, percent in faults:
            # The agent's API connection (from the gateway) is never dropped: only node-to-node traffic.
            senders = [n.addresses[r] for n in self.nodes if n.index != node.index for r in rails] \
                if j == node.index else [self.nodes[j].addresses[r] for r in rails]
            if senders:
                rules.append(f"    ip saddr {{ {', '.join(senders)} }} numgen random mod 1000 < {round(percent * 10)} drop")
        _run([IP, "netns", "exec", node.netns, NFT, "delete", "table", "inet", NFT_TABLE], check=False)
        if rules:
            ruleset = (f"table inet {NFT_TABLE} {{\n  chain lossy {{\n"
                       "    type filter hook input priority 0; policy accept;\n" + "\n".join(rules) + "\n  }\n}\n")
            _run([IP, "netns", "exec", node.netns, NFT, "-f", "-"], stdin=ruleset)

    # -- inspection and clean-up ---------------------------------------------------------------
    def pids(self, node: NodeNet) -> list[int]:
        out = _run([IP, "netns", "pids", node.netns], check=False).stdout
        return [int(x) for x in out.split() if x.isdigit()]

    def down(self) -> None:
        """Stop what runs inside, delete the namespaces (veths, qdiscs, nft tables go with them), the bridge."""
        for node in self.nodes:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = self.pids(node)
                for pid in pids:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 3
                while self.pids(node) and time.monotonic() < deadline:
                    time.sleep(0.05)
            _run([IP, "netns", "del", node.netns], check=False)
        for r in range(max(self.rails, 1)):
            _run([IP, "link", "del", self.rail_bridge(r)], check=False)
        # A deleted namespace's veth goes a moment later: wait, so the next up() can reuse names.
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.nodes = []

    def leftovers(self) -> list[str]:
        """Anything of this simulation still present (namespaces, links): empty after down()."""
        found = [ns for ns in _run([IP, "netns", "list"]).stdout.split() if ns.startswith(self.prefix)]
        found += [w.rstrip(":").split("@")[0] for line in _run([IP, "-o", "link", "show"]).stdout.splitlines()
                  for w in line.split()[1:2] if w.startswith(self.prefix)]
        return found

