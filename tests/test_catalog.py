"""Bus-bandwidth factors and reported sizes, as nccl-tests defines them."""

import pytest

from benchfab.workloads.collective_kinds import COLLECTIVES, busbw_factor


@pytest.mark.parametrize("n", [2, 3, 4, 8, 16], ids=lambda n: f"n{n}")
def test_factors(n: int) -> None:
    assert busbw_factor("allreduce", n) == pytest.approx(2 * (n - 1) / n)
    for name in ("all_gather", "reduce_scatter", "all_to_all"):
        assert busbw_factor(name, n) == pytest.approx((n - 1) / n)
    assert busbw_factor("broadcast", n) == 1.0


def test_total_size_collectives_report_the_whole_buffer() -> None:
    ag = COLLECTIVES["all_gather"]
    count = ag.count_for(1 << 20, 4, 4)  # 1 MiB total, float32, 4 ranks
    assert count == (1 << 20) // 4 // 4
    assert ag.size_for(count, 4, 4) == 1 << 20
    ar = COLLECTIVES["allreduce"]
    assert ar.count_for(1 << 20, 4, 4) == (1 << 20) // 4
    assert ar.size_for(ar.count_for(1 << 20, 4, 4), 4, 4) == 1 << 20


def test_tiny_sizes_round_up_to_one_element_per_rank() -> None:
    ag = COLLECTIVES["all_gather"]
    assert ag.count_for(8, 4, 3) == 1
    assert ag.size_for(1, 4, 3) == 12
