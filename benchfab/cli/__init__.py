"""The ``benchfab`` command: the parser assembled from one module per command group
(``benchfab --help`` lists every command, README's "The CLI" shows each with an example):

- specs: init, validate, plan, render, preflight (a spec read or written, nothing run)
- running: sweep, diagnose, run, import (tests run, or a saved report stored as a run)
- stored: runs, show, report, export (stored runs read back)
- devices: this host's RDMA devices
- verdicts: compare, baseline (runs judged against a base, a baseline or their history)
- common: the subcommand helper, the shared options and help texts

Errors are one line (what, where, how to fix); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..errors import EXIT_CODES_HELP, EXIT_INTERRUPTED, BenchfabError, host_error
from .devices import add_device_commands
from .marks import add_mark_commands
from .running import add_sweep_commands
from .specs import add_spec_commands
from .stored import add_report_commands, add_results_commands
from .verdicts import add_verdict_commands

__all__ = ["build_parser", "main"]


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    # SIGTERM (kubectl delete, systemd, CI cancel) takes the same clean-up
    # path as Ctrl-C: ranks killed, partial results stored, run marked.
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchfab", description="Benchmark the fabric of GPU clusters.",
                                epilog="benchfab COMMAND --help describes each command.\n\n" + EXIT_CODES_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"benchfab {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_spec_commands(sub)
    add_sweep_commands(sub)
    add_results_commands(sub)
    add_device_commands(sub)
    add_report_commands(sub)
    add_verdict_commands(sub)
    add_mark_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    # Explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps
    # an inherited SIG_IGN, so `benchfab sweep ... &` then `kill -INT` did nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.func(args))
    except BenchfabError as exc:
        return _report(exc, args.debug)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            return 0
        return _report(host_error(exc), args.debug)
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print("\nbenchfab: interrupted; every rank was stopped and the results so far are stored "
              "(benchfab runs; resume with benchfab sweep --resume RUN_ID)", file=sys.stderr)
        return EXIT_INTERRUPTED


def _report(exc: BenchfabError, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    from ..untrusted import for_terminal

    for line in str(exc).split("\n"):  # a spec with several problems: one line each
        print(f"benchfab: error: {for_terminal(line)}", file=sys.stderr)  # names quoted from files stay inert
    return exc.exit_code
