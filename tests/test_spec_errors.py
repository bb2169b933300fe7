"""Spec errors in benchfab's own words, each with a fix, and every problem of a file at once.

Issue 9, item 2: messages used to read like pydantic or PyYAML ("Input should be
greater than or equal to 1", "expected <block end>, but found '<block mapping
start>'"), a binary file gave a codec message, and only the first problem of a
file was reported.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest

from benchfab.backends.registry import load_spec, load_spec_text  # the spec as a user gets it checked
from benchfab.errors import BenchfabError, SpecError, SpecErrors

LINE = re.compile(r"^(?P<src>[^:]+):(?P<line>\d+): (?:(?P<field>[\w.\[\]]+): )?(?P<what>.+) \(fix: (?P<fix>.+)\)$")


def error_of(text: str, source: str = "s.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, source=source)
    return info.value


def one_line(text: str) -> str:
    err = error_of(text)
    message = str(err)
    assert "\n" not in message, message
    assert LINE.match(message), message
    return message


# --- values: what is wrong, in our words, and how to fix it ---------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("tests:\n  - ranks: 0\n", "s.yaml:2: tests[0].ranks: ranks must be at least 1, got 0 (fix: set ranks: 1 or more)"),
        ("tests:\n  - ranks: 5000\n", "s.yaml:2: tests[0].ranks: ranks must be at most 4096, got 5000 (fix: set ranks: 4096 or less)"),
        ("tests:\n  - sizes: {min: 8, max: 1M, factor: 1}\n",
         "s.yaml:2: tests[0].sizes.factor: factor must be at least 2, got 1 "
         "(fix: set factor: 2 or more, or use step: for a linear sweep)"),
        ("tests: []\n", "s.yaml:1: tests: the list is empty (fix: add at least one test, e.g. - workload: allreduce)"),
        ("tests:\n  - timeout: 0s\n",
         "s.yaml:2: tests[0].timeout: timeout must be more than 0 s, got '0s' (fix: set timeout above 0s, e.g. 30s)"),
        ("tests:\n  - ranks: abc\n",
         "s.yaml:2: tests[0].ranks: expected a whole number, got 'abc' "
         "(fix: write a whole number without quotes or units, e.g. ranks: 2)"),
        ("tests:\n  - check: maybe\n",
         "s.yaml:2: tests[0].check: expected true or false, got 'maybe' (fix: write check: true or check: false)"),
        ("name: 123\ntests:\n  - ranks: 2\n", "s.yaml:1: name: expected text, got 123 (fix: quote it: name: \"123\")"),
        ("tests:\n  - placement: 3\n",
         "s.yaml:2: tests[0].placement: placement must be a mapping, got 3 (fix: write placement: {pattern: local})"),
        ("tests:\n  - name: my test\n",
         "s.yaml:2: tests[0].name: name 'my test' may only hold letters, digits, '_', '.' and '-', starting with "
         "a letter or digit, at most 63 characters (fix: use e.g. name: my-test)"),
        ("version: 2\ntests:\n  - ranks: 2\n", "s.yaml:1: version: version cannot be 2 (fix: use version: 1)"),
        ("tests: [allreduce]\n",
         "s.yaml:1: tests[0]: each test must be a mapping of fields, got 'allreduce' (fix: write it as - workload: allreduce)"),
    ],
    ids=["ge", "le", "factor", "no-tests", "gt-duration", "int", "bool", "str", "mapping", "pattern", "literal-int", "test-not-mapping"],
)
def test_value_errors_read_like_benchfab(text: str, expected: str) -> None:
    assert one_line(text) == expected


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("tests:\n  - sizes: [8, -8]\n", "tests[0].sizes[1]", "sizes must be positive byte counts like 8, 4K or 1M, got -8"),
        ("tests:\n  - sizes: -1K\n", "tests[0].sizes", "sizes must be positive byte counts like 8, 4K or 1M, got '-1K'"),
        ("tests:\n  - sizes: {min: -8, max: 1M}\n", "tests[0].sizes.min", "sizes must be positive byte counts"),
        ("tests:\n  - sizes: [1.5K]\n", "tests[0].sizes[0]", "sizes are whole byte counts, got '1.5K'"),
        ("tests:\n  - sizes: [8, 1Q]\n", "tests[0].sizes[1]", "'1Q' is not a size"),
        ("tests:\n  - sizes: true\n", "tests[0].sizes", "expected a size, a list of sizes or a range, got true"),
        ("tests:\n  - timeout: -5s\n", "tests[0].timeout", "a duration cannot be negative, got '-5s'"),
    ],
    ids=["negative-in-list", "negative-scalar", "negative-min", "fraction", "suffix", "bool", "negative-duration"],
)
def test_size_and_duration_errors(text: str, field: str, words: str) -> None:
    message = one_line(text)
    assert message.startswith(f"s.yaml:2: {field}: "), message
    assert words in message
    assert "Value error" not in message


def test_unknown_value_says_did_you_mean_and_lists_the_accepted_ones() -> None:
    message = one_line("tests:\n  - workload: alreduce\n")
    assert message == (
        "s.yaml:2: tests[0].workload: unknown workload 'alreduce'; accepted: allreduce, all_gather, reduce_scatter, "
        "broadcast, all_to_all, reduce, gather, scatter, sendrecv, rdma_write_bw, rdma_write_lat, rdma_read_bw, "
            "rdma_read_lat, rdma_send_bw, rdma_send_lat "
        "(fix: did you mean 'allreduce'?)"
    )
    far = one_line("tests:\n  - dtypes: [float32, foo]\n")
    assert far == ("s.yaml:2: tests[0].dtypes[1]: unknown dtype 'foo' (fix: use one of: int8, uint8, int32, int64, "
                   "float16, bfloat16, float32, float64)")
    single = one_line("tests:\n  - dtypes: flaot32\n")  # one value for a list field
    assert single.startswith("s.yaml:2: tests[0].dtypes: unknown dtype 'flaot32'") and "did you mean 'float32'?" in single
    profile = one_line("profiles:\n  ib-shared: {fabric: ib}\ntests:\n  - profiles: [ib-share]\n")
    assert profile.endswith("unknown profile 'ib-share' (fix: did you mean 'ib-shared'?)")


# --- YAML: plain words, the line, a concrete fix -----------------------------------------


@pytest.mark.parametrize(
    "text, line, words, fix",
    [
        ("tests:\n  - workload: allreduce\n   ranks: 2\n", 3, "a key at the wrong indentation or a missing ':'", "indent this line"),
        ("tests:\n  - ranks: 2\n ranks: 3\n", 3, "a key at the wrong indentation", "spaces only"),
        ("tests:\n\t- ranks: 2\n", 2, "a tab character", "replace the tab with spaces"),
        ("name: \"abc\ntests:\n  - ranks: 2\n", 1, "this \" quote is never closed", "add the closing \""),
        ("tests:\n  - sizes: [8, 1K\n    ranks: 2\n", 3, "the '[' opened on line 2 is not closed", "close it with ']'"),
        ("tests: [\n", 2, "the file ends inside a '[...]' list", "close every '['"),
        ("name: x\ntests\n  - ranks: 2\n", 2, "'tests' is a key without ':'", "key: value"),
        ("name: x\n- ranks: 2\n", 2, "a list entry '- ...' where a key was expected", "indent the '- ' entries"),
        ("name: a: b\ntests: [{}]\n", 1, "a ':' where no key can start", "quote a value"),
        ("name: @x\n", 1, "a value cannot start with @", "put the value in quotes"),
        ("name: a\n---\nname: b\n", 2, "a second YAML document", "remove the '---' line"),
        ("tests: *t\n", 1, "*t refers to no anchor &t", "define &t"),
    ],
    ids=["indent", "dedent", "tab", "quote", "bracket", "eof-bracket", "no-colon", "list-entry", "colon-in-value",
         "at-sign", "two-documents", "alias"],
)
def test_yaml_syntax_errors_in_plain_words(text: str, line: int, words: str, fix: str) -> None:
    message = one_line(text)
    assert message.startswith(f"s.yaml:{line}: YAML syntax error: "), message
    assert words in message
    assert fix in message.split("(fix: ", 1)[1]
    for parser_talk in ("<block", "while parsing", "while scanning", "expected <", "fix the YAML syntax"):
        assert parser_talk not in message


def test_the_reported_block_end_case() -> None:
    # "expected <block end>, but found '<block mapping start>' (fix: fix the YAML syntax)" before.
    message = one_line("tests:\n  - workload: allreduce\n    ranks: 2\n  sizes: [8]\n")
    assert message == (
        "s.yaml:4: YAML syntax error: a key at the wrong indentation or a missing ':' (fix: indent this line exactly "
        "like the other keys of its block (spaces only), and check the line above ends its key with ':')"
    )


def test_control_character_is_not_text() -> None:
    message = one_line("name: x\ntests:\n  - ranks: 2\x00\n")
    assert message.startswith("s.yaml:3: not a text file: character U+0000 at line 3 is a control character (fix: ")


def test_binary_file_names_the_byte_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"name: x\ntests:\n  - name: caf\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}:3: not a text file: byte 0xe9 at line 3 is not UTF-8 (fix: save the spec as UTF-8 YAML)"
    assert info.value.line == 3
    png = tmp_path / "image.yaml"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(SpecError, match=r":1: not a text file: byte 0x89 at line 1 is not UTF-8 \(fix: save the spec as UTF-8 YAML\)$"):
        load_spec(png)
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("tests:\n  - ranks: 2\n".encode("utf-16"))
    with pytest.raises(SpecError, match=r"not UTF-8 \(it looks like UTF-16\) \(fix: save the spec as UTF-8 YAML\)"):
        load_spec(utf16)


def test_directory_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"a directory, not a regular file \(fix: give the path of a \.yaml spec file\)"):
        load_spec(tmp_path)


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_special_files_are_not_specs(tmp_path: Path, special: str) -> None:
    """A FIFO used to hang validate, /dev/zero to exhaust its memory: both are refused at once."""
    path = Path(special)
    if special == "fifo":
        path = tmp_path / "spec.yaml"
        os.mkfifo(path)
    with pytest.raises(SpecError, match=r"(a FIFO|a character device), not a regular file"):
        load_spec(path)


# --- every problem of a file at once ------------------------------------------------------

MANY = """\
name: demo
tests:
  - name: ar
    workload: alreduce
    ranks: 0
    sizes: {min: 8, max: 1M, factor: 1}
  - workload: broadcast
    root: 5
  - name: bad name
    sizes: [8, -8]
    ranks: 2
    ranks: 3
  - name: ar
    dtypes: [float32, foo]
    iterations: 10
    duration: 1s
"""

MANY_LINES = [
    (4, "tests[0].workload", "did you mean 'allreduce'?"),
    (5, "tests[0].ranks", "ranks must be at least 1, got 0"),
    (6, "tests[0].sizes.factor", "factor must be at least 2, got 1"),
    (8, "tests[1].root", "root 5 does not exist with 2 ranks"),
    (9, "tests[2].name", "may only hold letters"),
    (10, "tests[2].sizes[1]", "sizes must be positive byte counts"),
    (12, "tests[2].ranks", "duplicate key 'ranks' (first on line 11)"),
    (13, "tests[3].name", "test name 'ar' is already used by tests[0]"),
    (14, "tests[3].dtypes[1]", "unknown dtype 'foo'"),
    (16, "tests[3].duration", "iterations and duration both given"),
]


def test_all_problems_of_a_file_are_reported_sorted_by_line() -> None:
    err = error_of(MANY)
    assert isinstance(err, SpecErrors) and isinstance(err, SpecError) and isinstance(err, BenchfabError)
    assert err.exit_code == 2
    lines = str(err).split("\n")
    assert len(lines) == len(MANY_LINES) == len(err.problems), str(err)
    for text, (line, field, words), problem in zip(lines, MANY_LINES, err.problems):
        m = LINE.match(text)
        assert m, text
        assert int(m["line"]) == line == problem.line, text
        assert m["field"] == field == problem.field, text
        assert words in text
        assert str(problem) == text
    # Callers that read one problem get the first.
    assert (err.line, err.field, err.source) == (4, "tests[0].workload", "s.yaml")
    assert str(err).startswith(err.message)


def test_semantic_checks_skip_what_was_already_reported() -> None:
    # ranks: 0 is reported; the root check must not run against a made-up rank count.
    err = error_of("tests:\n  - {workload: broadcast, ranks: 0, root: 1}\n  - {workload: broadcast, root: 2}\n")
    assert [p.field for p in err.problems] == ["tests[0].ranks", "tests[1].root"]


def test_spec_errors_survive_pickling() -> None:
    err = error_of(MANY)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.line == err.line


def test_cli_validate_prints_one_line_per_problem(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    path = write_spec(MANY)
    proc = cli("validate", str(path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.rstrip("\n").split("\n")
    assert len(lines) == len(MANY_LINES), proc.stderr
    assert lines[0].startswith("benchfab: error: ")
    for text, (line, field, words) in zip(lines, MANY_LINES):
        assert f"{path}:{line}: " in text and words in text and "(fix: " in text, text
        if field:
            assert f"{path}:{line}: {field}: " in text


def test_cli_validate_binary_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"tests:\n  - ranks: 2\n\xff\xfe\x00")
    proc = cli("validate", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"benchfab: error: {path}:3: not a text file: byte 0xff at line 3 is not UTF-8 (fix: save the spec as UTF-8 YAML)"
    )


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("name: !!foo x\ntests: [{}]\n", 1, "unknown YAML tag !!foo on 'x' (fix: remove the '!' tag, or quote the value)"),
        ("a: &a 1\ntests:\n  - <<: *a\n", 3, "a merge key '<<' must point at a mapping (fix: "),
        ("name: x\ndate: 2024-13-45\n", 2, "cannot read '2024-13-45' as !!timestamp"),
    ],
    ids=["tag", "merge", "timestamp"],
)
def test_values_yaml_cannot_read(text: str, line: int, words: str) -> None:
    message = one_line(text)
    assert message.startswith(f"s.yaml:{line}: ") and words in message, message


def test_a_broken_default_does_not_make_up_problems_in_tests() -> None:
    # defaults.ranks is wrong: the root check would otherwise judge ranks: 2 (the built-in default).
    err = error_of("defaults:\n  ranks: x\ntests:\n  - {workload: broadcast, root: 3}\n  - {iterations: 5, duration: 1s}\n")
    assert [p.field for p in err.problems] == ["defaults.ranks", "tests[1].duration"]
