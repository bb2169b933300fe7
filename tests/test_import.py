"""benchfab import: saved nccl-tests / perftest reports into the store, read back like measured runs.

The reports are real: results/fabrics/sources/ (published outputs, see SOURCES.md there) and
tests/rdma/data/ (this project's soft-RoCE perftest runs). Bad-input cases edit a copy of a
real report the way a cut or hand-edited file looks.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

import benchfab
from benchfab.cli import main
from benchfab.records import MEASUREMENT_KEY
from benchfab.store import list_runs
from tests.helpers import ROOT

SOURCES = ROOT / "results" / "fabrics" / "sources"
SPARK = SOURCES / "spark-pr103-roce-allreduce-mtu9000.txt"
IB_READ = SOURCES / "ucx-8852-ib-read-bw.txt"
SOFTROCE_LAT = ROOT / "tests" / "rdma" / "data" / "ib_write_lat_client.txt"


def _import(results: Path, *args: str) -> int:
    return main(["import", *args, "--results", str(results)])


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, never a traceback
    return err[0]


def test_nccl_tests_table_becomes_a_run_with_its_provenance(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    url = "https://github.com/NVIDIA/dgx-spark-playbooks/pull/103"
    proc = cli("import", "nccl-tests", str(SPARK), "--profile", "roce-spark", "--fabric", "roce", "--source", url,
               "--run-id", "spark", "--results", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run = benchfab.load_run("spark", tmp_path)
    s = run.summary.sort_values(["size_bytes", "in_place"])
    assert len(s) == 8 and set(s["workload"]) == {"allreduce"} and set(s["collective"]) == {"all_reduce_perf"}
    first = s.iloc[0]  # 8192 B out-of-place: 27.82 us, 0.29 GB/s
    assert (first["size_bytes"], bool(first["in_place"])) == (8192, False)
    assert first["time_s"] == pytest.approx(27.82e-6) and first["busbw_Bps"] == pytest.approx(0.29e9)
    assert first["hosts"] == "spark-d708,spark-dbf4" and first["nodes"] == 2 and first["ranks"] == 2
    assert first["iterations"] == 100 and first["dtype"] == "float32" and first["memory"] == "cuda"
    assert set(s["profile"]) == {"roce-spark"} and set(s["fabric"]) == {"roce"} and set(s["status"]) == {"ok"}
    src = run.meta["imported_from"]
    assert src["sha256"] == hashlib.sha256(SPARK.read_bytes()).hexdigest() and src["source_url"] == url
    assert src["tool"] == "nccl-tests" and src["version"] == "2.20.0" and src["path"] == str(SPARK)
    # The same key columns as a measured run: two imports of one report are one measurement twice.
    assert _import(tmp_path, "nccl-tests", str(SPARK), "--profile", "roce-spark", "--fabric", "roce",
                   "--run-id", "spark-again") == 0
    both = benchfab.load_runs(tmp_path)
    # Every key column is set (transport "nccl", as the nccl-tests engine's rows say), so
    # compare can match them; NCCL's network is its own column.
    assert both[list(MEASUREMENT_KEY)].notna().all().all() and set(both["transport"]) == {"nccl"}
    assert both.groupby(list(MEASUREMENT_KEY)).size().eq(2).all() and len(both) == 16
    shown = cli("show", "spark", "--results", str(tmp_path))
    assert shown.returncode == 0 and "27.82" in shown.stdout and shown.stderr == ""


def test_wrong_elements_make_the_imported_test_failed(tmp_path: Path) -> None:
    lines = SPARK.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.strip().startswith("16384"))
    cells = lines[row].rsplit(" 0", 1)  # the in-place #wrong cell
    lines[row] = cells[0] + " 3" + cells[1]
    report = tmp_path / "wrong.txt"
    report.write_text("\n".join(lines) + "\n")
    assert _import(tmp_path, "nccl-tests", str(report), "--profile", "p", "--fabric", "roce", "--run-id", "w") == 0
    run = benchfab.load_run("w", tmp_path)
    assert run.tests.iloc[0]["status"] == "failed" and "3 wrong element(s)" in run.tests.iloc[0]["reason"]
    assert "16384" in run.tests.iloc[0]["reason"]


def test_nccl_tests_json_keeps_per_iteration_times(tmp_path: Path) -> None:
    # The layout nccl-tests -J (-I 1) writes (src/util.cu, file version 3), with the spark report's first row.
    doc = {"version": 3, "start_time": "2026-11-30 10:00:00", "args": ["./build/all_reduce_perf", "-b", "8192"],
           "nccl_version": 23102,
           "config": {"iterations": 3, "devices": [{"rank": 0, "hostname": "spark-d708"},
                                                   {"rank": 1, "hostname": "spark-dbf4"}]},
           "results": [{"size": 8192, "count": 2048, "type": "float", "redop": "sum", "root": "    -1",
                        "out_of_place": {"time": 27.82, "alg_bw": 0.29, "bus_bw": 0.29, "nwrong": 0},
                        "out_of_place_per_iter": {"times_us": [27.5, 27.9, 28.1]},
                        "in_place": {"time": 28.54, "alg_bw": 0.29, "bus_bw": 0.29, "nwrong": 0},
                        "actual_iterations": 3, "experiment_name": ""}],
           "average_bus_bandwidth": {"bandwidth": 0.29, "okay": "unchecked"}}
    report = tmp_path / "run.json.txt"
    report.write_text(json.dumps(doc))
    assert _import(tmp_path, "nccl-tests", str(report), "--profile", "p", "--fabric", "roce", "--run-id", "j") == 0
    run = benchfab.load_run("j", tmp_path)
    assert len(run.summary) == 2 and set(run.summary["hosts"]) == {"spark-d708,spark-dbf4"}
    assert list(run.raw["time_s"]) == pytest.approx([27.5e-6, 27.9e-6, 28.1e-6])
    src = run.meta["imported_from"]
    assert src["format"] == "json" and src["version"] is None and src["facts"]["json_version"] == 3
    assert src["facts"]["nccl_version"] == 23102 and run.meta["started"] == "2026-11-30 10:00:00"


def test_perftest_reports_take_their_fabric_from_the_link_type(tmp_path: Path) -> None:
    assert _import(tmp_path, "perftest", str(IB_READ), "--profile", "ib", "--hosts", "cn3,cn2", "--run-id", "r") == 0
    run = benchfab.load_run("r", tmp_path)
    s = run.summary.sort_values("size_bytes")
    assert set(s["workload"]) == {"rdma_read_bw"} and set(s["fabric"]) == {"ib"} and set(s["link_layer"]) == {"ib"}
    assert list(s["size_bytes"]) == [2, 4, 8, 16, 32, 64, 128]
    assert s.iloc[0]["bw_avg_Bps"] == pytest.approx(4.67 * 2**20) and s.iloc[0]["rdma_device"] == "mlx5_1"
    assert s.iloc[0]["time_s"] == pytest.approx(2 / (4.67 * 2**20)) and s.iloc[0]["hosts"] == "cn3,cn2"
    assert _import(tmp_path, "perftest", str(SOFTROCE_LAT), "--profile", "softroce", "--run-id", "lat") == 0
    lat = benchfab.load_run("lat", tmp_path).summary.iloc[0]
    assert lat["workload"] == "rdma_write_lat" and lat["fabric"] == "roce" and lat["gid_index"] == 1
    assert 0 < lat["lat_min_s"] <= lat["lat_median_s"] == lat["time_s"] <= lat["lat_max_s"]


@pytest.mark.parametrize("edit, args, expected", [
    # a row cut short (a truncated paste): the line is named
    (lambda t: t.replace("67.30    0.97    0.97       0    64.70    1.01    1.01       0", "67.30    0.97"),
     ["--fabric", "roce"], r"wrong\.txt:15: a table row with 7 of the header's 13 columns"),
    # two runs pasted into one file
    (lambda t: t + t.splitlines()[-1] + "\n", ["--fabric", "roce"], r"size 65536 .* appears twice .*split the file"),
    (lambda t: t, [], r"does not say which fabric.*give --fabric"),
    (lambda t: "\n".join(t.splitlines()[:11]) + "\n", ["--fabric", "roce"], r"wrong\.txt:10: .*no result rows"),
    (lambda t: "hello\n", ["--fabric", "roce"], r"no nccl-tests result table"),
    (lambda t: t.replace("# Collective test starting: all_reduce_perf\n", ""), ["--fabric", "roce"],
     r"does not say its collective.*--workload all_reduce_perf"),
    # no "#  Rank N ... on HOST" lines: how many ranks is not guessed
    (lambda t: "\n".join(line for line in t.splitlines() if "Rank" not in line) + "\n", ["--fabric", "roce"],
     r"does not say its ranks' hosts .*give --hosts A,B"),
    # all three at once: one error asks for every flag, not one per retry
    (lambda t: "\n".join(line for line in t.splitlines() if "Rank" not in line and "Collective test" not in line),
     [], r"does not say its collective .*; nor which fabric it measured; nor its ranks' hosts .*"
         r"give --workload all_reduce_perf --fabric ib\|roce\|tcp\|loopback --hosts A,B"),
    (lambda t: t, ["--fabric", "roce", "--hosts", "x,y"], r"--hosts x,y but .* names the ranks' hosts spark-d708,spark-dbf4"),
])
def test_bad_nccl_tests_reports_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    edit, args, expected) -> None:  # type: ignore[no-untyped-def]
    report = tmp_path / "wrong.txt"
    report.write_text(edit(SPARK.read_text()))
    assert _import(tmp_path, "nccl-tests", str(report), "--profile", "p", *args) == 2
    assert re.search(expected, _error(capsys))
    assert not list(tmp_path.glob("import-*"))  # nothing half-stored


def test_bad_perftest_reports_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _import(tmp_path, "perftest", str(IB_READ), "--profile", "p", "--fabric", "roce") == 2
    assert "--fabric roce but the report says Link type IB (ib)" in _error(capsys)
    bidir = tmp_path / "bidir.txt"
    bidir.write_text(IB_READ.read_text().replace("RDMA_Read BW Test", "RDMA_Read Bidirectional BW Test"))
    assert _import(tmp_path, "perftest", str(bidir), "--profile", "p") == 2
    assert "bidirectional" in _error(capsys)
    cut = tmp_path / "cut.txt"
    cut.write_text("\n".join(IB_READ.read_text().splitlines()[:17]) + "\n")  # header, no rows
    assert _import(tmp_path, "perftest", str(cut), "--profile", "p") == 2
    assert "no result row under a '#bytes ... BW average[...]' header" in _error(capsys)
    unit = tmp_path / "unit.txt"
    unit.write_text(IB_READ.read_text().replace("BW average[MB/sec]", "BW average[furlongs]"))
    assert _import(tmp_path, "perftest", str(unit), "--profile", "p") == 2
    assert "line 17: unknown bandwidth unit" in _error(capsys)
    assert _import(tmp_path, "perftest", str(IB_READ), "--profile", "p", "--hosts", "cn3") == 2
    assert "--hosts names 1 host(s), the report measured 2 ranks" in _error(capsys)
    assert _import(tmp_path, "perftest", str(IB_READ), "--profile", "p", "--run-id", "x") == 0
    assert _import(tmp_path, "perftest", str(IB_READ), "--profile", "p", "--run-id", "x") == 2
    assert "run x already exists" in _error(capsys)


def test_mpirun_tagged_output_reads_like_the_plain_report(tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.txt"
    tagged.write_text("".join(f"[1,0]<stdout>:{line}\n" for line in SPARK.read_text().splitlines()))
    assert _import(tmp_path, "nccl-tests", str(tagged), "--profile", "p", "--fabric", "roce", "--run-id", "t") == 0
    assert _import(tmp_path, "nccl-tests", str(SPARK), "--profile", "p", "--fabric", "roce", "--run-id", "plain") == 0
    columns = ["size_bytes", "in_place", "time_s", "busbw_Bps", "hosts", "iterations"]
    tagged_rows = benchfab.load_run("t", tmp_path).summary[columns].sort_values(columns[:2]).reset_index(drop=True)
    plain_rows = benchfab.load_run("plain", tmp_path).summary[columns].sort_values(columns[:2]).reset_index(drop=True)
    assert tagged_rows.equals(plain_rows)


def test_the_example_dataset_is_what_its_sources_say() -> None:
    """results/fabrics/: every imported run still matches its file (sha256) and names where it came from;
    the rest were measured by benchfab; IB and RoCE are both there (the notebooks compare them)."""
    results = ROOT / "results" / "fabrics"
    runs = list_runs(results)
    assert len(runs) >= 10
    fabrics = set()
    for path in runs:
        run = benchfab.load_run(path)
        fabrics |= set(run.summary["fabric"])
        src = run.meta.get("imported_from")
        if src is None:
            assert run.meta["host"]["hostname"] and run.meta["versions"]["benchfab"]  # a run benchfab made
            continue
        assert hashlib.sha256((ROOT / src["path"]).read_bytes()).hexdigest() == src["sha256"], path.name
        assert src["source_url"], path.name
        if src["source_url"].startswith("https://"):
            assert src["source_url"] in (results / "SOURCES.md").read_text(), path.name
    assert {"ib", "roce", "tcp"} <= fabrics


def test_older_perftest_latency_tables_keep_what_they_print(tmp_path: Path) -> None:
    """perftest before 4.x prints t_min, t_max and t_typical only: those are kept, the rest is NaN."""
    lines = SOFTROCE_LAT.read_text().splitlines()
    head = next(i for i, line in enumerate(lines) if line.strip().startswith("#bytes"))
    lines[head] = " #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]"
    lines[head + 1] = " ".join(lines[head + 1].split()[:5])
    old = tmp_path / "old_lat.txt"
    old.write_text("\n".join(lines) + "\n")
    assert _import(tmp_path, "perftest", str(old), "--profile", "p", "--run-id", "old") == 0
    row = benchfab.load_run("old", tmp_path).summary.iloc[0]
    new = SOFTROCE_LAT.read_text().splitlines()[head + 1].split()
    assert row["lat_median_s"] == pytest.approx(float(new[4]) * 1e-6) == row["time_s"]
    assert row["lat_p99_s"] != row["lat_p99_s"]  # NaN: not printed
