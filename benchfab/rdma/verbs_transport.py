"""Run the verbs tests (WRITE, READ, SEND; bandwidth and latency) between two processes
with the native endpoint.

Control flow per test, both sides calling ``exchange`` with the same keys in order:

  "rdma-connect"      swap local_info(), then each side moves its QPs to RTS
  "rdma-ready"        both QPs are in RTS before anyone posts
  per message size:
    *_bw:  "bw-start-<size>" is the barrier before the timed loop (after warm-up, with a
           SEND receiver's receives posted ahead). The client posts; the server is
           passive (WRITE, READ) or receives (SEND); with bidirectional both post (and
           both receive SENDs), as perftest -b. "bw-<size>" swaps outcomes (and the
           server's figures, which -b adds to the client's); with verify the side(s) the
           bytes landed on check them and "bw-verify-<size>" swaps the counts.
    *_lat: "lat-start-<size>" is the barrier inside the loop (buffers reset, receives
           posted), then both run the ping-pong (WRITE, SEND) or the client its READs;
           "lat-<size>" swaps outcomes; with verify "lat-verify-<size>" swaps the counts.
  "rdma-done"         nobody destroys its QP while the peer may still need it

The data check (benchfab.rdma.data_check): both sides fill their send region with the
size's pattern, WRITE and SEND put it into the peer's receive region and READ copies the
peer's into ours; after the timed loop the receiving side(s) compare (host memory in
place, GPU memory through a device-to-host copy). The client returns the records (it
measures, as perftest's client does); the server returns an empty list, or raises when
the client reported a failure.
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
        tx_depth=p.effective_tx_depth(), mtu=p.mtu, max_inline=p.effective_max_inline(),
        num_qps=p.qps if p.workload.bandwidth_flags else 1, out_reads=p.out_reads or 0)
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


def _peer_failed(outcome: dict[str, Any], what: str) -> None:
    if "error" in outcome:
        raise WorkloadError(f"rdma {what} peer failed: {outcome['error']}")


def _checked_here(p: RdmaParams, role: str) -> bool:
    """Whether the test's bytes land on this side: the server's for WRITE and SEND, the
    client's for READ (it reads the server's send region), both with bidirectional."""
    return p.verify and (p.bidirectional or (role == "server") != p.workload.one_sided)


def _swap_checks(p: RdmaParams, role: str, exchange: Exchange, key: str, regions: Regions,
                 want: bytes) -> tuple[int | None, str]:
    """Both sides' wrong-byte counts added up, and how they were read."""
    mine = regions.count_wrong(want) if _checked_here(p, role) else None
    theirs = exchange(key, {"wrong_bytes": mine, "data_check": regions.check})
    counts = [c for c in (mine, theirs.get("wrong_bytes")) if c is not None]
    return (sum(int(c) for c in counts) if counts else None), regions.check


_BOTH_WAYS = ("bw_avg_Bps", "bw_peak_Bps", "msg_rate_pps")


def _bw_one(role: str, p: RdmaParams, exchange: Exchange, ep: Any, regions: Regions,
            size: int) -> dict[str, Any] | None:
    w = p.workload
    posts = role == "client" or p.bidirectional
    receives = w.posts_receives and (role == "server" or p.bidirectional)
    if p.verify:
        regions.fill_send(pattern(size))
    res: dict[str, Any] = {}
    def start() -> None:  # the barrier right before the timed loop
        exchange(f"bw-start-{size}", {})

    if posts or receives:
        try:
            res = ep.bw(w.verb, size, p.iters(), cq_mod=p.effective_cq_mod(size), post_list=p.post_list,
                        warmup=p.warmup, duration_s=p.duration_s, timeout_s=p.timeout_s, barrier=start,
                        post=posts, receive=receives)
        except WorkloadError as exc:
            exchange(f"bw-{size}", {"error": str(exc)})
            raise
    else:
        start()  # passive (the target of WRITEs or READs): only the barrier
    mine = {k: float(res[k]) for k in _BOTH_WAYS if k in res}
    outcome = exchange(f"bw-{size}", {"ok": True, **mine})
    _peer_failed(outcome, f"{w.test}")
    wrong, check = (_swap_checks(p, role, exchange, f"bw-verify-{size}", regions, pattern(size))
                    if p.verify else (None, "skipped"))
    if role != "client":
        return None
    if p.bidirectional:
        # perftest -b reports the sum of both directions (its client adds the server's report).
        res.update({k: res[k] + float(outcome.get(k, math.nan)) for k in _BOTH_WAYS})
    rec = make_record(p, res, cq_mod=res["cq_mod"], tx_depth=res["tx_depth"])
    return _with_check(rec, size, wrong, check)


def _lat_one(role: str, p: RdmaParams, exchange: Exchange, ep: Any, regions: Regions,
             size: int) -> dict[str, Any] | None:
    w = p.workload
    if p.verify:
        regions.fill_send(pattern(size))
    def start() -> None:  # the barrier right before the timed loop
        exchange(f"lat-start-{size}", {})

    res: dict[str, Any] = {}
    if w.one_sided and role != "client":
        start()  # READ: the server only serves its memory
    else:
        # WRITE: the server writes first, as in ib_write_lat; SEND: the client, as in
        # ib_send_lat. If a ping-pong fails the peer times out in its own loop (we stopped
        # answering); a READ's server waits on the exchange, so it is told.
        initiator = role == w.latency_initiator
        try:
            res = ep.lat(w.verb, size, p.iters(), initiator, warmup=p.warmup, timeout_s=p.timeout_s,
                         barrier=start)
        except WorkloadError as exc:
            if w.one_sided:
                exchange(f"lat-{size}", {"error": str(exc)})
            raise
    outcome = exchange(f"lat-{size}", {"ok": True})
    _peer_failed(outcome, w.test)
    wrong, check = None, "skipped"
    if p.verify:
        # Both loops are over, so every message of both sides has landed. A ping-pong's
        # last byte carries the final round; a READ brings the peer's pattern unchanged.
        want = pattern(size) if w.one_sided else lat_expected(size, p.iters() + p.warmup)
        wrong, check = _swap_checks(p, role, exchange, f"lat-verify-{size}", regions, want)
    if role != "client":
        return None
    rec = make_record(p, res, cq_mod=1, tx_depth=1, elapsed_s=math.nan)
    return _with_check(rec, size, wrong, check)
