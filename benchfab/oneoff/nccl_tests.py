"""nccl-tests flags (``src/common.cu``: getopt ``longopts`` and its usage text) for
the collectives: the parser and their translation into a one-test spec."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..workloads.catalog import DTYPES, NCCL_TYPE_NAMES, REDOPS
from .common import (
    Refused,
    Translation,
    _add_common,
    _add_refused,
    _bytes,
    _check_refused,
    _int_flag,
    _names,
    _number,
    _Parser,
    _seconds,
    _size,
)

# nccl-tests -d names (test_typenames) -> benchfab dtypes; benchfab's own names work too.
NCCL_DTYPES: dict[str, str] = {**{nccl: d for d, nccl in NCCL_TYPE_NAMES.items()}, **{d: d for d in DTYPES}}
NCCL_DTYPES_MISSING = ("uint32", "uint64", "f8e4m3", "f8e5m2")

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


def translate_collective(workload: str, ns: argparse.Namespace) -> Translation:
    _check_refused(ns, NCCL_REFUSED, "nccl-tests")
    t = Translation(workload)
    ranks = _number(ns.ngpus) if ns.ngpus is not None else 2
    name = f"{workload}-{ranks}r" if isinstance(ranks, int) and ranks >= 1 else workload
    t.set("name", name, None)
    t.set("workload", workload, None)
    t.set("ranks", ranks, "-g", ns.ngpus)
    _collective_sizes(t, ns)
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


def _collective_sizes(t: Translation, ns: argparse.Namespace) -> None:
    """nccl-tests: -b/-e default to 32M; -f > 1 multiplies, otherwise -i (default 1M) is added."""
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
