"""Spec validation: good specs load, bad ones give one line per problem with file:line, field and fix.

The wording of each reported case is checked in tests/test_spec_errors.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchfab.backends.registry import load_spec, load_spec_text  # the spec as a user gets it checked
from benchfab.errors import SpecError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
name: demo
defaults:
  iterations: 10
  warmup: 2
tests:
  - name: ar
    workload: allreduce
    ranks: 3
    sizes: {min: 8, max: 1M, factor: 4}
    dtypes: [float32, bfloat16]
    ops: [sum, max]
  - workload: all_gather
    sizes: [1K, 64K]
    in_place: false
  - workload: broadcast
    root: 1
    duration: 500ms
"""


def test_good_spec_resolves_defaults_and_sizes() -> None:
    spec = load_spec_text(GOOD, source="demo.yaml")
    ar, ag, bc = spec.resolved_tests()
    assert ar.sizes == [8, 32, 128, 512, 2048, 8192, 32768, 131072, 524288]
    assert ar.dtypes == ["float32", "bfloat16"] and ar.ops == ["sum", "max"]
    assert ar.iterations == 10 and ar.warmup == 2 and ar.ranks == 3
    assert ag.sizes == [1024, 65536] and ag.in_place == [False] and ag.ops == ["none"]
    assert ag.name == "all_gather-1"
    assert bc.duration == 0.5 and bc.iterations is None and bc.root == 1
    assert ar.in_place == [False, True]


@pytest.mark.parametrize("path", sorted((ROOT / "jobs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_specs_validate(path: Path) -> None:
    if "kind:" in path.read_text():  # Kubernetes manifests live in jobs/ too
        pytest.skip("a Kubernetes manifest, not a sweep spec")
    load_spec(path)


BAD = [
    ("tests:\n  - workload: allreduce\n    sizez: {min: 8, max: 1M}\n", 3, "tests[0].sizez", "did you mean 'sizes'"),
    ("tests:\n  - sizes: {min: 8M, max: 1K}\n", 2, "tests[0].sizes", "larger than max"),
    ("tests:\n  - workload: allreduc\n", 2, "tests[0].workload", "'allreduce'"),
    ("tests:\n  - ranks: two\n", 2, "tests[0].ranks", "expected a whole number, got 'two'"),
    ("tests:\n  - ranks: 0\n", 2, "tests[0].ranks", "ranks must be at least 1, got 0"),
    ("tests:\n  - sizes: [8, 1Q]\n", 2, "tests[0].sizes[1]", "1Q"),
    ("name: x\n", 1, "tests", "missing"),
    ("defaults:\n  iterations: 0\ntests:\n  - ranks: 2\n", 2, "defaults.iterations", "at least 1"),
    ("tests:\n  - workload: broadcast\n    ranks: 2\n    root: 3\n", 4, "tests[0].root", "does not exist"),
    ("tests:\n  - dtypes: [float32, foo]\n", 2, "tests[0].dtypes[1]", "'foo'"),
    ("tests:\n  - iterations: 10\n    duration: 1s\n", 3, "tests[0].duration", "both given"),
    ("tests:\n  - placement: {pattern: all-pairs}\n", 2, "tests[0].placement", "backend: kubernetes"),
    ("tests:\n  - in_place: maybe\n", 2, "tests[0].in_place", "true, false or both"),
    ("tests:\n  - profiles: [ib]\n", 2, "tests[0].profiles", "unknown profile 'ib'"),
    ("tests:\n  - timeout: soon\n", 2, "tests[0].timeout", "duration"),
    ("tests:\n  - sizes: {min: 8, max: 1G, step: 1}\n", 2, "tests[0].sizes", "more than 512"),
    ("bogus: 1\ntests:\n  - ranks: 2\n", 1, "bogus", "unknown key"),
    ("backend: kubernetes\ntests:\n  - {ranks: 2, placement: {pattern: group, nodes: 2}}\n", 1, "image", "worker image"),
    ("backend: kubernetes\nimage: x\ntests:\n  - ranks: 2\n", 4, "tests[0]", "needs a placement"),
    ("tests:\n  - name: a\n  - name: a\n", 3, "tests[1].name", "already used"),
    ("tests: []\n", 1, "tests", "the list is empty"),
    # point-to-point
    ("tests:\n  - {workload: rdma_write_bw, ranks: 3}\n", 2, "tests[0].ranks", "exactly 2"),
    ("tests:\n  - {workload: rdma_write_bw, memory: cuda-peermem, transport: tcp}\n", 2,
     "tests[0].memory", "host memory only"),
    ("tests:\n  - {workload: rdma_write_lat, memory: cuda-dmabuf}\n", 2, "tests[0].memory", "polls"),
    ("tests:\n  - {workload: rdma_write_bw, memory: cuda, device: cpu}\n", 2, "tests[0].device",
     "needs a GPU"),
    ("tests:\n  - {workload: rdma_write_bw, memory: gpu}\n", 2, "tests[0].memory", "use one of: host, hugepages, cuda, cuda-dmabuf"),
    ("tests:\n  - {workload: rdma_write_lat, memory: hugepages, transport: tcp}\n", 2, "tests[0].memory",
     "plain host memory only"),
    ("tests:\n  - {workload: rdma_write_bw, engine: perftest, transport: tcp}\n", 2, "tests[0].engine",
     "verbs only"),
]


@pytest.mark.parametrize("text, line, field, words", BAD, ids=[b[2] + "-" + str(i) for i, b in enumerate(BAD)])
def test_bad_spec_points_at_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, source="bad.yaml")
    err = info.value
    message = str(err)
    assert "\n" not in message
    assert message.startswith(f"bad.yaml:{line}: {field}: "), message
    assert words in message
    assert "(fix: " in message and message.endswith(")"), message
    assert err.exit_code == 2
    assert err.problems == (err,)


@pytest.mark.parametrize(
    "text, line, words",
    [("tests: [\n", 2, "YAML syntax"), ("tests:\n  - ranks: 2\n    ranks: 3\n", 3, "duplicate key"), ("- 1\n", 1, "a list"), ("", 1, "empty")],
    ids=["syntax", "duplicate", "list", "empty"],
)
def test_yaml_level_errors(text: str, line: int, words: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, source="y.yaml")
    assert str(info.value).startswith(f"y.yaml:{line}: ")
    assert words in str(info.value)
    assert "(fix: " in str(info.value)


def test_cli_validate_gives_one_line_and_exit_2(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec("tests:\n  - workload: allreduce\n    sizes: {min: 8M, max: 1K}\n")
    proc = cli("validate", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"{path}:3: tests[0].sizes:" in lines[0]
    debug = cli("--debug", "validate", str(path))
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_cli_missing_file(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("validate", "does/not/exist.yaml")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "benchfab: error: does/not/exist.yaml: no such file (fix: check the path; specs usually live in jobs/)"


# --- junk: whatever the input, a SpecError or a spec, never another exception ---

KEYS = ["name", "backend", "tests", "defaults", "profiles", "workload", "ranks", "sizes", "min", "max", "factor",
        "step", "dtypes", "ops", "iterations", "duration", "warmup", "in_place", "check", "root", "timeout",
        "device", "cuda_graph", "placement", "pattern", "nodes", "repeat", "fabric", "mode", "image"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=12), st.sampled_from(["8", "1K", "64M", "1G", "both", "sum", "float32", "allreduce", "1s", "-1"]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=25,
)


# Every problem is one line: file[:line]: [field: ]what (fix: how). Several problems: several lines.
PROBLEM_LINE = re.compile(r"^junk\.yaml(:\d+)?: .+ \(fix: .+\)$")


def _check_outcome(text: str) -> None:
    try:
        load_spec_text(text, source="junk.yaml")
    except SpecError as exc:
        lines = str(exc).split("\n")
        assert len(lines) == len(exc.problems)
        for line in lines:
            assert PROBLEM_LINE.match(line), line
        assert "Input should" not in str(exc) and "<block" not in str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_junk_structures_never_traceback(doc: dict) -> None:  # type: ignore[type-arg]
    _check_outcome(yaml.safe_dump(doc))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=4).map(lambda d: {"tests": [d]}))
def test_junk_tests_never_traceback(doc: dict) -> None:  # type: ignore[type-arg]
    _check_outcome(yaml.safe_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_junk_text_never_tracebacks(text: str) -> None:
    _check_outcome(text)


def test_spec_literals_match_the_catalog() -> None:
    import typing

    from benchfab.spec import DType, RedOp
    from benchfab.workloads.catalog import DTYPES, REDOPS

    assert set(typing.get_args(DType)) == set(DTYPES)
    assert set(typing.get_args(RedOp)) == set(REDOPS)
