"""Run write_bw / write_lat between two processes with the native verbs endpoint.

Control flow per test, both sides calling ``exchange`` with the same keys in order:

  "rdma-connect"      swap local_info(), then each side moves its QP to RTS
  "rdma-ready"        both QPs are in RTS before anyone writes
  per message size:
    write_bw:  client runs the loop (server is passive, as in ib_write_bw), then
               "bw-<size>" carries the client's outcome; with verify the server
               checks the bytes that landed and "bw-verify-<size>" returns the count
               of wrong bytes and how they were read (data_check).
    write_lat: "lat-start-<size>" is the barrier inside write_lat (both buffers reset),
               then both run the ping-pong; "lat-<size>" swaps outcomes; with verify
               each side then checks what the other wrote and "lat-verify-<size>"
               swaps the counts.
  "rdma-done"         nobody destroys its QP while the peer may still need it

The data check (benchfab.rdma.data_check) runs after the timed loop, on host memory in
place and on GPU memory through a device-to-host copy. The client returns the records
(it measures, as perftest's client does); the server returns an empty list, or raises
when the client reported a failure.
"""

from __future__ import annotations

import math
import os
from typing import Any

from benchfab.errors import WorkloadError
from benchfab.native import lib

from . import cuda_memory
from .data_check import Regions, lat_expected, pattern
from .discovery import PortChoice, select_port
from .oob import Exchange
from .params import RdmaParams, make_record


def open_endpoint(p: RdmaParams, choice: PortChoice, buf_size: int) -> tuple[Any, str, Regions]:
    """Make the endpoint with the memory the params ask for; returns (endpoint, memory
    label, its regions for the data check). Inline sizes never apply to GPU memory.

    memory "cuda" tries dma-buf first, then nvidia-peermem, and fails naming both causes.
    """
    common: dict[str, Any] = dict(
        port=choice.port, gid_index=choice.gid_index, buf_size=buf_size,
        tx_depth=p.effective_tx_depth(), mtu=p.mtu, max_inline=p.effective_max_inline())
    if p.memory in ("host", "hugepages"):
        ep = lib.RdmaEndpoint(choice.device, **common, memory=p.memory,
                              hugepages=p.memory == "hugepages")
        return ep, p.memory, Regions(ep)
    modes = {"cuda": ["cuda-dmabuf", "cuda-peermem"], "cuda-dmabuf": ["cuda-dmabuf"],
             "cuda-peermem": ["cuda-peermem"]}[p.memory]
    causes = []
    for mode in modes:
        buf = None
        try:
            buf = cuda_memory.allocate(2 * buf_size, p.cuda_device, dmabuf=mode == "cuda-dmabuf")
            ep = lib.RdmaEndpoint(choice.device, **common, ext_addr=buf.addr,
                                  dmabuf_fd=buf.dmabuf_fd, ext_length=buf.length,
                                  memory=mode, keepalive=buf)
            return ep, mode, Regions(ep, gpu=buf)
        except WorkloadError as exc:
            if buf is not None:
                buf.close()
            if len(modes) == 1:
                raise
            causes.append(f"{mode}: {exc}")
    raise WorkloadError("GPU memory was requested but cannot be registered with the NIC: "
                        + "; ".join(causes),
                        hint="load nvidia-peermem, or use open GPU kernel modules + a "
                             "dma-buf capable NIC driver; or set memory: host")


def run_pair(role: str, p: RdmaParams, exchange: Exchange) -> list[dict[str, Any]]:
    choice = select_port(p.device, p.port if p.device else None, p.gid_index, p.prefer_ip)
    page = os.sysconf("SC_PAGE_SIZE")
    buf_size = max(max(p.sizes), 64)
    buf_size = (buf_size + page - 1) // page * page
    ep, memory, regions = open_endpoint(p, choice, buf_size)
    records: list[dict[str, Any]] = []
    try:
        peer = exchange("rdma-connect", ep.local_info())
        ep.connect(peer)
        exchange("rdma-ready", {})
        for size in p.sizes:
            if p.workload.bandwidth:
                rec = _bw_one(role, p, exchange, ep, regions, size)
            else:
                rec = _lat_one(role, p, exchange, ep, regions, size)
            if rec is not None:
                rec.update(device=choice.device, port=choice.port, gid_index=choice.gid_index,
                           link_layer=choice.link_layer, link_rate_bps=choice.link_rate_bps, mtu=ep.mtu,
                           memory=memory, engine="native", transport="verbs")
                records.append(rec)
        exchange("rdma-done", {})
    finally:
        ep.close()
    return records


def _with_check(rec: dict[str, Any], size: int, wrong: int | None, check: str) -> dict[str, Any]:
    """``rec`` with the data check's outcome; failed when bytes arrived corrupted."""
    rec.update(wrong_bytes=wrong, data_check=check)
    if wrong:
        rec["status"] = "failed"
        rec["reason"] = f"{wrong} of {size} bytes arrived corrupted ({check} check)"
    return rec


def _bw_one(role: str, p: RdmaParams, exchange: Exchange, ep: Any, regions: Regions,
            size: int) -> dict[str, Any] | None:
    if role == "client":
        if p.verify:
            regions.fill_send(pattern(size))
        try:
            res = ep.write_bw(size, p.iters(), cq_mod=p.effective_cq_mod(size),
                              post_list=p.post_list, warmup=p.warmup,
                              duration_s=p.duration_s, timeout_s=p.timeout_s)
        except WorkloadError as exc:
            exchange(f"bw-{size}", {"error": str(exc)})
            raise
        exchange(f"bw-{size}", {"ok": True})
        check = exchange(f"bw-verify-{size}", {}) if p.verify else {}
        rec = make_record(p, res, cq_mod=res["cq_mod"], tx_depth=res["tx_depth"])
        return _with_check(rec, size, check.get("wrong_bytes"), check.get("data_check", "skipped"))
    outcome = exchange(f"bw-{size}", {})
    if "error" in outcome:
        raise WorkloadError(f"rdma write_bw peer failed: {outcome['error']}")
    if p.verify:
        exchange(f"bw-verify-{size}", {"wrong_bytes": regions.count_wrong(pattern(size)),
                                       "data_check": regions.check})
    return None


def _lat_one(role: str, p: RdmaParams, exchange: Exchange, ep: Any, regions: Regions,
             size: int) -> dict[str, Any] | None:
    # The server writes first, as in ib_write_lat. If our loop fails the peer times out
    # in its own loop (we stopped writing back), so there is nothing to tell it.
    if p.verify:
        regions.fill_send(pattern(size))
    res = ep.write_lat(size, p.iters(), initiator=(role == "server"), warmup=p.warmup,
                       timeout_s=p.timeout_s,
                       barrier=lambda: exchange(f"lat-start-{size}", {}))
    outcome = exchange(f"lat-{size}", {"ok": True})
    if "error" in outcome:
        raise WorkloadError(f"rdma write_lat peer failed: {outcome['error']}")
    wrong = None
    if p.verify:
        # Both loops are over, so every write of both sides has completed: each side
        # checks what the other wrote, and the client adds the two counts.
        mine = regions.count_wrong(lat_expected(size, p.iters() + p.warmup))
        theirs = exchange(f"lat-verify-{size}", {"wrong_bytes": mine})
        wrong = mine + int(theirs.get("wrong_bytes") or 0)
    if role != "client":
        return None
    rec = make_record(p, res, cq_mod=1, tx_depth=1, elapsed_s=math.nan)
    return _with_check(rec, size, wrong, regions.check if p.verify else "skipped")
