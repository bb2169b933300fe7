"""One set of units in everything a person reads (docs/UNITS.md): a tiny real local sweep
(gloo all-reduce and the tcp perftest-style tests), its `show`, its report, and a
comparison with a slowed copy of it in every output, scanned for table headers without a
unit and for a raw bytes-per-second figure."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest

import benchfab
from benchfab.units import UNITS
from tests.verdict_faults import copy_run, rewrite_test

pytestmark = pytest.mark.slow

SPEC = """\
name: units
defaults: {iterations: 5, warmup: 1, timeout: 120s}
tests:
  - {name: ar2, workload: allreduce, ranks: 2, sizes: [8, 64K]}
  - {name: bw, workload: rdma_write_bw, transport: tcp, sizes: [4K, 64K], iterations: 200}
  - {name: lat, workload: rdma_write_lat, transport: tcp, sizes: [8, 4K], iterations: 200}
"""
UNIT_NAMES = tuple(u.name for u in UNITS)
# Tables mimicking a tool print its spellings of the same units: nccl-tests (us) (GB/s),
# perftest [usec] [Gb/sec] [Mpps].
PERFTEST_SPELLINGS = tuple(u.perftest for u in UNITS)
# Columns of pure numbers that have no unit: counts, sizes in their header's (B), ratios.
UNITLESS = re.compile(r"^(#wrong|ratio|new/base|vs median|nccl-tests / torch|noise|size|count|#bytes|#iterations|"
                      r"run|profile|test|key|metric|verdict|cause|node)$")
E_NOTATION = re.compile(r"\b\d(?:\.\d+)?e[+-]\d+\b")  # how Python prints a raw 1.2e+09 (not "1e9 B/s" prose)


@dataclass
class Outputs:
    texts: dict[str, str]  # what a person reads, by where it came from
    bandwidths: list[float]  # every stored *_Bps figure of the run, in B/s


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Outputs:
    from tests.conftest import run_cli

    tmp = tmp_path_factory.mktemp("units")
    results = tmp / "results"
    (tmp / "spec.yaml").write_text(SPEC)
    texts: dict[str, str] = {}

    def cli(name: str, *args: str, code: int = 0) -> str:
        proc = run_cli(*args, "--results", str(results))
        assert proc.returncode == code, proc.stderr
        texts[name] = proc.stdout
        return proc.stdout

    cli("sweep", "sweep", str(tmp / "spec.yaml"), "--run-id", "base", "--no-progress")
    cli("show", "show", "base")
    # A comparison with regressions in both kinds of bandwidth and in a latency (z 0: 5
    # iterations are too few for the noise band to call a slowdown; the factor still does):
    # each judged figure is printed, with its unit, in every output.
    copy_run(results, "base", "new")
    for test in ("000-ar2", "001-bw"):
        rewrite_test(results, "new", test, slowdown=3.0)
    rewrite_test(results, "new", "002-lat", slowdown=3.0)
    for fmt in ("table", "markdown", "junit"):
        cli(f"compare-{fmt}", "compare", "base", "new", "-o", fmt, "--noise-z", "0", "--save", code=1)
    cli("report", "report", "new", "--out", str(tmp / "report"))
    texts["summary.md"] = (tmp / "report" / "summary.md").read_text()
    junit = ET.fromstring(texts.pop("compare-junit"))
    texts["junit messages"] = "\n".join(str(f.get("message")) for f in junit.iter("failure"))
    summary = benchfab.load_run("base", results).summary
    bandwidths = [float(v) for c in summary.columns if c.endswith("_Bps") for v in summary[c].dropna()]
    return Outputs(texts, bandwidths)


def _markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header cells, rows of cells) of each markdown table in ``text``."""
    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and lines[i + 1].startswith("|---"):
            rows = []
            for body in lines[i + 2:]:
                if not body.startswith("|"):
                    break
                rows.append([c.strip() for c in re.split(r"(?<!\\)\|", body)[1:-1]])
            tables.append(([c.strip() for c in line.split("|")[1:-1]], rows))
    return tables


def _decimal(cell: str) -> bool:
    return re.fullmatch(r"\**-?\d+\.\d+\**", cell) is not None


def test_every_column_of_figures_names_its_unit(outputs: Outputs) -> None:
    """Markdown tables (report, compare -o markdown): a column of decimal figures names its unit
    in its header, or each of its cells carries one (the compare columns that mix metrics)."""
    checked = 0
    for where in ("summary.md", "compare-markdown"):
        for head, rows in _markdown_tables(outputs.texts[where]):
            for j, name in enumerate(head):
                cells = [r[j] for r in rows if j < len(r) and r[j] not in ("-", "N/A")]
                if UNITLESS.match(name) or not cells:
                    continue
                if any(_decimal(c) for c in cells):
                    assert any(f"({u})" in name for u in UNIT_NAMES), f"{where}: column {name!r} has no unit"
                    checked += 1
                elif any(c.endswith(UNIT_NAMES) for c in cells):
                    assert all(c.endswith(UNIT_NAMES) for c in cells), f"{where}: column {name!r}: {cells}"
                    checked += 1
    assert checked >= 8  # bandwidth, point-to-point, verdicts and compare's columns were all seen


def test_tool_style_tables_name_their_units(outputs: Outputs) -> None:
    """The sweep's and show's nccl-tests and perftest tables: every column header names a unit
    in the tool's spelling, and the figures are those units' (GB/s, Gb/s, us)."""
    for where in ("sweep", "show"):
        text = outputs.texts[where]
        assert "#         (B)  (elements)" in text and "(us)   (GB/s)   (GB/s)" in text
        perftest = [line for line in text.splitlines() if line.startswith("#    #bytes")]
        assert len(perftest) == 2, text  # the bandwidth and the latency table
        for line in perftest:
            names = [n.strip() for n in re.split(r"\s{2,}", line.lstrip("# ")) if n.strip()]
            for name in names[2:]:  # after #bytes and #iterations
                assert re.search(r"\[(" + "|".join(map(re.escape, PERFTEST_SPELLINGS)) + r")\]$", name), f"{where}: {name!r}"


def test_no_output_prints_raw_bytes_per_second(outputs: Outputs) -> None:
    """No stored bandwidth (B/s) appears as a person reads it, in any usual print form, and no
    figure is printed in e-notation (what a raw 1.2e+09 B/s would look like)."""
    assert outputs.bandwidths
    raw = {form.format(v) for v in outputs.bandwidths
           for form in ("{:.4g}", "{:.3g}", "{:.6g}", "{!r}", "{:.0f}", "{:.2f}", "{:.3f}")}
    for where, text in outputs.texts.items():
        tokens = set(re.split(r"[\s|,;:()\[\]*`]+", text))
        assert not tokens & raw, f"{where} prints raw B/s: {sorted(tokens & raw)[:5]}"
        assert not E_NOTATION.search(text), f"{where}: {E_NOTATION.findall(text)[:5]}"


def test_a_link_test_reads_in_gbits_and_a_collective_in_gbytes(outputs: Outputs) -> None:
    """The same convention in the verdict lines as in the tables: compare's collective rows in
    GB/s, its link-test rows in Gb/s, latencies in us; the report's verdict table likewise."""
    for where in ("compare-table", "summary.md", "junit messages"):
        text = outputs.texts[where]
        lines = text.splitlines()
        assert any("busbw_Bps" in line and " GB/s" in line for line in lines), where
        assert any("bw_avg_Bps" in line and " Gb/s" in line for line in lines), where
        assert any("lat_median_s" in line and " us" in line for line in lines), where
        assert not any("bw_avg_Bps" in line and "GB/s" in line for line in lines), where
