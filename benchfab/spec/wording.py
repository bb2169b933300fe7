"""pydantic's errors as SpecErrors in benchfab's words.

pydantic reports a location full of its own tags and a message in its own
wording; here each error becomes ``file:line: field: what (fix: how)`` with the
spec's path, the value the user wrote, and a fix that names the field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from ..errors import SpecError, SpecErrors
from ..untrusted import control_characters
from ..workloads.collective_kinds import COLLECTIVES
from ..yamlpos import Path as YPath
from .fields import _kind, _show
from .models import Profile, SweepSpec, TestFields


def _line_for(path: YPath, lines: dict[YPath, int]) -> int | None:
    # The deepest recorded prefix of the path: a missing field points at its parent.
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [k for k in model.model_fields if k not in ("source", "index")]


def _model_at(loc: tuple[Any, ...], root: type[BaseModel] = SweepSpec) -> type[BaseModel] | None:
    """Which model a location's parent mapping is validated by (for 'unknown key' hints):
    the model a field's type names (a backend's section: its options model)."""
    model: type[BaseModel] | None = root
    i = 0
    while i < len(loc) and model is not None:
        part = loc[i]
        if model is root and part == "tests":
            model, i = TestFields, i + 2
            continue
        if model is root and part == "profiles":
            model, i = Profile, i + 2
            continue
        if isinstance(part, int):  # an item of a list of models (an expectations file's entries)
            i += 1
            continue
        field = model.model_fields.get(str(part))
        kinds = (field.annotation, *get_args(field.annotation)) if field is not None else ()
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        i += 1
    return model


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[\w-]+", part):
            out += ("." if out else "") + part
        else:  # a key no spec field has: shown escaped, so the line stays one line
            out += f"[{str(part)!r}]"
    return out or "(top level)"


_MODEL_NAMES = ("SizeRange", "Placement", "Profile", "RdmaOptions", "NodeSelection", "TestFields")


def _clean_loc(loc: tuple[Any, ...], raw: Any) -> tuple[tuple[Any, ...], str | None, int]:
    """pydantic's location as the spec's path, walking the raw value alongside.

    pydantic adds union-branch and validator tags ('function-after[_check(),
    SizeRange]', 'list[...]') that are not spec keys, and an index 0 where a
    one-or-many field ("dtypes: foo") was validated as a list. Returns the path,
    the union branch the error came from ("dict", "list" or None) and where in
    the path that union field ends.
    """
    out: list[Any] = []
    cur: Any = raw
    branch: str | None = None
    branch_at = 0
    for part in loc:
        if isinstance(part, str) and isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(part, int) and isinstance(cur, list) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(part, str) and ("[" in part or part in _MODEL_NAMES):
            if branch is None:
                if part.startswith("list["):
                    branch = "list"
                elif any(name in part for name in _MODEL_NAMES):
                    branch = "dict"
                branch_at = len(out)
        elif isinstance(part, int) and cur is not _MISSING and not isinstance(cur, list):
            continue  # "dtypes: foo" validated as [foo]: the error is about foo itself
        else:
            out.append(part)
            cur = _MISSING
    return tuple(out), branch, branch_at


def _validation_problems(
    exc: ValidationError, raw: dict[str, Any], lines: dict[YPath, int], source: str, root: type[BaseModel] = SweepSpec
) -> tuple[list[SpecError], list[tuple[Any, ...]]]:
    """Every pydantic error as a SpecError in benchfab's words, and the broken paths."""
    problems: list[SpecError] = []
    broken: list[tuple[Any, ...]] = []
    unions_done: set[tuple[Any, ...]] = set()
    for err in exc.errors(include_url=False):
        loc, branch, branch_at = _clean_loc(tuple(err["loc"]), raw)
        if branch is not None:
            # A union (sizes: a range or a list) reports one error per branch:
            # keep the branch that matches what the user wrote.
            at = loc[:branch_at]
            value = _get(raw, at)
            wrote = ("dict" if isinstance(value, dict)
                     else "list" if isinstance(value, (list, str, int)) and not isinstance(value, bool) else None)
            if wrote is None:
                if at not in unions_done:
                    unions_done.add(at)
                    broken.append(at)
                    problems.append(_union_problem(at, value, lines, source))
                continue
            if wrote != branch:
                continue
        if err["type"] == "invalid_key" and loc and loc[-1] in (err.get("input"), str(err.get("input"))):
            loc = loc[:-1]  # the path ends at the mapping that holds the bad key
        broken.append(loc)
        problems.append(_problem(err, loc, raw, lines, source, root))
    return problems, broken


def _union_problem(loc: tuple[Any, ...], value: Any, lines: dict[YPath, int], source: str) -> SpecError:
    key = _key_of(loc)
    if key == "sizes":
        message = f"expected a size, a list of sizes or a range, got {_show(value)}"
        hint = "write e.g. sizes: 1M, sizes: [8, 1K, 1M] or sizes: {min: 8, max: 1M, factor: 2}"
    else:
        message = f"a {_kind(value)} does not fit here, got {_show(value)}"
        hint = f"see docs/SPEC.md for what {key} accepts"
    return SpecError(message, source=source, line=_line_for(loc, lines), field=_format_loc(loc), hint=hint)


# Example values for fixes ("write ranks: 2"); anything else gets 1.
_EXAMPLES: dict[str, str] = {
    "ranks": "2", "iterations": "20", "warmup": "5", "root": "0", "repeat": "1", "cuda_graph": "0",
    "nodes": "1", "gpus_per_node": "8", "k": "2", "factor": "2", "gid_index": "3", "version": "1",
    "tx_depth": "128", "cq_mod": "100", "max_inline": "220", "cuda_device": "0", "master_port": "29500",
    "mtu": "4096", "max_rounds": "10", "rails": "8", "port": "1", "post_list": "1",
}
_MAPPING_EXAMPLES: dict[str, str] = {
    "placement": "{pattern: local}", "sizes": "{min: 8, max: 1M, factor: 2}", "rdma": "{device: mlx5_0}",
    "nodes": "{selector: 'nvidia.com/gpu.present=true'}", "kubernetes": "{reuse_pods: true}",
    "env": "{NCCL_DEBUG: INFO}", "defaults": "{iterations: 20}", "profiles": "{ib: {fabric: ib, mode: shared}}",
}
_SECONDS = ("duration", "timeout", "start_timeout", "active_deadline")
_NOUNS = {"dtypes": "dtype", "ops": "op", "profiles": "profile", "tests": "test"}
_NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit, at most 63 characters"


def _key_of(loc: tuple[Any, ...]) -> str:
    keys = [p for p in loc if isinstance(p, str)]
    return keys[-1] if keys else "spec"


def _bound(key: str, value: Any) -> str:
    return f"{value:g} s" if key in _SECONDS and isinstance(value, (int, float)) else str(value)


def _problem(err: Any, loc: tuple[Any, ...], raw: dict[str, Any], lines: dict[YPath, int], source: str,
             root: type[BaseModel] = SweepSpec) -> SpecError:
    message, hint = _wording(err, loc, raw, root)
    return SpecError(message, source=source, line=_line_for(loc, lines), field=_format_loc(loc), hint=hint)


@dataclass(frozen=True)
class _Said:
    """One pydantic error with what its wording needs: the error's type and context,
    the spec path, the key at its end and the value the user wrote there."""

    err: Any
    kind: str
    ctx: dict[str, Any]
    loc: tuple[Any, ...]
    key: str
    got: Any
    shown: str
    example: str
    root: type[BaseModel] = SweepSpec  # the spec's model (with the backends' sections)


def _wording(err: Any, loc: tuple[Any, ...], raw: dict[str, Any], root: type[BaseModel] = SweepSpec) -> tuple[str, str]:
    """(what is wrong, how to fix it) for one pydantic error, in benchfab's words."""
    key = _key_of(loc)
    got = _get(raw, loc)
    if got is _MISSING:
        got = err.get("input")
    said = _Said(err, err["type"], err.get("ctx") or {}, loc, key, got, _show(got), _EXAMPLES.get(key, "1"), root)
    return _WORDINGS.get(said.kind, _reworded)(said)


def _unknown_key(s: _Said) -> tuple[str, str]:
    name = s.loc[-1] if s.loc else "?"
    model = _model_at(s.loc[:-1], s.root)
    allowed = _allowed_keys(model) if model else []
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = (f"did you mean {close[0]!r}?" if close
            else f"remove it; the keys allowed here are {', '.join(allowed)}" if allowed else "remove it")
    return f"unknown key {str(name)!r}", hint


def _missing(s: _Said) -> tuple[str, str]:
    key, loc = s.key, s.loc
    if loc == ("tests",):
        return "required field 'tests' is missing", "add a tests: list, e.g. tests: [{workload: allreduce}]"
    if loc and isinstance(loc[-1], int):
        return f"item {loc[-1]} of {key} is missing", "write each pair as [node-a, node-b]"
    if key in ("min", "max"):
        return f"required field '{key}' is missing", "give both ends, e.g. sizes: {min: 8, max: 1M, factor: 2}"
    return f"required field '{key}' is missing", f"add {key}:"


def _not_accepted(s: _Said) -> tuple[str, str]:
    accepted = [v.strip().strip("'") for v in re.split(r", | or ", str(s.ctx.get("expected", ""))) if v.strip()]
    listed = ", ".join(accepted)
    noun = _NOUNS.get(s.key, s.key)
    got, shown = s.got, s.shown
    if isinstance(got, str):
        close = difflib.get_close_matches(got, accepted, n=1, cutoff=0.6)
        if not close:
            close = [a for a in accepted if a.lower() == got.lower().strip()]
        if close:
            return f"unknown {noun} {shown}; accepted: {listed}", f"did you mean {close[0]!r}?"
        return f"unknown {noun} {shown}", f"use one of: {listed}"
    if len(accepted) == 1:
        return f"{noun} cannot be {shown}", f"use {s.key}: {accepted[0]}"
    return f"{noun} cannot be {shown}", f"use one of: {listed}"


def _out_of_bounds(s: _Said) -> tuple[str, str]:
    key, kind = s.key, s.kind
    limit = next(iter(s.ctx.values()), "?")
    b = _bound(key, limit)
    unit = "s" if key in _SECONDS else ""
    if kind == "greater_than_equal":
        what, fix = f"at least {b}", f"set {key}: {limit}{unit} or more"
    elif kind == "greater_than":
        what, fix = f"more than {b}", f"set {key} above {limit}{unit}" + (", e.g. 30s" if unit else "")
    elif kind == "less_than_equal":
        what, fix = f"at most {b}", f"set {key}: {limit}{unit} or less"
    else:
        what, fix = f"less than {b}", f"set {key} below {limit}{unit}"
    if key == "factor":
        fix += ", or use step: for a linear sweep"
    return f"{key} must be {what}, got {s.shown}", fix


def _too_short(s: _Said) -> tuple[str, str]:
    if s.loc == ("tests",):
        return "the list is empty", "add at least one test, e.g. - workload: allreduce"
    need = s.ctx.get("min_length", 1)
    if not s.ctx.get("actual_length"):
        return "the list is empty", f"give at least {need} value{'s' if need != 1 else ''}"
    return f"needs at least {need} items, got {s.ctx.get('actual_length')}", "add the missing items"


def _too_long(s: _Said) -> tuple[str, str]:
    return (f"at most {s.ctx.get('max_length')} items, got {s.ctx.get('actual_length')}",
            "write each pair as [node-a, node-b]" if s.key == "suspects" else "remove the extra items")


def _not_whole(s: _Said) -> tuple[str, str]:
    return f"expected a whole number, got {s.shown}", f"write a whole number without quotes or units, e.g. {s.key}: {s.example}"


def _not_bool(s: _Said) -> tuple[str, str]:
    return f"expected true or false, got {s.shown}", f"write {s.key}: true or {s.key}: false"


def _not_number(s: _Said) -> tuple[str, str]:
    return f"expected a number, got {s.shown}", f"write a number, e.g. {s.key}: {s.example}"


def _not_finite(s: _Said) -> tuple[str, str]:
    return f"expected a finite number, got {s.shown}", f"write a number, e.g. {s.key}: {s.example}"


def _not_text(s: _Said) -> tuple[str, str]:
    got, shown, key = s.got, s.shown, s.key
    if got is not None and not isinstance(got, (dict, list)):
        plain = shown if not isinstance(got, str) else got
        return f"expected text, got {shown}", f"quote it: {key}: \"{plain}\""
    return f"expected text, got a {_kind(got)}", f"write a plain value, e.g. {key}: some-text"


def _not_list(s: _Said) -> tuple[str, str]:
    if s.loc == ("tests",):
        return (f"tests must be a list of test entries, got {s.shown}",
                "write each test on its own line under tests:, e.g. - workload: allreduce")
    return f"expected a list, got {s.shown}", f"write {s.key}: [a, b], or one '- item' per line"


def _not_mapping(s: _Said) -> tuple[str, str]:
    loc, got, shown, key = s.loc, s.got, s.shown, s.key
    if len(loc) == 2 and loc[0] == "tests":
        wl = got if isinstance(got, str) and got in COLLECTIVES else "allreduce"
        return f"each test must be a mapping of fields, got {shown}", f"write it as - workload: {wl}"
    if len(loc) == 2 and loc[0] == "profiles":
        return f"a profile must be a mapping, got {shown}", "write it as {fabric: ib, mode: shared}"
    return f"{key} must be a mapping, got {shown}", f"write {key}: {_MAPPING_EXAMPLES.get(key, '{key: value}')}"


def _bad_key(s: _Said) -> tuple[str, str]:
    return f"a key must be a word, got {_show(s.err.get('input'))}", "quote the key, or remove it"


def _not_pair(s: _Said) -> tuple[str, str]:
    return f"expected a pair, got {s.shown}", "write each pair as [node-a, node-b]"


def _bad_name(s: _Said) -> tuple[str, str]:
    suggestion = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(s.got)).strip("-_.")[:63] or "my-test"
    return f"{s.key} {s.shown} may only hold {_NAME_RULE}", f"use e.g. {s.key}: {suggestion}"


def _validator_said(s: _Said) -> tuple[str, str]:
    # A validator's _Invalid: its message and its hint, both benchfab's own.
    error = s.ctx.get("error")
    hint = getattr(error, "hint", None) or f"see docs/SPEC.md for what {s.key} accepts"
    text = str(error) if error is not None else str(s.err.get("msg", "")).removeprefix("Value error, ")
    return text, hint


def _reworded(s: _Said) -> tuple[str, str]:
    # Anything else pydantic may say, reworded as far as it goes.
    text = str(s.err.get("msg", "invalid value")).replace("Input should be", "expected")
    return f"{text}, got {s.shown}", f"see docs/SPEC.md for what {s.key} accepts"


# pydantic's error type -> the wording for it; types not listed get _reworded.
_WORDINGS: dict[str, Callable[[_Said], tuple[str, str]]] = {
    "extra_forbidden": _unknown_key,
    "missing": _missing,
    "literal_error": _not_accepted,
    **dict.fromkeys(("greater_than_equal", "greater_than", "less_than_equal", "less_than"), _out_of_bounds),
    "too_short": _too_short,
    "too_long": _too_long,
    **dict.fromkeys(("int_parsing", "int_type", "int_from_float", "int_parsing_size"), _not_whole),
    **dict.fromkeys(("bool_parsing", "bool_type"), _not_bool),
    **dict.fromkeys(("float_parsing", "float_type"), _not_number),
    "finite_number": _not_finite,
    **dict.fromkeys(("string_type", "str_type"), _not_text),
    "list_type": _not_list,
    **dict.fromkeys(("model_type", "dict_type", "model_attributes_type"), _not_mapping),
    "invalid_key": _bad_key,
    "tuple_type": _not_pair,
    "string_pattern_mismatch": _bad_name,
    **dict.fromkeys(("value_error", "assertion_error"), _validator_said),
}


_MISSING = object()


def _get(raw: Any, loc: tuple[Any, ...]) -> Any:
    cur = raw
    for part in loc:
        if not isinstance(cur, (dict, list)):
            return _MISSING
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return cur


# -- shared by the spec's and the --expect file's loaders ---------------------------------------

# Text fields that may span lines (a YAML block scalar): newlines and tabs are fine there.
_MULTILINE_FIELDS = {("description",)}


def _control_problems(value: Any, path: YPath, lines: dict[YPath, int], source: str) -> list[SpecError]:
    """Control characters (escapes such as "\\x1b" or "\\n" in a quoted string) in any key or
    value: names and values are shown on terminals and in Markdown, JUnit and HTML, where they
    would recolour, forge or break lines. Only the description may hold newlines and tabs."""
    found: list[SpecError] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        here = path + (key,)
        for text, what in ((key, "key"), (child, "value")):
            if not isinstance(text, str):
                continue
            bad = [c for c in control_characters(text) if not (here in _MULTILINE_FIELDS and c in ("\\n", "\\t"))]
            if bad:
                found.append(SpecError(f"the {what} {_show(text)} holds control characters ({', '.join(bad)})",
                                       source=source, line=lines.get(here, lines.get(path)), field=_format_loc(here),
                                       hint="remove them: names and values are shown on terminals and in reports"))
        found += _control_problems(child, here, lines, source)
    return found


def _raise_all(problems: list[SpecError]) -> SpecError:
    """One problem as itself; several as one SpecErrors (one line each, sorted by line)."""
    return problems[0] if len(problems) == 1 else SpecErrors(problems)
