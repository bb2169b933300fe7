"""Expectations: absolute figures a test must reach (``expect:``), optionally per node type
(``expect_by_node:``), in the spec or in a file shared by specs (``--expect FILE``).

Every bound is text a person reads (``">= 45 GB/s"``) checked here with benchfab.bounds,
the one parser; benchfab.compare.expectations judges a run against them. docs/SPEC.md
("Expectations") states the rules: which figure each field judges, at which sizes, and
which of several expectations wins.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..bounds import BoundError, BoundKind, parse_bound
from .fields import NAME_PATTERN, _Invalid, _show

_SIZE_RULE = re.compile(r"^\s*(largest|all)\s*$")


def _bound_of(kind: BoundKind) -> AfterValidator:
    def check(value: Any) -> Any:
        try:
            parse_bound(kind, value)
        except BoundError as exc:
            raise _Invalid(exc.what, f"write e.g. {exc.example}") from None
        return value
    return AfterValidator(check)


def _sizes_rule(value: str) -> str:
    """``at:``: largest (the default), all, or a bound on the size such as ">= 64M"."""
    if _SIZE_RULE.match(value):
        return value.strip()
    try:
        parse_bound("size", value)
    except ValueError:
        raise _Invalid(f"at: {_show(value)} is not a size rule",
                       'write largest (the default), all, or a bound such as ">= 64M"') from None
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    if not value:
        raise _Invalid("match is empty: it would match every node", "name a label, e.g. nvidia.com/gpu.product: H100")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# An error counter's name as the counters read it (port_rcv_errors, symbol_error, link_downed...)
CounterName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]


class Expectation(_Strict):
    """What a test must reach: each field a bound, judged on the sizes ``at`` selects."""

    bandwidth: Annotated[float | str, _bound_of("bandwidth")] | None = None  # busbw (collectives), BW average (p2p)
    latency: Annotated[float | str, _bound_of("latency")] | None = None  # median latency (p2p latency tests)
    line_rate: Annotated[float | str, _bound_of("line_rate")] | None = None  # the bandwidth / the link's line rate
    # The most an error counter may grow during a test (when the test's record carries counters).
    errors: dict[CounterName, Annotated[int | float | str, _bound_of("count")]] | None = None
    at: Annotated[str, AfterValidator(_sizes_rule)] | None = None  # largest (default) | all | ">= 64M"


class NodeExpectation(_Strict):
    """An expectation for the tests whose every node carries all the labels of ``match``."""

    match: Annotated[dict[str, str], AfterValidator(_labels)]
    expect: Expectation


class ExpectFields(_Strict):
    """The expectation fields of a test entry, of ``defaults`` and of a resolved test (their
    models inherit them): what to reach on any node, then per node type."""

    expect: Expectation | None = None
    expect_by_node: list[NodeExpectation] = Field(default_factory=list)


class ExpectRule(_Strict):
    """One entry of an expectations file: which tests (every selector given must hold; none:
    every test) and what they must reach."""

    test: str | None = Field(default=None, pattern=NAME_PATTERN)  # the spec's test name
    workload: str | None = None
    profile: str | None = None
    match: Annotated[dict[str, str], AfterValidator(_labels)] | None = None  # node labels
    expect: Expectation


class ExpectFile(_Strict):
    """``--expect FILE``: expectations shared by specs (benchfab.spec.expect_file reads it)."""

    version: Literal[1] = 1
    description: str = ""
    expectations: list[ExpectRule] = Field(min_length=1)
    source: str | None = None
