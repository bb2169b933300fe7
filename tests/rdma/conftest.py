"""Fixtures for the RDMA tests: they need benchfab._native and a usable RDMA device.

Tests marked ``rdma`` are skipped, with the reason, when the compiled module is missing,
when libibverbs cannot list devices (``Function not implemented`` on hosts without any
RDMA driver), or when the list is empty. Run them for real inside the soft-RoCE VM:
``tests/rdma/run_in_vm.sh``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

_reason_cache: list[str | None] = []


def rdma_unusable_reason() -> str | None:
    """None when an RDMA device is usable here, else why not (computed once)."""
    if _reason_cache:
        return _reason_cache[0]
    reason: str | None = None
    try:
        from benchfab import _native
    except ImportError as exc:
        reason = f"benchfab._native is not built ({exc})"
    else:
        try:
            if not _native.list_device_names():
                reason = "no RDMA devices"
        except Exception as exc:  # noqa: BLE001 - "Function not implemented" and friends
            reason = f"no usable RDMA device: {exc}"
    _reason_cache.append(reason)
    return reason


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rdma: needs an RDMA device (soft-RoCE VM or a real NIC)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("rdma") for item in items):
        return
    reason = rdma_unusable_reason()
    if reason is None:
        return
    if os.environ.get("BENCHFAB_REQUIRE_RDMA"):
        # The soft-RoCE lane: a skipped rdma test there is a broken lane, not a pass.
        raise pytest.UsageError(f"BENCHFAB_REQUIRE_RDMA is set but the rdma tests cannot run: {reason}")
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("rdma"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def rdma_device() -> str | None:
    """BENCHFAB_RDMA_DEVICE (set by the VM harness), else the first device."""
    return os.environ.get("BENCHFAB_RDMA_DEVICE") or None


@pytest.fixture(scope="session")
def peer_ip() -> str:
    """Address of the RDMA netdev; loopback pairs connect to ourselves through it."""
    return os.environ.get("BENCHFAB_RDMA_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def port_choice(rdma_device: str | None) -> Any:
    from benchfab.rdma.discovery import select_port
    return select_port(rdma_device)


@pytest.fixture
def make_endpoint(port_choice: Any) -> Iterator[Any]:
    """Factory of native endpoints on the chosen port; all closed at teardown."""
    from benchfab import _native
    made: list[Any] = []

    def make(**kw: Any) -> Any:
        kw.setdefault("buf_size", 1 << 20)
        ep = _native.RdmaEndpoint(port_choice.device, port_choice.port, port_choice.gid_index, **kw)
        made.append(ep)
        return ep

    yield make
    for ep in made:
        ep.close()


@pytest.fixture
def rdma_pair(make_endpoint: Any) -> tuple[Any, Any]:
    """Two endpoints on the same device, connected to each other (loopback)."""
    a = make_endpoint()
    b = make_endpoint()
    a.connect(b.local_info())
    b.connect(a.local_info())
    return a, b
