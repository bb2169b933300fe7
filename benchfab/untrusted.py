"""What benchfab did not write itself: bounded reads of files, and text made safe to show.

A results directory may be shared, copied from another cluster or edited by hand, and an
imported report comes from anywhere. So every file benchfab reads back is opened without
blocking and must be a regular file of a bounded size (a FIFO named ``run.json`` would
hang every command, a symlink to /dev/zero exhaust memory), and every name that came
from a spec, a report or the store is escaped where it is shown: control characters never
reach a terminal raw, Markdown cells cannot open HTML or break their table, XML holds no
character XML forbids.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

# The bottom of the layers (it imports nothing of benchfab): callers pass the error to raise,
# one of errors.py's (the store's DamagedRun, the importer's UsageError), built as
# ``error(message, hint=fix)``.
ErrorFactory = Callable[..., Exception]

# Control characters (C0 but tab and newline, DEL, C1) and the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Characters XML 1.0 cannot hold at all, not even escaped (libraries then write a file no parser reads).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: Path, limit: int, *, error: ErrorFactory, fix: str) -> bytes:
    """The bytes of ``path`` if it is a regular file (symlinks followed) of at most ``limit``
    bytes; else ``error`` naming the file, what it is and ``fix``. Opened without blocking, so a
    FIFO is refused at once instead of waiting for a writer. FileNotFoundError passes through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing only
            raise error(f"{path}: not a regular file", hint=fix) from None
        raise error(f"{path}: cannot open it ({exc.strerror or exc})", hint="check the path and its permissions") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: {_kind_of(info.st_mode)}, not a regular file", hint=fix)
        if info.st_size > limit:
            raise error(f"{path}: {info.st_size} bytes, more than the {limit} benchfab reads there", hint=fix)
        chunks, left = [], limit + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})", hint="check the file and its disk") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # grew while read
        raise error(f"{path}: more than the {limit} bytes benchfab reads there", hint=fix)
    return data


def regular_file_problem(path: Path) -> str | None:
    """Why ``path`` is not a regular file benchfab may open (None: it is one), without opening it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None if stat.S_ISREG(mode) else f"{_kind_of(mode)}, not a regular file"


def control_characters(text: str) -> list[str]:
    """The control characters in ``text`` (newlines and tabs included), as escapes: ['\\x1b', '\\n']."""
    return list(dict.fromkeys(repr(c)[1:-1] for c in _CONTROL_OR_NEWLINE.findall(text)))


def _escape(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def for_terminal(text: object) -> str:
    """One line of text for a terminal: control characters and newlines shown as escapes
    (``\\x1b``, ``\\n``), so no name can move the cursor, recolour or forge a line."""
    return _CONTROL_OR_NEWLINE.sub(_escape, str(text))


def for_xml(text: object, *, lines: bool = False) -> str:
    """Text an XML attribute or element may hold: control characters (and what XML 1.0 forbids)
    shown as escapes; newlines and tabs too unless ``lines`` (a failure's body). ElementTree
    escapes <, > and & itself."""
    control = _CONTROL if lines else _CONTROL_OR_NEWLINE
    return _NOT_XML.sub(_escape, control.sub(_escape, str(text)))


_MD_SPECIAL = re.compile(r"[\\`*\[\]<>&|]")


def markdown_cell(value: object) -> str:
    """Text for a Markdown table cell or list item: one line, no HTML, no emphasis or link,
    no table break. Backslash escapes (CommonMark) for the markup characters, entities for
    ``<``, ``>`` and ``&``; report.html's converter reads both back."""
    text = for_terminal("" if value is None else value)

    def escape(m: re.Match[str]) -> str:
        c = m.group()
        return {"<": "&lt;", ">": "&gt;", "&": "&amp;"}.get(c, "\\" + c)

    return _MD_SPECIAL.sub(escape, text)


def markdown_code(value: object) -> str:
    """Text for inside a Markdown code span (backticks): one line, no backtick to close it
    early, no table break."""
    return for_terminal("" if value is None else value).replace("`", "'").replace("|", "\\|")


__all__ = ["control_characters", "for_terminal", "for_xml", "markdown_cell", "markdown_code", "read_regular",
           "regular_file_problem"]
