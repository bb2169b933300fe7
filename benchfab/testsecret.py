"""Reading a test's secret in a rank: the one place that decides whether the controller handed one.

The controller makes a secret per test and hands it to that test's ranks in the environment
(``task.TEST_SECRET_ENV``; task.py says why not argv). Every channel that authenticates peers
with it (the RDMA out-of-band exchange, the MPI launch) reads it here, so the variable, the
length rule and the error a person sees when it is missing are the same for all of them. It
sits above ``errors`` and ``task`` (siblings in one layer) because it needs both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import WorkloadError
from .task import TEST_SECRET_ENV

MIN_SECRET_CHARS = 32  # the controller's secrets are 64 hex characters; anything shorter was not made by it


def read_test_secret(without_it: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The test's secret as the controller handed it to this rank.

    ``without_it`` says what cannot work without one (the error's second half), e.g. "the MPI
    launch has no secret to authenticate its peers"; ``environ`` defaults to this process's.
    """
    value = (os.environ if environ is None else environ).get(TEST_SECRET_ENV, "")
    if len(value) < MIN_SECRET_CHARS:
        raise WorkloadError(f"{TEST_SECRET_ENV} is not set: {without_it}",
                            hint="start ranks through benchfab (sweep, run or the Kubernetes agent), which sets it per test")
    return value.encode()
