"""Workload families and the record schema: one registry, one column list."""

import json
import typing
from pathlib import Path

import pytest

from benchfab import records, store
from benchfab.backends import base as backend_base
from benchfab.errors import WorkloadError
from benchfab.planner import local_nodes, plan
from benchfab.rdma.params import RdmaParams
from benchfab.spec import Memory, Workload, load_spec_text
from benchfab.task import Task
from benchfab.workloads import FAMILIES, WORKLOADS, catalog, family_of, rows

EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example"


def test_every_spec_workload_has_exactly_one_family() -> None:
    assert set(typing.get_args(Workload)) == set(WORKLOADS)
    assert len(WORKLOADS) == len(set(WORKLOADS))  # no workload in two families
    for name in WORKLOADS:
        assert family_of(name).owns(name)
    with pytest.raises(WorkloadError, match="unknown workload"):
        family_of("rdma_atomic_bw")
    # Workloads only `benchfab import` stores (ib_read_bw's rows...) have a family, and no spec runs them.
    for family in FAMILIES:
        for name in family.imported:
            assert family_of(name) is family and name not in WORKLOADS


def test_aliases_name_only_their_own_family() -> None:
    for family in FAMILIES:
        assert set(family.aliases.values()) == set(family.workloads)


def test_one_memory_literal() -> None:
    assert Memory is catalog.Memory


def test_schema_columns_are_listed_once() -> None:
    assert store.SUMMARY_COLUMNS == list(records.SUMMARY_COLUMNS)
    assert store.TEST_COLUMNS == list(records.TEST_COLUMNS)
    assert set(records.MEASUREMENT_KEY) <= set(records.SUMMARY_COLUMNS)


SPEC = """
tests:
  - {name: ar, workload: broadcast, ranks: 3, root: 1, sizes: [8]}
  - {name: bw, workload: rdma_write_bw, transport: tcp, sizes: [64K]}
"""


def _outcome(test_id: str, rec: dict[str, typing.Any]) -> backend_base.TestOutcome:
    result = {"type": "result", "test_id": test_id, "status": "ok", "reason": "", "per_iter_s": [1e-6], **rec}
    return backend_base.TestOutcome(test_id, "ok", results=[result],
                                    env=[{"rank": 0, "device": "cpu", "transport": "gloo"}])


def test_summary_rows_carry_the_measurement_key() -> None:
    coll, p2p = plan(load_spec_text(SPEC), local_nodes(2)).tests
    coll_rows = rows.summary_rows("run", coll, _outcome(coll.test_id, {
        "size_bytes": 8, "count": 2, "in_place": False, "iterations": 5, "time_s": 1e-6, "algbw_Bps": 8e6,
        "busbw_Bps": 8e6, "wrong": 0, "method": "copy+inplace"}))
    p2p_rows = rows.summary_rows("run", p2p, _outcome(p2p.test_id, {
        "size_bytes": 65536, "in_place": False, "iterations": 100, "elapsed_s": 1e-3, "transport": "tcp",
        "engine": "native", "memory": "host", "bw_avg_Bps": 1e9}))
    for row in coll_rows + p2p_rows:
        assert set(records.MEASUREMENT_KEY) <= set(row)
        assert row["profile"] == "loopback" and row["hosts"] == "localhost"
    assert coll_rows[0]["root"] == 1 and coll_rows[0]["collective"] == "broadcast_perf"
    assert p2p_rows[0]["collective"] == "ib_write_bw" and p2p_rows[0]["time_s"] == pytest.approx(1e-5)
    assert set(p2p_rows[0]) == set(records.SUMMARY_COLUMNS)


def test_task_carries_the_resolved_test_and_round_trips() -> None:
    coll, p2p = plan(load_spec_text(SPEC), local_nodes(2)).tests
    task = p2p.task()
    assert (task.workload, task.transport, task.sizes, task.in_place, task.dtype) == \
        ("rdma_write_bw", "tcp", [65536], [False], "none")
    assert task.rdma == p2p.spec.rdma.model_dump()
    assert Task.from_json(task.to_json()) == task
    assert coll.task().root == 1 and json.loads(coll.task().to_json())["labels"]["profile"] == "loopback"


def test_rdma_params_apply_the_spec_rules() -> None:
    with pytest.raises(WorkloadError, match="perftest runs over verbs only"):
        RdmaParams.from_mapping({"workload": "rdma_write_bw", "transport": "tcp", "engine": "perftest"})
    with pytest.raises(WorkloadError, match="at least 5 iterations"):
        RdmaParams.from_mapping({"workload": "rdma_write_bw", "iterations": 4})


def test_older_summary_parts_get_profile_and_hosts_from_their_test_row() -> None:
    run = store.load_run(EXAMPLE)
    assert set(records.SUMMARY_COLUMNS) <= set(run.summary.columns)
    assert run.summary["profile"].notna().all() and (run.summary["hosts"] == "localhost").all()
