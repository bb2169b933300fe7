#!/usr/bin/env python3
"""benchfab's native RDMA WRITE loops vs perftest, alternated in one run.

Run it where an RDMA device exists, e.g. in the soft-RoCE VM:

    scripts/softroce-vm.sh -- .venv/bin/python benchmarks/rdma_vs_perftest.py

Each round runs, per size, benchfab then perftest (order flipped every other round so
drift hits both), each as two processes over loopback. Printed: the median over rounds
of each engine's figure and the median of the per-round ratios benchfab/perftest:
write_bw BW average (and peak), write_lat t_typical (median) and t_min.
Under TCG soft-RoCE only the ratios mean anything, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import time

from _pair import benchfab_pair, median

BW_SIZES = {4096: 2000, 65536: 500, 1 << 20: 60}
LAT_SIZES = {8: 1000, 4096: 1000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default=os.environ.get("BENCHFAB_RDMA_DEVICE"))
    ap.add_argument("--peer", default=os.environ.get("BENCHFAB_RDMA_IP", "127.0.0.1"))
    ap.add_argument("--max-inline", type=int, default=0,
                    help="benchfab max inline bytes (Debian's perftest 6.06 reports 0 on rxe)")
    args = ap.parse_args()
    common = {"device": args.device, "peer_host": args.peer, "timeout_s": 120,
              "max_inline": args.max_inline}
    res: dict[tuple[str, int, str], list[dict]] = {}
    t0 = time.monotonic()
    for rnd in range(args.rounds):
        engines = ["native", "perftest"] if rnd % 2 == 0 else ["perftest", "native"]
        for test, sizes in (("rdma_write_bw", BW_SIZES), ("rdma_write_lat", LAT_SIZES)):
            for size, iters in sizes.items():
                for eng in engines:
                    params = {**common, "workload": test, "sizes": [size],
                              "iterations": iters, "engine": eng}
                    (rec,) = benchfab_pair(params)
                    res.setdefault((test, size, eng), []).append(rec)
    print(f"# {args.rounds} rounds in {time.monotonic() - t0:.0f} s; device {args.device}; "
          f"benchfab max_inline={args.max_inline}")
    print("# BW in MiB/s (2^20 B/s, perftest's unit); latency in usec (one way)")
    print(f"{'test':<15}{'size':>9}{'metric':>14}{'benchfab':>12}{'perftest':>12}{'ratio':>8}")
    metrics = {"rdma_write_bw": [("bw_avg_Bps", "BW average", 1 / 2**20),
                                 ("bw_peak_Bps", "BW peak", 1 / 2**20)],
               "rdma_write_lat": [("lat_median_s", "t_typical", 1e6),
                                  ("lat_min_s", "t_min", 1e6)]}
    for test, sizes in (("rdma_write_bw", BW_SIZES), ("rdma_write_lat", LAT_SIZES)):
        for size in sizes:
            nat, per = res[(test, size, "native")], res[(test, size, "perftest")]
            for key, label, scale in metrics[test]:
                ratios = [a[key] / b[key] for a, b in zip(nat, per) if b[key] == b[key] and b[key]]
                print(f"{test:<15}{size:>9}{label:>14}"
                      f"{median([r[key] for r in nat]) * scale:>12.2f}"
                      f"{median([r[key] for r in per]) * scale:>12.2f}"
                      f"{median(ratios):>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
