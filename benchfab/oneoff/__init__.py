"""``benchfab run``: one test from nccl-tests or perftest flags, without writing YAML.

    benchfab run allreduce -b 8 -e 128M -f 2 -g 2          # like all_reduce_perf
    benchfab run rdma_write_bw -d rxe0 -s 64K -n 5000      # like ib_write_bw
    benchfab run ib_write_lat --transport tcp -a --print-spec

The flags are translated into a one-test sweep spec (a YAML text), which goes
through ``benchfab.spec.load_spec_text`` like any spec file: every check and every
error message is the spec's own, reworded only to name the flag that set the field.
The run is then an ordinary sweep (``run_sweep``) whose stored spec is that text,
so ``benchfab show``, ``report``, ``load_run`` and ``sweep --resume`` treat it like
any other run. ``--print-spec`` prints the text and exits: ``benchfab sweep FILE``
on it runs the same test.

Flag meanings follow nccl-tests' ``src/common.cu`` (getopt ``longopts`` and its
usage text) and perftest's ``perftest_parameters.c`` (usage text and defaults).
Flags that benchfab cannot honour are refused with one line naming the flag and
what to do instead; flags that only change their tool's console output are
accepted where that output is what benchfab prints anyway.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml

from ..errors import EXIT_CODES_HELP, SpecError, UsageError
from ..units import format_size, parse_size
from ..workloads import FAMILIES
from ..workloads.catalog import COLLECTIVES, DTYPES, NCCL_TYPE_NAMES, REDOPS
from ..workloads.p2p_params import PERFTEST_BINARY

SOURCE = "benchfab run"

# -- workload names ----------------------------------------------------------

# benchfab's names, the nccl-tests binaries (all_reduce_perf...) and their stems, perftest's binaries.
WORKLOAD_ALIASES: dict[str, str] = {alias: name for family in FAMILIES for alias, name in family.aliases.items()}

# nccl-tests -d names (test_typenames) -> benchfab dtypes; benchfab's own names work too.
NCCL_DTYPES: dict[str, str] = {**{nccl: d for d, nccl in NCCL_TYPE_NAMES.items()}, **{d: d for d in DTYPES}}
NCCL_DTYPES_MISSING = ("uint32", "uint64", "f8e4m3", "f8e5m2")

# perftest: DEF_SIZE_BW / DEF_SIZE_LAT, and -a runs 2 .. 2^23 (MAX_SIZE).
PERFTEST_DEFAULT_SIZE = {"rdma_write_bw": 65536, "rdma_write_lat": 2}
PERFTEST_ALL_SIZES = {"min": 2, "max": 1 << 23, "factor": 2}


def resolve_workload(name: str) -> str:
    """benchfab's workload for a name the user typed (benchfab's, nccl-tests' or perftest's)."""
    key = name.strip()
    found = WORKLOAD_ALIASES.get(key)
    if found:
        return found
    known = sorted(WORKLOAD_ALIASES)
    close = difflib.get_close_matches(key, known, n=1)
    raise UsageError(f"unknown workload {name!r}",
                     hint=f"did you mean {close[0]}?" if close else
                     f"use one of {', '.join(sorted(COLLECTIVES))}, {', '.join(PERFTEST_BINARY)} "
                     "(or a nccl-tests / perftest binary name such as all_reduce_perf, ib_write_bw)")


# -- argument parsing --------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", hint=f"see {self.prog} --help")


@dataclass(frozen=True)
class Refused:
    """A flag of the original tool benchfab does not honour. ``accept`` is the value
    (as text) that changes nothing here, e.g. -z 0; None: every use is refused."""

    short: str | None
    long: str
    meaning: str
    hint: str
    accept: tuple[str, ...] = ()
    takes_value: bool = True


# nccl-tests flags benchfab cannot honour (common.cu longopts), with what to do instead.
NCCL_REFUSED = (
    Refused("-t", "--nthreads", "threads per process", "benchfab runs one process per rank: use -g N for N ranks", ("1",)),
    Refused("-m", "--agg_iters", "aggregated iterations", "drop -m; each timed iteration is one collective", ("1",)),
    Refused("-N", "--run_cycles", "run cycles", "drop -N; use benchfab sweep with repeat: N to repeat a test", ("1",)),
    Refused("-p", "--parallel_init", "parallel communicator init", "drop -p; every rank is its own process", ("0",)),
    Refused("-z", "--blocking", "blocking collectives", "drop -z; the timed loop does not synchronise after each op", ("0",)),
    Refused("-y", "--stream_null", "NULL stream", "drop -y", ("0",)),
    Refused("-C", "--report_cputime", "CPU time reporting", "drop -C; times are device (or wall-clock) times", ("0",)),
    Refused("-S", "--report_timestamps", "timestamps", "drop -S; run.json holds the start and end times", ("0",)),
    Refused("-J", "--output_file", "JSON output file", "drop -J; results are stored in results/<run_id>/ "
            "(benchfab show, benchfab.load_run)"),
    Refused("-R", "--local_register", "buffer registration", "drop -R", ("0",)),
    Refused("-x", "--cta_policy", "NCCL CTA policy", "drop -x; set NCCL_CTA_POLICY in the environment instead"),
    Refused("-D", "--device_implementation", "device API implementation", "drop -D", ("0",)),
    Refused("-V", "--device_cta_count", "device API CTA count", "drop -V"),
    Refused("-M", "--memory_report", "memory report", "drop -M", ("0",)),
)

# perftest flags benchfab cannot honour (perftest_parameters.c usage), for ib_write_bw/lat.
PERFTEST_REFUSED = (
    Refused("-b", "--bidirectional", "bidirectional bandwidth", "drop -b; benchfab measures one direction "
            "(run the test twice, or a sweep with both directions)", takes_value=False),
    Refused("-c", "--connection", "connection type", "drop -c; benchfab uses RC QPs", ("RC",)),
    Refused("-q", "--qp", "number of QPs", "drop -q; benchfab uses one QP", ("1",)),
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


def _add_refused(p: argparse.ArgumentParser, refused: tuple[Refused, ...]) -> None:
    g = p.add_argument_group("refused")
    p.epilog = ("Refused, each with a one-line error saying what to do instead: "
                + ", ".join(r.short or r.long for r in refused) + ".")
    for r in refused:
        names = [n for n in (r.short, r.long) if n]
        dest = "refused_" + r.long.lstrip("-").replace("-", "_")
        if r.takes_value:
            g.add_argument(*names, dest=dest, metavar="X", help=argparse.SUPPRESS)
        else:
            g.add_argument(*names, dest=dest, action="store_const", const="on", help=argparse.SUPPRESS)


def _check_refused(ns: argparse.Namespace, refused: tuple[Refused, ...], tool: str) -> None:
    for r in refused:
        value = getattr(ns, "refused_" + r.long.lstrip("-").replace("-", "_"))
        if value is None or value in r.accept:
            continue
        flag = r.short or r.long
        shown = flag if value == "on" else f"{flag} {value}"
        raise UsageError(f"{shown} ({tool} {r.long}, {r.meaning}) is not supported by benchfab run", hint=r.hint)


def _add_common(p: argparse.ArgumentParser, g: Any = None) -> None:
    g = g or p.add_argument_group("benchfab")
    g.add_argument("--print-spec", action="store_true",
                   help="print the equivalent sweep spec (YAML for benchfab sweep) and exit without running")
    g.add_argument("--results", metavar="DIR", help="results directory (default: results)")
    g.add_argument("--run-id", help="name the run (default: UTC time + run-<workload>)")
    g.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    g.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even if the test failed, timed out or was skipped (as benchfab sweep)")


def collective_parser(prog: str) -> _Parser:
    p = _Parser(prog=prog, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="nccl-tests flags (all_reduce_perf and friends); sizes take K/M/G (binary).")
    g = p.add_argument_group("nccl-tests")
    g.add_argument("-g", "--ngpus", metavar="N", help="ranks (one process each; nccl-tests: GPUs per thread). Default 2")
    g.add_argument("-b", "--minbytes", metavar="SIZE", help="smallest size (default 32M, as nccl-tests)")
    g.add_argument("-e", "--maxbytes", metavar="SIZE", help="largest size (default 32M, as nccl-tests)")
    g.add_argument("-f", "--stepfactor", metavar="F", help="multiply the size by F (F > 1); else add -i")
    g.add_argument("-i", "--stepbytes", metavar="SIZE", help="add SIZE when -f is not > 1 (default 1M)")
    g.add_argument("-n", "--iters", metavar="N", help="timed iterations per size (default 20)")
    g.add_argument("-w", "--warmup_iters", metavar="N", help="warm-up iterations per size (benchfab default 5)")
    g.add_argument("-c", "--check", metavar="0|1", help="check results: 1 (default) or 0")
    g.add_argument("-o", "--op", metavar="OP", help="sum (default), prod, max, min, avg or all")
    g.add_argument("-d", "--datatype", metavar="TYPE",
                   help="float (default), half, double, bfloat16, int8, uint8, int32, int64 or all")
    g.add_argument("-r", "--root", metavar="RANK", help="root rank of broadcast (default 0)")
    g.add_argument("-T", "--timeout", metavar="SECONDS", help="per-test timeout (0: benchfab's default)")
    g.add_argument("-G", "--cudagraph", metavar="N", help="capture the timed loop in a CUDA graph, replay N times")
    g.add_argument("-a", "--average", metavar="1", help="1 only: time averaged over ranks")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"),
                   help="benchfab: auto (CUDA + NCCL with a GPU per rank, else CPU + gloo), cpu or cuda")
    _add_common(p)
    _add_refused(p, NCCL_REFUSED)
    return p


def p2p_parser(prog: str) -> _Parser:
    p = _Parser(prog=prog, allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="perftest flags (ib_write_bw / ib_write_lat); sizes take K/M/G (binary). Both "
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
    g.add_argument("-t", "--tx-depth", metavar="N", help="outstanding WRITEs (bw; default 128)")
    g.add_argument("-Q", "--cq-mod", metavar="N", help="signal every N-th WRITE (bw; default 100, 1 above 8K)")
    g.add_argument("-l", "--post_list", metavar="N", help="WRITEs chained per post (bw; default 1)")
    g.add_argument("-I", "--inline_size", metavar="SIZE", help="inline threshold (default 220 lat, 0 bw)")
    g.add_argument("--use_cuda", metavar="GPU", help="GPU memory on this GPU (DMA-BUF, else nvidia-peermem)")
    g.add_argument("--use_cuda_dmabuf", action="store_true", help="GPU memory registered by DMA-BUF only")
    g.add_argument("--use_hugepages", action="store_true", help="host memory on 2 MiB hugepages")
    g.add_argument("-F", "--CPU-freq", dest="cpu_freq", action="store_true", help="accepted; benchfab never warns")
    g.add_argument("--report_gbits", action="store_true", help="accepted; bandwidth is always in Gb/s")
    g.add_argument("--perform_warm_up", action="store_true", help="accepted; benchfab always warms up (--warmup)")
    b = p.add_argument_group("benchfab")
    b.add_argument("--transport", metavar="verbs|tcp", help="verbs (default) or tcp: the same loops over a socket")
    b.add_argument("--engine", metavar="native|perftest", help="native (default) or perftest: run ib_write_* itself")
    b.add_argument("--warmup", metavar="N", help="untimed WRITEs before the timed loop (default 5)")
    b.add_argument("--timeout", metavar="SECONDS", help="per-test timeout")
    _add_common(p, b)
    _add_refused(p, PERFTEST_REFUSED)
    return p


# -- flags -> spec -----------------------------------------------------------


@dataclass
class Translation:
    """A one-test spec as data, plus which flag set each of its fields."""

    workload: str
    test: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # "ranks" / "rdma.mtu" -> "-g 0"

    def set(self, path: str, value: Any, flag: str | None, raw: Any = None) -> None:
        node = self.test
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        if flag:
            self.origin[path] = flag if raw is None else f"{flag} {raw}"


def _number(text: str) -> int | str:
    """An int where the text is one (strtol-like: 10, 0x10), else the text for the spec to refuse."""
    for base in (10, 0):
        try:
            return int(text.strip(), base)
        except ValueError:
            pass
    return text


def _int_flag(flag: str, text: str) -> int:
    value = _number(text)
    if isinstance(value, str):
        raise UsageError(f"{flag} {text}: expected a whole number", hint=f"e.g. {flag} 1")
    return value


def _size(text: str) -> int | str:
    """Sizes as compact as the spec reads them back (64K, 1M); text the spec will refuse stays text."""
    try:
        n = parse_size(text)
    except ValueError:
        return text
    return format_size(n) if n >= 1024 and n % 1024 == 0 else n


def _seconds(text: str) -> int | float | str:
    try:
        value = float(text)
    except ValueError:
        return text  # "30s", "2m": the spec parses durations itself
    return int(value) if value.is_integer() else value


def _names(flag: str, text: str, table: dict[str, str], everything: list[str], missing: tuple[str, ...],
           what: str) -> list[str]:
    out: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            out.extend(everything)
        elif part in missing:
            raise UsageError(f"{flag} {part}: benchfab has no {part} {what}",
                             hint=f"use one of {', '.join(everything)} (or all)")
        else:
            out.append(table.get(part, part))  # unknown names: the spec's own error lists the choices
    return list(dict.fromkeys(out))


def translate_collective(workload: str, ns: argparse.Namespace) -> Translation:
    _check_refused(ns, NCCL_REFUSED, "nccl-tests")
    t = Translation(workload)
    ranks = _number(ns.ngpus) if ns.ngpus is not None else 2
    name = f"{workload}-{ranks}r" if isinstance(ranks, int) and ranks >= 1 else workload
    t.set("name", name, None)
    t.set("workload", workload, None)
    t.set("ranks", ranks, "-g", ns.ngpus)

    # nccl-tests: -b/-e default to 32M; -f > 1 multiplies, otherwise -i (default 1M) is added.
    lo = _size(ns.minbytes) if ns.minbytes is not None else "32M"
    hi = _size(ns.maxbytes) if ns.maxbytes is not None else "32M"
    given = " ".join(f"{f} {v}" for f, v in (("-b", ns.minbytes), ("-e", ns.maxbytes)) if v is not None)
    factor = _number(ns.stepfactor) if ns.stepfactor is not None else 1
    if _bytes(lo) is not None and _bytes(lo) == _bytes(hi):
        t.set("sizes", lo, given or None)  # one size
    elif isinstance(factor, int) and 0 <= factor <= 1:
        step = _size(ns.stepbytes) if ns.stepbytes is not None else "1M"
        t.set("sizes", {"min": lo, "max": hi, "step": step}, given or None)
        if ns.stepbytes is not None:
            t.origin["sizes.step"] = f"-i {ns.stepbytes}"
    else:
        t.set("sizes", {"min": lo, "max": hi, "factor": factor}, given or None)
        t.origin["sizes.factor"] = f"-f {ns.stepfactor}"
    if ns.minbytes is not None:
        t.origin["sizes.min"] = f"-b {ns.minbytes}"
    if ns.maxbytes is not None:
        t.origin["sizes.max"] = f"-e {ns.maxbytes}"

    if ns.datatype is not None:
        t.set("dtypes", _names("-d", ns.datatype, NCCL_DTYPES, list(DTYPES), NCCL_DTYPES_MISSING, "datatype"),
              "-d", ns.datatype)
    if ns.op is not None:
        t.set("ops", _names("-o", ns.op, {}, list(REDOPS), ("mulsum",), "reduction"), "-o", ns.op)
    if ns.iters is not None:
        t.set("iterations", _number(ns.iters), "-n", ns.iters)
    if ns.warmup_iters is not None:
        t.set("warmup", _number(ns.warmup_iters), "-w", ns.warmup_iters)
    if ns.check is not None:
        check = _int_flag("-c", ns.check)
        if check not in (0, 1):
            raise UsageError(f"-c {ns.check}: benchfab checks each size once (nccl-tests -c N repeats the check)",
                             hint="use -c 1 to check or -c 0 not to")
        t.set("check", bool(check), "-c", ns.check)
    if ns.root is not None:
        t.set("root", _number(ns.root), "-r", ns.root)
    if ns.timeout is not None:
        seconds = _seconds(ns.timeout)
        if seconds != 0:  # nccl-tests: 0 = no timeout; benchfab always has one (its default)
            t.set("timeout", seconds, "-T", ns.timeout)
    if ns.cudagraph is not None:
        t.set("cuda_graph", _number(ns.cudagraph), "-G", ns.cudagraph)
    if ns.average is not None and _int_flag("-a", ns.average) != 1:
        raise UsageError(f"-a {ns.average}: benchfab reports the time averaged over ranks (nccl-tests -a 1); "
                         "rank 0 / min / max are not reported", hint="drop -a; per-iteration maxima are stored in raw/")
    if ns.device is not None:
        t.set("device", ns.device, "--device", ns.device)
    return t


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
        t.set("sizes", _size(str(PERFTEST_DEFAULT_SIZE[workload])), None)
    if ns.iters is not None:
        t.set("iterations", _number(ns.iters), "-n", ns.iters)
    if ns.duration is not None:
        t.set("duration", _seconds(ns.duration), "-D", ns.duration)
    if ns.warmup is not None:
        t.set("warmup", _number(ns.warmup), "--warmup", ns.warmup)
    if ns.timeout is not None:
        t.set("timeout", _seconds(ns.timeout), "--timeout", ns.timeout)
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
    bw_only = (("tx_depth", "-t", ns.tx_depth), ("cq_mod", "-Q", ns.cq_mod), ("post_list", "-l", ns.post_list))
    for key, flag, value in bw_only:
        if value is None:
            continue
        if workload != "rdma_write_bw":
            raise UsageError(f"{flag} {value}: ib_write_lat has no {flag} (one WRITE in flight, each signaled)",
                             hint=f"drop {flag}, or use rdma_write_bw")
        t.set(f"rdma.{key}", _number(value), flag, value)
    for key, flag, value in (("device", "-d", ns.ib_dev), ("port", "-i", ns.ib_port),
                             ("gid_index", "-x", ns.gid_index), ("mtu", "-m", ns.mtu)):
        if value is not None:
            t.set(f"rdma.{key}", value if key == "device" else _number(value), flag, value)
    if ns.inline_size is not None:
        inline = _bytes(_size(ns.inline_size))
        t.set("rdma.max_inline", ns.inline_size if inline is None else inline, "-I", ns.inline_size)
    return t


def _bytes(value: int | str) -> int | None:
    try:
        return parse_size(value)
    except ValueError:
        return None


def spec_text(t: Translation, command: list[str]) -> str:
    """The one-test sweep spec, as YAML, headed by the command it came from."""
    doc = {
        "name": f"run-{t.workload}",
        "description": "benchfab " + shlex.join(command),
        "backend": "local",
        "tests": [t.test],
    }
    body = str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=10_000))
    return (f"# benchfab {shlex.join(command)}\n"
            "# The same test as a sweep spec: benchfab sweep FILE runs it.\n" + body)


def _reword(exc: SpecError, t: Translation) -> SpecError:
    """The spec's own error, pointed at the flag that set the field (when one did)."""
    fieldpath = exc.field or ""
    prefix = exc.source or "<spec>"
    if exc.line is not None:
        prefix += f":{exc.line}"
    prefix += f": {fieldpath}: " if fieldpath else ": "
    message = exc.message[len(prefix):] if exc.message.startswith(prefix) else exc.message
    path = fieldpath.removeprefix("tests[0].").removeprefix("tests[0]")
    parts = re.sub(r"\[\d+\]", "", path).split(".") if path else []  # dtypes[1] -> dtypes
    for cut in range(len(parts), 0, -1):
        flag = t.origin.get(".".join(parts[:cut]))
        if flag:
            return SpecError(message, source=SOURCE, field=f"{flag} ({path})", hint=exc.hint)
    return exc


# -- the command ------------------------------------------------------------


def parse(workload_name: str, flags: list[str]) -> tuple[Translation, argparse.Namespace]:
    workload = resolve_workload(workload_name)
    prog = f"benchfab run {workload_name}"
    collective = workload in COLLECTIVES
    parser = collective_parser(prog) if collective else p2p_parser(prog)
    ns, extra = parser.parse_known_args(flags)
    if extra:
        _unknown(extra[0], parser, "nccl-tests" if collective else "perftest")
    translate: Callable[[str, argparse.Namespace], Translation] = translate_collective if collective else translate_p2p
    return translate(workload, ns), ns


def _unknown(arg: str, parser: argparse.ArgumentParser, tool: str) -> None:
    if not arg.startswith("-"):
        hint = ("benchfab runs both sides on this host: drop the server name" if tool == "perftest"
                else "flags only after the workload, e.g. -b 8 -e 1M")
        raise UsageError(f"unexpected argument {arg!r}", hint=hint)
    flag = arg.split("=", 1)[0]
    known = [o for a in parser._actions for o in a.option_strings]  # noqa: SLF001 (argparse has no public list)
    close = difflib.get_close_matches(flag, known, n=1) if flag.startswith("--") else []
    raise UsageError(f"unknown flag {flag} for {tool}-style {parser.prog}",
                     hint=f"did you mean {close[0]}?" if close else f"see {parser.prog} --help")


RUN_ONLY_FLAGS = {"--print-spec": False, "--no-progress": False, "--allow-failures": False,
                  "--results": True, "--run-id": True}  # flag -> takes a value


def shaping_flags(flags: list[str]) -> list[str]:
    """The flags that shape the test (what the spec's header repeats), without run-only ones."""
    out: list[str] = []
    skip = False
    for arg in flags:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in RUN_ONLY_FLAGS:
            skip = RUN_ONLY_FLAGS[name] and "=" not in arg
            continue
        out.append(arg)
    return out


def build(workload_name: str, flags: list[str]) -> tuple[Any, str, argparse.Namespace]:
    """(validated SweepSpec, its YAML text, parsed flags) for ``benchfab run WORKLOAD FLAGS``."""
    from ..spec import load_spec_text

    t, ns = parse(workload_name, flags)
    text = spec_text(t, ["run", workload_name, *shaping_flags(flags)])
    try:
        spec = load_spec_text(text, source=SOURCE)
    except SpecError as exc:
        raise _reword(exc, t) from None
    return spec, text, ns


def cmd_run(args: argparse.Namespace) -> int:
    from ..sweep import run_sweep

    spec, text, ns = build(args.workload, list(args.flags))
    if ns.print_spec:
        print(text, end="")
        return 0
    result = run_sweep(spec, text, results_dir=ns.results, run_id=ns.run_id, progress=not ns.no_progress)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items())) or "nothing to do"
    print(f"# run {result.run_id}: {counts}. Results: {result.path}")
    print(f"# next: benchfab report {result.run_id}" + (f" --results {ns.results}" if ns.results else ""))
    if result.not_ok and ns.allow_failures:
        print(f"# {result.not_ok} test(s) not ok; exit 0 because of --allow-failures", file=sys.stderr)
    return result.exit_code(ns.allow_failures)  # the rule benchfab sweep uses


EPILOG = """\
Collectives (nccl-tests flags): allreduce, all_gather, reduce_scatter, broadcast,
all_to_all, or all_reduce_perf, all_gather_perf, reduce_scatter_perf,
broadcast_perf, alltoall_perf.
Point-to-point (perftest flags): rdma_write_bw, rdma_write_lat, or ib_write_bw,
ib_write_lat; --transport tcp runs the same loops over a socket.

  benchfab run allreduce -b 8 -e 128M -f 2 -g 2
  benchfab run rdma_write_bw -d rxe0 -s 64K -n 5000
  benchfab run ib_write_lat --transport tcp -a --print-spec > lat.yaml

Each is stored as a one-test run (benchfab show / report / load_run); --print-spec
prints the equivalent sweep spec and exits. `benchfab run WORKLOAD --help` lists
that family's flags.

""" + EXIT_CODES_HELP


def add_run_parser(sub: Any) -> None:
    """The ``run`` subcommand; the workload's own flags are parsed by ``cmd_run``."""
    r = sub.add_parser("run", help="one test from nccl-tests / perftest flags, without a spec",
                       description="Run one test from nccl-tests or perftest flags, without writing a spec.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("workload", help="allreduce ... all_to_all, rdma_write_bw, rdma_write_lat (or the tools' binary names)")
    r.add_argument("flags", nargs=argparse.REMAINDER, help="the tool's flags plus --print-spec, --results, --run-id, "
                   "--no-progress (see benchfab run WORKLOAD --help)")
    r.set_defaults(func=cmd_run)
