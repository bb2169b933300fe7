"""Parsing and printing of sizes and durations.

Size suffixes are binary, as in nccl-tests' ``parsesize``: 1K = 1024 B,
1M = 2**20 B, 1G = 2**30 B. Durations accept s, ms, us and m suffixes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# The largest message size benchfab accepts (spec sizes, imported rows): 1 TiB, above the
# memory of any one node's GPUs (8 x 141 GB) and its host memory for one buffer; a larger
# size is a typo (10^38 B gave absurd estimates) or a damaged report, never a measurement.
MAX_SIZE_BYTES = 1 << 40

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_SIZE_MULT = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)?\s*$")
_DURATION_MULT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# Line rates are decimal bits per second, as NICs are sold: 400Gbit, 200Gb, 100G, 200Mbit.
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:bit|b)?(?:/s|ps)?\s*$", re.IGNORECASE)
_RATE_MULT = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_size(value: object) -> int:
    """Turn ``8``, ``"8"``, ``"64K"``, ``"1M"``, ``"2GiB"`` into bytes (binary suffixes)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 8, 64K or 1M, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(m.group(1)) * _SIZE_MULT[m.group(2).upper()]
    raise ValueError(f"expected a size like 8, 64K or 1M (binary suffixes), got {value!r}")


def parse_duration(value: object) -> float:
    """Turn ``30``, ``"30s"``, ``"500ms"``, ``"2m"`` into seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s or 500ms, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _DURATION_MULT[m.group(2)]
    raise ValueError(f"expected a duration like 30s, 500ms or 2m, got {value!r}")


def parse_rate(value: object) -> float:
    """Turn ``"400Gbit"``, ``"200Gb/s"``, ``"100G"``, ``"200Mbit"`` into bit/s (decimal units)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        m = _RATE_RE.match(value)
        if m and float(m.group(1)) > 0:
            return float(m.group(1)) * _RATE_MULT[m.group(2).upper()]
    raise ValueError(f"expected a line rate like 400Gbit, 100G or 200Mbit, got {value!r}")


def format_size(nbytes: int) -> str:
    """Shortest exact binary form: 8 -> '8B', 65536 -> '64K', 3 MiB -> '3M'."""
    for suffix, mult in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= mult and nbytes % mult == 0:
            return f"{nbytes // mult}{suffix}"
    return f"{nbytes}B"


def format_duration(seconds: float) -> str:
    """Human form for progress and plans: '45s', '3m05s', '1h02m'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# -- What people read: one unit per kind of quantity ------------------------------------------
#
# Stored columns and JSON fields stay SI, with the unit in the name (busbw_Bps: bytes per
# second, time_s: seconds); tables, verdict lines and plot axes print these units instead,
# and never a raw bytes-per-second figure (docs/UNITS.md):
#   - collectives' bandwidths (algbw, busbw) in GB/s = 1e9 B/s, as nccl-tests prints them;
#   - link tests' bandwidths (BW average, BW peak) in Gb/s = 1e9 bit/s, as perftest prints
#     them with --report_gbits, the unit NICs are sold in (its default, MiB/s = 2^20 B/s,
#     is labelled "MB/sec" by perftest builds before 2024-03 and "MiB/sec" after);
#   - times and latencies in us, as both tools print them (perftest spells it "usec");
#   - message rates in Mpps, as perftest prints them.


@dataclass(frozen=True)
class Unit:
    """A unit people read: its name (as benchfab and nccl-tests write it), how many of it one
    SI unit makes, the digits it is printed with, how perftest's table headers spell it (the
    perftest-style tables keep those spellings), and what it means."""

    name: str
    per_si: float
    digits: str
    perftest: str
    meaning: str

    def scaled(self, si_value: object) -> float | None:
        """The SI value in this unit; None when there is none (None, NaN, not a number)."""
        if si_value is None or isinstance(si_value, bool):
            return None
        try:
            value = float(si_value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        return None if math.isnan(value) else value * self.per_si

    def number(self, si_value: object, absent: str = "-", digits: str | None = None) -> str:
        """The bare number in this unit (a column whose header names the unit), or ``absent``."""
        value = self.scaled(si_value)
        return absent if value is None else format(value, digits or self.digits)

    def figure(self, si_value: object, absent: str = "-") -> str:
        """The number with its unit ('12.345 GB/s'): for a line or a column of mixed quantities.
        A figure too small for the unit's digits gets two significant ones more ('0.0000081
        GB/s', not '0.000 GB/s': a verdict line must show what moved), never e-notation."""
        value = self.scaled(si_value)
        if value is None:
            return absent
        digits = self.digits
        decimals = int(digits[1:-1]) if digits.startswith(".") and digits.endswith("f") else None
        if decimals is not None and value and math.isfinite(value) and abs(value) < 10.0 ** -decimals * 10:
            digits = f".{min(12, 1 - math.floor(math.log10(abs(value))))}f"
        return f"{format(value, digits)} {self.name}".rstrip()

    def header(self, label: str) -> str:
        """A column header that names the unit: 'busbw (GB/s)'."""
        return f"{label} ({self.name})"


BUS_BANDWIDTH = Unit("GB/s", 1e-9, ".3f", "GB/s", "GB/s = 1e9 B/s, as nccl-tests prints algbw and busbw")
LINK_BANDWIDTH = Unit("Gb/s", 8e-9, ".2f", "Gb/sec", "Gb/s = 1e9 bit/s, as perftest --report_gbits prints and NICs are rated")
TIME = Unit("us", 1e6, ".2f", "usec", "us = 1e-6 s, as nccl-tests (us) and perftest (usec) print times")
MESSAGE_RATE = Unit("Mpps", 1e-6, ".6f", "Mpps", "Mpps = 1e6 messages/s, as perftest prints MsgRate")
UNITS = (BUS_BANDWIDTH, LINK_BANDWIDTH, TIME, MESSAGE_RATE)
_UNITLESS = Unit("", 1.0, ".4g", "", "a count or a ratio")

# Stored bandwidth columns of link tests (perftest semantics); every other *_Bps column is a
# collective's (algbw, busbw, nccl-tests' average busbw) and reads in GB/s.
_LINK_BANDWIDTH_COLUMNS = frozenset({"bw_avg_Bps", "bw_peak_Bps"})


def unit_of(column: str) -> Unit | None:
    """The unit people read a stored SI column in (by its name's unit suffix); None: a
    column without a unit (a count, a ratio)."""
    if column in _LINK_BANDWIDTH_COLUMNS:
        return LINK_BANDWIDTH
    if column.endswith("_Bps"):
        return BUS_BANDWIDTH
    if column.endswith("_s"):
        return TIME
    if column.endswith("_pps"):
        return MESSAGE_RATE
    return None


def figure(column: str, si_value: object, absent: str = "-") -> str:
    """A value of the stored column ``column`` as people read it, with its unit
    ('0.012 GB/s' for busbw_Bps, '3.10 Gb/s' for bw_avg_Bps, '12.50 us' for lat_median_s)."""
    unit = unit_of(column)
    return (unit or _UNITLESS).figure(si_value, absent)


def header(label: str, column: str) -> str:
    """The header of a table column of the stored column ``column``: 'busbw (GB/s)'; the bare
    label for a column without a unit."""
    unit = unit_of(column)
    return label if unit is None else unit.header(label)
