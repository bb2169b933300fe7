"""One error hierarchy for benchfab.

Every error a user can cause or meet carries a one-line message that says what
went wrong and where, plus an optional hint saying how to fix it. The CLI prints
``str(error)`` and exits with ``error.exit_code``; a traceback is shown only
with ``--debug``. The one exception to "one line" is ``SpecErrors``: every
problem of a spec, one complete line each.
"""

from __future__ import annotations

import errno
import re
import textwrap
from collections.abc import Sequence
from typing import Any

# Exit codes, in one place. Commands that run or judge tests (sweep, run, diagnose) end
# with 0 or 1 (sweep.judged_exit_code); an error ends any command with its class's code
# before anything is measured, and Ctrl-C / SIGTERM with 130.
EXIT_ALL_OK = 0
EXIT_TESTS_NOT_OK = 1  # the run is stored, but a test is not ok or a verdict names a fault
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    every test ok and no verdict names a fault (commands that run no test: done)
  1    results stored, but a test failed, timed out or was skipped
       (sweep/run --allow-failures: 0), or a verdict names a fault: a second
       pass's (sweep, diagnose), a --baseline regression or a figure below
       its expectation (expect:, --expect FILE), whatever the flags;
       or the cluster or a backend failed
  2    bad input: spec, flags, unknown run id (nothing ran)
  3    this host or cluster lacks what every test needs, e.g. an RDMA device
       or a GPU (nothing ran)
  130  interrupted (Ctrl-C, SIGTERM): what was measured is stored; --resume"""


def exit_codes_help(meanings: dict[int, str]) -> str:
    """A command's own "exit codes:" section for --help, laid out as EXIT_CODES_HELP: for the
    commands whose 1 means something of their own (a regression, a verdict)."""
    lines = ["exit codes:"]
    for code, meaning in meanings.items():
        wrapped = textwrap.wrap(meaning, width=71) or [""]
        lines.append(f"  {code:<4} {wrapped[0]}")
        lines += [f"       {more}" for more in wrapped[1:]]
    return "\n".join(lines)


BAD_RUN_INPUT = "bad input: an unknown run id, a flag (nothing ran)"
INTERRUPTED = "interrupted (Ctrl-C, SIGTERM)"
COMPARE_EXIT_CODES = exit_codes_help({
    0: "no regression: every key is same, better, new or missing",
    1: "a regression: a key is worse, failed, or changed what it measured (the verdicts say which), or a "
       "figure of NEW is below its expectation (expect:, --expect FILE); or a run or results/baselines.json "
       "could not be read",
    2: "bad input: an unknown run or baseline, a flag",
    130: INTERRUPTED,
})
DIAGNOSE_EXIT_CODES = exit_codes_help({
    0: "no fault: every suspect retested fine (or nothing was suspect)",
    1: "a verdict names a fault (dead, bad-node, lossy-node, bad-gpu, bad-nic, lossy-nic, bad-link, lossy-link; "
       "stored in diagnosis.json with what to do), a retest was not ok, or a figure is below its expectation "
       "(expect:, --expect FILE); or the cluster or a backend failed",
    2: "bad input: an unknown run id, a run diagnose cannot judge (imported, or no all-pairs / ring / "
       "k-groups / topology test), a flag",
    130: INTERRUPTED + ": the retests so far are stored",
})
REPORT_EXIT_CODES = exit_codes_help({
    0: "the report is written (its files are listed on stdout)",
    1: "a file could not be written (a full disk, a read-only folder) or a run could not be read",
    2: BAD_RUN_INPUT,
    130: INTERRUPTED,
})


class BenchfabError(Exception):
    """Base of every error benchfab raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # One line, always: messages quoted from other libraries may hold newlines.
        message = re.sub(r"\s*\n\s*", " ", message).strip()
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (fix: {self.hint})"
        return self.message


class SpecError(BenchfabError):
    """The sweep spec is malformed or impossible. Points at file:line and the field."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = source or "<spec>"
        if line is not None:
            where = f"{where}:{line}"
        prefix = f"{where}: {field}: " if field else f"{where}: "
        super().__init__(prefix + message, hint=hint)
        self.what = message  # without file:line and field (validate -o json lists them apart)
        self.source = source
        self.line = line
        self.field = field

    @property
    def problems(self) -> tuple[SpecError, ...]:
        """Every problem this error reports: itself here, several for ``SpecErrors``."""
        return (self,)


class SpecErrors(SpecError):
    """Several problems found in one spec, reported together.

    ``str()`` gives one line per problem (``file:line: field: what (fix: how)``),
    sorted by line; ``problems`` holds them as SpecErrors. ``source``, ``line``,
    ``field``, ``message`` and ``hint`` are the first problem's, so code that
    handles a single SpecError keeps working.
    """

    def __init__(self, problems: Sequence[SpecError]) -> None:
        unique: dict[str, SpecError] = {}
        for problem in problems:
            for one in problem.problems:
                unique.setdefault(str(one), one)
        if not unique:
            raise ValueError("SpecErrors needs at least one problem")
        ordered = sorted(unique.values(), key=lambda p: p.line if p.line is not None else 0)
        first = ordered[0]
        BenchfabError.__init__(self, first.message, hint=first.hint)
        self.source, self.line, self.field, self.what = first.source, first.line, first.field, first.what
        self._problems = tuple(ordered)
        self.args = ("\n".join(str(p) for p in ordered),)

    @property
    def problems(self) -> tuple[SpecError, ...]:
        return self._problems

    def __str__(self) -> str:
        # The one multi-line message in benchfab: each line is a complete one-line problem.
        return "\n".join(str(p) for p in self._problems)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._problems,))


class UsageError(BenchfabError):
    """A command-line argument is wrong (unknown run id, missing file...)."""

    exit_code = 2


class PlacementError(BenchfabError):
    """The planner cannot place the tests on the inventory it was given."""

    exit_code = 2


class CapabilityError(BenchfabError):
    """The host or cluster lacks what the spec's tests need (an RDMA device, a GPU...);
    nothing was run."""

    exit_code = 3


class BackendError(BenchfabError):
    """Starting, watching or cleaning up ranks failed."""


class CleanupError(BackendError):
    """What a run created could not all be removed: what is left and the command that removes it."""

    def __init__(self, message: str, *, left: Sequence[str], command: str) -> None:
        super().__init__(message, hint=f"remove them with: {command}")
        self.left = list(left)
        self.command = command


class WorkloadError(BenchfabError):
    """A workload failed inside a worker (bad dtype/op combination, verbs error...)."""


class ToolOutputError(WorkloadError):
    """A tool's output benchfab cannot read (nccl-tests' table or -J file): what a workload's
    binary printed, or a saved report ``benchfab import`` words as bad input at ``line``."""

    def __init__(self, message: str, *, line: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.line = line  # 1-based, where the output says it; None: the whole output


class NativeUnavailable(BenchfabError):
    """The compiled module benchfab._native is missing or cannot serve the request."""


class StoreError(BenchfabError):
    """A results directory is missing, unreadable or of an unknown schema version."""


class DamagedRun(StoreError):
    """A stored run's file is missing, unreadable or not what benchfab wrote (a test whose
    summary part was deleted, text in a numeric column, a FIFO for run.json): the message
    names the file, the hint says what to do; the run's other files and the other runs
    stay readable."""


class UnknownRun(StoreError):
    """A run named on the command line (id, prefix, 'latest', baseline) is not there or is
    ambiguous: bad input, like an unknown file."""

    exit_code = 2


class HostError(BenchfabError):
    """The host refused an operation: a full disk, a read-only or foreign directory,
    missing permissions. Made from the OSError by ``host_error``."""


# What to do about the OS errors a controller meets when it writes results or logs.
_OS_FIXES: dict[int, str] = {
    errno.ENOSPC: "free space on that disk, or pass --results DIR on another one; what was stored is kept",
    errno.EDQUOT: "free space within your quota, or pass --results DIR elsewhere; what was stored is kept",
    errno.EROFS: "the file system is read-only: pass --results DIR on a writable one",
    errno.EACCES: "you may not write there: pass --results DIR you own, or fix its permissions",
    errno.EPERM: "you may not write there: pass --results DIR you own, or fix its permissions",
    errno.ENOTDIR: "a path component is a file, not a directory: pass another --results DIR",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and resume the run",
}


def host_error(exc: OSError) -> HostError:
    """One line for an OSError: the operation's file, the system's words, and a fix."""
    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc) or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno or 0, "check the path and the disk it is on, then resume the run")
    if str(exc.filename or "").startswith(("/proc", "/sys")):
        fix = "results cannot go under /proc or /sys: pass --results DIR on a real disk"
    return HostError(f"{where}{what}", hint=fix)


__all__ = [
    "EXIT_ALL_OK",
    "EXIT_CODES_HELP",
    "EXIT_INTERRUPTED",
    "EXIT_TESTS_NOT_OK",
    "host_error",
    "BackendError",
    "BenchfabError",
    "CapabilityError",
    "DamagedRun",
    "NativeUnavailable",
    "PlacementError",
    "SpecError",
    "SpecErrors",
    "HostError",
    "StoreError",
    "ToolOutputError",
    "UnknownRun",
    "UsageError",
    "WorkloadError",
]


# A test whose rank pod never started fails with this reason; the second pass
# (diagnosis.py) reads the node back from it to call that node dead.
NOT_STARTED_RE = re.compile(r"pod for (?P<node>\S+) slot \d+ did not start")


def pod_not_started(node: str, slot: int, why: str) -> str:
    """The reason of a test that could not run because its pod on ``node`` never started."""
    return f"pod for {node} slot {slot} did not start: {why}"
