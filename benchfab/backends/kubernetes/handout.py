"""A round's tests as ConfigMaps: the one write that hands a whole round to its agents.

Handing each pod its test by a PATCH of its own annotation cost one API round trip per
pod per round, so hand-out time grew with the round (512 PATCHes a round at 1,024 nodes).
Instead the controller writes one ConfigMap per round (labels ``benchfab.io/run`` and
``benchfab.io/round``) holding each test's task once (key ``task.<seq>``) and each pod's
assignment (key = the pod's name: ``{seq, task: "task.<seq>", env, local_env}``). A round
larger than ``SHARD_BYTES`` is split across several ConfigMaps, a test and its pods'
entries always in the same one, each well under the API server's 1 MiB object limit.
Agents watch the ConfigMaps of their run by label and pick their own entry.

Agents may read every ConfigMap of the namespace (RBAC cannot select by label), so a round
ConfigMap carries no secret: each test's out-of-band secret (rdma/oob.py) is derived by the
test's agents from the run's secret and the test's seq (``test_secret``). The run's secret
is an annotation on the run's pods, which only the run's agents may read (their Role names
the pods), as the per-test secrets were before.

This module is imported by the agent before its first test: json only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .manifests import LABEL_RUN, label_value, run_key, run_labels

LABEL_ROUND = "benchfab.io/round"
ANN_RUN_SECRET = "benchfab.io/run-secret"  # on each pod of the run: its tests' secrets derive from it
TASK_PREFIX = "task."
# A ConfigMap may hold 1 MiB (etcd's request limit is 1.5 MiB); half of it leaves room for
# the object's metadata and keeps each write's cost on the API server and watchers modest.
SHARD_BYTES = 512 * 1024


@dataclass
class RoundTest:
    """One test of the round: its task (JSON) and each of its pods' assignment."""

    seq: int
    task_json: str
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # pod name -> {env, local_env}


def new_run_secret() -> str:
    return secrets.token_hex(32)


def test_secret(run_secret: str, seq: int) -> str:
    """Test ``seq``'s secret: its ranks accept only each other (a new one per test)."""
    return hmac.new(run_secret.encode(), f"benchfab test {seq}".encode(), hashlib.sha256).hexdigest()


def round_name(run_id: str, round_no: int, shard: int) -> str:
    return f"bf-{run_key(run_id)}-r{round_no}-{shard}"


def round_selector(run_id: str, round_no: int) -> str:
    return f"{LABEL_RUN}={label_value(run_id)},{LABEL_ROUND}={round_no}"


def assignment(seq: int, env: dict[str, str], local_env: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A pod's entry: the pod's env, and per local rank what differs (RANK, LOCAL_RANK...): the
    agent starts one worker per entry of ``local_env`` (one when it is absent)."""
    body: dict[str, Any] = {"seq": seq, "task": f"{TASK_PREFIX}{seq}", "env": env}
    if local_env:
        body["local_env"] = local_env
    return body


def round_configmaps(run_id: str, namespace: str, round_no: int, tests: Iterable[RoundTest],
                     shard_bytes: int = SHARD_BYTES) -> list[dict[str, Any]]:
    """The round's ConfigMaps: as few as fit ``shard_bytes`` each (a test is never split)."""
    shards: list[dict[str, str]] = []
    size = 0
    for test in tests:
        data = {f"{TASK_PREFIX}{test.seq}": test.task_json}
        data.update({pod: json.dumps(entry, separators=(",", ":"), sort_keys=True) for pod, entry in test.pods.items()})
        grows = sum(len(k) + len(v) for k, v in data.items())
        if not shards or (size + grows > shard_bytes and shards[-1]):
            shards.append({})
            size = 0
        shards[-1].update(data)
        size += grows
    labels = {**run_labels(run_id), LABEL_ROUND: str(round_no), "app.kubernetes.io/component": "round"}
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": round_name(run_id, round_no, i), "namespace": namespace, "labels": labels},
             "data": data} for i, data in enumerate(shards)]


def pick(configmaps: Iterable[dict[str, Any]], pod: str, after: int) -> tuple[dict[str, Any], str] | None:
    """This pod's newest assignment with a seq above ``after`` and its task JSON, or None.
    Several rounds may be visible at once (the last one's deletion not yet seen): the newest wins.
    Raises ValueError on an entry that cannot be read."""
    best: tuple[dict[str, Any], str] | None = None
    for cm in configmaps:
        data = cm.get("data") or {}
        raw = data.get(pod)
        if raw is None:
            continue
        entry = json.loads(raw)
        seq = int(entry["seq"])
        if seq > after and (best is None or seq > int(best[0]["seq"])):
            best = (entry, str(data[str(entry["task"])]))
    return best
