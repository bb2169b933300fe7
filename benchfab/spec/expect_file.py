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

from .expect import ExpectFile
from .wording import _raise_all, _validation_problems
from .yamldoc import DocumentKind, parse_document, read_document

MAX_EXPECT_BYTES = 1 << 20
_START = "start from the example in docs/SPEC.md (Expectations)"
EXPECT_FILE = DocumentKind(noun="the file", expected="a mapping with an 'expectations' list", max_bytes=MAX_EXPECT_BYTES,
                           start_hint=_START, nested_hint=_START, path_fix="give the path of a YAML file",
                           missing_hint="check the path of the expectations file", flag="--expect")


def load_expect_file(path: str | Path) -> ExpectFile:
    """The expectations file at ``path``, validated; SpecError (one problem) or SpecErrors."""
    return load_expect_text(read_document(path, EXPECT_FILE), source=str(path))


def load_expect_text(text: str, *, source: str = "<expect>") -> ExpectFile:
    """Validate the text of an expectations file (``load_expect_file`` and tests)."""
    raw, lines, problems = parse_document(text, source, EXPECT_FILE)
    try:
        found = ExpectFile.model_validate({**raw, "source": source})
    except ValidationError as exc:
        problems += _validation_problems(exc, raw, lines, source, ExpectFile)[0]
        raise _raise_all(problems) from None
    if problems:
        raise _raise_all(problems)
    return found
