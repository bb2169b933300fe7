"""The progress lines and ETA of a sweep (the ETA's quality on a real sweep: tests/sim/test_sensitivity.py)."""

from __future__ import annotations

import io

import pytest

from benchfab import progress
from benchfab.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress.time, "monotonic", c)
    return c


def test_a_round_with_one_failed_test_names_that_test_not_the_round(clock: Clock) -> None:
    out = io.StringIO()
    bar = Progress([10.0, 10.0], 3, stream=out)
    bar.start_round("round of 2 tests", 2)
    clock.now += 20
    bar.end_round()
    bar.test_done("000-bw-a+b", "ok", 7.5)
    bar.test_done("000-bw-c+d", "failed", 8.0)
    start, *lines = out.getvalue().splitlines()
    assert start == "[0/3] round of 2 tests: started; 3 test(s), estimated 20s in all"  # a log says so at once
    assert lines[0] == "[1/3] 000-bw-a+b: ok in 7.5s; elapsed 20s, ETA 20s"  # the round's pace: 2 x the plan
    assert lines[1].startswith("[2/3] 000-bw-c+d: failed in 8.0s;")
    assert not any("round" in line for line in lines)


def test_the_eta_is_the_plan_until_a_round_ends_then_the_measured_pace(clock: Clock) -> None:
    bar = Progress([10.0, 10.0, 10.0, 10.0], 4, stream=io.StringIO())
    assert bar.eta_s() == pytest.approx(40.0)
    bar.start_round("r0", 1)
    clock.now += 4
    assert bar.eta_s() == pytest.approx(36.0)  # the plan, less what the running round used
    clock.now += 16  # the first round took 20 s, twice its estimate
    bar.end_round()
    assert bar.pace() == pytest.approx(2.0)
    assert bar.eta_s() == pytest.approx(60.0)  # 3 rounds left at 20 s each
    bar.start_round("r1", 1)
    clock.now += 25  # running past its corrected estimate: the rounds after it still count
    assert bar.eta_s() == pytest.approx(40.0)
    bar.end_round()
    assert bar.pace() == pytest.approx(45.0 / 20.0)
    assert bar.fraction() == pytest.approx(0.5)


def test_the_total_is_the_rounds_not_the_sum_of_their_tests(clock: Clock) -> None:
    """A round of 4 tests side by side costs its longest test, not four of them."""
    bar = Progress([3.0, 3.0], 8, stream=io.StringIO())
    assert bar.eta_s() == pytest.approx(6.0)


def test_each_test_entry_is_paced_by_its_own_rounds_once_one_ended(clock: Clock) -> None:
    """Pair tests ran at the plan's pace, the first collective round took 5 x its estimate
    (torch's start-up on a busy host): the collective rounds left are paced by that one."""
    bar = Progress([2.0, 2.0, 4.0, 4.0, 4.0], 5, stream=io.StringIO(), kinds=["bw", "bw", "ar", "ar", "ar"])
    for took in (2.0, 2.0):
        bar.start_round("bw", 1)
        clock.now += took
        bar.end_round()
    assert bar.eta_s() == pytest.approx(12.0)  # no collective round yet: the overall pace (1.0)
    bar.start_round("ar", 1)
    clock.now += 20
    bar.end_round()
    assert bar.pace("ar") == pytest.approx(5.0) and bar.pace("bw") == pytest.approx(1.0)
    assert bar.eta_s() == pytest.approx(40.0)
