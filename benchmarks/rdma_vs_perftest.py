#!/usr/bin/env python3
"""benchfab's native RDMA loops (WRITE, READ, SEND) vs perftest, alternated in one run.

Run it where an RDMA device exists, e.g. in the soft-RoCE VM:

    scripts/softroce-vm.sh -- .venv/bin/python benchmarks/rdma_vs_perftest.py [--rounds 7]
        [--workloads rdma_read_bw,rdma_read_lat,rdma_send_bw,rdma_send_lat]

or on a GPU host with an RDMA NIC, in GPU memory (scripts/gpu-lane.sh runs this):

    .venv/bin/python benchmarks/rdma_vs_perftest.py --memory cuda

Each round runs, per size, benchfab then perftest (order flipped every other round so
drift hits both), each as two processes over loopback. Printed: the median over rounds
of each engine's figure and the median of the per-round ratios benchfab/perftest:
*_bw BW average (and peak), *_lat t_typical (median) and t_min (ib_read_lat: a whole
READ; the ping-pongs: half a round trip); then the inline size each engine used,
benchfab's data check, and what a clock read costs here. Targets: bandwidth >= 0.95x,
latency <= 1.05x of perftest's.

Inline: each engine's default unless --max-inline N sets benchfab's (perftest posts
inline only on devices it knows, so it reports 0 on rxe; benchfab uses 220 B for
write_lat wherever the QP takes it). --max-inline 0 compares the loops on equal footing.

GPU memory (--memory cuda | cuda-dmabuf | cuda-peermem): neither tool runs write_lat on
GPU memory (its ping-pong polls the buffer with the CPU), so the latency rows become
write_bw with one WRITE outstanding, each signaled (ib_write_bw -t 1 -Q 1 --use_cuda...):
t_msg, the time per message, is one WRITE's completion latency. Inline is off for GPU
memory in both tools.

Under TCG soft-RoCE only the ratios mean anything, not the absolute numbers.
Exit status: 0 done; 3 this host cannot run the comparison (no RDMA device, no perftest,
no GPU path for --memory): one line starting "rdma_vs_perftest: skipped:" says why.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from _pair import benchfab_pair, median

from benchfab import native
from benchfab.errors import WorkloadError
from benchfab.workloads.p2p_workloads import p2p_workload

BW_SIZES = {4096: 2000, 65536: 500, 1 << 20: 60}
LAT_SIZES = {8: 1000, 4096: 1000}
# The workloads compared (all by default; --workloads picks some), each with its sizes.
WORKLOADS = ("rdma_write_bw", "rdma_write_lat", "rdma_read_bw", "rdma_read_lat", "rdma_send_bw", "rdma_send_lat")
GPU_MEMORY = ("cuda", "cuda-dmabuf", "cuda-peermem")
CANNOT_RUN = 3

# Per kind of case: (record key, label, scale to the printed unit).
METRICS: dict[str, list[tuple[str, str, float]]] = {
    "bw": [("bw_avg_Bps", "BW average", 1 / 2**20), ("bw_peak_Bps", "BW peak", 1 / 2**20)],
    "lat": [("lat_median_s", "t_typical", 1e6), ("lat_min_s", "t_min", 1e6)],
    "gpu_lat": [("t_msg_s", "t_msg", 1e6)],
}


def cases(memory: str, workloads: tuple[str, ...] = WORKLOADS) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(kind, row label, size, params) of one round."""
    out: list[tuple[str, str, int, dict[str, Any]]] = []
    for name in workloads:
        w = p2p_workload(name)
        if w.bandwidth:
            out += [("bw", name, size, {"workload": name, "iterations": iters}) for size, iters in BW_SIZES.items()]
            continue
        for size, iters in LAT_SIZES.items():
            if memory == "host":
                out.append(("lat", name, size, {"workload": name, "iterations": iters}))
            elif name == "rdma_write_lat":
                out.append(("gpu_lat", "write_bw -t 1", size, {"workload": "rdma_write_bw", "iterations": 2 * iters,
                                                               "tx_depth": 1, "cq_mod": 1}))
    return out


def why_not(args: argparse.Namespace) -> str | None:
    """What this host lacks for the comparison, or None."""
    from benchfab.rdma import RdmaParams, discover, perftest, select_port

    if not native.HAVE_NATIVE:
        return str(native.native_status()["reason"])
    try:
        if not discover():
            return "no RDMA device (load a NIC driver, or run in scripts/softroce-vm.sh)"
        binary = perftest.find_binary("write_bw")
        for name in args.workloads:
            perftest.find_binary(p2p_workload(name).test)
        if args.memory == "host":
            return None
        perftest.cuda_flags(binary, args.memory, args.cuda_device)
        # The real registration path, once: dma-buf / nvidia-peermem and the NIC.
        from benchfab.rdma import verbs_transport

        p = RdmaParams(test="write_bw", memory=args.memory, device=args.device, cuda_device=args.cuda_device)
        ep, _, _ = verbs_transport.open_endpoint(p, select_port(args.device), 1 << 16)
        ep.close()
    except WorkloadError as exc:
        return str(exc)
    return None


def run_rounds(args: argparse.Namespace, loads: list[float]) -> dict[tuple[str, int, str], list[dict[str, Any]]]:
    """Every case on both engines, ``args.rounds`` times; the 1-minute load average at the
    start of each round goes to ``loads``."""
    common = {"device": args.device, "peer_host": args.peer, "timeout_s": 120, "memory": args.memory,
              "cuda_device": args.cuda_device}
    if args.max_inline is not None:
        common["max_inline"] = args.max_inline
    # A forked child cannot use CUDA once this process has: spawn for GPU memory.
    start = "spawn" if args.memory in GPU_MEMORY else "fork"
    res: dict[tuple[str, int, str], list[dict[str, Any] | None]] = {}
    for rnd in range(args.rounds):
        loads.append(os.getloadavg()[0])
        engines = ["native", "perftest"] if rnd % 2 == 0 else ["perftest", "native"]
        for _, label, size, extra in cases(args.memory, args.workloads):
            for eng in engines:
                got: dict[str, Any] | None = None
                try:
                    (got,) = benchfab_pair({**common, **extra, "sizes": [size], "engine": eng}, start)
                except WorkloadError as exc:
                    # One failed run costs its round's ratio, not the whole comparison.
                    print(f"# round {rnd}: {eng} {label} {size} B failed: {exc}", file=sys.stderr, flush=True)
                if got is not None:
                    if got.get("status", "ok") != "ok":
                        raise SystemExit(f"rdma_vs_perftest: {eng} {label} {size} B: {got.get('reason')}")
                    rate = got.get("msg_rate_pps") or 0
                    got["t_msg_s"] = 1 / rate if rate > 0 else float("nan")
                res.setdefault((label, size, eng), []).append(got)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--device", default=os.environ.get("BENCHFAB_RDMA_DEVICE"))
    ap.add_argument("--peer", default=os.environ.get("BENCHFAB_RDMA_IP", "127.0.0.1"))
    ap.add_argument("--max-inline", type=int, default=None,
                    help="benchfab's inline size in bytes (default: its own, 220 for write_lat)")
    ap.add_argument("--memory", choices=("host", *GPU_MEMORY), default="host")
    ap.add_argument("--cuda-device", type=int, default=0)
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help=f"comma-separated, of {', '.join(WORKLOADS)} (default: all)")
    args = ap.parse_args()
    args.workloads = tuple(w.strip() for w in args.workloads.split(",") if w.strip())
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        ap.error(f"--workloads: unknown {', '.join(unknown)} (use {', '.join(WORKLOADS)})")
    reason = why_not(args)
    if reason:
        print(f"rdma_vs_perftest: skipped: {reason}", flush=True)
        return CANNOT_RUN
    t0 = time.monotonic()
    loads: list[float] = []
    res = run_rounds(args, loads)
    clocks = native.lib.clock_read_costs()
    loads.append(os.getloadavg()[0])
    print(f"# {args.rounds} rounds in {time.monotonic() - t0:.0f} s; device {args.device}; memory {args.memory}; "
          f"1-min load average here (in a VM: the guest's) per round and at the end: {' '.join(f'{x:.1f}' for x in loads)}")
    print(f"# a clock read here: clock_gettime {clocks['clock_gettime_ns']:.0f} ns, tick counter "
          f"{clocks['ticks_ns']:.0f} ns (benchfab stamps with: {clocks['stamps']})")
    print("# BW in MiB/s (2^20 B/s, perftest's unit); latency in usec (one way; read_lat: per READ; "
          "t_msg: per WRITE)")
    print(f"{'test':<15}{'size':>9}{'metric':>14}{'benchfab':>12}{'perftest':>12}{'ratio':>8}")
    for kind, label, size, _ in cases(args.memory, args.workloads):
        pairs = [(a, b) for a, b in zip(res[(label, size, "native")], res[(label, size, "perftest")])
                 if a is not None and b is not None]
        if not pairs:
            print(f"{label:<15}{size:>9}  no round where both engines ran (see the errors above)")
            continue
        for key, name, scale in METRICS[kind]:
            ratios = [a[key] / b[key] for a, b in pairs if b[key] == b[key] and b[key]]
            print(f"{label:<15}{size:>9}{name:>14}{median([a[key] for a, _ in pairs]) * scale:>12.2f}"
                  f"{median([b[key] for _, b in pairs]) * scale:>12.2f}{median(ratios):>8.3f}"
                  f"{len(pairs):>4}/{args.rounds}")
    print(f"{'test':<15}{'size':>9}{'inline size':>14}{'benchfab':>12}{'perftest':>12}{'data check':>12}")
    for _kind, label, size, _ in cases(args.memory, args.workloads):
        nat = [r for r in res[(label, size, "native")] if r is not None]
        per = [r for r in res[(label, size, "perftest")] if r is not None]
        checks = sorted({f"{r['data_check']}:{r['wrong_bytes']}" for r in nat})
        print(f"{label:<15}{size:>9}{'':>14}{_one(r['inline_size'] for r in nat):>12}"
              f"{_one(r['inline_size'] for r in per):>12}{','.join(checks):>12}")
    return 0


def _one(values: Any) -> str:
    """The values' one value, or all of them when they differ."""
    distinct = sorted({str(v) for v in values})
    return distinct[0] if len(distinct) == 1 else "/".join(distinct)


if __name__ == "__main__":
    raise SystemExit(main())
