"""What the two flag families share: the argparse that raises UsageError, refused
flags, benchfab's own run flags, the one-test spec as data (``Translation``) and the
value parsers that keep text the spec will refuse as text (so the spec's error names it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..errors import UsageError
from ..units import format_size, parse_size

SOURCE = "benchfab run"

# -- argument parsing --------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", hint=f"see {self.prog} --help")


@dataclass(frozen=True)
class Refused:
    """A flag of the original tool benchfab does not honour. ``accept`` is the value
    (as text) that changes nothing here, e.g. -z 0; None: every use is refused."""

    short: str | None
    long: str
    meaning: str
    hint: str
    accept: tuple[str, ...] = ()
    takes_value: bool = True


def _add_refused(p: argparse.ArgumentParser, refused: tuple[Refused, ...]) -> None:
    g = p.add_argument_group("refused")
    p.epilog = ("Refused, each with a one-line error saying what to do instead: "
                + ", ".join(r.short or r.long for r in refused) + ".")
    for r in refused:
        names = [n for n in (r.short, r.long) if n]
        dest = "refused_" + r.long.lstrip("-").replace("-", "_")
        if r.takes_value:
            g.add_argument(*names, dest=dest, metavar="X", help=argparse.SUPPRESS)
        else:
            g.add_argument(*names, dest=dest, action="store_const", const="on", help=argparse.SUPPRESS)


def _check_refused(ns: argparse.Namespace, refused: tuple[Refused, ...], tool: str) -> None:
    for r in refused:
        value = getattr(ns, "refused_" + r.long.lstrip("-").replace("-", "_"))
        if value is None or value in r.accept:
            continue
        flag = r.short or r.long
        shown = flag if value == "on" else f"{flag} {value}"
        raise UsageError(f"{shown} ({tool} {r.long}, {r.meaning}) is not supported by benchfab run", hint=r.hint)


def _add_common(p: argparse.ArgumentParser, g: Any = None) -> None:
    g = g or p.add_argument_group("benchfab")
    g.add_argument("--print-spec", action="store_true",
                   help="print the equivalent sweep spec (YAML for benchfab sweep) and exit without running")
    g.add_argument("--results", metavar="DIR", help="results directory (default: results)")
    g.add_argument("--run-id", help="name the run (default: UTC time + run-<workload>)")
    g.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    g.add_argument("--allow-failures", action="store_true",
                   help="exit 0 even if the test failed, timed out or was skipped (as benchfab sweep)")
    # Long form only: -o is nccl-tests' --op.
    g.add_argument("--output", choices=("text", "json"), default="text",
                   help="text (default: tables on stdout) or json: the run's document on stdout (as benchfab "
                        "sweep -o json), the tables on stderr")


# -- flags -> spec -----------------------------------------------------------


@dataclass
class Translation:
    """A one-test spec as data, plus which flag set each of its fields."""

    workload: str
    test: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # "ranks" / "rdma.mtu" -> "-g 0"

    def set(self, path: str, value: Any, flag: str | None, raw: Any = None) -> None:
        node = self.test
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        if flag:
            self.origin[path] = flag if raw is None else f"{flag} {raw}"


def _number(text: str) -> int | str:
    """An int where the text is one (strtol-like: 10, 0x10), else the text for the spec to refuse."""
    for base in (10, 0):
        try:
            return int(text.strip(), base)
        except ValueError:
            pass
    return text


def _int_flag(flag: str, text: str) -> int:
    value = _number(text)
    if isinstance(value, str):
        raise UsageError(f"{flag} {text}: expected a whole number", hint=f"e.g. {flag} 1")
    return value


def _size(text: str) -> int | str:
    """Sizes as compact as the spec reads them back (64K, 1M); text the spec will refuse stays text."""
    try:
        n = parse_size(text)
    except ValueError:
        return text
    return format_size(n) if n >= 1024 and n % 1024 == 0 else n


def _seconds(text: str) -> int | float | str:
    try:
        value = float(text)
    except ValueError:
        return text  # "30s", "2m": the spec parses durations itself
    return int(value) if value.is_integer() else value


def _names(flag: str, text: str, table: dict[str, str], everything: list[str], missing: tuple[str, ...],
           what: str) -> list[str]:
    out: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if part == "all":
            out.extend(everything)
        elif part in missing:
            raise UsageError(f"{flag} {part}: benchfab has no {part} {what}",
                             hint=f"use one of {', '.join(everything)} (or all)")
        else:
            out.append(table.get(part, part))  # unknown names: the spec's own error lists the choices
    return list(dict.fromkeys(out))


def _bytes(value: int | str) -> int | None:
    try:
        return parse_size(value)
    except ValueError:
        return None

