#!/usr/bin/env python3
"""CPU instructions per iteration of benchfab's native loops, counted by callgrind.

What it measures: the user-space cost of one iteration of the timed loop (post + poll +
timestamps for RDMA, incl. libibverbs and the provider library; send() + timestamps for
TCP), in instructions (valgrind's Ir). Kernel work (the rxe driver, the TCP stack, the
syscall itself) is not counted: valgrind sees only user space.

Method (survives inlining): only the measuring side (the client) runs under
``valgrind --tool=callgrind``; the peer runs normally. Each case runs twice, with N1 and
N2 iterations and everything else equal, and the figure is

    (Ir(N2) - Ir(N1)) / (N2 - N1)

which cancels start-up, imports, connection setup and tear-down. It is given for
  * the whole client process ("process"), and
  * the function that holds the loop, inclusive of its callees ("loop fn"):
    _bw_loop for write_bw (a real function in the .so), the write_lat / tcp_write_bw
    wrappers for the others (their loops are inlined there).
To keep O(N) post-processing out of the difference, the client replaces
benchfab.rdma.stats.bw_figures / lat_figures by a stub before the measured call (the
figures are not needed here); np.zeros(N) for the timestamp arrays stays in.
"loop only" is the loop function without its calls back into Python/numpy (np.zeros(N)).
The callees of the loop function are listed with calls and Ir per iteration, and its Ir
by source line (C lines of the generated native/_native.c folded onto their .pyx/.pxi
line), so busy-wait spins (empty polls, polling the peer's byte in write_lat) can be told
apart from the work itself. --toggle-check adds one run with --collect-atstart=no
--toggle-collect=<loop fn> as a cross-check of the loop function's inclusive Ir.

Case perftest_lat runs perftest's ib_write_lat client under callgrind the same way (its
server runs normally), for a step-by-step comparison with rdma_lat: Ir per round trip of
the whole process, and of the library calls both make (ibv_post_send / ibv_poll_cq into
the provider, the doorbell's write()). With a stripped binary there is no loop function,
and perftest's process figure includes its final sort of the N latencies (qsort and its
compare function, listed among the self-Ir differences).

Caveats: valgrind runs the client without the vDSO, so clock_gettime is glibc's syscall
fallback (about 10 Ir) instead of the vDSO's code; syscalls (send, the rxe doorbell
write) count only their user-space wrappers. Busy-wait spins depend on timing, so
write_lat figures vary a little from run to run; write_bw and tcp_bw repeat exactly.

Usage (RDMA needs a device, e.g. the soft-RoCE VM; see loop_cost_callgrind.sh):

    scripts/softroce-vm.sh --rw results/loop_cost_callgrind -- \\
        .venv/bin/python benchmarks/loop_cost_callgrind.py run --cases rdma_bw,rdma_lat
    scripts/softroce-vm.sh --rw results/loop_cost_callgrind -- \\
        .venv/bin/python benchmarks/loop_cost_callgrind.py run --cases rdma_lat,perftest_lat --sizes 8
    .venv/bin/python benchmarks/loop_cost_callgrind.py run --cases tcp_bw

Outputs go to --out (default results/loop_cost_callgrind): callgrind.<case>.<size>.<N>.out
files, <tag>.json with the figures, and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _callgrind import by_line, parse_callgrind, short_name

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]

CASES = ("rdma_bw", "rdma_lat", "tcp_bw", "perftest_lat")
# The function whose inclusive cost is "the loop" in each case (symbols in benchfab._native):
# the first name prefix, in order, that callgrind saw. The C compiler decides what is
# inlined (and may add suffixes like .constprop.0), so a few candidates are listed.
LOOP_FN = {
    "rdma_bw": ["__pyx_f_8benchfab_7_native__bw_loop",
                "__pyx_pw_8benchfab_7_native_12RdmaEndpoint_21write_bw"],
    "rdma_lat": ["__pyx_f_8benchfab_7_native__lat_loop",
                 "__pyx_pf_8benchfab_7_native_12RdmaEndpoint_22write_lat",
                 "__pyx_pw_8benchfab_7_native_12RdmaEndpoint_23write_lat"],
    "tcp_bw": ["__pyx_pf_8benchfab_7_native_6tcp_write_bw",
               "__pyx_pw_8benchfab_7_native_7tcp_write_bw"],
    # ib_write_lat itself, for the step-by-step comparison; distributions strip its
    # symbols, and then only the process figures (which include its final sort of the
    # N latencies) and the library functions it calls can be compared.
    "perftest_lat": ["run_iter_lat_write"],
}
NO_SYMBOLS = "(stripped: process figures only)"


PY_PREFIXES = ("Py", "_Py", "Pyx_", "pyx_")


def find_loop_fn(case: str, fns: dict[str, Any]) -> str:
    for prefix in LOOP_FN[case]:
        hits = sorted(k for k in fns if k == prefix or k.startswith(prefix + "."))
        if hits:
            return hits[0]
    if case == "perftest_lat":
        return NO_SYMBOLS
    raise RuntimeError(f"none of {LOOP_FN[case]} in the callgrind output")


# ======================================================================================
# The two endpoints. The client is what runs under valgrind: it imports only
# benchfab._native (numpy, benchfab.errors) and benchfab.rdma.stats, nothing heavy.
# ======================================================================================

class Line:
    """JSON lines over a connected socket (the out-of-band channel)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.f = sock.makefile("rwb")

    def send(self, obj: Any) -> None:
        self.f.write(json.dumps(obj).encode() + b"\n")
        self.f.flush()

    def recv(self) -> Any:
        line = self.f.readline()
        if not line:
            raise ConnectionError("peer closed the out-of-band connection")
        return json.loads(line)


def _stub_stats() -> None:
    # The loops call benchfab.rdma.stats.*_figures on the result (numpy, O(N)): replace
    # them so the N2-N1 difference holds the loop only.
    from benchfab.rdma import stats
    stats.bw_figures = lambda *a, **k: {}
    stats.lat_figures = lambda *a, **k: {}


def client(cfg: dict[str, Any]) -> int:
    from benchfab import _native

    _stub_stats()
    case, size, n, timeout = cfg["case"], cfg["size"], cfg["iters"], cfg["timeout_s"]
    sock = socket.create_connection(("127.0.0.1", cfg["oob_port"]), timeout=timeout)
    ch = Line(sock)
    if case == "tcp_bw":
        data = socket.create_connection(("127.0.0.1", ch.recv()["data_port"]), timeout=timeout)
        data.settimeout(None)  # the native loops need a blocking fd (SO_RCVTIMEO is their timeout)
        data.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ch.send({"go": 1})
        res = _native.tcp_write_bw(data.fileno(), size, n, 0, timeout)
        data.close()
    else:
        peer = ch.recv()
        ep = _native.RdmaEndpoint(peer["device"], peer["port"], peer["gid_index"],
                                  buf_size=cfg["buf_size"], tx_depth=cfg["tx_depth"],
                                  max_inline=cfg["max_inline"])
        ch.send(ep.local_info())
        ep.connect(peer["info"])
        ch.recv()  # the peer's QP is at RTR/RTS: writes will not be dropped
        if case == "rdma_bw":
            res = ep.write_bw(size, n, cq_mod=cfg["cq_mod"], timeout_s=timeout)
        else:
            def barrier() -> None:
                ch.send({"barrier": 1})
                ch.recv()
            res = ep.write_lat(size, n, True, timeout_s=timeout, barrier=barrier)
        ep.close()
    ch.send({"done": 1})
    ch.recv()
    tp = res["tposted_ns"]
    t_end = res["tcompleted_ns"][-1] if "tcompleted_ns" in res else tp[-1]
    print(json.dumps({"iterations": int(len(tp)), "loop_s": (int(t_end) - int(tp[0])) / 1e9}),
          flush=True)
    return 0


def peer(cfg: dict[str, Any]) -> int:
    """The other side, run normally. Prints its out-of-band port, then serves one client."""
    from benchfab import _native

    case, size, n, timeout = cfg["case"], cfg["size"], cfg["iters"], cfg["timeout_s"]
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    print(lst.getsockname()[1], flush=True)
    lst.settimeout(timeout)
    conn, _ = lst.accept()
    conn.settimeout(None)
    ch = Line(conn)
    if case == "tcp_bw":
        dl = socket.socket()
        dl.bind(("127.0.0.1", 0))
        dl.listen(1)
        dl.settimeout(timeout)
        ch.send({"data_port": dl.getsockname()[1]})
        data, _ = dl.accept()
        data.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ch.recv()
        _native.tcp_sink_bw(data.fileno(), size, n, 0, timeout)
        ch.recv()  # done
        data.close()
    else:
        from benchfab.rdma.discovery import select_port
        pc = select_port(cfg.get("device"))
        ep = _native.RdmaEndpoint(pc.device, pc.port, pc.gid_index,
                                  buf_size=cfg["buf_size"], tx_depth=cfg["tx_depth"],
                                  max_inline=cfg["max_inline"])
        ch.send({"device": pc.device, "port": pc.port, "gid_index": pc.gid_index,
                 "info": ep.local_info()})
        ep.connect(ch.recv())
        ch.send({"ready": 1})
        if case == "rdma_lat":
            def barrier() -> None:
                ch.recv()
                ch.send({"barrier": 1})
            ep.write_lat(size, n, False, timeout_s=timeout, barrier=barrier)
        ch.recv()  # done
        ep.close()
    ch.send({"bye": 1})
    return 0


# ======================================================================================
# The driver.
# ======================================================================================

def _perftest_argv(args: argparse.Namespace, size: int, n: int) -> tuple[list[str], list[str], int]:
    """ib_write_lat's server and client command lines (perftest's defaults otherwise)."""
    from benchfab.rdma import perftest
    from benchfab.rdma.discovery import select_port

    pc = select_port(args.device)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        tcp_port = int(s.getsockname()[1])
    common: dict[str, Any] = {"binary": perftest.find_binary("write_lat"), "device": pc.device, "port": pc.port,
                              "gid_index": pc.gid_index, "size": size, "iters": n, "tcp_port": tcp_port}
    peer_ip = os.environ.get("BENCHFAB_RDMA_IP", "127.0.0.1")
    return (perftest.build_args("write_lat", server_host=None, **common),
            perftest.build_args("write_lat", server_host=peer_ip, **common), tcp_port)


def run_one(args: argparse.Namespace, case: str, size: int, n: int, out: Path,
            toggle: str = "") -> dict[str, Any]:
    cfg = {"case": case, "size": size, "iters": n, "timeout_s": args.timeout,
           "buf_size": max(size, 4096), "tx_depth": args.tx_depth, "cq_mod": args.cq_mod,
           "device": args.device, "max_inline": args.max_inline}
    # PYTHONHASHSEED fixed: hash randomisation changes dict/set probing, hence Ir.
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    py = sys.executable
    if case == "perftest_lat":
        server, client_argv, tcp_port = _perftest_argv(args, size, n)
        pr = subprocess.Popen(server, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        pr = subprocess.Popen([py, str(HERE), "peer", json.dumps(cfg)], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        if case == "perftest_lat":
            from benchfab.rdma.perftest import wait_listening
            if not wait_listening(tcp_port, 30):
                raise RuntimeError(f"ib_write_lat server did not listen on {tcp_port}")
        else:
            assert pr.stdout is not None
            cfg["oob_port"] = int(pr.stdout.readline())
            client_argv = [py, str(HERE), "client", json.dumps(cfg)]
        cg_out = out / f"callgrind.{case}.{size}.{n}{'.toggle' if toggle else ''}.out"
        extra = ["--collect-atstart=no", f"--toggle-collect={toggle}"] if toggle else []
        cmd = [args.valgrind, "--tool=callgrind", f"--callgrind-out-file={cg_out}",
               "--vgdb=no", "--compress-pos=no", *extra, *args.valgrind_arg, *client_argv]
        t0 = time.monotonic()
        cp = subprocess.run(cmd, env=env, capture_output=True, text=True,
                            timeout=args.run_timeout)
        wall = time.monotonic() - t0
        if cp.returncode != 0:
            raise RuntimeError(f"client failed ({cp.returncode}):\n{cp.stdout}\n"
                               f"{cp.stderr[-3000:]}")
        pr.wait(60)
    finally:
        if pr.poll() is None:
            pr.kill()
            pr.wait()
    if case == "perftest_lat":
        from benchfab.rdma.perftest import parse_lat
        info = {"iterations": parse_lat(cp.stdout)[-1]["iterations"], "loop_s": float("nan")}
    else:
        info = json.loads(cp.stdout.strip().splitlines()[-1])
    if info["iterations"] != n:
        raise RuntimeError(f"{case} {size} B: ran {info['iterations']} iterations, not {n}")
    cg = parse_callgrind(cg_out, tuple(LOOP_FN[case]))
    fn = find_loop_fn(case, cg["fns"])
    rec = cg["fns"].get(fn, {"self": 0, "incl": 0, "calls_out": {}})
    callees = {short_name(k, v[2]): {"calls": v[0], "Ir": v[1]} for k, v in rec["calls_out"].items()}
    # "loop only": the loop function without its calls back into Python / numpy (the
    # np.zeros(N) timestamp arrays, the result dict), which the loops do before/after.
    py_ir = sum(v[1] for k, v in rec["calls_out"].items() if k.lstrip("_").startswith(PY_PREFIXES))
    self_ir = {k: v["self"] for k, v in cg["fns"].items() if v["self"]}
    return {"case": case, "size": size, "N": n, "wall_s": round(wall, 1), "loop_fn": fn,
            "loop_s_under_valgrind": info["loop_s"], "Ir_process": cg["total"],
            "Ir_loop_fn_incl": rec["incl"], "Ir_loop_fn_self": rec["self"],
            "Ir_loop_only": rec["incl"] - py_ir,
            "callees": callees, "file": str(cg_out), "_self": self_ir,
            "_lines": rec.get("lines", {})}


def per_iter(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    dn = b["N"] - a["N"]
    diffs = sorted(((b["_self"].get(k, 0) - a["_self"].get(k, 0)) / dn, k)
                   for k in set(a["_self"]) | set(b["_self"]))
    top = [(k, d) for d, k in sorted(diffs, key=lambda x: -abs(x[0]))[:8] if abs(d) >= 0.05]
    out = {"case": a["case"], "size": a["size"], "N1": a["N"], "N2": b["N"],
           "loop_fn": b["loop_fn"],
           "Ir_process": [a["Ir_process"], b["Ir_process"]],
           "Ir_loop_fn": [a["Ir_loop_fn_incl"], b["Ir_loop_fn_incl"]],
           "per_iter_process": (b["Ir_process"] - a["Ir_process"]) / dn,
           "per_iter_loop_fn": (b["Ir_loop_fn_incl"] - a["Ir_loop_fn_incl"]) / dn,
           "Ir_loop_only": [a["Ir_loop_only"], b["Ir_loop_only"]],
           "per_iter_loop_only": (b["Ir_loop_only"] - a["Ir_loop_only"]) / dn,
           "per_iter_loop_fn_self": (b["Ir_loop_fn_self"] - a["Ir_loop_fn_self"]) / dn,
           "top_self_diffs_per_iter": top, "callees": {}, "lines": by_line(a, b, dn)}
    for k in sorted(set(a["callees"]) | set(b["callees"])):
        ca = a["callees"].get(k, {"calls": 0, "Ir": 0})
        cb = b["callees"].get(k, {"calls": 0, "Ir": 0})
        d_calls = (cb["calls"] - ca["calls"]) / dn
        d_ir = (cb["Ir"] - ca["Ir"]) / dn
        if abs(d_calls) >= 0.001 or abs(d_ir) >= 0.05:
            out["callees"][k] = {"calls_per_iter": d_calls, "Ir_per_iter": d_ir,
                                 "Ir_per_call": (cb["Ir"] / cb["calls"]) if cb["calls"] else None}
    return out


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"unknown case {c!r} (have {', '.join(CASES)})")
    sizes = [int(s) for s in args.sizes.split(",")]
    t_all = time.monotonic()
    raw: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for case in cases:
        for size in sizes:
            pair = []
            for n in (args.n1, args.n2):
                r = run_one(args, case, size, n, out)
                raw.append(r)
                pair.append(r)
                print(f"# {case} {size} B N={n}: Ir process {r['Ir_process']:,}, loop fn "
                      f"{r['Ir_loop_fn_incl']:,}; {r['wall_s']} s wall", flush=True)
            res = per_iter(*pair)
            if args.toggle_check and size == sizes[0] and pair[1]["loop_fn"] != NO_SYMBOLS:
                # Cross-check: collect only inside the loop function; the total of that
                # run should equal the loop function's inclusive Ir of the full run.
                t = run_one(args, case, size, args.n2, out, toggle=pair[1]["loop_fn"])
                raw.append(t)
                res["toggle_check"] = {"N": args.n2, "Ir_total_toggle_run": t["Ir_process"],
                                       "Ir_loop_fn_full_run": pair[1]["Ir_loop_fn_incl"],
                                       "wall_s": t["wall_s"]}
                print(f"# {case} {size} B N={args.n2} --toggle-collect={pair[1]['loop_fn']}: "
                      f"total {t['Ir_process']:,} (full run's loop fn: "
                      f"{pair[1]['Ir_loop_fn_incl']:,}); {t['wall_s']} s wall", flush=True)
            results.append(res)
    elapsed = time.monotonic() - t_all
    tag = args.tag or "_".join(cases)
    (out / f"{tag}.json").write_text(json.dumps(
        {"results": results,
         "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in raw],
         "elapsed_s": elapsed,
         "settings": {k: v for k, v in vars(args).items() if k != "func"}}, indent=1))
    print(f"# {len(raw)} valgrind runs in {elapsed:.0f} s; instructions (Ir) per iteration "
          f"= (Ir(N2) - Ir(N1)) / (N2 - N1)")
    print(f"{'case':<9}{'size':>7}{'N1':>7}{'N2':>7}{'Ir process N1':>16}{'Ir process N2':>16}"
          f"{'/iter proc':>12}{'/iter loop fn':>15}{'/iter loop only':>17}")
    for r in results:
        print(f"{r['case']:<9}{r['size']:>7}{r['N1']:>7}{r['N2']:>7}{r['Ir_process'][0]:>16,}"
              f"{r['Ir_process'][1]:>16,}{r['per_iter_process']:>12.1f}"
              f"{r['per_iter_loop_fn']:>15.1f}"
              f"{r['per_iter_loop_only']:>17.1f}")
    for r in results:
        print(f"\n## {r['case']} {r['size']} B: {r['loop_fn']} self "
              f"{r['per_iter_loop_fn_self']:.1f} Ir/iter; "
              f"callees (calls/iter, Ir/iter, Ir/call at N2):")
        for k, v in sorted(r["callees"].items(), key=lambda kv: -kv[1]["Ir_per_iter"]):
            per_call = f"{v['Ir_per_call']:.1f}" if v["Ir_per_call"] is not None else "-"
            print(f"   {v['calls_per_iter']:8.3f} {v['Ir_per_iter']:10.1f} {per_call:>9}  {k}")
        print("   largest per-iteration self-Ir differences, whole process (Ir/iter, function):")
        for k, d in r["top_self_diffs_per_iter"]:
            print(f"   {d:8.2f}  {k}")
        print("   loop function by source line (Ir/iter, self + calls made on that line):")
        for label, d, text in r["lines"][:args.lines]:
            print(f"   {d:8.2f}  {label:<26} {text[:70]}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    r = sub.add_parser("run", help="run the valgrind measurements (default)")
    r.add_argument("--cases", default="rdma_bw,rdma_lat", help=f"comma list of {CASES}")
    r.add_argument("--sizes", default="8,65536")
    r.add_argument("--n1", type=int, default=2000)
    r.add_argument("--n2", type=int, default=10000)
    r.add_argument("--tx-depth", type=int, default=128)
    r.add_argument("--cq-mod", type=int, default=100)
    r.add_argument("--max-inline", type=int, default=0,
                   help="inline size of benchfab's endpoints (perftest_lat: perftest's own)")
    r.add_argument("--device", default=os.environ.get("BENCHFAB_RDMA_DEVICE"))
    r.add_argument("--timeout", type=float, default=600.0, help="loop / OOB timeout, s")
    r.add_argument("--run-timeout", type=float, default=900.0, help="per valgrind run, s")
    r.add_argument("--valgrind", default="valgrind")
    r.add_argument("--valgrind-arg", action="append", default=[],
                   help="extra valgrind option (repeatable), e.g. --valgrind-arg=--dump-instr=yes")
    r.add_argument("--out", default=str(ROOT / "results" / "loop_cost_callgrind"))
    r.add_argument("--tag", default="")
    r.add_argument("--toggle-check", action="store_true",
                   help="one more run per case (first size only) at N2 with --collect-atstart=no "
                        "--toggle-collect=<loop fn>, to cross-check the loop fn's Ir")
    r.add_argument("--lines", type=int, default=15, help="source lines shown per case")
    for name in ("client", "peer"):
        p = sub.add_parser(name, help=f"internal: the {name} side")
        p.add_argument("cfg")
    args = ap.parse_args(sys.argv[1:] or ["run"])
    if args.cmd == "client":
        return client(json.loads(args.cfg))
    if args.cmd == "peer":
        return peer(json.loads(args.cfg))
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
