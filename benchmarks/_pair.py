"""Helpers shared by the benchmark scripts: run one run_rdma_pair with the server in a
child process (two processes, like perftest and iperf3), and medians."""

from __future__ import annotations

import multiprocessing as mp
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchfab.rdma import SocketExchange, run_rdma_pair

# Both ends run on this host (forked or spawned): a fixed secret they share.
SECRET = b"benchfab-benchmark-pair-0123456789abcdef"


def _server(params: dict[str, Any], port: int, q: Any) -> None:
    ex = SocketExchange("client", "127.0.0.1", port, timeout_s=120, secret=SECRET)  # the OOB roles are free
    try:
        run_rdma_pair("server", params, ex)
        q.put(None)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        q.put(repr(exc))
    finally:
        ex.close()


def benchfab_pair(params: dict[str, Any], start_method: str = "fork") -> list[dict[str, Any]]:
    """Client records of one test; the server runs in a child process: forked, or spawned
    (``start_method="spawn"``) where this process may have initialised CUDA, which a
    forked child cannot use."""
    ex = SocketExchange("server", "127.0.0.1", 0, timeout_s=120, secret=SECRET)
    ctx = mp.get_context(start_method)
    q = ctx.Queue()
    child = ctx.Process(target=_server, args=(params, ex.port, q))
    child.start()
    try:
        recs = run_rdma_pair("client", params, ex)
    finally:
        ex.close()
        child.join(120)
    err = q.get(timeout=5)
    if err:
        raise RuntimeError(f"server side failed: {err}")
    return recs


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
