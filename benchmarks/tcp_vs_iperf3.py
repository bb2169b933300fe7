#!/usr/bin/env python3
"""benchfab's native TCP write_bw loop vs iperf3 and qperf on loopback, alternated in one run.

    .venv/bin/python benchmarks/tcp_vs_iperf3.py [--rounds 3] [--seconds 3] [--peers iperf3 qperf]

All send fixed-size messages over one TCP connection on 127.0.0.1 between two
processes (iperf3 -l SIZE, qperf -m SIZE tcp_bw). benchfab's BW average counts bytes the
receiver acked; iperf3's figure is its receiver-side sum, qperf's its receiver's rate.
Every round runs each tool once, in a rotated order. Printed: medians over rounds and
the median of per-round ratios benchfab/peer (Gb/s = 1e9 bit/s). The peers are Debian's
packages, which scripts/setup.sh installs when run as root; they are looked up only in
the system folders, so a copy installed by hand elsewhere is never what gets measured
(a missing one stops the benchmark with the fix).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator

from _pair import benchfab_pair, median

from benchfab.rdma.perftest import wait_listening  # importable once _pair has set sys.path

# Where Debian's iperf3 and qperf live: never /usr/local/bin or ~/.local/bin.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def peer_binary(name: str) -> str:
    found = shutil.which(name, path=SYSTEM_PATH)
    if found is None:
        raise SystemExit(f"tcp_vs_iperf3: {name} is not installed in {SYSTEM_PATH} "
                         f"(fix: run scripts/setup.sh as root, which installs Debian's {name})")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def peer_server(argv: list[str], port: int) -> Iterator[None]:
    """Run a peer's server on ``port`` while the block runs its client. Readiness is read
    from /proc (perftest.wait_listening): a probe connection would count as a client."""
    srv = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_listening(port, 10.0):
            raise RuntimeError(f"{argv[0]} server did not start")
        yield
    finally:
        if srv.poll() is None:
            srv.terminate()
        srv.wait(timeout=30)


def iperf3(size: int, seconds: float) -> float:
    """Receiver-side bits/s of one iperf3 run with ``size``-byte writes."""
    port = free_port()
    binary = peer_binary("iperf3")
    with peer_server([binary, "-s", "-1", "-p", str(port)], port):
        out = subprocess.run([binary, "-c", "127.0.0.1", "-p", str(port),
                              "-l", str(size), "-t", f"{seconds:g}", "-J"],
                             capture_output=True, text=True, timeout=seconds + 30).stdout
    report = json.loads(out)
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    return float(report["end"]["sum_received"]["bits_per_second"])


def qperf(size: int, seconds: float) -> float:
    """Receiver bits/s of one qperf tcp_bw run with ``size``-byte messages."""
    port = free_port()
    binary = peer_binary("qperf")
    with peer_server([binary, "--listen_port", str(port)], port):
        out = subprocess.run([binary, "127.0.0.1", "--listen_port", str(port),
                              "-m", str(size), "-t", f"{max(1, round(seconds))}",
                              "-ub", "-uu", "tcp_bw"],
                             capture_output=True, text=True, timeout=seconds + 30)
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "bw":
            return float(value.split()[0])
    raise RuntimeError(f"qperf: no bw in its output: {out.stdout.strip()} {out.stderr.strip()}")


PEERS = {"iperf3": iperf3, "qperf": qperf}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--sizes", type=int, nargs="+", default=[65536, 1 << 20])
    ap.add_argument("--peers", nargs="+", choices=sorted(PEERS), default=sorted(PEERS))
    args = ap.parse_args()
    peers = list(args.peers)
    for p in peers:
        peer_binary(p)  # stop before measuring anything if a peer is missing
    tools = ["benchfab", *peers]
    res: dict[tuple[int, str], list[float]] = {}
    for size in args.sizes:
        # Size the benchfab run to about --seconds at the rate a short probe shows.
        probe = benchfab_pair({"workload": "tcp_write_bw", "sizes": [size],
                               "iterations": 2000, "peer_host": "127.0.0.1"})[0]
        iters = max(1000, int(probe["msg_rate_pps"] * args.seconds))
        for rnd in range(args.rounds):
            # Rotate who goes first, so drift in the machine's load spreads over all tools.
            order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
            for who in order:
                if who in PEERS:
                    bps = PEERS[who](size, args.seconds)
                else:
                    (rec,) = benchfab_pair({"workload": "tcp_write_bw", "sizes": [size],
                                            "iterations": iters, "peer_host": "127.0.0.1",
                                            "warmup": 100})
                    bps = rec["bw_avg_Bps"] * 8
                res.setdefault((size, who), []).append(bps)
    print(f"# {args.rounds} rounds, ~{args.seconds:g} s each; Gb/s = 1e9 bit/s")
    print(f"{'size':>9}{'benchfab':>10}" + "".join(f"{p:>10}{'ratio':>8}" for p in peers))
    for size in args.sizes:
        b = res[(size, "benchfab")]
        line = f"{size:>9}{median(b) / 1e9:>10.2f}"
        for p in peers:
            i = res[(size, p)]
            line += f"{median(i) / 1e9:>10.2f}{median([x / y for x, y in zip(b, i)]):>8.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
