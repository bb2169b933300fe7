"""Specs written to hurt: YAML aliases that expand without bound ("billion laughs").

yamlpos builds every value itself (to remember its line), so an alias is expanded
each time it is used; a few hundred bytes of nested aliases once grew validate to
3.6 GB. The build now spends a budget of values and refuses the document with the
usual one-line error when it runs out.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchfab.backends.registry import load_spec_text  # the spec as a user gets it checked
from benchfab.errors import SpecError
from benchfab.yamlpos import MAX_VALUES


def alias_bomb(levels: int, width: int) -> str:
    """Each level lists the previous level's anchor ``width`` times: width**levels values."""
    lines = [f"l0: &l0 [{','.join(['x'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{','.join([f'*l{level - 1}'] * width)}]")
    lines.append("tests: [{workload: allreduce}]")
    return "\n".join(lines) + "\n"


def test_the_reported_bomb_is_refused_in_one_line(cli, write_spec) -> None:  # type: ignore[no-untyped-def]
    text = alias_bomb(9, 9)  # 9**9 = 387 million values from ~430 bytes
    assert len(text) < 450
    # The subprocess timeout guards against the old behaviour (minutes, then MemoryError);
    # it is a hang detector, not a speed target.
    proc = cli("validate", str(write_spec(text)), timeout=60)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert re.match(r"^benchfab: error: .*spec\.yaml:\d+: the document expands to more than 100,000 values", line), line
    assert "(fix: " in line and "alias" in line
    assert proc.stdout == ""


def test_aliases_within_the_budget_still_work() -> None:
    text = """\
defaults: &d {iterations: 3, warmup: 1}
tests:
  - {name: a, sizes: &sizes [8, 1K]}
  - {name: b, sizes: *sizes, <<: *d}
"""
    spec = load_spec_text(text, source="ok.yaml")
    a, b = spec.resolved_tests()
    assert a.sizes == b.sizes == [8, 1024]
    assert (b.iterations, b.warmup) == (3, 1)


# Hostile documents built from anchors and aliases: any nesting and width, merge keys,
# aliases in keys' values and in lists. Whatever comes out is a spec or a SpecError of
# one-line problems; nothing else, and never a build past the budget.
@st.composite
def aliased_documents(draw: st.DrawFn) -> str:
    levels = draw(st.integers(min_value=1, max_value=12))
    lines = []
    for level in range(levels):
        width = draw(st.integers(min_value=1, max_value=12))
        if level == 0:
            body = draw(st.sampled_from(["[x, 1, 8K]", "{iterations: 3, warmup: 1}", "allreduce", "[]"]))
        else:
            style = draw(st.sampled_from(["list", "map", "merge"]))
            refs = [f"*a{draw(st.integers(min_value=0, max_value=level - 1))}" for _ in range(width)]
            if style == "list":
                body = f"[{', '.join(refs)}]"
            elif style == "map":
                body = "{" + ", ".join(f"k{i}: {r}" for i, r in enumerate(refs)) + "}"
            else:
                body = "{<<: [" + ", ".join(refs) + "]}"
        lines.append(f"a{level}: &a{level} {body}")
    top = draw(st.integers(min_value=0, max_value=levels - 1))
    lines.append(draw(st.sampled_from([
        f"tests: [{{workload: allreduce, sizes: *a{top}}}]",
        f"tests: *a{top}",
        f"defaults: *a{top}\ntests: [{{workload: allreduce}}]",
    ])))
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(aliased_documents())
def test_aliased_documents_never_traceback_or_blow_up(text: str) -> None:
    try:
        load_spec_text(text, source="hostile.yaml")
    except SpecError as exc:
        for line in str(exc).split("\n"):
            assert re.match(r"^hostile\.yaml(:\d+)?: .+ \(fix: .+\)$", line), line


def test_budget_is_far_above_any_real_spec() -> None:
    from pathlib import Path

    from benchfab.yamlpos import load_with_lines

    biggest = max(len(load_with_lines(p.read_text())[1])
                  for p in (Path(__file__).resolve().parents[1] / "jobs").glob("*.yaml"))
    assert biggest * 20 < MAX_VALUES
