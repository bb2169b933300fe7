"""Fixtures for the Kubernetes backend tests: a fake cluster on real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakecluster import FakeCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    c = FakeCluster(tmp_path / "cluster").start()
    c.store.put("namespaces", {"metadata": {"name": "bench"}})
    try:
        yield c
    finally:
        c.stop()
