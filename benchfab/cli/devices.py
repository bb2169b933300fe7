"""devices: this host's RDMA devices, ports, link layers, rates and GIDs."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BenchfabError
from .common import command, output_arg


def cmd_devices(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from ..rdma.discovery import default_gid_index, discover

    devices = discover()
    if args.output == "json":
        data = [asdict(d) for d in devices]
        for dev, entry in zip(devices, data):
            for port, pentry in zip(dev.ports, entry["ports"]):
                pentry["fabric"] = port.fabric
                pentry["default_gid_index"] = _default_gid(default_gid_index, port)
        print(json.dumps(data, indent=2))
        return 0
    if not devices:
        print("no RDMA devices (no /sys/class/infiniband entries; is an RDMA driver such as mlx5_ib or rdma_rxe loaded?)")
        return 0
    print(f"{'device':<12} {'port':>4} {'state':<8} {'link layer':<11} {'fabric':<6} {'rate':<24} {'mtu':>5} {'lid':>5}  default GID")
    for dev in devices:
        for port in dev.ports:
            gid_index = _default_gid(default_gid_index, port)
            gid = next((g for g in port.gids if g.index == gid_index), None)
            gid_text = "-" if gid is None else f"[{gid.index}] {gid.gid} ({gid.type or '?'}{', ' + gid.ipv4 if gid.ipv4 else ''})"
            print(f"{dev.name:<12} {port.port:>4} {port.state:<8} {port.link_layer:<11} {port.fabric:<6} "
                  f"{port.rate or '-':<24} {port.active_mtu or '-':>5} {port.lid:>5}  {gid_text}")
            if args.gids:
                for g in port.gids:
                    print(f"{'':<12} {'':>4}   gid[{g.index}] {g.gid} {g.type or ''} {g.ndev or ''} {g.ipv4 or ''}")
    return 0


def _default_gid(pick: Any, port: Any) -> int | None:
    # IB ports route by LID and have no default GID; a RoCE port without an IPv4 v2 GID neither.
    if port.fabric != "roce":
        return None
    try:
        return int(pick(port))
    except BenchfabError:
        return None


def add_device_commands(sub: Any) -> None:
    """devices: this host's RDMA devices."""
    dv = command(sub, "devices", "list this host's RDMA devices, ports, link layers (ib/roce), rates and GIDs",
                 "benchfab devices", "benchfab devices --gids -o json")
    output_arg(dv)
    dv.add_argument("--json", dest="output", action="store_const", const="json", help="the same as -o json")
    dv.add_argument("--gids", action="store_true", help="print every GID table entry")
    dv.set_defaults(func=cmd_devices)
