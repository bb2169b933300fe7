"""``benchfab import``: saved nccl-tests and perftest reports into the store.

    benchfab import nccl-tests all_reduce.txt --profile ib-shared --fabric ib
    benchfab import perftest ib_write_bw.txt --profile roce-sriov --mode sriov --hosts a,b

A report becomes a run like a sweep's (run.json, tests/, summary/, raw/ per test), whose
rows hold the same columns in the same units as benchfab's own, so ``show``, ``report``,
``benchfab.load_runs`` and comparisons need not know where a row came from. run.json's
``imported_from`` says: the tool, its version where the report prints one, the file's
path, sha256 and size, ``--source URL``, and the facts the report's header states.

The modules, one job each:

    command.py      the command: options, reading the file, the run id
    nccl_tests.py   nccl-tests' text table and -J JSON file
    perftest.py     perftest's client output, through benchfab.rdma.perftest's parsers
    parsed.py       what a parser returns (ParsedReport, ParsedTest) and the one-line input error
    write.py        a ParsedReport into the store
"""

from __future__ import annotations

from .command import add_import_parser, cmd_import, parse_report
from .parsed import ParsedReport, ParsedTest
from .write import ImportContext, write_run

__all__ = ["ImportContext", "ParsedReport", "ParsedTest", "add_import_parser", "cmd_import", "parse_report", "write_run"]
