import pytest

from benchfab.units import format_duration, format_size, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize(
    "text, expected",
    [(8, 8), ("8", 8), ("1K", 1024), ("64k", 65536), ("1M", 1 << 20), ("2G", 2 << 30), ("4KiB", 4096), ("16MB", 16 << 20)],
    ids=lambda v: str(v),
)
def test_sizes_are_binary_like_nccl_tests(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["1.5K", "-8", -8, "K", "8X", True, None, 3.0], ids=repr)
def test_bad_sizes_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


@pytest.mark.parametrize("text, seconds", [(30, 30.0), ("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1.5s", 1.5)], ids=repr)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_format_roundtrip() -> None:
    for n in (8, 1024, 3 << 20, 1 << 30, 1000):
        assert parse_size(format_size(n)) == n
    assert format_duration(185) == "3m05s"


def test_line_rates_are_decimal_bits_per_second() -> None:
    assert parse_rate("400Gbit") == 400e9 and parse_rate("200Mbit") == 200e6
    assert parse_rate("100G") == 100e9 and parse_rate("25Gb/s") == 25e9 and parse_rate(1e9) == 1e9
    for bad in ("fast", "-1G", "0Gbit", True):
        with pytest.raises(ValueError, match="line rate"):
            parse_rate(bad)
