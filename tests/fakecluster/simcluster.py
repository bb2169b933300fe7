"""A fake cluster whose nodes are network namespaces with real, shaped links (``netsim.py``).

``SimCluster.start(n)`` builds the network (one namespace per node, a bridge, the gateway
address), starts the fake API server on the gateway, seeds ``n`` Ready nodes ``sim-node-<i>``
with that node's address and the NAD ``sim-net``, and tells the kubelet to run each node's
pods in the node's namespace. Faults are set by node name: ``slow_node``, ``slow_link``,
``lossy_node``, ``dead_node`` (its pods never start). ``stop()`` removes everything.

``rails=R`` gives every node R NICs, one bridge and subnet per rail, and a NAD per rail
(``sim-rail<r>``, attached through the node's ``eth<r>``); ``rails_spec_head(R)`` is a spec head
whose profile lists them, for ``placement: {pattern: all-pairs, rails: R}``. Faults on one
rail: ``slow_nic``, ``lossy_nic``, ``slow_link(..., rail=r)``.

``all_pairs_spec(...)`` (head and tests) and ``all_pairs_tests(...)`` (the tests part) are the
all-pairs tcp bandwidth sweep the simulations and benchmarks run, sized by their arguments.

Also a command for a person (``scripts/simcluster.sh`` calls it):

    python -m tests.fakecluster.simcluster up N [--dir DIR] [--rate MBIT] [--rails R] [faults]  # until SIGTERM / down
    python -m tests.fakecluster.simcluster down [--dir DIR]

faults: --slow-node NODE:MBIT, --slow-link NODE,NODE:MBIT, --lossy NODE:PERCENT, --dead NODE,
and on one rail --slow-nic NODE:RAIL:MBIT, --lossy-nic NODE:RAIL:PERCENT (each may repeat;
NODE is a name such as sim-node-3).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cluster import FakeCluster
from .netsim import NetSim, NodeNet, why_unavailable

NAMESPACE = "bench"
NETWORK = "sim-net"
NODE_PREFIX = "sim-node-"
STATE_DIR = Path("/tmp/benchfab-simcluster")

def spec_head(rate_mbit: float = 200.0) -> str:
    """A spec head that runs on the simulated cluster: tcp over each node's veth, at its rate
    (the plan's time estimate uses it)."""
    return f"""\
backend: kubernetes
namespace: {NAMESPACE}
image: registry.example.com/benchfab-worker:sim
profiles:
  tcp: {{fabric: tcp, mode: none, network: {NETWORK}, line_rate: {rate_mbit:g}Mbit}}
"""


SPEC_HEAD = spec_head()


def rail_network(rail: int) -> str:
    return f"sim-rail{rail}"


def rails_spec_head(rails: int, rate_mbit: float = 200.0) -> str:
    """A spec head whose tcp profile lists the simulated nodes' ``rails`` rails (each rail's
    network: the NAD that attaches it), at each NIC's rate."""
    listed = ", ".join(f"{{network: {rail_network(r)}}}" for r in range(rails))
    return f"""\
backend: kubernetes
namespace: {NAMESPACE}
image: registry.example.com/benchfab-worker:sim
profiles:
  tcp: {{fabric: tcp, mode: none, network: {NETWORK}, line_rate: {rate_mbit:g}Mbit, rails: [{listed}]}}
"""


def all_pairs_tests(*, sizes: str = "256K", iterations: int = 20, warmup: int = 3, second_pass: bool = False,
                    rails: int = 1, start_timeout: str = "30s", timeout: str = "60s", more: str = "") -> str:
    """The tests part of the simulated cluster's usual spec: one all-pairs ``rdma_write_bw`` over tcp
    named ``bw`` (a 256 KiB message 20 times is about 0.2 s a pair at 200 Mbit/s), per rail when
    ``rails`` > 1, with the second pass's default rules when ``second_pass``; ``more``: further
    entries of the tests list (lines starting ``  - ``)."""
    placement = "pattern: all-pairs" + (f", rails: {rails}" if rails > 1 else "") + (", second_pass: true" if second_pass else "")
    return f"""\
kubernetes: {{start_timeout: {start_timeout}}}
defaults: {{timeout: {timeout}}}
tests:
  - {{name: bw, workload: rdma_write_bw, transport: tcp, sizes: [{sizes}], iterations: {iterations}, warmup: {warmup},
     placement: {{{placement}}}}}
""" + more


def all_pairs_spec(rate_mbit: float = 200.0, *, rails: int = 1, **tests: Any) -> str:
    """A whole spec for the simulated cluster: the head for its nodes' rate (and ``rails``) and
    ``all_pairs_tests(rails=rails, **tests)``."""
    head = rails_spec_head(rails, rate_mbit) if rails > 1 else spec_head(rate_mbit)
    return head + all_pairs_tests(rails=rails, **tests)


@dataclass
class SimCluster:
    net: NetSim
    cluster: FakeCluster
    names: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, count: int, workdir: Path, rate_mbit: float = 200.0, rails: int = 1) -> SimCluster:
        why = why_unavailable()
        if why:
            raise RuntimeError(why)
        net = NetSim(count, rate_mbit=rate_mbit, rails=rails).up()
        try:
            cluster = FakeCluster(workdir, host=net.gateway)
            cluster.store.put("namespaces", {"metadata": {"name": NAMESPACE}})
            names = []
            for node in net.nodes:
                name = f"{NODE_PREFIX}{node.index}"
                cluster.add_node(name, address=node.address)
                cluster.kubelet.node_netns[name] = (node.netns, node.address)
                if rails > 1:
                    cluster.kubelet.node_networks[name] = {rail_network(r): (f"eth{r}", node.addresses[r])
                                                           for r in range(rails)}
                names.append(name)
            cluster.add_nad(NAMESPACE, NETWORK, None)
            for r in range(rails if rails > 1 else 0):
                cluster.add_nad(NAMESPACE, rail_network(r), None)
            cluster.start()
        except BaseException:
            net.down()
            raise
        return cls(net, cluster, names)

    def stop(self) -> None:
        try:
            self.cluster.stop()
        finally:
            self.net.down()

    def index(self, name: str) -> int:
        return self.names.index(name)

    # -- seeded faults, by node name -----------------------------------------------------------
    def slow_node(self, name: str, mbit: float) -> None:
        self.net.slow_node(self.index(name), mbit)

    def slow_link(self, a: str, b: str, mbit: float, rail: int = 0) -> None:
        self.net.slow_link(self.index(a), self.index(b), mbit, rail)

    def slow_nic(self, name: str, rail: int, mbit: float) -> None:
        self.net.slow_nic(self.index(name), rail, mbit)

    def lossy_nic(self, name: str, rail: int, percent: float) -> None:
        self.net.lossy_nic(self.index(name), rail, percent)

    def lossy_node(self, name: str, percent: float) -> None:
        self.net.lossy_node(self.index(name), percent)

    def dead_node(self, name: str) -> None:
        self.cluster.kubelet.stuck_nodes.add(name)


# -- the command ----------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    state = Path(args.dir)
    if (state / "state.json").exists():
        print(f"simcluster: {state} already holds a running simulation (run: down --dir {state})", file=sys.stderr)
        return 1
    state.mkdir(parents=True, exist_ok=True)
    sim = SimCluster.start(args.nodes, state / "cluster", args.rate, rails=args.rails)
    try:
        _seed(sim, args)
    except (ValueError, IndexError) as exc:
        sim.stop()
        print(f"simcluster: {exc} (fix: name nodes sim-node-0..sim-node-{args.nodes - 1}, e.g. --slow-node sim-node-1:50)",
              file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        kubeconfig = state / "kubeconfig"
        kubeconfig.write_text(sim.cluster.kubeconfig.read_text())
        (state / "spec-head.yaml").write_text(rails_spec_head(args.rails, args.rate) if args.rails > 1
                                              else spec_head(args.rate))
        (state / "state.json").write_text(json.dumps({
            "pid": os.getpid(), "nodes": sim.names, "tag": sim.net.tag, "bridge": sim.net.bridge,
            "gateway": sim.net.gateway, "api": sim.cluster.url, "rate_mbit": args.rate, "rails": sim.net.rails,
            "netns": [n.netns for n in sim.net.nodes]}, indent=2))
        print(f"simcluster: {len(sim.names)} nodes on {sim.net.subnet}.0/24, API server {sim.cluster.url}; "
              f"KUBECONFIG={kubeconfig}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        (state / "state.json").unlink(missing_ok=True)
        print("simcluster: stopped, namespaces and bridge removed", flush=True)
    return 0


def _seed(sim: SimCluster, args: argparse.Namespace) -> None:
    for spec in args.slow_node:
        node, _, mbit = spec.partition(":")
        sim.slow_node(node, float(mbit))
    for spec in args.slow_link:
        ends, _, mbit = spec.partition(":")
        a, b = ends.split(",")
        sim.slow_link(a, b, float(mbit))
    for spec in args.lossy:
        node, _, percent = spec.partition(":")
        sim.lossy_node(node, float(percent))
    for spec in args.slow_nic:
        node, rail, mbit = spec.split(":")
        sim.slow_nic(node, int(rail), float(mbit))
    for spec in args.lossy_nic:
        node, rail, percent = spec.split(":")
        sim.lossy_nic(node, int(rail), float(percent))
    for node in args.dead:
        sim.index(node)
        sim.dead_node(node)


def _down(args: argparse.Namespace) -> int:
    state_file = Path(args.dir) / "state.json"
    if not state_file.exists():
        print(f"simcluster: no simulation recorded in {args.dir}", file=sys.stderr)
        return 0
    state = json.loads(state_file.read_text())
    try:
        os.kill(int(state["pid"]), signal.SIGTERM)
    except ProcessLookupError:
        # Its owner died without cleaning up: remove what it made, by the names it recorded.
        net = NetSim(len(state["nodes"]), tag=state["tag"], subnet=state["gateway"].rsplit(".", 1)[0],
                     rails=int(state.get("rails", 1)))
        net.nodes = [NodeNet(i, ns, "", "") for i, ns in enumerate(state["netns"])]
        net.down()
        state_file.unlink(missing_ok=True)
        return 0
    deadline = time.monotonic() + 60
    while state_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return 0 if not state_file.exists() else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="simcluster", description="a fake Kubernetes cluster on shaped netns links")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start N simulated nodes and the API server (runs until SIGTERM / down)")
    up.add_argument("nodes", type=int)
    up.add_argument("--rate", type=float, default=200.0, help="every NIC's rate, Mbit/s (default 200)")
    up.add_argument("--rails", type=int, default=1, help="NICs per node, one bridge and subnet per rail (default 1)")
    up.add_argument("--dir", default=str(STATE_DIR))
    up.add_argument("--slow-node", action="append", default=[], metavar="NODE:MBIT", help="throttle a node's NIC both ways")
    up.add_argument("--slow-link", action="append", default=[], metavar="A,B:MBIT", help="throttle the link between two nodes")
    up.add_argument("--lossy", action="append", default=[], metavar="NODE:PERCENT", help="drop packets to and from a node")
    up.add_argument("--dead", action="append", default=[], metavar="NODE", help="a node whose pods never start")
    up.add_argument("--slow-nic", action="append", default=[], metavar="NODE:RAIL:MBIT", help="throttle one NIC")
    up.add_argument("--lossy-nic", action="append", default=[], metavar="NODE:RAIL:PERCENT",
                    help="drop packets to and from one NIC")
    down = sub.add_parser("down", help="stop the simulation and remove its namespaces, veths and bridge")
    down.add_argument("--dir", default=str(STATE_DIR))
    args = p.parse_args(argv)
    return _up(args) if args.command == "up" else _down(args)


if __name__ == "__main__":
    sys.exit(main())
