"""benchfab run: one test from nccl-tests / perftest flags, stored like any sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import benchfab
from benchfab.errors import SpecError, UsageError
from benchfab.oneoff import build, resolve_workload, shaping_flags
from benchfab.spec import load_spec, spec_to_dict

try:
    import benchfab._native  # the tcp transport's loops live there

    HAVE_NATIVE = True
except ImportError:
    HAVE_NATIVE = False

AR_FLAGS = ["-b", "8", "-e", "64K", "-f", "4", "-g", "2", "-n", "5", "-w", "1", "--device", "cpu"]


def only_test(workload: str, *flags: str) -> dict:  # type: ignore[type-arg]
    spec, _, _ = build(workload, list(flags))
    assert len(spec.tests) == 1
    return spec.resolved_tests()[0].model_dump(mode="json")


# -- end to end (real processes) ----------------------------------------------


@pytest.mark.slow
def test_allreduce_one_off_runs_stores_and_round_trips(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli("run", "allreduce", *AR_FLAGS, "--results", str(tmp_path), "--run-id", "o1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "000-allreduce-2r: allreduce, 2 ranks, gloo on cpu" in out
    assert "out-of-place" in out and "in-place" in out and "#wrong" in out
    assert "# Out of bounds values : 0 OK" in out and "# Avg bus bandwidth" in out
    assert "# run o1: 1 ok." in out

    sizes = [8, 32, 128, 512, 2048, 8192, 32768]  # -b 8 -e 64K -f 4, as all_reduce_perf
    run = benchfab.load_run("o1", tmp_path)
    assert list(run.tests["status"]) == ["ok"]
    s = run.summary
    assert sorted(set(s["size_bytes"])) == sizes
    assert (s["ranks"] == 2).all() and (s["iterations"] == 5).all() and (s["wrong"] == 0).all()
    assert sorted(set(s["in_place"])) == [False, True]
    shown = cli("show", "o1", "--results", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert all(f"\n{size:>13}" in shown.stdout for size in sizes)

    # --print-spec: the spec the run stored, which benchfab validate accepts and which
    # resolves to the very test the one-off ran.
    printed = cli("run", "allreduce", *AR_FLAGS, "--print-spec", "--results", str(tmp_path / "ps"))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == run.meta["spec_text"]
    assert not (tmp_path / "ps").exists()  # printed, not run
    path = tmp_path / "oneoff.yaml"
    path.write_text(printed.stdout)
    valid = cli("validate", str(path))
    assert valid.returncode == 0, valid.stderr
    assert spec_to_dict(load_spec(path))["tests"] == run.meta["spec"]["tests"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_NATIVE, reason="benchfab._native is not built (the tcp transport's loops live there)")
def test_point_to_point_one_off_over_tcp(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli("run", "rdma_write_bw", "--transport", "tcp", "-s", "64K", "-n", "200",
               "--results", str(tmp_path), "--run-id", "bw", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "BW average[Gb/sec]" in proc.stdout and "-> ok" in proc.stdout
    bw = benchfab.load_run("bw", tmp_path).summary
    assert list(bw["size_bytes"]) == [65536] and list(bw["iterations"]) == [200]
    assert list(bw["transport"]) == ["tcp"] and (bw["bw_avg_Bps"] > 0).all()

    # perftest's binary name works too; ib_write_lat's default size is 2 bytes.
    proc = cli("run", "ib_write_lat", "--transport", "tcp", "-n", "100",
               "--results", str(tmp_path), "--run-id", "lat", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "t_typical[usec]" in proc.stdout
    lat = benchfab.load_run("lat", tmp_path).summary
    assert list(lat["size_bytes"]) == [2] and list(lat["workload"]) == ["rdma_write_lat"]
    assert (lat["lat_median_s"] > 0).all()


@pytest.mark.parametrize("argv, names", [
    (["allreduce", "--bogus", "3"], ["--bogus"]),                        # unknown flag
    (["allreduce", "-b", "1M", "-e", "8"], ["-b 1M -e 8 (sizes): "]),    # min > max, as nccl-tests refuses
    (["all_reduce_perf", "-t", "4"], ["-t 4", "fix:"]),                  # nccl-tests threads: refused, with the fix
    (["allreduce", "-g", "0"], ["-g 0 (ranks): "]),                     # out of range: the spec's own check
    (["ib_write_bw", "-n", "2", "--transport", "tcp"], ["-n 2 (iterations): "]),  # perftest's minimum of 5
])
def test_bad_flags_are_one_line_errors(cli, argv: list[str], names: list[str]) -> None:  # type: ignore[no-untyped-def]
    proc = cli("run", *argv)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchfab: error: "), proc.stderr
    assert all(n in lines[0] for n in names), lines[0]
    assert proc.stdout == ""


# -- translation (in process) -------------------------------------------------


def test_workload_aliases() -> None:
    assert resolve_workload("all_reduce_perf") == "allreduce"
    assert resolve_workload("alltoall_perf") == "all_to_all"
    assert resolve_workload("reduce_scatter_perf") == "reduce_scatter"
    assert resolve_workload("ib_write_bw") == "rdma_write_bw"
    assert resolve_workload("ib_write_lat") == "rdma_write_lat"
    with pytest.raises(UsageError, match="did you mean allreduce"):
        resolve_workload("allreduc")


def test_nccl_tests_size_semantics() -> None:
    # -f > 1 multiplies; otherwise -i (default 1M) is added; -b/-e default to 32M.
    assert only_test("allreduce", "-b", "8", "-e", "64K", "-f", "4")["sizes"] == [8, 32, 128, 512, 2048, 8192, 32768]
    assert only_test("allreduce", "-b", "1M", "-e", "3M")["sizes"] == [1 << 20, 2 << 20, 3 << 20]
    assert only_test("allreduce", "-b", "1K", "-e", "4K", "-f", "1", "-i", "1K")["sizes"] == [1024, 2048, 3072, 4096]
    assert only_test("allreduce")["sizes"] == [32 << 20]
    assert only_test("allreduce", "-b", "16", "-e", "16")["sizes"] == [16]


def test_nccl_tests_flags_map_to_spec_fields() -> None:
    t = only_test("broadcast_perf", "-g", "3", "-n", "7", "-w", "2", "-c", "0", "-r", "2", "-d", "half", "-T", "90")
    assert (t["workload"], t["ranks"], t["iterations"], t["warmup"], t["check"], t["root"]) == \
        ("broadcast", 3, 7, 2, False, 2)
    assert t["dtypes"] == ["float16"] and t["timeout"] == 90
    t = only_test("allreduce", "-d", "all", "-o", "all", "-z", "0", "-a", "1", "-t", "1")
    assert len(t["dtypes"]) == 8 and t["ops"] == ["sum", "prod", "max", "min", "avg"]
    for flags, match in ((["-z", "1"], "-z 1"), (["-c", "3"], "-c 3"), (["-a", "0"], "-a 0"),
                         (["-d", "uint64"], "uint64"), (["-J", "out.json"], "-J")):
        with pytest.raises(UsageError, match=match):
            build("allreduce", flags)


def test_perftest_flags_map_to_spec_fields() -> None:
    t = only_test("ib_write_bw", "-d", "mlx5_0", "-i", "2", "-x", "3", "-m", "4096", "-t", "64", "-Q", "8",
                  "-l", "4", "-I", "64", "-D", "2", "--use_cuda=1")
    assert t["rdma"] == {**t["rdma"], "device": "mlx5_0", "port": 2, "gid_index": 3, "mtu": 4096, "tx_depth": 64,
                         "cq_mod": 8, "post_list": 4, "max_inline": 64, "cuda_device": 1}
    assert (t["memory"], t["duration"], t["iterations"]) == ("cuda", 2.0, None)
    assert only_test("ib_write_bw")["sizes"] == [65536]
    assert only_test("ib_write_lat", "--use_hugepages")["memory"] == "hugepages"
    all_sizes = only_test("ib_write_bw", "-a")["sizes"]
    assert all_sizes[0] == 2 and all_sizes[-1] == 1 << 23 and len(all_sizes) == 23
    with pytest.raises(UsageError, match="ib_write_lat has no -t"):
        build("ib_write_lat", ["-t", "4"])
    with pytest.raises(UsageError, match="drop the server name"):
        build("ib_write_bw", ["node-b"])
    with pytest.raises(SpecError, match=r"-m 1000 \(rdma.mtu\)"):
        build("ib_write_bw", ["-m", "1000"])


def test_print_spec_round_trips_in_process(tmp_path: Path) -> None:
    for workload, flags in (("allreduce", AR_FLAGS), ("reduce_scatter", ["-b", "1K", "-e", "8K", "-d", "all"]),
                            ("ib_write_bw", ["--transport", "tcp", "-a", "-n", "50", "--warmup", "2"])):
        spec, text, _ = build(workload, flags)
        path = tmp_path / f"{workload}.yaml"
        path.write_text(text)
        assert json.dumps(spec_to_dict(load_spec(path))["tests"]) == json.dumps(spec_to_dict(spec)["tests"])


def test_run_only_flags_stay_out_of_the_spec() -> None:
    flags = ["-n", "5", "--results", "r", "--run-id=x", "--no-progress", "--print-spec", "--allow-failures"]
    assert shaping_flags(flags) == ["-n", "5"]
    assert build("allreduce", flags)[1] == build("allreduce", ["-n", "5"])[1]
