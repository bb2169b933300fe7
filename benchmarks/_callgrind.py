"""Reading callgrind's output for benchmarks/loop_cost_callgrind.py: per function self
and inclusive Ir with its callees, and the .pyx/.pxi line each C line of the generated
native/_native.c came from."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


_NAME = re.compile(r"\((\d+)\)(?:\s+(.*))?$")


def parse_callgrind(path: Path, line_fns: tuple[str, ...] = ()) -> dict[str, Any]:
    """Minimal reader of callgrind's format (run with --compress-pos=no; positions: line;
    events: Ir first). Returns {"total": Ir, "fns": {name: {"self", "incl", "ob",
    "calls_out": {callee: [calls, Ir, callee object]}, "lines": {(file, line): Ir}}}}.
    Inclusive cost = self + the costs of the calls it makes (exact for functions that
    are not recursive, as the loops are). "lines" (self + calls made there, by source
    line, inlined code under its own file) is kept for functions whose name starts with
    one of ``line_fns``."""
    names: dict[str, dict[str, str]] = {"fn": {}, "ob": {}, "fl": {}}
    fns: dict[str, dict[str, Any]] = {}
    total = summary = None
    cur: dict[str, Any] | None = None
    cur_lines: dict[tuple[str, int], int] | None = None
    cur_ob = cob = fl = fi = ""
    callee = ""
    ncalls = 0
    pending_call = False
    npos = 1

    def name(kind: str, raw: str) -> str:
        m = _NAME.match(raw.strip())
        if not m:
            return raw.strip()
        idx, nm = m.group(1), m.group(2)
        table = names[kind]
        if nm is not None:
            table[idx] = nm
            return nm
        return table.get(idx, f"({idx})")

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                if cur is None:
                    continue
                parts = line.split()
                ir = int(parts[npos]) if len(parts) > npos else 0
                if pending_call:
                    rec = cur["calls_out"].setdefault(callee, [0, 0, cob])
                    rec[0] += ncalls
                    rec[1] += ir
                    pending_call = False
                else:
                    cur["self"] += ir
                if cur_lines is not None and parts[0].isdigit():
                    key = (fi, int(parts[0]))
                    cur_lines[key] = cur_lines.get(key, 0) + ir
                continue
            if line.startswith("fn="):
                nm = name("fn", line[3:])
                cur = fns.setdefault(nm, {"self": 0, "calls_out": {}, "ob": cur_ob})
                keep = bool(line_fns) and nm.startswith(line_fns)
                cur_lines = cur.setdefault("lines", {}) if keep else None
                cob = cur_ob
                fi = fl
            elif line.startswith("ob="):
                cur_ob = name("ob", line[3:])
            elif line.startswith("fl="):
                fl = fi = name("fl", line[3:])
            elif line.startswith(("fi=", "fe=")):
                fi = name("fl", line[3:])
            elif line.startswith("cob="):
                cob = name("ob", line[4:])
            elif line.startswith("cfn="):
                callee = name("fn", line[4:])
            elif line.startswith(("cfi=", "cfl=")):
                name("fl", line[4:])
            elif line.startswith("calls="):
                ncalls = int(line[6:].split()[0])
                pending_call = True
            elif line.startswith("positions:"):
                npos = len(line.split()) - 1
                if npos != 1 and line_fns:
                    raise ValueError(f"{path}: expected 'positions: line'")
            elif line.startswith("events:"):
                if line.split()[1] != "Ir":
                    raise ValueError(f"{path}: expected Ir as the first event: {line.strip()}")
            elif line.startswith("totals:"):
                total = int(line.split()[1])
            elif line.startswith("summary:"):
                summary = int(line.split()[1])
    for rec in fns.values():
        rec["incl"] = rec["self"] + sum(v[1] for v in rec["calls_out"].values())
    return {"total": total if total is not None else summary, "fns": fns}


_PYX_MARK = re.compile(r'/\* "([^"]+\.(?:pyx|pxi))":(\d+)')


def c_to_pyx(c_file: Path) -> tuple[list[str | None], dict[str, list[str]]]:
    """For each line of Cython's generated C: the "file.pyx:line" it came from (the last
    '/* "native/x.pyx":N' marker above it), and the .pyx/.pxi sources by name."""
    where: list[str | None] = [None]
    cur = None
    c_lines = c_file.read_text(errors="replace").splitlines()
    srcs: dict[str, list[str]] = {c_file.name: c_lines}
    for ln in c_lines:
        m = _PYX_MARK.search(ln)
        if m:
            cur = f"{m.group(1)}:{m.group(2)}"
            if m.group(1) not in srcs:
                src = ROOT / m.group(1)
                srcs[m.group(1)] = src.read_text().splitlines() if src.exists() else []
        where.append(cur)
    return where, srcs


def short_name(fn: str, ob: str) -> str:
    lib = os.path.basename(ob) if ob else "?"
    return f"{fn} [{lib}]" if fn.startswith("0x") else fn


def by_line(a: dict[str, Any], b: dict[str, Any], dn: int) -> list[list[Any]]:
    """Ir per iteration of the loop function by source line (self + calls made there),
    C lines of the generated module folded onto the .pyx/.pxi line they came from."""
    c_file = ROOT / "native" / "_native.c"
    where, srcs = c_to_pyx(c_file) if c_file.exists() else ([], {})
    acc: dict[str, float] = {}
    for key in set(a["_lines"]) | set(b["_lines"]):
        d = (b["_lines"].get(key, 0) - a["_lines"].get(key, 0)) / dn
        file, line = key
        if file.endswith("_native.c") and 0 < line < len(where) and where[line]:
            label = where[line]
        elif file.endswith("_native.c"):  # verbatim C helpers (includes/c_helpers.pxi), above all markers
            label = f"_native.c:{line}"
        else:
            label = f"{os.path.basename(file) or '?'}:{line}"
        acc[label] = acc.get(label, 0.0) + d
    rows = []
    for label, d in sorted(acc.items(), key=lambda kv: -abs(kv[1])):
        if abs(d) < 0.05:
            continue
        fname, _, ln = label.rpartition(":")
        src = srcs.get(fname, [])
        text = src[int(ln) - 1].strip() if fname in srcs and 0 < int(ln) <= len(src) else ""
        rows.append([label, round(d, 2), text])
    return rows
