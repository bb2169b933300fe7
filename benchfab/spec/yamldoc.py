"""Reading a YAML file that people write (a spec, an --expect file): the steps before its model.

Both kinds go through the same prologue, so a problem is worded the same way in either: a
regular file of bounded size (a FIFO or /dev/zero given as the path used to hang or exhaust
memory), UTF-8 text, one YAML document (every duplicate key and syntax error as ``file:line``),
a mapping at the top, no control characters in any key or value. ``DocumentKind`` holds what
differs: how the file is named and how a person starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..untrusted import read_regular
from ..yamlpos import Path as YPath
from ..yamlpos import YamlPositionError, load_with_lines
from .fields import _kind
from .wording import _control_problems, _format_loc, _raise_all


@dataclass(frozen=True)
class DocumentKind:
    """One kind of YAML file: its size limit and the words of its errors."""

    noun: str  # "the spec": "the spec is empty, expected ..."
    expected: str  # "a mapping with a 'tests' list"
    max_bytes: int
    start_hint: str  # the fix when the top is not the expected mapping
    nested_hint: str  # the fix when the YAML nests too deeply to parse
    path_fix: str  # the fix when the path is not a regular file
    missing_hint: str  # the fix when there is no such file
    flag: str | None = None  # the option that named the file, shown with "no such file"


def read_document(path: str | Path, kind: DocumentKind) -> str:
    """The text of the file at ``path``: a regular file of at most ``kind.max_bytes``, UTF-8."""
    source = str(path)

    def unreadable(message: str, hint: str) -> SpecError:
        return SpecError(message.removeprefix(f"{source}: "), source=source, hint=hint)

    try:
        data = read_regular(Path(path), kind.max_bytes, error=unreadable, fix=kind.path_fix)
    except FileNotFoundError:
        raise SpecError("no such file", source=source, field=kind.flag, hint=kind.missing_hint) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        utf16 = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise SpecError(f"not a text file: byte 0x{data[exc.start]:02x} at line {line} is not UTF-8{utf16}",
                        source=source, line=line, hint=f"save {kind.noun} as UTF-8 YAML") from None


def parse_document(text: str, source: str, kind: DocumentKind) -> tuple[dict[Any, Any], dict[YPath, int], list[SpecError]]:
    """The top mapping of ``text``, the line of every value, and the problems found so far
    (duplicate keys, control characters) for the caller to add its own to and raise together.

    Raises at once (with the duplicates found before it) on a syntax error, on YAML nested too
    deeply, and when the top is not a mapping: nothing after those steps could be checked.
    """
    duplicates: list[YamlPositionError] = []

    def yaml_problem(exc: YamlPositionError) -> SpecError:
        field = _format_loc(exc.path) if exc.path else None
        return SpecError(str(exc), source=source, line=exc.line, field=field, hint=exc.hint or "fix the YAML syntax")

    try:
        raw, lines = load_with_lines(text, problems=duplicates)
    except YamlPositionError as exc:
        raise _raise_all([*map(yaml_problem, duplicates), yaml_problem(exc)]) from None
    except RecursionError:
        raise SpecError("YAML nested too deeply", source=source, hint=kind.nested_hint) from None
    problems = list(map(yaml_problem, duplicates))
    if not isinstance(raw, dict):
        shown = "empty" if raw is None else "plain text" if isinstance(raw, str) else f"a {_kind(raw)}"
        problems.append(SpecError(f"{kind.noun} is {shown}, expected {kind.expected}", source=source, line=1,
                                  hint=kind.start_hint))
        raise _raise_all(problems)
    problems.extend(_control_problems(raw, (), lines, source))
    return raw, lines, problems
