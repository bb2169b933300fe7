"""perftest flags (``perftest_parameters.c``: usage text and defaults) for
ib_{write,read,send}_{bw,lat}: the parser and their translation into a one-test spec."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..workloads.p2p_workloads import P2P_WORKLOADS, p2p_by_title, p2p_workload, perftest_binaries, runnable_patterns
from .common import (
    Refused,
    Translation,
    _add_common,
    _add_refused,
    _bytes,
    _check_refused,
    _number,
    _Parser,
    _seconds,
    _size,
)

# perftest's -a runs 2 .. 2^23 (MAX_SIZE); its default size is the workload's descriptor's.
PERFTEST_ALL_SIZES = {"min": 2, "max": 1 << 23, "factor": 2}

# perftest flags benchfab cannot honour (perftest_parameters.c usage), for ib_*_bw/lat.
PERFTEST_REFUSED = (
    Refused("-c", "--connection", "connection type", "drop -c; benchfab uses RC QPs", ("RC",)),
    Refused("-R", "--rdma_cm", "rdma_cm connection", "drop -R; QPs are connected over benchfab's own exchange",
            takes_value=False),
    Refused("-z", "--comm_rdma_cm", "rdma_cm exchange", "drop -z", takes_value=False),
    Refused("-p", "--port", "TCP port of the exchange", "drop -p; benchfab picks a free port for each test"),
    Refused("-e", "--events", "sleep on CQ events", "drop -e; benchfab polls the CQ like perftest's default",
            takes_value=False),
    Refused("-N", "--noPeak", "no peak bandwidth", "drop -N; benchfab always reports BW peak", takes_value=False),
    Refused("-O", "--dualport", "dual-port mode", "drop -O; run one test per port", takes_value=False),
    Refused("-S", "--sl", "service level", "drop -S", ("0",)),
    Refused("-T", "--tos", "type of service", "drop -T"),
    Refused("-u", "--qp-timeout", "QP timeout", "drop -u"),
    Refused("-f", "--margin", "measurement margin", "drop -f"),
    Refused("-H", "--report-histogram", "latency histogram", "drop -H; every half round trip is stored in raw/",
            takes_value=False),
    Refused("-U", "--report-unsorted", "unsorted latencies", "drop -U; every half round trip is stored in raw/",
            takes_value=False),
    Refused("-C", "--report-cycles", "CPU cycle units", "drop -C; latencies are in microseconds", takes_value=False),
    Refused("-w", "--limit_bw", "bandwidth verifier limit", "drop -w"),
    Refused("-y", "--limit_msgrate", "message rate verifier limit", "drop -y"),
    Refused("-W", "--report-counters", "performance counters", "drop -W"),
    Refused(None, "--reversed", "reversed direction", "drop --reversed", takes_value=False),
    Refused(None, "--run_infinitely", "endless run", "drop --run_infinitely; use -D SECONDS", takes_value=False),
    Refused(None, "--cpu_util", "CPU utilisation", "drop --cpu_util", takes_value=False),
    Refused(None, "--out_json", "JSON report", "drop --out_json; results are stored in results/<run_id>/",
            takes_value=False),
    Refused(None, "--odp", "on-demand paging", "drop --odp", takes_value=False),
    Refused(None, "--ipv6", "IPv6 GID", "drop --ipv6 and pick the GID with -x", takes_value=False),
    Refused(None, "--mmap", "mmap'd file buffer", "drop --mmap; use --use_hugepages or --use_cuda"),
    Refused(None, "--use_rocm", "ROCm memory", "drop --use_rocm; benchfab supports CUDA GPUs"),
    Refused(None, "--use_cuda_bus_id", "CUDA device by PCI address", "use --use_cuda=N with the GPU index"),
    Refused(None, "--write_with_imm", "write with immediate", "drop --write_with_imm", takes_value=False),
    Refused(None, "--use-null-mr", "null MR", "drop --use-null-mr", takes_value=False),
)


def p2p_parser(prog: str) -> _Parser:
    p = _Parser(prog=prog, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                description=f"perftest flags ({' / '.join(perftest_binaries(runs=True).values())}); "
                            "sizes take K/M/G (binary). Both "
                            "sides run on this host: there is no server/client argument.")
    g = p.add_argument_group("perftest")
    g.add_argument("-d", "--ib-dev", metavar="DEV", help="RDMA device (default: first with an ACTIVE port)")
    g.add_argument("-i", "--ib-port", metavar="PORT", help="port of the device (default 1)")
    g.add_argument("-x", "--gid-index", metavar="INDEX", help="GID index (default: the RoCE v2 IPv4 GID)")
    g.add_argument("-m", "--mtu", metavar="MTU", help="256 .. 4096 (default: the port's active MTU)")
    g.add_argument("-s", "--size", metavar="SIZE", help="message size (default 65536 bw, 2 lat)")
    g.add_argument("-a", "--all", action="store_true", help="sizes 2 .. 2^23, powers of two")
    g.add_argument("-n", "--iters", metavar="N", help="iterations per size (default 5000 bw, 1000 lat; at least 5)")
    g.add_argument("-D", "--duration", metavar="SECONDS", help="time per size instead of -n")
    g.add_argument("-t", "--tx-depth", metavar="N", help="outstanding WRs per QP (bw; default 128)")
    g.add_argument("-Q", "--cq-mod", metavar="N", help="signal every N-th WR (bw; default 100, 1 above 8K)")
    g.add_argument("-l", "--post_list", metavar="N", help="WRs chained per post (bw; default 1)")
    g.add_argument("-b", "--bidirectional", action="store_true", help="both sides post at once; BW is the sum (bw)")
    g.add_argument("-q", "--qp", metavar="N", help="QPs per side, posted round robin (bw; default 1)")
    g.add_argument("-o", "--outs", metavar="N", help="outstanding READs per QP (read; default: the device's most)")
    inline = ", ".join(f"{w.default_max_inline} {w.test}" for w in P2P_WORKLOADS.values()
                       if w.runs and w.default_max_inline)
    g.add_argument("-I", "--inline_size", metavar="SIZE", help=f"inline threshold (default {inline}, else 0)")
    g.add_argument("--use_cuda", metavar="GPU", help="GPU memory on this GPU (DMA-BUF, else nvidia-peermem)")
    g.add_argument("--use_cuda_dmabuf", action="store_true", help="GPU memory registered by DMA-BUF only")
    g.add_argument("--use_hugepages", action="store_true", help="host memory on 2 MiB hugepages")
    g.add_argument("-F", "--CPU-freq", dest="cpu_freq", action="store_true", help="accepted; benchfab never warns")
    g.add_argument("--report_gbits", action="store_true", help="accepted; bandwidth is always in Gb/s")
    g.add_argument("--perform_warm_up", action="store_true", help="accepted; benchfab always warms up (--warmup)")
    b = p.add_argument_group("benchfab")
    b.add_argument("--transport", metavar="verbs|tcp", help="verbs (default) or tcp: the same loops over a socket")
    b.add_argument("--engine", metavar="native|perftest", help=f"native (default) or perftest: run {runnable_patterns('ib')} itself")
    b.add_argument("--warmup", metavar="N", help="untimed WRITEs before the timed loop (default 5)")
    b.add_argument("--timeout", metavar="SECONDS", help="per-test timeout")
    _add_common(p, b)
    _add_refused(p, PERFTEST_REFUSED)
    return p


def translate_p2p(workload: str, ns: argparse.Namespace) -> Translation:
    _check_refused(ns, PERFTEST_REFUSED, "perftest")
    t = Translation(workload)
    transport = ns.transport or "verbs"
    t.set("name", workload if transport == "verbs" else f"{workload}-{transport}", None)
    t.set("workload", workload, None)
    t.set("ranks", 2, None)
    if ns.transport is not None:
        t.set("transport", ns.transport, "--transport", ns.transport)
    if ns.engine is not None:
        t.set("engine", ns.engine, "--engine", ns.engine)
    if ns.all and ns.size is not None:
        raise UsageError(f"-a and -s {ns.size} both given", hint="keep -a for every size from 2 to 8M, or -s for one")
    if ns.all:
        t.set("sizes", {k: _size(str(v)) if k != "factor" else v for k, v in PERFTEST_ALL_SIZES.items()}, "-a")
    elif ns.size is not None:
        t.set("sizes", _size(ns.size), "-s", ns.size)
    else:
        t.set("sizes", _size(str(p2p_workload(workload).default_size)), None)
    if ns.iters is not None:
        t.set("iterations", _number(ns.iters), "-n", ns.iters)
    if ns.duration is not None:
        t.set("duration", _seconds(ns.duration), "-D", ns.duration)
    if ns.warmup is not None:
        t.set("warmup", _number(ns.warmup), "--warmup", ns.warmup)
    if ns.timeout is not None:
        t.set("timeout", _seconds(ns.timeout), "--timeout", ns.timeout)
    _p2p_memory(t, ns)
    _p2p_rdma(t, workload, ns)
    return t


def _p2p_memory(t: Translation, ns: argparse.Namespace) -> None:
    """--use_hugepages / --use_cuda / --use_cuda_dmabuf: where the buffers live."""
    memory = None
    if ns.use_hugepages:
        memory = ("hugepages", "--use_hugepages")
    if ns.use_cuda is not None or ns.use_cuda_dmabuf:
        if memory:
            raise UsageError("--use_hugepages and --use_cuda both given", hint="keep one: host hugepages or GPU memory")
        memory = ("cuda-dmabuf", "--use_cuda_dmabuf") if ns.use_cuda_dmabuf else ("cuda", "--use_cuda")
    if memory:
        t.set("memory", memory[0], memory[1])
    if ns.use_cuda is not None:
        t.set("rdma.cuda_device", _number(ns.use_cuda), "--use_cuda", ns.use_cuda)


def _p2p_rdma(t: Translation, workload: str, ns: argparse.Namespace) -> None:
    """The verbs settings: bw-only queue depths, device, port, GID, MTU and inline size."""
    described = p2p_workload(workload)
    bw_only: tuple[tuple[str, str, str | None], ...] = (
        ("tx_depth", "-t", ns.tx_depth), ("cq_mod", "-Q", ns.cq_mod), ("post_list", "-l", ns.post_list),
        ("qps", "-q", ns.qp), ("bidirectional", "-b", "on" if ns.bidirectional else None))
    for key, flag, value in bw_only:
        if value is None:
            continue
        if not described.bandwidth_flags:
            shown = flag if key == "bidirectional" else f"{flag} {value}"
            raise UsageError(f"{shown}: {described.perftest_binary} has no {flag} "
                             f"(one {described.verb.upper()} in flight on one QP, each signaled)",
                             hint=f"drop {flag}, or use {p2p_by_title(described.verb, 'bw').name}")
        if key == "bidirectional":
            t.set("rdma.bidirectional", True, flag)
        else:
            t.set(f"rdma.{key}", _number(value), flag, value)
    if ns.outs is not None:
        if not described.one_sided:
            raise UsageError(f"-o {ns.outs}: {described.perftest_binary} issues no READs", hint="drop -o")
        t.set("rdma.out_reads", _number(ns.outs), "-o", ns.outs)
    for key, flag, value in (("device", "-d", ns.ib_dev), ("port", "-i", ns.ib_port),
                             ("gid_index", "-x", ns.gid_index), ("mtu", "-m", ns.mtu)):
        if value is not None:
            t.set(f"rdma.{key}", value if key == "device" else _number(value), flag, value)
    if ns.inline_size is not None:
        inline = _bytes(_size(ns.inline_size))
        t.set("rdma.max_inline", ns.inline_size if inline is None else inline, "-I", ns.inline_size)
