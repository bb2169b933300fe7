"""Absolute bounds as a person writes them: ``">= 45 GB/s"``, ``"<= 3 us"``, ``">= 90%"``,
``"<= 0"``, ``">= 64M"``: a comparison sign, a number and the unit of its kind.

The spec's and the ``--expect FILE``'s expectations (benchfab.spec.expect) are checked with
``parse_bound`` when they are read, and judged with the same parse
(benchfab.compare.expectations): one reading of the text, in one place. Values are held in
SI (bytes per second, seconds, a fraction, a count, bytes), as the stored columns are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .units import parse_duration, parse_size

BoundKind = Literal["bandwidth", "latency", "line_rate", "count", "size"]

_BOUND_RE = re.compile(r"^\s*(>=|<=|>|<)\s*(.+?)\s*$")
# Bandwidths: a byte unit (B, as nccl-tests prints busbw in GB/s) or a bit unit (b or bit, as
# perftest --report_gbits and NICs do); decimal prefixes, and binary ones with i (GiB/s).
_BANDWIDTH_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKMGT]?)(i?)(B|b|bit)(?:/s|ps)$")
_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_BINARY = {"": 1.0, "k": 2.0**10, "K": 2.0**10, "M": 2.0**20, "G": 2.0**30, "T": 2.0**40}
_PERCENT_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")
_COUNT_RE = re.compile(r"^\d+$")

# What each kind's number looks like, for the fix of a bound that does not parse.
EXAMPLES: dict[BoundKind, str] = {
    "bandwidth": '">= 45 GB/s" (bytes, as nccl-tests prints busbw) or ">= 360 Gb/s" (bits, as NICs are rated)',
    "latency": '"<= 3 us" (also ms, s)',
    "line_rate": '">= 90%" (of the link\'s line rate)',
    "count": '"<= 0" (a whole number)',
    "size": '">= 64M" (binary sizes: 1M = 2^20 B)',
}


class BoundError(ValueError):
    """A bound that does not parse: what is wrong, and an example of the kind's bounds."""

    def __init__(self, what: str, kind: BoundKind) -> None:
        super().__init__(f"{what}: write e.g. {EXAMPLES[kind]}")
        self.what = what
        self.example = EXAMPLES[kind]


def parse_bandwidth(text: str) -> float:
    """``"45 GB/s"`` -> 45e9 B/s, ``"360 Gb/s"`` / ``"360Gbit/s"`` -> 45e9 B/s, ``"1 GiB/s"`` -> 2^30 B/s."""
    m = _BANDWIDTH_RE.match(text.strip())
    if not m:
        raise ValueError(f"expected a bandwidth like 45 GB/s or 360 Gb/s, got {text!r}")
    number, prefix, binary, unit = m.groups()
    value = float(number) * (_BINARY if binary else _DECIMAL)[prefix]
    return value if unit == "B" else value / 8


@dataclass(frozen=True)
class Bound:
    """One parsed bound: ``value`` in SI units of ``kind``, ``text`` as the user wrote it."""

    kind: BoundKind
    op: str
    value: float
    text: str

    def holds(self, figure: float) -> bool:
        return {">=": figure >= self.value, ">": figure > self.value,
                "<=": figure <= self.value, "<": figure < self.value}[self.op]


def parse_bound(kind: BoundKind, text: object) -> Bound:
    """``">= 45 GB/s"`` as a Bound of ``kind``; ValueError (its message names what was
    expected: BoundError) when the text is not one. A bare count is read as ``<= N`` for ``count``."""
    if kind == "count" and isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return Bound(kind, "<=", float(text), f"<= {text}")
    if not isinstance(text, str):
        raise BoundError(f"expected a bound in quotes, got {text!r}", kind)
    m = _BOUND_RE.match(text)
    if not m:
        raise BoundError(f"{text!r} has no comparison sign (>=, >, <=, <)", kind)
    op, number = m.groups()
    try:
        value = _number(kind, number)
    except ValueError:
        raise BoundError(f"{number!r} is not a {kind.replace('_', ' ')}", kind) from None
    return Bound(kind, op, value, f"{op} {number}")


def _number(kind: BoundKind, number: str) -> float:
    if kind == "bandwidth":
        return parse_bandwidth(number)
    if kind == "latency":
        if not re.search(r"[a-z]$", number):
            raise ValueError(number)  # a bare number: seconds or microseconds? make the user say
        return parse_duration(number.replace(" ", ""))
    if kind == "line_rate":
        m = _PERCENT_RE.match(number)
        if not m or float(m.group(1)) > 100:
            raise ValueError(number)
        return float(m.group(1)) / 100
    if kind == "count":
        if not _COUNT_RE.match(number):
            raise ValueError(number)
        return float(number)
    return float(parse_size(number))
