"""Shared fixtures: run the real CLI in a subprocess, write specs, find leftover ranks; and the
rule that keeps the markers honest (scripts/check.sh deselects by them)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

# Directories whose every test must carry a marker: what each of them needs.
MARKED_DIRS = {"k8s": "k8s", "sim": "netns"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test under tests/k8s without the k8s marker (tests/sim without netns) stops the run."""
    unmarked = []
    for item in items:
        parts = Path(str(item.path)).relative_to(ROOT).parts
        want = MARKED_DIRS.get(parts[1]) if len(parts) > 2 and parts[0] == "tests" else None
        if want and item.get_closest_marker(want) is None:
            unmarked.append(f"{item.nodeid} (add pytestmark = pytest.mark.{want})")
    if unmarked:
        raise pytest.UsageError("tests without their marker:\n  " + "\n  ".join(unmarked))


def _clusters_started() -> int:
    module = sys.modules.get("tests.fakecluster.cluster")
    return int(module.FakeCluster.started) if module is not None else 0


_BEFORE = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    item.stash[_BEFORE] = _clusters_started()  # before the fixtures: a module-scoped cluster counts too
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield
    if _clusters_started() > item.stash.get(_BEFORE, 0) and item.get_closest_marker("k8s") is None:
        pytest.fail("this test started a fake Kubernetes API server: mark it (pytestmark = pytest.mark.k8s)",
                    pytrace=False)


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``benchfab ARGS`` as a user runs it (a real process, real exit code)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "benchfab", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
