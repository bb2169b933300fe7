"""summary.md: a report's text (runs, tests, each family's tables, verdicts, slowest pairs, figures)."""

from __future__ import annotations

from collections.abc import Sequence

from ..compare.judge import VERDICT_ORDER
from ..counter_evidence import markdown_lines
from ..diagnosis import load_diagnosis, verdict_markdown
from ..runfacts import run_facts
from ..store import Run
from ..tables import md_cell, num
from ..units import figure
from ..untrusted import markdown_code
from ..verdicts import Verdict, noise_text, read_verdicts
from ..workloads import FAMILIES
from ..workloads.point_to_point import locality_lines
from .inputs import ReportInput
from .pairs import Marks, PairMap


def markdown_summary(run: Run, images: list[str]) -> str:
    """summary.md of one run (see markdown_report for several)."""
    return markdown_report(ReportInput((run,)), images, [])


def markdown_report(data: ReportInput, images: list[str], maps: Sequence[PairMap], marks: Marks | None = None) -> str:
    """The report's text: runs, then what a reader looks at first (the figures, each heatmap
    with its slowest pairs), then the verdicts (worst first, collapsible), the tests and
    each family's tables."""
    several = len(data.runs) > 1
    lines = [f"# benchfab {md_cell(data.subtitle)}", ""]
    for run in data.runs:
        if several:
            lines += [f"## Run `{markdown_code(run.run_id)}`", ""]
        lines += run_facts(run.meta)
        lines.append("")
    shown = {pm.file for pm in maps}  # each heatmap stands in its pairs section
    rest = [name for name in images if name not in shown]
    if rest:
        lines += ["## Figures", ""] + [f"![{name}]({name})" for name in rest]
    for pm in maps:
        lines += _pair_lines(pm, marks)
    for run in data.runs:
        lines += verdict_lines(run)
        diagnosis = load_diagnosis(run.path)
        if diagnosis is not None:
            lines += verdict_markdown(diagnosis)
    lines += ["", "## Tests", "", "| run | test | workload | profile | ranks | status | reason |",
              "|---|---|---|---|---|---|---|"]
    for run in data.runs:
        tests = run.tests.sort_values("test_id") if not run.tests.empty else run.tests
        for _, t in tests.iterrows():
            lines.append(f"| {md_cell(run.run_id)} | {md_cell(t['test_id'])} | {md_cell(t['workload'])} | {md_cell(t['profile'])} "
                         f"| {md_cell(t['ranks'])} | {md_cell(t['status'])} | {md_cell(t['reason'])} |")
    summary = data.summary
    for family in FAMILIES:
        lines += family.report_section(summary)
    for run in data.runs:
        lines += locality_lines(run.run_id, run.tests)
        lines += settings_lines(run)
        if "counters" in run.tests.columns:
            lines += markdown_lines(run.run_id, run.tests.sort_values("test_id").to_dict("records"))
    return "\n".join(lines) + "\n"


def settings_lines(run: Run) -> list[str]:
    """The report's NCCL settings section: each test that set some (env:, a sweep_env
    variant), what NCCL chose (its TUNING lines) and whether that honoured them; nothing
    for a run without settings."""
    s = run.summary
    if s.empty or "env" not in s.columns or not (s["env"].fillna("") != "").any():
        return []
    rows = s[s["env"].fillna("") != ""].drop_duplicates("test_id").sort_values("test_id")
    lines = ["", f"## NCCL settings of `{markdown_code(run.run_id)}` (changed: NCCL's log shows it did otherwise)", "",
             "| test | settings | NCCL chose | check |", "|---|---|---|---|"]
    for _, r in rows.iterrows():
        chose = "/".join(str(r.get(c)) for c in ("nccl_algorithms", "nccl_protocols") if isinstance(r.get(c), str))
        check = str(r.get("env_check") or "")
        lines.append(f"| {md_cell(r['test_id'])} | {md_cell(r['env'])} | {md_cell(chose or '-')} "
                     f"| {'**changed**' if check == 'changed' else md_cell(check)} |")
    return lines


def worst_first(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """Verdicts in compare's order of verdicts (failed, changed, worse, missing, new, removed,
    better, same), and within one verdict the largest move the wrong way first."""
    def how_bad(v: Verdict) -> float:
        if v.ratio is None or v.ratio <= 0:
            return 0.0
        return 1 / v.ratio if v.higher_is_better else v.ratio  # > 1: moved the wrong way

    rank = {name: i for i, name in enumerate(VERDICT_ORDER)}
    return sorted(verdicts, key=lambda v: (rank.get(v.verdict, len(rank)), -how_bad(v)))


def verdict_lines(run: Run) -> list[str]:
    """The run's verdicts (verdicts.json, written by a comparison) as a table, worst first, in a
    <details> block (open when a key regressed); none without the file."""
    verdicts = read_verdicts(run.path)
    if verdicts is None:
        return []
    bad = len(verdicts.regressions)
    method = ", ".join(f"{k} {v}" for k, v in verdicts.method.items())
    factor = float(verdicts.method.get("factor") or 1.0)
    lines = ["", f"## Verdicts of `{markdown_code(verdicts.new)}` against {md_cell(verdicts.base_label)}", "",
             f"{bad} regression(s) in {len(verdicts.verdicts)} key(s); base run(s): "
             f"{md_cell(', '.join(verdicts.base_runs) or 'none')}; method: {md_cell(method)}.", ""]
    lines += [f"- **damaged**: {md_cell(d)}" for d in verdicts.damaged]
    lines += ["", "<details open>" if bad else "<details>",
              f"<summary>{len(verdicts.verdicts)} key(s), worst first</summary>", "",
              "| key | metric | verdict | base median | new median | new/base | noise | cause |",
              "|---|---|---|---|---|---|---|---|"]
    for v in worst_first(verdicts.verdicts):
        verdict = f"**{md_cell(v.verdict)}**" if v.regression else md_cell(v.label(factor))
        lines.append(f"| {md_cell(v.key_id)} | {md_cell(v.metric)} | {verdict} | {figure(v.metric, v.base_median)} "
                     f"| {figure(v.metric, v.new_median)} | {num(v.ratio, '.3f')} | {noise_text(v.noise)} "
                     f"| {md_cell(v.cause)} |")
    return lines + ["", "</details>"]


def _pair_lines(pm: PairMap, marks: Marks | None) -> list[str]:
    spec = pm.fig_spec
    unit = spec.quantity
    worse = "lowest" if spec.higher_is_better else "highest"
    lines = ["", f"## Pairs: {pm.title}", "", f"![{pm.file}]({pm.file})", "",
             f"Slowest pairs ({worse} first; vs median: the pair's value / the median pair's):", "",
             f"| node | node | {unit} | vs median |", "|---|---|---|---|"]
    for _, r in pm.slowest.iterrows():
        lines.append(f"| {md_cell(r['node_a'])} | {md_cell(r['node_b'])} | {r['value'] * spec.scale:.4g} | {r['vs_median']:.3f} |")
    if marks is None:
        return lines
    here = set(pm.matrix.index)
    shown = []
    nodes = [n for n in marks.nodes if n in here]
    if nodes:
        shown.append(f"nodes {md_cell(', '.join(nodes))}")
    pairs = [f"{a}-{b}" for a, b in marks.pairs if a in here and b in here]
    if pairs:
        shown.append(f"pairs {md_cell(', '.join(pairs))}")
    if shown:
        lines += ["", f"Marked in red ({marks.why}): {'; '.join(shown)}."]
    return lines
