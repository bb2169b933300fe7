"""Property-based fuzzing of what benchfab reads from elsewhere (issue #22 item 9): the spec
loader, both importers and the store's readers, fed real inputs mutated the way an attacker,
a damaged disk or a careless edit would. Whatever comes out is a result or one of benchfab's
own errors (a BenchfabError: one line, exit 2 or 1), never another exception (a traceback),
never a hang (each example runs under an alarm), and never a file written outside the
results directory.

The lane is bounded (max_examples, and each example is small): under a minute on 2 cores.
BENCHFAB_FUZZ_SCALE=N runs N times as many examples.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import benchfab
from benchfab.cli import main
from benchfab.errors import BenchfabError
from benchfab.spec import load_spec_text
from benchfab.store import check_run, list_runs, load_runs, read_columns, read_table, summary_chunks
from tests.helpers import ROOT

EXAMPLE = ROOT / "results" / "example"
SPARK = ROOT / "results" / "fabrics" / "sources" / "spark-pr103-roce-allreduce-first.txt"
NCCL_JSON = ROOT / "tests" / "data" / "nccl_tests" / "dgx-spark-103-all-reduce.json"
PERFTEST = [ROOT / "results" / "fabrics" / "sources" / "ucx-8852-ib-read-bw.txt",
            ROOT / "tests" / "rdma" / "data" / "ib_write_lat_client.txt"]
EXAMPLE_SPEC = (ROOT / "jobs" / "local.yaml").read_text()
HANG_S = 20  # an example that takes longer hangs (the slowest legitimate one takes a second or two)

# BENCHFAB_FUZZ_SCALE=20 runs twenty times as many examples (a longer hunt by hand; CI runs 1).
SCALE = max(1, int(os.environ.get("BENCHFAB_FUZZ_SCALE", "1")))
FUZZ = settings(max_examples=40 * SCALE, deadline=None, suppress_health_check=list(HealthCheck), database=None)
SPEC_FUZZ = settings(FUZZ, max_examples=60 * SCALE)
STORE_FUZZ = settings(FUZZ, max_examples=10 * SCALE)  # each example copies a run and reads it a dozen ways

# Cells an attacker or a damaged copy puts where a number or a name belongs.
HOSTILE_WORDS = ["x/../../../../tmp/ESCAPED", "../x", "-1", "-35.15", "1e400", "nan", "inf", "-inf", "0",
                 "100000000000000000000000000", "9" * 40, "1.5", "N/A", "\x00", "\x1b[31m", "<script>", "a\tb",
                 "float", "half", "sum", "-1", "é", "\u2028", "{", "}", "[", "\"", "'", "#", "#  Rank 0 Group 0 Pid 1 on "]


@contextlib.contextmanager
def _no_hang(seconds: int = HANG_S) -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _files(root: Path) -> dict[str, float]:
    return {str(p): p.lstat().st_mtime for p in root.rglob("*")}


def _mutate_lines(text: str, data: st.DataObject) -> str:
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        i = data.draw(st.integers(0, max(0, len(lines) - 1)), label="line")
        cells = lines[i].split() if lines else []
        how = data.draw(st.sampled_from(["cell", "cell", "drop", "dup", "append", "truncate"]), label="how")
        if how == "cell" and cells:
            j = data.draw(st.integers(0, len(cells) - 1), label="cell")
            cells[j] = data.draw(st.sampled_from(HOSTILE_WORDS) | st.text(max_size=12), label="word")
            lines[i] = " ".join(cells)
        elif how == "drop" and lines:
            del lines[i]
        elif how == "dup" and lines:
            lines.insert(i, lines[i])
        elif how == "append":
            lines.append(data.draw(st.text(max_size=80), label="line text"))
        elif how == "truncate" and lines:
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])), label="cut")]
    return "\n".join(lines) + "\n"


def _import(root: Path, tool: str, text: str | bytes, extra: list[str]) -> int:
    results = root / "results"
    report = root / "report.txt"
    report.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    before = _files(root)
    with _no_hang():
        code = main(["import", tool, str(report), "--profile", "p", "--results", str(results), *extra])
    after = _files(root)
    outside = {p for p in set(after) - set(before) if not p.startswith(str(results))}
    changed = {p for p in before if p in after and before[p] != after[p] and not p.startswith(str(results))}
    assert not outside and not changed, (outside, changed)  # nothing written outside the store
    assert code in (0, 2), code
    if code == 0:  # what was stored reads back and shows
        (run,) = list_runs(results)
        benchfab.load_run(run)
        with _no_hang():
            assert main(["show", run.name, "--results", str(results)]) == 0
    assert not [p for p in results.glob(".*")] if results.exists() else True  # no staging left
    return code


def _tmp() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="benchfab-fuzz-")


@FUZZ
@given(st.data())
def test_fuzz_nccl_tests_text_import(capsys: pytest.CaptureFixture[str], data: st.DataObject) -> None:
    text = _mutate_lines(SPARK.read_text(), data)
    with _tmp() as tmp:
        _import(Path(tmp), "nccl-tests", text, ["--fabric", "roce"])
    capsys.readouterr()


def _json_value(depth: int = 2) -> st.SearchStrategy[Any]:
    leaves = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
              | st.sampled_from(HOSTILE_WORDS) | st.text(max_size=10))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                        max_leaves=6)


@FUZZ
@given(st.data())
def test_fuzz_nccl_tests_json_import(capsys: pytest.CaptureFixture[str], data: st.DataObject) -> None:
    doc = json.loads(NCCL_JSON.read_text())
    for _ in range(data.draw(st.integers(1, 5), label="edits")):
        where = data.draw(st.sampled_from(["top", "result", "half", "config", "device"]), label="where")
        target: Any = doc
        results = [r for r in doc.get("results") or [] if isinstance(r, dict)] if isinstance(doc.get("results"), list) else []
        if where in ("result", "half") and results:
            target = results[data.draw(st.integers(0, len(results) - 1), label="result")]
            if where == "half":
                target = target.get("out_of_place")
        elif where in ("config", "device"):
            target = doc.get("config")
            devices = target.get("devices") if isinstance(target, dict) else None
            if where == "device" and isinstance(devices, list) and devices:
                target = devices[0]
        if isinstance(target, dict):
            keys = list(target) + ["size", "type", "redop", "time", "hostname", "args", "results"]
            target[data.draw(st.sampled_from(keys), label="key")] = data.draw(_json_value(), label="value")
    with _tmp() as tmp:
        _import(Path(tmp), "nccl-tests", json.dumps(doc, allow_nan=True), ["--fabric", "roce"])
    capsys.readouterr()


@FUZZ
@given(st.data())
def test_fuzz_perftest_import(capsys: pytest.CaptureFixture[str], data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(PERFTEST), label="report")
    text = _mutate_lines(source.read_text(), data)
    with _tmp() as tmp:
        _import(Path(tmp), "perftest", text, ["--hosts", "a,b"])
    capsys.readouterr()


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_fuzz_import_of_any_bytes(capsys: pytest.CaptureFixture[str], blob: bytes) -> None:
    with _tmp() as tmp:
        _import(Path(tmp), "nccl-tests", blob, ["--fabric", "roce", "--workload", "all_reduce_perf"])
    capsys.readouterr()


SPEC_KEYS = ["name", "description", "backend", "results_dir", "image", "profiles", "defaults", "tests", "nodes",
             "kubernetes", "workload", "ranks", "sizes", "dtypes", "ops", "iterations", "duration", "warmup",
             "in_place", "placement", "pattern", "timeout", "transport", "engine", "memory", "rdma", "env", "<<",
             "min", "max", "factor", "fabric", "mode", "gpus_per_node", "repeat"]


@SPEC_FUZZ
@given(st.data())
def test_fuzz_spec_loader(data: st.DataObject) -> None:
    """Real specs with lines edited, and structured documents of spec keys with hostile values."""
    if data.draw(st.booleans(), label="structured"):
        value = st.recursive(
            st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.sampled_from(HOSTILE_WORDS + SPEC_KEYS)
            | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(SPEC_KEYS), inner, max_size=4),
            max_leaves=12)
        doc = data.draw(st.dictionaries(st.sampled_from(SPEC_KEYS), value, max_size=5), label="doc")
        text = json.dumps(doc, allow_nan=True)  # JSON is YAML
    else:
        text = _mutate_lines(EXAMPLE_SPEC, data)
    with _no_hang():
        try:
            spec = load_spec_text(text, source="fuzz.yaml")
        except BenchfabError as exc:
            assert str(exc) and all(line.startswith("fuzz.yaml") for line in str(exc).splitlines()), str(exc)
            return
    spec.resolved_tests()


# -- the store's readers -------------------------------------------------------------------

def _damage_meta(run: Path, data: st.DataObject) -> None:
    try:
        meta = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        return  # damaged already
    key = data.draw(st.sampled_from(list(meta) + ["status", "started", "spec", "counts", "planned_tests"]), label="key")
    meta[key] = data.draw(_json_value(), label="value")
    (run / "run.json").write_text(json.dumps(meta, allow_nan=True))


def _damage_part(run: Path, data: st.DataObject) -> None:
    table = data.draw(st.sampled_from(["summary", "raw", "tests"]), label="table")
    parts = sorted(p for p in (run / table).glob("*.parquet") if p.is_file() and not p.is_symlink())
    if not parts:
        return
    part = data.draw(st.sampled_from(parts), label="part")
    try:
        frame = pd.read_parquet(part)
    except Exception:  # noqa: BLE001 - damaged already
        return
    column = data.draw(st.sampled_from(list(frame.columns)), label="column")
    kind = data.draw(st.sampled_from(["text", "huge", "negative", "nan", "list", "none", "bool", "drop"]), label="kind")
    values = {"text": "Traceback (most recent call last)", "huge": 2**62, "negative": -1, "nan": float("nan"),
              "list": None, "none": None, "bool": True}
    if kind == "drop":
        frame = frame.drop(columns=[column])
    elif kind == "list":
        frame[column] = [[1, 2]] * len(frame)
    else:
        frame[column] = values[kind]
    frame.to_parquet(part)


def _damage_file(run: Path, data: st.DataObject) -> None:
    files = sorted(p for p in run.rglob("*") if p.is_file() and not p.is_symlink())
    if not files:
        return
    victim = data.draw(st.sampled_from(files), label="file")
    how = data.draw(st.sampled_from(["fifo", "devzero", "dir", "delete", "bytes", "cut", "link-out"]), label="how")
    if how == "cut":
        victim.write_bytes(victim.read_bytes()[: data.draw(st.integers(0, 200), label="keep")])
        return
    victim.unlink()
    if how == "fifo":
        os.mkfifo(victim)
    elif how == "devzero":
        victim.symlink_to("/dev/zero")
    elif how == "dir":
        victim.mkdir()
    elif how == "bytes":
        victim.write_bytes(data.draw(st.binary(max_size=64), label="bytes"))
    elif how == "link-out":
        victim.symlink_to("/etc/hostname")


DAMAGE: dict[str, Callable[[Path, st.DataObject], None]] = {"meta": _damage_meta, "part": _damage_part,
                                                              "file": _damage_file}


def _readers(root: Path, run: Path) -> list[Callable[[], object]]:
    return [
        lambda: benchfab.load_run(run),
        lambda: check_run(run),
        lambda: [read_columns(run, t, cols) for t, cols in (("summary", ["test_id", "size_bytes", "busbw_Bps", "hosts"]),
                                                             ("raw", ["test_id", "time_s"]),
                                                             ("tests", ["test_id", "status", "used"]))],
        lambda: [chunk.rows for chunk in summary_chunks(run, read_table(run, "tests"))],
        lambda: load_runs(root),
    ]


@STORE_FUZZ
@given(st.data())
def test_fuzz_store_readers(capsys: pytest.CaptureFixture[str], data: st.DataObject) -> None:
    with _tmp() as tmp:
        root = Path(tmp) / "results"
        good = root / "20261201-000001-good"
        run = root / "20261201-000002-fuzzed"
        for dest in (good, run):
            shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("report"))
        for _ in range(data.draw(st.integers(1, 3), label="damages")):
            DAMAGE[data.draw(st.sampled_from(sorted(DAMAGE)), label="damage")](run, data)
        before = _files(Path(tmp))
        for read in _readers(root, run):
            with _no_hang(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # load_runs warns about the damaged run: expected
                try:
                    read()
                except BenchfabError:
                    pass
        for command in (["show", run.name, "-o", data.draw(st.sampled_from(["text", "json"]), label="show")],
                        ["runs"], ["export", run.name, "--openmetrics"],
                        data.draw(st.sampled_from([["compare", good.name, run.name], ["compare", "--history", "2", run.name]]),
                                  label="compare")):
            with _no_hang():
                code = main([*command, "--results", str(root)])
            assert code in (0, 1, 2), (command, code)
            err = capsys.readouterr().err
            assert "Traceback" not in err
        assert main(["show", good.name, "--results", str(root)]) == 0  # the other run untouched
        capsys.readouterr()
        new = {p for p in set(_files(Path(tmp))) - set(before) if not p.startswith(str(root))}
        assert not new, new  # nothing written outside the results directory
