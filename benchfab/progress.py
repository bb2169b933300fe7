"""A live progress line with ETA across the whole sweep.

The sweep runs round by round (a round's tests side by side), so progress is counted in
rounds, each weighted by the plan's estimate of it (its longest test, plus the backend's
hand-out and pod start-up: ``planner.Round.estimate_s``), and within the running round
by its measurement units (size x in-place flag). Before a round has ended the ETA is the
plan's; from then on it is corrected by how fast the rounds really went: seconds taken per
planned second, over the ended rounds of the same test entry where there are some (a
collective's start-up can be off by another factor than a pair test's), else over all. On a terminal the line is redrawn in place;
otherwise (CI logs, pipes) one line says what runs first and the estimate, then one
line is printed per finished test, naming that test and its
own status (a round with one failed test is not a failed round).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from .units import format_duration


class Progress:
    def __init__(self, round_estimates: Sequence[float], total_tests: int, stream: TextIO | None = None,
                 enabled: bool = True, kinds: Sequence[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.planned = [max(e, 1e-6) for e in round_estimates]
        self.kinds = list(kinds) if kinds is not None else [""] * len(self.planned)  # a round's test entry
        self.took: list[float] = []  # each ended round: from the end of the one before to its own end
        self.total_tests = total_tests
        self.rounds_done = 0
        self.tests_done = 0
        self.started = time.monotonic()
        self.round_started = self.started
        self.round_ended = self.started  # when the last finished round ended
        self.current = ""
        self.current_units = 1
        self.current_done_units = 0
        self._last_draw = 0.0
        self._announced = False

    def start_round(self, label: str, units: int) -> None:
        self.current = label
        self.current_units, self.current_done_units = max(units, 1), 0
        self.round_started = time.monotonic()
        if self.enabled and not self.tty and self.tests_done == 0 and not self._announced:
            # Without it a log says nothing until the first test ends (ranks starting, pods pending).
            self._announced = True
            print(f"[0/{self.total_tests}] {label}: started; {self.total_tests} test(s), estimated "
                  f"{format_duration(sum(self.planned))} in all", file=self.stream, flush=True)
        self._draw(force=True)

    def unit_done(self) -> None:
        self.current_done_units += 1
        self._draw()

    def test_done(self, test_id: str, status: str, seconds: float) -> None:
        """One test of the running round ended: a line naming it and its own status."""
        self.tests_done += 1
        if self.enabled and not self.tty:
            print(f"[{self.tests_done}/{self.total_tests}] {test_id}: {status} in {format_duration(seconds)}"
                  f"; {self._eta_text()}", file=self.stream, flush=True)
        self._draw(force=True)

    def end_round(self) -> None:
        now = time.monotonic()
        if self.rounds_done < len(self.planned):
            self.took.append(now - self.round_ended)
        self.rounds_done = min(self.rounds_done + 1, len(self.planned))
        self.round_ended = now
        self.current_done_units = 0
        self._draw(force=True)

    def fraction(self) -> float:
        total = sum(self.planned)
        done = sum(self.planned[:self.rounds_done])
        if self.rounds_done < len(self.planned):
            done += self.planned[self.rounds_done] * self.current_done_units / self.current_units
        return min(1.0, done / total) if total else 1.0

    def pace(self, kind: str | None = None) -> float:
        """Seconds taken per planned second, over the ended rounds of ``kind`` (any kind when
        none of it ended; 1 before any round did)."""
        done = range(len(self.took))
        mine = [i for i in done if self.kinds[i] == kind] or list(done)
        planned = sum(self.planned[i] for i in mine)
        return sum(self.took[i] for i in mine) / planned if mine and planned else 1.0

    def eta_s(self) -> float:
        """Seconds left: the rounds not ended, each at its kind's measured pace, less what the
        running round has used."""
        i = self.rounds_done
        after = sum(p * self.pace(k) for p, k in zip(self.planned[i + 1:], self.kinds[i + 1:]))
        current = self.planned[i] * self.pace(self.kinds[i]) if i < len(self.planned) else 0.0
        return after + max(0.0, current - (time.monotonic() - self.round_ended))

    def _eta_text(self) -> str:
        return f"elapsed {format_duration(time.monotonic() - self.started)}, ETA {format_duration(self.eta_s())}"

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        width = 24
        filled = int(width * self.fraction())
        bar = "#" * filled + "." * (width - filled)
        text = (f"\r[{bar}] {self.fraction() * 100:5.1f}%  round {min(self.rounds_done + 1, len(self.planned))}/"
                f"{len(self.planned)} {self.current[:40]}  {self._eta_text()}")
        self.stream.write(text.ljust(110)[:160])
        self.stream.flush()

    def clear(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 160 + "\r")
            self.stream.flush()
