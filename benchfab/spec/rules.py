"""The diagnosis rules of a spec: when a pass's test is a suspect (``second_pass:``), and how
an adaptive all-pairs narrows itself after a cheap screen (``placement.adaptive``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import _Model


class SecondPassRules(_Model):
    """When a pass's test is a suspect, and how many retest rounds the second pass runs.

    Each figure is relative to the tests of the same measurement (test entry, profile,
    workload, dtype, op, size) in the pass: its median, or ClusterKit-style its best
    bandwidth / lowest latency. A rule set to null is off.
    """

    below_median: float | None = Field(default=0.7, gt=0, lt=1)  # bandwidth < this x the median
    # A node whose tests' median bandwidth (each at its largest size, / the median) is below this:
    # one test per partner is noisy, the median over a node's partners is not.
    node_below_median: float | None = Field(default=0.9, gt=0, lt=1)
    below_best: float | None = Field(default=None, gt=0, lt=1)  # bandwidth < this x the best (ClusterKit: X %)
    above_median: float | None = Field(default=3.0, gt=1)  # latency > this x the median latency
    above_lowest: float | None = Field(default=None, gt=1)  # latency > this x the lowest (ClusterKit: Y x)
    # Lossy / flaky: more than this fraction of the TCP segments a tcp test sent were retransmitted
    # (per test, rank 0's network namespace: /proc/net/snmp) ...
    max_retrans: float | None = Field(default=0.005, gt=0, lt=1)
    # ... or p99 / median of its timed iterations > this x the median of that ratio (off by
    # default: on a shared host the scheduler's hiccups spread iteration times as much as loss).
    spread_factor: float | None = Field(default=None, gt=1)
    retests: int = Field(default=2, ge=1, le=10)  # rounds, each suspect with another known-good partner


# The patterns an adaptive all-pairs screens with: each tests every node in a few rounds.
SCREEN_PATTERNS = ("ring", "k-groups")


class Adaptive(_Model):
    """``placement.adaptive`` of an all-pairs test: run the screen's few rounds first, then
    all-pairs only among the nodes the screen flags (the second pass's suspect rules) plus
    ``sample`` good nodes drawn with ``seed`` (docs/DIAGNOSIS.md, "Adaptive all-pairs")."""

    screen: Literal["ring", "k-groups"] = "ring"
    sample: int = Field(default=4, ge=0)  # good nodes added to the flagged ones (they set the baseline)
    seed: int = Field(default=0, ge=0)  # the screen's node order and the sample's draw (screen.py)
