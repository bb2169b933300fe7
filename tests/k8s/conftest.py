"""Fixtures for the Kubernetes backend tests: a fake cluster on real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakecluster import FakeCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    c = FakeCluster(tmp_path / "cluster").start()
    # Every test here sees watch events late, as from a real API server (0-200 ms after
    # the write): code that takes "not in the cache yet" for "gone" fails here.
    c.watch_delay_s = (0.0, 0.2)
    c.store.put("namespaces", {"metadata": {"name": "bench"}})
    try:
        yield c
    finally:
        c.stop()
