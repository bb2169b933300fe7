"""Backends behind one registry: a backend defined here (not in benchfab) registers with one
line, and the spec then takes its name, checks its section with its model (file:line, like
every spec field) and its rules, and ``make_backend`` builds it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from pydantic import Field

from benchfab.backends import registry
from benchfab.backends.base import Backend, BackendKind
from benchfab.backends.local import LocalBackend
from benchfab.errors import SpecError
from benchfab.spec import SpecSection, SweepSpec
from benchfab.workloads import Problem

if TYPE_CHECKING:
    from benchfab.spec import TestSpec  # not at module level: pytest would take it for a test class


class ToyOptions(SpecSection):
    """The toy's section: ``toy: {label: ..., max_ranks: N}``."""

    label: str = "toy"
    max_ranks: int = Field(default=4, ge=1)


class Toy(BackendKind):
    """Runs its ranks through the local backend, at most ``toy.max_ranks`` of them."""

    name = "toy"
    options = ToyOptions

    def test_problems(self, test: TestSpec) -> list[Problem]:
        return [Problem("ranks", f"the toy runs at most 4 ranks, not {test.ranks}", "set ranks: 4 or fewer")] \
            if test.ranks > 4 else []

    def make(self, spec: SweepSpec, access: object | None) -> Backend:
        backend = LocalBackend()
        backend.name = f"toy-{spec.section('toy').label}"
        return backend


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Toy]:
    kind = Toy()
    monkeypatch.setattr(registry, "BACKENDS", (*registry.BACKENDS, kind))  # the one registry line
    yield kind


def test_a_registered_backend_is_a_spec_choice_with_its_own_section(toy: Toy) -> None:
    spec = registry.load_spec_text("backend: toy\ntoy: {label: hello}\ntests: [{ranks: 2}]\n", source="t.yaml")
    assert spec.backend == "toy" and spec.section("toy") == ToyOptions(label="hello")
    backend = registry.make_backend(spec)
    assert isinstance(backend, LocalBackend) and backend.name == "toy-hello"
    # Another backend's spec still gets the toy's section checked (as kubernetes: is on a local spec).
    assert registry.load_spec_text("tests: [{ranks: 2}]\n").section("toy") == ToyOptions()


def test_its_section_and_rules_are_reported_at_their_lines(toy: Toy) -> None:
    text = "backend: toy\ntoy:\n  lable: x\n  max_ranks: 0\ntests:\n  - ranks: 8\n"
    with pytest.raises(SpecError) as got:
        registry.load_spec_text(text, source="t.yaml")
    assert [str(p) for p in got.value.problems] == [
        "t.yaml:3: toy.lable: unknown key 'lable' (fix: did you mean 'label'?)",
        "t.yaml:4: toy.max_ranks: max_ranks must be at least 1, got 0 (fix: set max_ranks: 1 or more)",
        "t.yaml:6: tests[0].ranks: the toy runs at most 4 ranks, not 8 (fix: set ranks: 4 or fewer)",
    ]


def test_without_the_registry_line_the_name_is_refused() -> None:
    with pytest.raises(SpecError, match=r"t.yaml:1: backend: unknown backend 'toy'"):
        registry.load_spec_text("backend: toy\ntests: [{ranks: 2}]\n", source="t.yaml")
