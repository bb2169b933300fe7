"""Agent start-up on the fake cluster: the gang start waits on progress, not on a fixed budget.

The agent reports each start-up stage on its record channel; the backend gives a
stage a limit of its own and restarts the clock on every new stage. The stalls here
are real: the container's command sleeping before it execs the agent (python never
starts) and the API server refusing the agent's list of its own pod (403).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import benchfab
from benchfab.backends.kubernetes import manifests as mf
from benchfab.backends.kubernetes.agent import STAGE_CONNECT, STAGE_DEVICES, STAGE_IMPORTS, STAGE_PROCESS, STAGE_WATCH
from benchfab.task import parse_record
from tests.fakecluster import FakeCluster, seed_nodes
from tests.k8s.helpers import sweep

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

SPEC = """\
name: k8s-startup
backend: kubernetes
namespace: bench
image: registry.example.com/benchfab-worker:test
profiles:
  ib-shared: {fabric: ib, mode: shared, resource: rdma/rdma_shared_device_a, network: rdma-net}
defaults: {sizes: [8], iterations: 2, warmup: 1, device: cpu, timeout: 60s}
kubernetes: {start_timeout: 90s}
tests:
  - name: pairs
    placement: {pattern: all-pairs}
"""


def _wrap_agent(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Run ``script`` (sh) in the container before it execs the real agent."""
    agent = f"exec {sys.executable} -m benchfab.backends.kubernetes.agent"
    monkeypatch.setattr(mf, "AGENT_COMMAND", ["sh", "-c", f"{script}\n{agent}"])


def _own_list(node: str) -> str:
    """Path regex of an agent's list/watch of its own pod (field selector on its name)."""
    return rf"fieldSelector=metadata\.name%3Dbf-[^&]*{node}-0"


def _sweep(cluster: FakeCluster, tmp_path: Path, limits: dict[str, float]) -> tuple[Any, str]:
    result, _, out = sweep(cluster, SPEC, tmp_path / "res", before=lambda backend: backend.stage_limits_s.update(limits))
    return result, out


def _assert_clean(cluster: FakeCluster) -> None:
    assert cluster.objects("pods", "app.kubernetes.io/name=benchfab") == []
    deadline = time.time() + 5
    while cluster.live_processes() and time.time() < deadline:
        time.sleep(0.1)
    assert cluster.live_processes() == 0


def test_a_stalled_agent_is_named_with_its_stage(cluster: FakeCluster, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seed_nodes(cluster, 3)
    # gpu-node-1: python never starts (the command sleeps first); gpu-node-2: the agent
    # starts but the API server refuses its list of its own pod.
    _wrap_agent(monkeypatch, 'case "$HOSTNAME" in *gpu-node-1-0) sleep 600;; esac')
    cluster.inject("GET", _own_list("gpu-node-2"), 403, times=10**6)
    t0 = time.monotonic()
    result, out = _sweep(cluster, tmp_path, {STAGE_PROCESS: 3.0, STAGE_WATCH: 3.0})
    elapsed = time.monotonic() - t0
    run = benchfab.load_run("r", tmp_path / "res")
    reasons = dict(zip(run.tests["test_id"], run.tests["reason"]))
    assert result.counts == {"failed": 3}, out
    since = r"\(since \d\d:\d\d:\d\dZ\)"
    r1 = reasons["000-pairs-gpu-node-0+gpu-node-1"]
    assert re.search(rf"the agent in pod bf-\S+gpu-node-1-0 stopped at stage '{STAGE_PROCESS}' for \d+ s {since}", r1), r1
    assert "(fix: check the image's python" in r1
    r2 = reasons["001-pairs-gpu-node-0+gpu-node-2"] if "001-pairs-gpu-node-0+gpu-node-2" in reasons else next(
        r for t, r in reasons.items() if t.endswith("gpu-node-0+gpu-node-2"))
    assert re.search(rf"stopped at stage '{STAGE_WATCH}' for \d+ s {since}; last error: .*403", r2), r2
    assert "rbac.yaml" in r2 and r2.count("(fix:") == 1
    # Given up after the stage limits (3 s), long before the 90 s start_timeout.
    assert elapsed < 45, elapsed
    _assert_clean(cluster)


def test_a_slow_but_progressing_agent_is_not_killed(cluster: FakeCluster, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    seed_nodes(cluster, 2)
    limit = 6.0
    # Every stage stays under its limit, the whole start-up does not: 4 s before python
    # starts, then gpu-node-1's agent has 4 lists of its own pod refused (its retries
    # back off 0.2 + 0.4 + 0.8 + 1.6 s) before the watch is up.
    _wrap_agent(monkeypatch, "sleep 4")
    refused = cluster.inject("GET", _own_list("gpu-node-1"), 403, times=4)
    t0 = time.time()
    result, out = _sweep(cluster, tmp_path, {stage: limit for stage in
                                             (STAGE_PROCESS, STAGE_IMPORTS, STAGE_CONNECT, STAGE_DEVICES, STAGE_WATCH)})
    assert result.counts == {"ok": 1}, out
    assert refused.left == 0
    run = benchfab.load_run("r", tmp_path / "res")
    # The gang start took longer than any one stage may: a fixed budget of that size would have failed it.
    assert float(run.tests["started"].iloc[0]) - t0 > limit
    # The agent reported its stages in order, the refused list as a repeat of its stage, then ready.
    log = cluster.log_path("bench", next(n for _, n in cluster.created if n.endswith("gpu-node-1-0"))).read_text()
    records = [r for r in map(parse_record, log.splitlines()) if r and r.get("type") == "agent"]
    events = [r.get("stage") or r["event"] for r in records if r["event"] in ("stage", "ready")]
    assert [e for i, e in enumerate(events) if i == 0 or events[i - 1] != e] == [
        STAGE_IMPORTS, STAGE_CONNECT, STAGE_DEVICES, STAGE_WATCH, "ready"]
    assert any("403" in str(r.get("detail")) for r in records if r.get("stage") == STAGE_WATCH)
    ready = next(r for r in records if r["event"] == "ready")
    assert "available" in ready["native"] and ("rdma_devices" in ready or "rdma_devices_error" in ready)
    _assert_clean(cluster)
