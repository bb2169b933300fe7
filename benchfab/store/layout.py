"""How a run's tables are cut into Parquet parts, and which part's rows of a test count.

A sweep stores each round's tests together: one part per table, ``round-<NNNNNN>.parquet``, the
same name in summary/, raw/ and tests/ (three files a round, whatever its size; a sweep's
skipped tests, an interrupted round's tests and each imported test get a part the same way). Runs stored before that hold one
part per test, ``<test_id>.parquet``; both read alike, and a run may hold both (an old run
resumed). A test id never starts with "round-" (the planner's and the importers' ids start
with the test's 3-digit index), so the two kinds of name never meet.

A test is in one part, except for a moment: a test measured again (``sweep --resume`` after it
failed, a second ``diagnose``) is written into a new part first and only then taken out of the
part that held it, so a crash in between leaves it in both. The tests/ row of the NEWEST part
holding it counts (round parts by number, above every per-test part), and a summary/ or raw/
part's rows of that test count only in the part of that name: a test is never read twice.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DamagedRun

ROUND_PART_RE = re.compile(r"round-([0-9]{6,})\.parquet\Z")


def round_number(name: str) -> int | None:
    """The number of a round part's file name; None for a per-test part (``<test_id>.parquet``)."""
    found = ROUND_PART_RE.fullmatch(name)
    return int(found.group(1)) if found else None


def round_part_name(number: int) -> str:
    return f"round-{number:06d}.parquet"


def part_age(path: Path) -> tuple[int, int, str]:
    """Sort key, oldest part first: per-test parts (by name), then round parts by number."""
    number = round_number(path.name)
    return (0, 0, path.name) if number is None else (1, number, "")


def list_parts(folder: Path) -> list[Path]:
    """The Parquet parts of one table folder, oldest first (part_age; none: no folder yet)."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise DamagedRun(f"{folder}: not a directory (a benchfab run keeps its {folder.name} table's Parquet parts there)",
                         hint=f"move {folder} away; the run's other tables are unaffected")
    return sorted(folder.glob("*.parquet"), key=part_age)


def next_round_number(tests_folder: Path) -> int:
    """One above the highest round part in tests/. A summary/ or raw/ part above it is what a
    crash left before its tests/ row was written (those tests count as not run): it is
    overwritten, as a per-test part was when its test ran again."""
    numbers = [n for p in list_parts(tests_folder) if (n := round_number(p.name)) is not None]
    return max(numbers, default=0) + 1
