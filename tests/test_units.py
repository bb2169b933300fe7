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


def test_figures_read_in_the_tools_units() -> None:
    """docs/UNITS.md: a collective's bandwidth in GB/s (nccl-tests), a link test's in Gb/s
    (perftest --report_gbits), times in us, message rates in Mpps; missing is "-"."""
    from benchfab.units import figure, header

    assert figure("busbw_Bps", 2.31e10) == "23.100 GB/s" and figure("algbw_Bps", 1.2e9) == "1.200 GB/s"
    assert figure("bw_avg_Bps", 4.9e10) == "392.00 Gb/s" and figure("bw_peak_Bps", 1.25e8) == "1.00 Gb/s"
    assert figure("lat_median_s", 1.25e-5) == "12.50 us" and figure("time_s", 2.0) == "2000000.00 us"
    assert figure("msg_rate_pps", 1.5e6) == "1.500000 Mpps"
    assert figure("busbw_Bps", None) == "-" and figure("busbw_Bps", float("nan")) == "-"
    assert figure("ratio", 0.79712) == "0.7971"  # no unit
    # too small for the unit's digits: two significant digits more, never 0.000 nor e-notation
    assert figure("busbw_Bps", 8.1e3) == "0.0000081 GB/s" and figure("lat_median_s", 1.5e-9) == "0.0015 us"
    assert header("busbw", "busbw_Bps") == "busbw (GB/s)" and header("max BW average", "bw_avg_Bps") == "max BW average (Gb/s)"
    assert header("#wrong", "wrong") == "#wrong"


def test_every_report_figure_scales_and_labels_its_column_in_its_unit() -> None:
    """Each family's plot axis: the scale of benchfab.units for its column, and the unit in its label."""
    from benchfab.units import unit_of
    from benchfab.workloads import FIGURES

    assert FIGURES
    for spec in FIGURES:
        unit = unit_of(spec.column)
        assert unit is not None, spec.column
        assert spec.scale == unit.per_si and f"({unit.name}" in spec.ylabel, (spec.file, spec.ylabel)
