"""The second pass's sensitivity and false alarms, and the sweep's ETA, on the simulated cluster.

Two seeds in CI: on 8 nodes, a clean cluster gets no verdict, a node throttled to 80 % of
its peers' rate (an htb class on its veth, both ways) is named bad-node and nothing else, and
a node losing 1 % of its packets is named lossy-node (not as lossy links). The figures over
more seeds: benchmarks/diagnosis_sensitivity.py, quoted in docs/DIAGNOSIS.md.
BENCHFAB_SIM_SEEDS=1-5 runs more seeds here too.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from benchfab.native import HAVE_NATIVE
from tests.fakecluster.netsim import why_unavailable
from tests.sim.scenarios import Scenario, run_scenario
from tests.sim.test_second_pass import _seeds

_why = why_unavailable() or (None if HAVE_NATIVE else "benchfab._native is not built (the tcp engine)")
pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.skipif(_why is not None, reason=_why or "")]

SEEDS = _seeds(os.environ.get("BENCHFAB_SIM_SEEDS", "1,2"))
NODES = 8


@pytest.mark.parametrize("seed", SEEDS)
def test_a_clean_cluster_gets_no_verdict_and_an_eta_within_2x(tmp_path: Path, seed: int) -> None:
    o = run_scenario(Scenario("clean"), seed, NODES, tmp_path, progress=True)
    assert o.found == set(), o.found
    assert o.result.exit_code() == 0
    check_eta(o.progress, o.started, json.loads((o.result.path / "run.json").read_text())["estimate_s"])


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_at_80_percent_of_its_peers_is_named_and_nothing_else(tmp_path: Path, seed: int) -> None:
    o = run_scenario(Scenario("slow", fraction=0.8), seed, NODES, tmp_path)
    assert o.found == o.expected, o.found
    assert o.result.exit_code(allow_failures=True) == 1  # a verdict: exit 1 whatever --allow-failures says


@pytest.mark.parametrize("seed", SEEDS)
def test_a_node_losing_1_percent_is_one_lossy_node_verdict(tmp_path: Path, seed: int) -> None:
    o = run_scenario(Scenario("lossy", loss_pct=1.0), seed, NODES, tmp_path)
    assert o.found == o.expected, o.found


ETA_LINE = re.compile(r"^\[(\d+)/(\d+)\] \S+: \w+ in \S+; elapsed \S+, ETA (\S+)$")


def seconds(text: str) -> float:
    """format_duration's text back in seconds: '9.5s', '45s', '3m05s', '1h02m'."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?", text)
    assert m is not None, text
    h, mnt, s = (float(g) if g else 0.0 for g in m.groups())
    return 3600 * h + 60 * mnt + s


def check_eta(lines: list[tuple[float, str]], started: float, planned_s: float) -> None:
    """The plan's estimate of the pass, and every ETA printed once a round has ended, within 2x of
    what the pass really took (a second of slack for the rounding of the printed figures)."""
    etas = [(t, int(m.group(1)), int(m.group(2)), seconds(m.group(3))) for t, line in lines
            if (m := ETA_LINE.match(line))]
    total = etas[0][2]
    assert [e[1] for e in etas[:total]] == list(range(1, total + 1)), lines  # the pass: one line per test
    ended = etas[total - 1][0]
    real = ended - started
    assert real / 2 <= planned_s <= 2 * real, (planned_s, real)
    for t, k, _, eta in etas[:total]:
        left = ended - t
        assert left / 2 - 1 <= eta <= 2 * left + 1, (k, eta, left, lines)
