"""Fixtures for the Kubernetes backend tests: a fake cluster on real HTTP."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_cluster import FakeCluster  # noqa: E402  (tests import it by this unique name)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    c = FakeCluster(tmp_path / "cluster").start()
    c.store.put("namespaces", {"metadata": {"name": "bench"}})
    try:
        yield c
    finally:
        c.stop()
