"""How fast and how big is all-pairs placement on large clusters?

    .venv/bin/python benchmarks/planner_scale.py [N ...]      (default: 1024 4096)

For each N: builds every round of the circle-method round robin (N-1 rounds of
N/2 pairs, ~8.4 M pairs at N=4096), checks every round is disjoint and every
pair appears exactly once, and reports wall time and peak memory (tracemalloc,
Python + numpy allocations) of the whole thing. Target: 4,096 nodes in under
2 s and 500 MB. Then, for comparison, the full planner (PlannedTest objects
with test ids, which a sweep runs round by round) for the first 20 rounds.

Then the planner as a stream (benchfab.planner.plan_stream) on 16,384 nodes, all-pairs with
no round limit (134 M pairs; building them all took 13.3 s and 3.5 GB): how long until its
first round of 8,192 placed tests is there, and the peak memory until then (tracemalloc);
target: first round < 0.1 s, peak < 200 MB. Then the next 9 rounds, and the plan's shape
(benchfab.planshape: counted, not listed), as `benchfab plan` prints it.
Not a test: prints figures.
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchfab.placement import NodeInfo, all_pairs_array
from benchfab.planner import plan, plan_stream
from benchfab.planshape import plan_shape
from benchfab.spec import load_spec_text


def all_pairs_figures(n: int) -> tuple[float, float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    rounds = all_pairs_array(n)  # (rounds, pairs, 2), materialised: what a planner holds
    # Disjoint: within a round, sorted node ids never repeat.
    flat = np.sort(rounds.reshape(rounds.shape[0], -1), axis=1)
    if (np.diff(flat, axis=1) == 0).any():
        raise AssertionError("a node is in two pairs of one round")
    del flat
    # Every pair exactly once: the sorted pair codes a*n+b have no repeats and the right count.
    codes = np.sort((rounds[:, :, 0].astype(np.int64) * n + rounds[:, :, 1]).ravel())
    if codes.size != n * (n - 1) // 2 or (np.diff(codes) == 0).any():
        raise AssertionError("a pair is missing or repeated")
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak / 1e6, int(codes.size)


SPEC = """\
backend: kubernetes
image: x/y:1
profiles: {ib: {fabric: ib, mode: shared, resource: rdma/a, network: n}}
tests:
  - {name: pairs, sizes: [8, 1M], device: cpu, placement: {pattern: all-pairs, max_rounds: 20}}
"""


def planner_figures(n: int) -> tuple[float, int]:
    nodes = [NodeInfo(f"node-{i:05d}", slots={"ib": 8}) for i in range(n)]
    spec = load_spec_text(SPEC)
    t0 = time.perf_counter()
    placed = plan(spec, nodes)
    return time.perf_counter() - t0, len(placed.tests)


STREAM_SPEC = SPEC.replace(", max_rounds: 20", "")


def stream_figures(n: int) -> None:
    """Timed without tracemalloc (it slows every allocation several times), then measured with it."""
    nodes = [NodeInfo(f"node-{i:05d}", slots={"ib": 8}) for i in range(n)]
    spec = load_spec_text(STREAM_SPEC)
    elapsed, cpu = float("inf"), float("inf")
    for _ in range(3):  # best of 3: the development machine is shared
        t0, c0 = time.perf_counter(), time.process_time()
        stream = plan_stream(spec, nodes)
        first = next(stream.rounds)
        elapsed, cpu = min(elapsed, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    tracemalloc.start()
    next(plan_stream(spec, nodes).rounds)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t1 = time.perf_counter()
    more = [len(r.tests) for _, r in zip(range(9), stream.rounds)]
    per_round = (time.perf_counter() - t1) / len(more)
    print(f"{n} nodes, all-pairs as a stream: first round: {elapsed:.3f} s, peak: {peak / 1e6:.1f} MB "
          f"(target < 0.1 s, < 200 MB; {cpu:.3f} s CPU); {len(first.tests)} tests in it, next rounds "
          f"{per_round:.3f} s each; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    t2 = time.perf_counter()
    shapes = plan_shape(spec, nodes)
    print(f"  shape (benchfab plan): {sum(s.rounds for s in shapes)} rounds, {sum(s.tests for s in shapes)} tests, "
          f"counted in {time.perf_counter() - t2:.3f} s")


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [1024, 4096]
    print(f"{'nodes':>6} {'rounds':>7} {'pairs':>10} {'time (s)':>9} {'peak (MB)':>10}   full planner, 20 rounds")
    for n in sizes:
        elapsed, peak, pairs = all_pairs_figures(n)
        ptime, ptests = planner_figures(n)
        print(f"{n:>6} {n - 1 if n % 2 == 0 else n:>7} {pairs:>10} {elapsed:>9.3f} {peak:>10.1f}   "
              f"{ptests} tests in {ptime:.3f} s")
    stream_figures(16_384)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
