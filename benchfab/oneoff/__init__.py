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

The modules, one job each:

    run.py          the command: workload names, dispatch to a family's flags, the
                    spec text, errors reworded to name the flag, running the sweep
    nccl_tests.py   nccl-tests' flags (collectives): parser and translation
    perftest.py     perftest's flags (ib_{write,read,send}_{bw,lat}): parser and translation
    common.py       what both share: the parser class, refused flags, benchfab's run
                    flags, ``Translation`` and the value parsers
"""

from __future__ import annotations

from .common import SOURCE, Refused, Translation
from .nccl_tests import NCCL_DTYPES, NCCL_DTYPES_MISSING, NCCL_REFUSED, collective_parser, translate_collective
from .perftest import PERFTEST_ALL_SIZES, PERFTEST_REFUSED, p2p_parser, translate_p2p
from .run import (
    EPILOG,
    RUN_ONLY_FLAGS,
    WORKLOAD_ALIASES,
    add_run_parser,
    build,
    cmd_run,
    parse,
    resolve_workload,
    shaping_flags,
    spec_text,
)

__all__ = [
    "EPILOG",
    "NCCL_DTYPES",
    "NCCL_DTYPES_MISSING",
    "NCCL_REFUSED",
    "PERFTEST_ALL_SIZES",
    "PERFTEST_REFUSED",
    "RUN_ONLY_FLAGS",
    "SOURCE",
    "WORKLOAD_ALIASES",
    "Refused",
    "Translation",
    "add_run_parser",
    "build",
    "cmd_run",
    "collective_parser",
    "p2p_parser",
    "parse",
    "resolve_workload",
    "shaping_flags",
    "spec_text",
    "translate_collective",
    "translate_p2p",
]
