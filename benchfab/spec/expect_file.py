"""Reading ``--expect FILE``: expectations shared by specs, validated as a spec is (every
problem one ``file:line: field: what (fix: how)`` line, all of them at once, exit 2).

    version: 1
    expectations:
      - workload: allreduce                       # which tests: test, workload, profile, match
        match: {nvidia.com/gpu.product: H100}     # node labels (every node of the test)
        expect: {bandwidth: ">= 45 GB/s", at: ">= 64M"}
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from ..errors import SpecError
from ..untrusted import read_regular
from ..yamlpos import YamlPositionError, load_with_lines
from .expect import ExpectFile
from .fields import _kind
from .wording import _control_problems, _format_loc, _raise_all, _validation_problems

MAX_EXPECT_BYTES = 1 << 20
_START = "start from the example in docs/SPEC.md (Expectations)"


def load_expect_file(path: str | Path) -> ExpectFile:
    """The expectations file at ``path``, validated; SpecError (one problem) or SpecErrors."""
    source = str(path)

    def unreadable(message: str, hint: str) -> SpecError:
        return SpecError(message.removeprefix(f"{source}: "), source=source, hint=hint)

    try:
        data = read_regular(Path(path), MAX_EXPECT_BYTES, error=unreadable, fix="give the path of a YAML file")
    except FileNotFoundError:
        raise SpecError("no such file", source=source, field="--expect", hint="check the path of the expectations file") \
            from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not a text file: byte {exc.start} is not UTF-8", source=source,
                        line=data.count(b"\n", 0, exc.start) + 1, hint="save it as UTF-8 YAML") from None
    return load_expect_text(text, source=source)


def load_expect_text(text: str, *, source: str = "<expect>") -> ExpectFile:
    """Validate the text of an expectations file (``load_expect_file`` and tests)."""
    duplicates: list[YamlPositionError] = []

    def yaml_problem(exc: YamlPositionError) -> SpecError:
        field = _format_loc(exc.path) if exc.path else None
        return SpecError(str(exc), source=source, line=exc.line, field=field, hint=exc.hint or "fix the YAML syntax")

    try:
        raw, lines = load_with_lines(text, problems=duplicates)
    except YamlPositionError as exc:
        raise _raise_all([*map(yaml_problem, duplicates), yaml_problem(exc)]) from None
    except RecursionError:
        raise SpecError("YAML nested too deeply", source=source, hint=_START) from None
    problems = list(map(yaml_problem, duplicates))
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {_kind(raw)}"
        raise _raise_all([*problems, SpecError(f"the file is {kind}, expected a mapping with an 'expectations' list",
                                         source=source, line=1, hint=_START)])
    problems += _control_problems(raw, (), lines, source)
    try:
        found = ExpectFile.model_validate({**raw, "source": source})
    except ValidationError as exc:
        problems += _validation_problems(exc, raw, lines, source, ExpectFile)[0]
        raise _raise_all(problems) from None
    if problems:
        raise _raise_all(problems)
    return found
