"""Parsing and printing of sizes and durations.

Size suffixes are binary, as in nccl-tests' ``parsesize``: 1K = 1024 B,
1M = 2**20 B, 1G = 2**30 B. Durations accept s, ms, us and m suffixes.
"""

from __future__ import annotations

import re

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
