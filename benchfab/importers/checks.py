"""What a saved report may bring into the store, checked before anything is written.

A report comes from anywhere (a GitHub issue, another cluster, a colleague), so it is read
as hostile input: a regular file under ``--max-bytes``, read line by line as UTF-8 text
without NUL bytes, at most ``--max-rows`` rows; every cell that becomes a stored value is a
number of the right kind and range, and every name that becomes part of a test id, a
file name, a measurement key or a report (data type, reduction, host, device) is one
plain word. What fails is one ``file:line: what (fix: how)`` error (exit 2), and nothing
is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..spec.fields import NAME_PATTERN
from ..units import MAX_SIZE_BYTES, figure, format_size, unit_of
from ..untrusted import control_characters, read_regular
from .parsed import ParsedReport, ParsedTest, bad_input

DEFAULT_MAX_BYTES = 64 << 20  # a report of 64 MiB is far beyond any real one (a few KB to a few MB)
DEFAULT_MAX_ROWS = 1_000_000  # result rows and per-iteration samples of one report
MAX_LINE_BYTES = 1 << 16

# Words a report contributes to ids, keys and file names: a data type, a reduction, an RDMA
# device, a host name or address. No path separator, no space, no markup, no control character.
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}\Z")
_NAME = re.compile(NAME_PATTERN.replace("$", r"\Z"))
_INT_LIMIT = 1 << 62  # stored as int64; anything near it is no count a tool printed

# Summary columns a report fills with numbers: (smallest allowed, whether whole).
_NUMBERS: dict[str, tuple[float, bool]] = {
    "count": (0, True), "iterations": (0, True), "wrong": (0, True), "root": (-1, True),
    "mtu": (0, True), "gid_index": (0, True), "tx_depth": (0, True), "cq_mod": (0, True), "post_list": (0, True),
    "time_s": (0, False), "algbw_Bps": (0, False), "busbw_Bps": (0, False), "bw_avg_Bps": (0, False),
    "bw_peak_Bps": (0, False), "msg_rate_pps": (0, False), "lat_min_s": (0, False), "lat_median_s": (0, False),
    "lat_mean_s": (0, False), "lat_stdev_s": (0, False), "lat_p99_s": (0, False), "lat_p999_s": (0, False),
    "lat_max_s": (0, False),
}


def read_report(path: Path, max_bytes: int) -> tuple[bytes, str]:
    """The file's bytes (for its sha256) and its text, read line by line: a regular file of at
    most ``max_bytes``, lines of at most MAX_LINE_BYTES, UTF-8, no NUL byte."""
    fix = "give the path of a saved report (a regular file)"
    try:
        data = read_regular(path, max_bytes, error=UsageError, fix=fix)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file", hint=fix) from None
    except UsageError as exc:
        if "more than the" in exc.message:  # real reports are a few KB to a few MB
            raise UsageError(exc.message, hint=f"if this report is real, raise the cap: --max-bytes SIZE (now "
                             f"{format_size(max_bytes)})") from None
        raise
    lines = []
    start = 0
    for number, end in enumerate(_line_ends(data), 1):
        raw = data[start:end]
        start = end
        if len(raw) > MAX_LINE_BYTES:
            raise bad_input(str(path), number, f"a line of more than {MAX_LINE_BYTES} bytes",
                            "give the report as the tool printed it (a text file of short lines)")
        if b"\0" in raw:
            raise bad_input(str(path), number, "a NUL byte: this is a binary file, or a damaged one",
                            "give the report as the tool printed it")
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise bad_input(str(path), number, f"not text (byte {exc.start + 1} of the line is not UTF-8)",
                            "give the report as the tool printed it") from None
    return data, "".join(lines)


def _line_ends(data: bytes) -> Iterable[int]:
    """Where each line of ``data`` ends (after its newline), without copying the file."""
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        pos = len(data) if nl < 0 else nl + 1
        yield pos


def check_options(profile: str, name: str | None, hosts: Iterable[str], source: str | None) -> None:
    """benchfab import's own options: names as a spec's (they become file names and keys)."""
    for option, value in (("--profile", profile), ("--name", name)):
        if value is not None and not _NAME.match(value):
            raise UsageError(f"{option} {value!r} is not a name benchfab stores",
                             hint="use letters, digits, '_', '.' and '-', starting with a letter or digit (up to 63)")
    for host in hosts:
        if not WORD.match(host):
            raise UsageError(f"--hosts: {host!r} is not a host name", hint="give host names or addresses, comma-separated")
    if source is not None and (control_characters(source) or len(source) > 2048):
        raise UsageError("--source holds control characters or is longer than 2048 characters",
                         hint="give the URL of the published report")


def check_report(report: ParsedReport, path: str) -> None:
    """Every name and number the report brings (see the module's docstring); file:line errors."""
    for host in report.hosts:
        if not WORD.match(host):
            raise bad_input(path, None, f"host name {host!r} is not one plain word",
                            "the report was edited; give it as the tool printed it, or its hosts with --hosts")
    for test in report.tests:
        if test.nccl_network is not None and not WORD.match(test.nccl_network):
            raise bad_input(path, None, f"NCCL's network {test.nccl_network!r} is not one plain word",
                            "give the report as the tool printed it")
        _check_test(test, path)


def _check_test(test: ParsedTest, path: str) -> None:
    for what, value in (("data type", test.dtype), ("reduction", test.redop)):
        if not WORD.match(value):
            raise bad_input(path, _line(test, 0), f"{what} {value!r} is not a name nccl-tests prints",
                            "give the report as the tool printed it")
    # By column (a million rows checked one by one took seconds): find the first bad row, name its line.
    rows = pd.DataFrame(test.rows)
    size = pd.to_numeric(rows["size_bytes"], errors="coerce")
    bad = ~((size > 0) & (size <= MAX_SIZE_BYTES))
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise bad_input(path, _line(test, i), f"{_where(test, i)}size {test.rows[i]['size_bytes']} bytes is not a "
                        f"message size a node can hold (1 byte to {format_size(MAX_SIZE_BYTES)})",
                        "give the report as the tool printed it")
    twice = rows.duplicated(["size_bytes", "in_place"] if "in_place" in rows else ["size_bytes"], keep="first")
    if twice.any():
        i = int(twice.to_numpy().argmax())
        raise bad_input(path, _line(test, i), f"{_where(test, i)}size {test.rows[i]['size_bytes']} appears twice: "
                        "two runs in one file?", "split the file, one run each, and import each")
    for column, (low, whole) in _NUMBERS.items():
        if column in rows:
            _check_numbers(test, path, column, rows[column], low, whole)
    for column in ("rdma_device", "link_layer", "method", "nccl_network"):
        if column in rows:
            for value in rows[column].dropna().unique():
                if not WORD.match(str(value)):
                    i = int((rows[column] == value).to_numpy().argmax())
                    raise bad_input(path, _line(test, i), f"{_where(test, i)}{column} {value!r} is not one plain word",
                                    "give the report as the tool printed it")
    times = pd.to_numeric(pd.Series([r["time_s"] for r in test.raw], dtype=object), errors="coerce")
    if not (np.isfinite(times) & (times >= 0)).all():
        raise bad_input(path, None, "a per-iteration time that is negative or not a number",
                        "give the file nccl-tests -J wrote, unedited")


def _check_numbers(test: ParsedTest, path: str, column: str, cells: pd.Series, low: float, whole: bool) -> None:
    values = pd.to_numeric(cells, errors="coerce")
    given = cells.notna()
    ok = ~given | (np.isfinite(values) & (values >= low) & (values.abs() < _INT_LIMIT))
    if whole:
        ok &= ~given | (values == np.floor(values))
    if not ok.all():
        i = int((~ok).to_numpy().argmax())
        value = test.rows[i][column]
        what = "negative" if isinstance(value, (int, float)) and value < low else "not a possible value"
        # a figure as the report printed it (-35.15 us, not -3.515e-05 s: docs/UNITS.md)
        shown = (figure(column, value) if unit_of(column) else f"{value:.6g}") if isinstance(value, float) else repr(value)
        raise bad_input(path, _line(test, i), f"{_where(test, i)}{column} {shown}: {what}",
                        "give the report as the tool printed it")


def _line(test: ParsedTest, index: int) -> int | None:
    return test.rows[index].get("line") if test.rows else None


def _where(test: ParsedTest, index: int) -> str:
    """Where a JSON row is, when it has no line: its size."""
    return "" if _line(test, index) is not None else f"results (size {test.rows[index]['size_bytes']}): "
