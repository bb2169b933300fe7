"""One error hierarchy for benchfab.

Every error a user can cause or meet carries a one-line message that says what
went wrong and where, plus an optional hint saying how to fix it. The CLI prints
``str(error)`` and exits with ``error.exit_code``; a traceback is shown only
with ``--debug``.
"""

from __future__ import annotations

import re


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
        self.source = source
        self.line = line
        self.field = field


class UsageError(BenchfabError):
    """A command-line argument is wrong (unknown run id, missing file...)."""

    exit_code = 2


class PlacementError(BenchfabError):
    """The planner cannot place the tests on the inventory it was given."""

    exit_code = 2


class BackendError(BenchfabError):
    """Starting, watching or cleaning up ranks failed."""


class WorkloadError(BenchfabError):
    """A workload failed inside a worker (bad dtype/op combination, verbs error...)."""


class NativeUnavailable(BenchfabError):
    """The compiled module benchfab._native is missing or cannot serve the request."""


class StoreError(BenchfabError):
    """A results directory is missing, unreadable or of an unknown schema version."""


__all__ = [
    "BackendError",
    "BenchfabError",
    "NativeUnavailable",
    "PlacementError",
    "SpecError",
    "StoreError",
    "UsageError",
    "WorkloadError",
]
