"""End to end: benchfab sweep on the local backend with real gloo ranks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import benchfab
from benchfab.capabilities import visible_gpus
from benchfab.workloads.collective_kinds import busbw_factor
from tests.helpers import ROOT, worker_pids_of

pytestmark = pytest.mark.slow

ALLREDUCE_SPEC = """\
name: e2e
defaults: {iterations: 5, warmup: 1, timeout: 120s}
tests:
  - name: ar2
    workload: allreduce
    ranks: 2
    sizes: [8, 4K, 256K]
  - name: ar3
    workload: allreduce
    ranks: 3
    sizes: [8, 4K, 256K]
    dtypes: [float32, int32]
"""


def _sweep(cli, spec: Path, results: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return cli("sweep", str(spec), "--results", str(results), "--no-progress", *extra, env=env)


def test_allreduce_sweep_two_and_three_ranks(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec(ALLREDUCE_SPEC)
    proc = _sweep(cli, spec, tmp_path / "res", "--run-id", "r1")
    assert proc.returncode == 0, proc.stderr
    assert "out-of-place" in proc.stdout and "#wrong" in proc.stdout and "(GB/s)" in proc.stdout
    run = benchfab.load_run("r1", tmp_path / "res")
    s = run.summary
    assert sorted(run.tests["test_id"]) == ["000-ar2", "001-ar3-float32", "001-ar3-int32"]
    assert set(run.tests["status"]) == {"ok"}
    assert len(s) == 3 * 3 * 2  # tests x sizes x in-place flags
    assert (s["status"] == "ok").all() and (s["wrong"] == 0).all()
    for _, row in s.iterrows():
        n = int(row["ranks"])
        assert row["time_s"] > 0
        assert row["algbw_Bps"] == pytest.approx(row["size_bytes"] / row["time_s"], rel=1e-9)
        assert row["busbw_Bps"] == pytest.approx(row["algbw_Bps"] * 2 * (n - 1) / n, rel=1e-9)
    assert set(s.loc[s["test_id"] == "001-ar3-int32", "dtype"]) == {"int32"}
    # raw: one row per timed iteration, max over ranks
    assert len(run.raw) == len(s) * 5
    per_size = run.raw.groupby(["test_id", "size_bytes", "in_place"])["time_s"].mean()
    assert (per_size > 0).all()
    meta = run.meta
    assert meta["status"] == "complete" and meta["schema_version"] == 1
    assert meta["versions"]["torch"] and meta["versions"]["benchfab"] == benchfab.__version__
    assert meta["inventory"]["nodes"][0]["cpus"] >= 1
    assert meta["spec"]["tests"][1]["ranks"] == 3
    used = json.loads(run.tests.set_index("test_id").loc["001-ar3-int32", "used"])
    assert {r["rank"] for r in used["ranks"]} == {0, 1, 2}
    assert all(r["pg_backend"] in ("gloo", "nccl") for r in used["ranks"])
    # load_runs sees it too
    allruns = benchfab.load_runs(tmp_path / "res")
    assert len(allruns) == len(s) and "git_revision" in allruns


def test_other_collectives_use_their_busbw_factors(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("""\
name: coll
defaults: {iterations: 3, warmup: 1, ranks: 3, sizes: [3K, 96K]}
tests:
  - {workload: all_gather}
  - {workload: reduce_scatter, ops: [sum, max]}
  - {workload: broadcast, root: 2}
  - {workload: all_to_all}
  - {workload: reduce, root: 1, ops: [sum, min]}
  - {workload: gather, root: 2}
  - {workload: scatter, root: 1}
  - {workload: sendrecv}
""")
    proc = _sweep(cli, spec, tmp_path / "res", "--run-id", "c1")
    assert proc.returncode == 0, proc.stderr
    run = benchfab.load_run("c1", tmp_path / "res")
    assert set(run.tests["status"]) == {"ok"}, run.tests[["test_id", "reason"]]
    ok = run.summary[run.summary["status"] == "ok"]
    assert set(ok["workload"]) == {"all_gather", "reduce_scatter", "broadcast", "all_to_all", "reduce", "gather",
                                   "scatter", "sendrecv"}
    assert (ok["wrong"] == 0).all()
    # nccl-tests' factors on 3 ranks, written out: gather/scatter (n-1)/n, reduce/sendrecv 1
    assert {w: busbw_factor(w, 3) for w in ("gather", "scatter", "reduce", "sendrecv")} == pytest.approx(
        {"gather": 2 / 3, "scatter": 2 / 3, "reduce": 1.0, "sendrecv": 1.0})
    for _, row in ok.iterrows():
        assert row["busbw_Bps"] == pytest.approx(row["algbw_Bps"] * busbw_factor(row["workload"], 3), rel=1e-9)
        if row["workload"] in ("all_gather", "reduce_scatter", "all_to_all", "gather", "scatter"):
            assert row["size_bytes"] == row["count"] * 4 * 3  # total size, as nccl-tests prints it
        else:
            assert row["size_bytes"] == row["count"] * 4
    assert set(ok.loc[ok["workload"] == "reduce", "root"]) == {1} and set(ok.loc[ok["workload"] == "gather", "root"]) == {2}
    assert set(ok.loc[ok["workload"] == "sendrecv", "root"]) == {-1}
    skipped = run.summary[run.summary["status"] == "skipped"]
    assert set(skipped["workload"]) == {"all_to_all", "sendrecv"} and skipped["in_place"].all()


def test_hung_rank_is_killed_and_sweep_goes_on(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("""\
name: hang
defaults: {iterations: 3, warmup: 1, sizes: [1K]}
tests:
  - {name: stuck, timeout: 6s}
  - {name: fine}
""")
    started = time.monotonic()
    proc = _sweep(cli, spec, tmp_path / "res", "--run-id", "h1", env={"BENCHFAB_TEST_HANG": "000-stuck:1"})
    assert proc.returncode == 1, proc.stderr  # stored, but a test timed out
    assert time.monotonic() - started < 60
    run = benchfab.load_run("h1", tmp_path / "res")
    tests = run.tests.set_index("test_id")
    assert tests.loc["000-stuck", "status"] == "timeout"
    assert "timed out after 6s" in tests.loc["000-stuck", "reason"]
    assert "[rank" in tests.loc["000-stuck", "log_tail"]
    assert tests.loc["001-fine", "status"] == "ok"
    assert "TIMEOUT" in proc.stdout
    assert worker_pids_of("BENCHFAB_TEST_HANG=000-stuck:1") == []


def test_exit_codes_tell_scripts_whether_every_test_was_ok(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """0: all ok; 1: stored, but a test was not ok (here: wrong data, then a test this
    host cannot run, skipped at plan time); --allow-failures: 0 all the same; 3: no test
    can run here, refused before a run exists."""
    ok = write_spec("name: e\ntests:\n  - {name: fine, sizes: [1K], iterations: 2, warmup: 0}\n", name="ok.yaml")
    assert _sweep(cli, ok, tmp_path / "res", "--run-id", "e0").returncode == 0

    corrupt = _sweep(cli, ok, tmp_path / "res", "--run-id", "e1", env={"BENCHFAB_TEST_CORRUPT": "000-fine:1"})
    assert corrupt.returncode == 1, corrupt.stderr
    test = benchfab.load_run("e1", tmp_path / "res").tests.set_index("test_id").loc["000-fine"]
    assert test["status"] == "failed" and "wrong element(s) in the data check at size(s) 1024 B" in test["reason"]
    assert "Out of bounds values : 2 FAILED" in corrupt.stdout  # out-of-place and in-place

    mixed = write_spec("name: f\ntests:\n  - {name: needs-gpu, device: cuda, sizes: [1K], iterations: 2}\n"
                       "  - {name: ok, sizes: [1K], iterations: 2}\n", name="mixed.yaml")
    if visible_gpus() >= 2:
        pytest.skip("this host has the GPUs; the skip below needs one that does not")
    proc = _sweep(cli, mixed, tmp_path / "res", "--run-id", "f1")
    assert proc.returncode == 1
    assert "000-needs-gpu will be skipped: device: cuda needs 2 GPU(s)" in proc.stdout
    tests = benchfab.load_run("f1", tmp_path / "res").tests.set_index("test_id")
    assert tests.loc["000-needs-gpu", "status"] == "skipped"
    assert tests.loc["001-ok", "status"] == "ok"
    allowed = _sweep(cli, mixed, tmp_path / "res", "--run-id", "f2", "--allow-failures")
    assert allowed.returncode == 0 and "1 test(s) not ok; exit 0 because of --allow-failures" in allowed.stderr

    gpu_only = write_spec("name: g\ntests:\n  - {device: cuda, sizes: [1K]}\n", name="gpu.yaml")
    refused = _sweep(cli, gpu_only, tmp_path / "res", "--run-id", "g1")
    assert refused.returncode == 3
    assert refused.stderr.strip().startswith("benchfab: error: none of the 1 test(s) can run on backend local")
    assert not (tmp_path / "res" / "g1").exists()


SLOW_SPEC = """\
name: slow
defaults: {warmup: 1, sizes: [1K]}
tests:
  - {name: first, iterations: 3}
  - {name: long, duration: 3s, sizes: [1K, 2K, 4K], in_place: false}
  - {name: last, iterations: 3}
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_kills_every_rank_keeps_results_and_resumes(write_spec, tmp_path: Path, cli, sig: int) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec(SLOW_SPEC)
    results = tmp_path / "res"
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchfab", "sweep", str(spec), "--results", str(results), "--run-id", "i1", "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    marker = f"BENCHFAB_PARENT_PID={proc.pid}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if list((results / "i1" / "tests").glob("*.parquet")) and len(worker_pids_of(marker)) == 2:  # 000-first stored
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the long test's ranks never started")
    # Let the long test measure its first size (3 s): rank 0's log shows the result it sent.
    rank0_log = results / "i1" / "logs" / "001-long.rank0.log"
    while time.monotonic() < deadline:
        if rank0_log.exists() and '"type":"result"' in rank0_log.read_text(errors="replace"):
            break
        time.sleep(0.2)
    time.sleep(0.5)  # the controller receives it over the rank's pipe
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resume" in err
    time.sleep(0.5)
    assert worker_pids_of(marker) == []
    run = benchfab.load_run("i1", results)
    assert run.meta["status"] == "interrupted"
    tests = run.tests.set_index("test_id")
    assert tests.loc["000-first", "status"] == "ok"
    assert tests.loc["001-long", "status"] == "interrupted"
    first_ended = tests.loc["000-first", "ended"]
    # Its first size is stored; its ranks never reported their transport: "-" and why, never "None".
    assert 1024 in set(run.summary[run.summary["test_id"] == "001-long"]["size_bytes"])
    shown = cli("show", "i1", "--results", str(results))
    assert shown.returncode == 0 and "None" not in shown.stdout
    assert ("# 001-long: allreduce, 2 ranks, - (-: its ranks were stopped before they reported the transport; "
            "the test is interrupted)") in shown.stdout

    resumed = cli("sweep", "--resume", "i1", "--results", str(results), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 already done" in resumed.stdout
    run = benchfab.load_run("i1", results)
    tests = run.tests.set_index("test_id")
    assert set(tests["status"]) == {"ok"}
    assert tests.loc["000-first", "ended"] == first_ended  # not rerun
    assert run.meta["status"] == "complete" and len(run.meta["resumes"]) == 1
    assert sorted(run.summary["test_id"].unique()) == ["000-first", "001-long", "002-last"]
    # The interrupted attempt's rows went with it: the long test's 3 sizes once, from the resume.
    assert len(run.tests) == 3 and len(run.summary[run.summary["test_id"] == "001-long"]) == 3
    assert (run.summary["time_s"] > 0).all() and len(run.raw.groupby(["test_id", "size_bytes", "in_place", "iteration"])) == len(run.raw)


def test_resume_refuses_a_different_spec(cli, write_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = write_spec("name: r\ntests:\n  - {sizes: [8], iterations: 1, warmup: 0}\n")
    assert _sweep(cli, spec, tmp_path / "res", "--run-id", "r1").returncode == 0
    other = write_spec("name: r\ntests:\n  - {sizes: [16], iterations: 1}\n", name="other.yaml")
    proc = cli("sweep", str(other), "--resume", "r1", "--results", str(tmp_path / "res"))
    assert proc.returncode == 2 and "differs from the spec" in proc.stderr
    again = _sweep(cli, spec, tmp_path / "res", "--run-id", "r1")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_multi_node_shape_runs_gpus_per_node_local_ranks_per_simulated_node(  # type: ignore[no-untyped-def]
        cli, write_spec, tmp_path: Path) -> None:
    """placement {group, nodes: 2, gpus_per_node: 2} on the local backend: 4 ranks, 2 per simulated
    node, with torchrun's LOCAL_RANK / LOCAL_WORLD_SIZE, over real gloo (the pod shape's code path)."""
    spec = write_spec("""\
name: shape
defaults: {iterations: 3, warmup: 1, sizes: [4K, 64K], timeout: 120s}
tests:
  - {name: ar, workload: allreduce, placement: {pattern: group, nodes: 2, gpus_per_node: 2}}
""")
    proc = _sweep(cli, spec, tmp_path / "res", "--run-id", "g1")
    assert proc.returncode == 0, proc.stderr
    run = benchfab.load_run("g1", tmp_path / "res")
    assert set(run.tests["status"]) == {"ok"}, run.tests[["test_id", "reason"]]
    s = run.summary
    assert set(s["ranks"]) == {4} and (s["wrong"] == 0).all()
    assert s["busbw_Bps"].iloc[0] == pytest.approx(s["algbw_Bps"].iloc[0] * 2 * 3 / 4, rel=1e-9)
    used = json.loads(run.tests.iloc[0]["used"])["ranks"]
    where = sorted((r["rank"], r["node"], r["local_rank"], r["local_world"]) for r in used)
    assert where == [(0, "node0", 0, 2), (1, "node0", 1, 2), (2, "node1", 0, 2), (3, "node1", 1, 2)]
    # what NCCL did is a column (none here: gloo), and the node's software is in run.json
    assert {"nccl_network", "nccl_hcas", "nccl_gdr", "nccl_merged_nics"} <= set(s.columns)
    assert s["nccl_network"].isna().all()
    import platform
    assert run.meta["inventory"]["nodes"][0]["software"]["kernel"] == platform.release()
