"""``benchfab export RUN --openmetrics``: a run's verdicts and key figures as OpenMetrics
text, for the node-exporter textfile collector or a Pushgateway.

Every metric is a gauge (the one type both OpenMetrics and the Prometheus text format
that the textfile collector reads agree on), every name ends in its unit where it has
one, and the text ends with ``# EOF``. Values are SI (bytes per second, seconds), as
OpenMetrics asks, not the GB/s, Gb/s and us that tables print (benchfab.units,
docs/UNITS.md): a dashboard scales them. Per measurement key (records.MEASUREMENT_KEY
less the size) the key figures each workload family declares in its FigureSpecs
(``export_name``): the peak of a bandwidth, the minimum of a latency. From the run's
verdicts.json, when a comparison wrote one: each key's verdict as 1 (regression) or 0,
its new/base ratio, and the number of regressions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .analysis import ok_rows
from .records import MEASUREMENT_KEY
from .store import Run
from .verdicts import read_verdicts
from .workloads import FIGURES

KEY_LABELS: tuple[str, ...] = tuple(k for k in MEASUREMENT_KEY if k != "size_bytes")


@dataclass
class Gauge:
    """One metric family: its samples as (labels, value)."""

    name: str
    help: str
    unit: str | None = None
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"# TYPE {self.name} gauge"]
        if self.unit:
            out.append(f"# UNIT {self.name} {self.unit}")
        out.append(f"# HELP {self.name} {_escape_help(self.help)}")
        for labels, value in self.samples:
            text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            out.append(f"{self.name}{{{text}}} {_value(value)}")
        return out


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _label(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def key_figures(run: Run) -> list[Gauge]:
    """Each FigureSpec's export gauge: per key, the peak (higher is better) or the minimum."""
    rows = ok_rows(run.summary)
    gauges = []
    for spec in FIGURES:
        if spec.export_name is None:
            continue
        gauge = Gauge(spec.export_name, f"{'peak' if spec.higher_is_better else 'minimum'} of {spec.column} "
                      f"over the sizes of each measurement key ({', '.join(spec.workloads)})", spec.export_unit)
        mine = rows[rows["workload"].isin(list(spec.workloads)) & rows[spec.column].notna()] if not rows.empty else rows
        if not mine.empty:
            keys = [k for k in KEY_LABELS if k in mine.columns]
            grouped = mine.groupby(keys, dropna=False, sort=True)[spec.column]
            figures = grouped.max() if spec.higher_is_better else grouped.min()
            for key, value in figures.items():
                values = key if isinstance(key, tuple) else (key,)
                labels = {"run_id": run.run_id, **{k: _label(v) for k, v in zip(keys, values)}}
                gauge.samples.append((labels, float(value)))
        gauges.append(gauge)
    return gauges


def verdict_gauges(run: Run) -> list[Gauge]:
    """The run's verdicts (none without verdicts.json)."""
    verdicts = read_verdicts(run.path)
    if verdicts is None:
        return []
    base = {"run_id": run.run_id, "base": verdicts.base_label}
    regression = Gauge("benchfab_verdict_regression", "1 when the key regressed against the base (worse, failed, "
                       "changed or missing), else 0; the verdict label says which")
    ratio = Gauge("benchfab_verdict_ratio", "the key's new median / base median of the judged metric")
    for v in verdicts.verdicts:
        labels = {**base, "key_id": v.key_id, "metric": v.metric}
        regression.samples.append(({**labels, "verdict": v.verdict}, 1.0 if v.regression else 0.0))
        if v.ratio is not None:
            ratio.samples.append((labels, v.ratio))
    count = Gauge("benchfab_regressions", "keys that regressed against the base in the latest comparison",
                  samples=[(base, float(len(verdicts.regressions)))])
    damaged = Gauge("benchfab_comparison_damaged", "stored files the latest comparison could not read (any: it "
                    "failed, whatever the keys say)", samples=[(base, float(len(verdicts.damaged)))])
    return [count, damaged, regression, ratio]


def run_gauges(run: Run) -> list[Gauge]:
    """When the run ended (for staleness alerts) and how many tests ended in each status."""
    gauges = []
    ended = _timestamp(run.meta.get("ended"))
    if ended is not None:
        gauges.append(Gauge("benchfab_run_end_timestamp_seconds", "when the run ended (Unix time)", "seconds",
                            [({"run_id": run.run_id, "status": _label(run.meta.get("status"))}, ended)]))
    tests = Gauge("benchfab_tests", "tests of the run by how they ended")
    if not run.tests.empty:
        for status, count in run.tests["status"].value_counts().sort_index().items():
            tests.samples.append(({"run_id": run.run_id, "status": str(status)}, float(count)))
    return gauges + [tests]


def _timestamp(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def openmetrics_text(run: Run) -> str:
    """The whole exposition: run, verdict and key-figure gauges, then ``# EOF``."""
    families: Sequence[Gauge] = [*run_gauges(run), *verdict_gauges(run), *key_figures(run)]
    return "\n".join(_lines(families) + ["# EOF"]) + "\n"


def _lines(families: Iterable[Gauge]) -> list[str]:
    return [line for g in families for line in g.lines()]


__all__ = ["Gauge", "key_figures", "openmetrics_text", "run_gauges", "verdict_gauges"]
