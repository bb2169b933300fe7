"""A live progress line with ETA across the whole sweep.

Progress is counted in measurement units (size x in-place flag), weighted by
the planner's time estimate of each test, and corrected by how fast the sweep
has really gone so far. On a terminal the line is redrawn in place from the first
test's start; otherwise (CI logs, pipes) one line says what runs first and the
estimate, then one line is printed per finished test.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from .units import format_duration


class Progress:
    def __init__(self, total_tests: int, estimate_s: float, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.total_tests = total_tests
        self.estimate_s = max(estimate_s, 1e-6)
        self.done_estimate = 0.0  # planned seconds of the work already finished
        self.tests_done = 0
        self.started = time.monotonic()
        self.current = ""
        self.current_estimate = 0.0
        self.current_units = 1
        self.current_done_units = 0
        self._last_draw = 0.0
        self._announced = False

    def start_test(self, name: str, estimate_s: float, units: int) -> None:
        self.current, self.current_estimate = name, estimate_s
        self.current_units, self.current_done_units = max(units, 1), 0
        if self.enabled and not self.tty and self.tests_done == 0 and not self._announced:
            # Without it a log says nothing until the first test ends (ranks starting, pods pending).
            self._announced = True
            print(f"[0/{self.total_tests}] {name}: started; {self.total_tests} test(s), estimated "
                  f"{format_duration(self.estimate_s)} in all", file=self.stream, flush=True)
        self._draw(force=True)

    def unit_done(self) -> None:
        self.current_done_units += 1
        self._draw()

    def end_test(self, status: str, seconds: float) -> None:
        self.tests_done += 1
        self.done_estimate += self.current_estimate
        self.current_done_units = 0
        if self.enabled and not self.tty:
            print(f"[{self.tests_done}/{self.total_tests}] {self.current}: {status} in {format_duration(seconds)}"
                  f"; {self._eta_text()}", file=self.stream, flush=True)
        self._draw(force=True)

    def fraction(self) -> float:
        partial = self.current_estimate * self.current_done_units / self.current_units
        return min(1.0, (self.done_estimate + partial) / self.estimate_s)

    def eta_s(self) -> float:
        frac = self.fraction()
        elapsed = time.monotonic() - self.started
        if frac < 0.02:
            return self.estimate_s - elapsed
        return elapsed * (1 - frac) / frac

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
        text = (f"\r[{bar}] {self.fraction() * 100:5.1f}%  test {min(self.tests_done + 1, self.total_tests)}/"
                f"{self.total_tests} {self.current[:40]}  {self._eta_text()}")
        self.stream.write(text.ljust(110)[:160])
        self.stream.flush()

    def clear(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 160 + "\r")
            self.stream.flush()
