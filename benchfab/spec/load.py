"""Reading a spec: the file, its YAML, the models, then the checks that span fields.

Every problem becomes one SpecError line, ``file:line: field: what (fix: how)``,
in benchfab's words (pydantic's and PyYAML's wording never reaches the user).
A file's problems are all collected: pydantic's errors, then the checks that
span fields (run on a copy of the spec with the broken fields taken out), and
raised together as one SpecErrors. Only a YAML syntax error stops at once.

The backends are above this layer: ``benchfab.backends.registry.load_spec`` passes them
in (``backends``), and each one's section (``kubernetes:``) is then validated by its
options model in the same pass, with the same file:line wording; ``backend:`` must name
one of them and their rules (``BackendRules``) join the checks that span fields. Without
``backends`` (a stored spec read again: compare, resume) the section of the spec's own
backend is kept as written, for that backend to validate when it is made.
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError, create_model

from ..errors import SpecError
from ..workloads import Problem, family_of
from ..yamlpos import Path as YPath
from .fields import _show
from .models import Profile, SweepSpec, TestSpec, _resolve
from .wording import _get, _line_for, _raise_all, _validation_problems
from .yamldoc import DocumentKind, parse_document, read_document

MAX_SPEC_BYTES = 4 << 20  # a spec of a thousand tests is ~100 KB
SPEC_FILE = DocumentKind(noun="the spec", expected="a mapping with a 'tests' list", max_bytes=MAX_SPEC_BYTES,
                         start_hint="start from jobs/local.yaml", nested_hint="flatten the spec",
                         path_fix="give the path of a .yaml spec file",
                         missing_hint="check the path; specs usually live in jobs/")


class BackendRules(Protocol):
    """What loading a spec asks of a backend (benchfab.backends.base.BackendKind has it)."""

    @property
    def name(self) -> str:
        """``backend: NAME``, and the name of its section."""
        ...

    @property
    def options(self) -> type[BaseModel] | None:
        """The model of its section (None: it has none)."""
        ...

    def spec_problems(self, spec: SweepSpec) -> list[Problem]:
        """What is wrong with the spec's top-level settings for this backend."""
        ...

    def test_problems(self, test: TestSpec) -> list[Problem]:
        """What is wrong with one resolved test on this backend."""
        ...


def spec_model(backends: Sequence[BackendRules] | None, raw: dict[str, Any]) -> type[SweepSpec]:
    """SweepSpec with ``backend`` one of ``backends`` and a field per backend's section; without
    backends, the section named by the spec's ``backend:`` (kept as written)."""
    if backends is not None:
        return _model_of(tuple(backends))
    name = raw.get("backend")
    if isinstance(name, str) and name not in SweepSpec.model_fields and isinstance(raw.get(name), dict):
        return _model_as_written(name)
    return SweepSpec


@functools.cache
def _model_of(backends: tuple[BackendRules, ...]) -> type[SweepSpec]:
    names = tuple(b.name for b in backends)
    sections: dict[str, Any] = {b.name: (b.options, Field(default_factory=b.options)) for b in backends if b.options}
    one_of: Any = Literal.__getitem__(names)  # backend: one of the names (a Literal: the wording lists them)
    return create_model("SweepSpec", __base__=SweepSpec, __module__=SweepSpec.__module__,
                        backend=(one_of, "local"), **sections)


@functools.cache
def _model_as_written(name: str) -> type[SweepSpec]:
    section: Any = (dict[str, Any], Field(default_factory=dict))
    return create_model("SweepSpec", __base__=SweepSpec, __module__=SweepSpec.__module__, **{name: section})


def load_spec(path: str | Path, *, backends: Sequence[BackendRules] | None = None) -> SweepSpec:
    """Read and validate a spec file. Raises SpecError: one problem, or SpecErrors: several."""
    return load_spec_text(read_document(path, SPEC_FILE), source=str(path), backends=backends)


def load_spec_text(text: str, *, source: str = "<spec>", backends: Sequence[BackendRules] | None = None) -> SweepSpec:
    """Validate spec text; the parse used by ``load_spec`` and by tests.

    Raises SpecError when there is one problem, SpecErrors (a SpecError) when there
    are several; ``exc.problems`` lists them either way.
    """
    raw, lines, problems = parse_document(text, source, SPEC_FILE)
    for key in [k for k in raw if not isinstance(k, str)]:
        problems.append(SpecError(f"a key must be a word, got {_show(key)}", source=source,
                                  line=lines.get((key,), 1), hint="quote the key, or remove it"))
        raw = {k: v for k, v in raw.items() if k != key}
    spec: SweepSpec | None
    broken: list[tuple[Any, ...]] = []
    model = spec_model(backends, raw)
    try:
        spec = model.model_validate({**raw, "source": source})
    except ValidationError as exc:
        found, broken = _validation_problems(exc, raw, lines, source, model)
        problems.extend(found)
        spec = _without(raw, broken, source, model)
    except (ValueError, TypeError, OverflowError) as exc:  # from BeforeValidators outside pydantic's wrapping
        problems.append(SpecError(f"cannot read the spec: {exc}", source=source,
                                  hint="see docs/SPEC.md for the accepted fields"))
        spec = None
    if spec is not None:
        rules = next((b for b in backends or () if b.name == spec.backend), None)
        problems.extend(_check_semantics(spec, raw, lines, source, broken=broken, rules=rules))
    if problems:
        raise _raise_all(problems)
    assert spec is not None
    return spec


def _without(raw: dict[str, Any], broken: list[tuple[Any, ...]], source: str, model: type[SweepSpec]) -> SweepSpec | None:
    """The spec with every broken field taken out (defaults apply instead), so the
    checks that span fields can still look at the rest; None if that is not valid."""
    fixed = copy.deepcopy(raw)
    for loc in broken:
        if loc == ("tests",) or not loc:
            return None
        head = loc[0]
        if head == "tests" and len(loc) == 2:
            if isinstance(fixed.get("tests"), list) and isinstance(loc[1], int) and loc[1] < len(fixed["tests"]):
                fixed["tests"][loc[1]] = {}
            continue
        section = head in model.model_fields and head not in SweepSpec.model_fields  # a backend's (kubernetes:)
        depth = {"tests": 3, "profiles": 3, "defaults": 2, "nodes": 2}.get(head, 2 if section else 1)
        cut = loc[:depth]
        parent: Any = _get(fixed, cut[:-1])
        if isinstance(parent, dict):
            parent.pop(cut[-1], None)
        elif isinstance(parent, list) and isinstance(cut[-1], int) and cut[-1] < len(parent):
            parent[cut[-1]] = {}
    try:
        return model.model_validate({**fixed, "source": source})
    except (ValidationError, ValueError, TypeError, OverflowError):
        return None


def _check_semantics(
    spec: SweepSpec,
    raw: dict[str, Any],
    lines: dict[YPath, int],
    source: str,
    *,
    broken: Collection[tuple[Any, ...]] = (),
    rules: BackendRules | None = None,
) -> list[SpecError]:
    """Checks that span fields (a test's own fields plus defaults) and the backend.

    Returns every problem found. ``broken`` are the paths of problems already
    reported, whose fields were taken out of ``spec`` (defaults stand in): a check
    that reads such a field would judge a value the user did not write, so it is
    left out.
    """
    profiles = spec.resolved_profiles()
    problems: list[SpecError] = []
    gone_everywhere, gone = _gone(broken)

    def fail(i: int, field: str, message: str, hint: str, uses: tuple[str, ...] = ()) -> None:
        taken = gone_everywhere | gone.get(i, set())
        if taken & {"*", field, *uses}:
            return
        entry = raw["tests"][i] if isinstance(raw.get("tests"), list) and i < len(raw["tests"]) else {}
        in_test = isinstance(entry, dict) and field in entry
        path: YPath = ("tests", i, field) if in_test else ("defaults", field)
        where = f"tests[{i}].{field}" if in_test else f"defaults.{field}"
        if not in_test and ("defaults", field) not in lines:
            path, where = ("tests", i), f"tests[{i}]"
        problems.append(SpecError(message, source=source, line=_line_for(path, lines), field=where, hint=hint))

    names: dict[str, int] = {}
    for i, fields in enumerate(spec.tests):
        test = _resolve(spec, i, fields)
        if fields.iterations is not None and fields.duration is not None:
            fail(i, "duration", "iterations and duration both given", "keep one: fixed iterations or a time budget",
                 ("iterations",))
        # A default name is made from the workload.
        name_uses = () if fields.name is not None else ("workload",)
        if test.name in names:
            fail(i, "name", f"test name {test.name!r} is already used by tests[{names[test.name]}]",
                 "give each test a unique name", name_uses)
        if not (gone_everywhere | gone.get(i, set())) & {"*", "name", *name_uses}:
            names.setdefault(test.name, i)
        for problem in _entry_problems(test, profiles) + (rules.test_problems(test) if rules else []):
            fail(i, *problem)
    for problem in rules.spec_problems(spec) if rules else []:
        # A top-level setting: at its line when written, else at backend:'s.
        if gone_everywhere & {"backend", problem.field, *problem.uses}:
            continue
        at: YPath = (problem.field,) if (problem.field,) in lines else ("backend",)
        problems.append(SpecError(problem.message, source=source, line=_line_for(at, lines), field=problem.field,
                                  hint=problem.hint))
    return problems


def _gone(broken: Collection[tuple[Any, ...]]) -> tuple[set[str], dict[int, set[str]]]:
    """The fields taken out for ``broken``: those of defaults or top-level settings
    (every test), and per test index those of that one test ("*": the whole entry)."""
    gone_everywhere: set[str] = set()  # fields taken out of defaults, or top-level settings
    gone: dict[int, set[str]] = {}  # fields taken out of one test ("*": the whole entry)
    for loc in broken:
        if loc[0] == "tests" and len(loc) > 1 and isinstance(loc[1], int):
            gone.setdefault(loc[1], set()).add(str(loc[2]) if len(loc) > 2 else "*")
        elif loc[0] == "defaults":
            gone_everywhere.add(str(loc[1]) if len(loc) > 1 else "*")
        elif loc[0] in ("profiles", "backend", "image"):
            gone_everywhere.add(str(loc[0]))
    return gone_everywhere, gone


def _rail_problems(test: TestSpec, profiles: dict[str, Profile]) -> list[Problem]:
    """placement.rails on a pair pattern: point-to-point tests only, on profiles that list the rails."""
    p = test.placement
    if p.rails and p.pattern == "local":
        return [Problem("placement", f"rails: {p.rails} with pattern local: one host's ranks have no rails to "
                        "measure apart", "use backend: kubernetes with pattern all-pairs / ring / k-groups (pairs per "
                        "rail) or group (collectives per rail), or drop rails")]
    if not p.rails or p.pattern == "group":
        return []
    if not family_of(test.workload).point_to_point:
        return [Problem("placement", f"rails: {p.rails} with pattern {p.pattern} measures one pair per rail, "
                        f"{test.workload} is a collective", "use pattern: group with rails for per-rail collectives, "
                        "or a point-to-point workload (rdma_write_bw, ...) for per-rail pairs", ("workload",))]
    found = []
    for name in test.profiles:
        have = len(profiles[name].rails) if name in profiles else p.rails
        if have < p.rails:
            found.append(Problem("placement", f"rails: {p.rails} but profile {name!r} lists {have} rail(s)",
                                 f"list {p.rails} rails under profiles.{name}.rails (each rail's hca, or resource "
                                 f"and network), or set rails: {have or 1}" if have else
                                 f"list the node's rails under profiles.{name}.rails (each rail's hca, or "
                                 "resource and network)", ("profiles",)))
    return found


def _entry_problems(test: TestSpec, profiles: dict[str, Profile]) -> list[Problem]:
    """What is wrong with one resolved test: its family's rules, then the rest (the backend's: ``rules``)."""
    found = family_of(test.workload).problems(test)
    for p in test.profiles:
        if p not in profiles:
            close = difflib.get_close_matches(p, list(profiles), n=1)
            found.append(Problem("profiles", f"unknown profile {p!r}",
                                 f"did you mean {close[0]!r}?" if close
                                 else f"define it under 'profiles:' or use one of {', '.join(sorted(profiles))}"))
    per_pod = family_of(test.workload).ranks_per_pod(test)
    for p in test.profiles:
        rails = profiles[p].rails if p in profiles else []
        if rails and len(rails) < per_pod:
            found.append(Problem("placement", f"gpus_per_node {per_pod} needs one rail per GPU and profile {p!r} "
                                 f"lists {len(rails)}", f"list {per_pod} rails under profiles.{p}.rails, or leave "
                                 "rails out (every rank then uses the profile's resource and network)", ("profiles",)))
    found += _rail_problems(test, profiles)
    if test.cuda_graph and test.device == "cpu":
        found.append(Problem("cuda_graph", "CUDA graphs need device: cuda or auto", "set cuda_graph: 0 for CPU tests",
                             ("device",)))
    return found
