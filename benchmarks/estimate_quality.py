"""How good the plan's time estimate and the progress ETA are on the simulated cluster, and
the pod costs the Kubernetes cost model uses (benchfab/costs.py), measured.

    sudo .venv/bin/python benchmarks/estimate_quality.py [--nodes 8] [--seeds 1-3] [--bw-only]

For each seed, a clean simulated cluster (tests/fakecluster: network namespaces, 200 Mbit/s
veths) runs an all-pairs ``rdma_write_bw`` tcp sweep and an all-pairs ``allreduce`` (gloo on
the CPU; not with ``--bw-only``) through the real controller and agent pods, with progress
lines captured. Prints
per seed: the plan's estimate against the real time of the pass, the worst ETA printed
after the first round against the time really left, and the measured costs: pod start-up
(sweep start to the first test's start), a test's start-up (its wall time less what it
spent measuring: rdma_write_bw; allreduce's extra: torch and a process group), and the
controller's hand-out per further test of a round. Not a test: tests/sim/test_sensitivity.py
checks the 2x bounds in CI.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import benchfab
from tests.fakecluster.netsim import why_unavailable
from tests.fakecluster.simcluster import all_pairs_tests
from tests.sim.scenarios import Scenario, run_scenario

AR_TEST = """\
  - {name: ar, workload: allreduce, device: cpu, sizes: [1M], iterations: 10, warmup: 2, in_place: false,
     placement: {pattern: all-pairs}}
"""
BW_ONLY = all_pairs_tests(start_timeout="60s", timeout="120s")
TESTS = all_pairs_tests(start_timeout="60s", timeout="120s", more=AR_TEST)
ETA = re.compile(r"^\[(\d+)/(\d+)\] \S+: \w+ in \S+; elapsed \S+, ETA (\S+)$")


def seconds(text: str) -> float:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:([\d.]+)s)?", text)
    if m is None:
        raise ValueError(text)
    h, mnt, s = (float(g) if g else 0.0 for g in m.groups())
    return 3600 * h + 60 * mnt + s


def one(seed: int, nodes: int, workdir: Path, tests: str) -> dict[str, float]:
    offset = time.time() - time.monotonic()
    o = run_scenario(Scenario("clean"), seed, nodes, workdir, tests, progress=True)
    run = benchfab.load_run(o.result.path)
    tests = run.tests.sort_values("started")
    summary = run.summary.set_index("test_id")
    measured = [float(summary.loc[t, "time_s"] * summary.loc[t, "iterations"]) if t in summary.index else 0.0
                for t in tests["test_id"]]
    tests = tests.assign(measured=measured, start=tests["duration_s"] - np.array(measured))
    tests["round"] = (tests["started"].diff().fillna(0) > 0.5).cumsum()
    spread = tests.groupby("round")["started"].agg(lambda s: (s.max() - s.min()) / max(len(s) - 1, 1))
    etas = [(t, seconds(m.group(3))) for t, line in o.progress if (m := ETA.match(line))]
    ended = max(t for t, _ in etas)
    errors = [max(eta, 1.0) / max(ended - t, 1.0) for t, eta in etas]  # every line: printed once its round ended
    worst = max(errors, key=lambda e: max(e, 1 / e)) if errors else 1.0
    return {
        "planned_s": float(run.meta["estimate_s"]), "real_s": ended - o.started, "worst_eta_ratio": worst,
        "pod_start_s": float(tests["started"].min() - (o.started + offset)),
        "bw_start_s": float(tests[tests["test_name"] == "bw"]["start"].median()),
        "ar_start_s": float(tests[tests["test_name"] == "ar"]["start"].median()) if (tests["test_name"] == "ar").any()
        else float("nan"),
        "handout_s": float(spread[spread > 0].median()) if (spread > 0).any() else 0.0,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--seeds", default="1-3")
    p.add_argument("--bw-only", action="store_true", help="only the rdma_write_bw entry")
    args = p.parse_args()
    tests = BW_ONLY if args.bw_only else TESTS
    if why := why_unavailable():
        print(f"estimate_quality: {why}", file=sys.stderr)
        return 2
    lo, _, hi = args.seeds.partition("-")
    figures = []
    with tempfile.TemporaryDirectory(prefix="estimates-") as tmp:
        for seed in range(int(lo), int(hi or lo) + 1):
            f = one(seed, args.nodes, Path(tmp), tests)
            figures.append(f)
            print(f"seed {seed}: plan {f['planned_s']:.0f} s, real {f['real_s']:.0f} s "
                  f"(x{f['real_s'] / f['planned_s']:.2f}); worst ETA: x{f['worst_eta_ratio']:.2f} "
                  f"of the time left; pod start {f['pod_start_s']:.1f} s, test start {f['bw_start_s']:.2f} s "
                  f"(allreduce {f['ar_start_s']:.2f} s), hand-out {1e3 * f['handout_s']:.1f} ms/test "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    med = {k: float(np.median([f[k] for f in figures])) for k in figures[0]}
    print(f"median: pod start {med['pod_start_s']:.1f} s, test start {med['bw_start_s']:.2f} s, allreduce extra "
          f"{med['ar_start_s'] - med['bw_start_s']:.2f} s, hand-out {1e3 * med['handout_s']:.1f} ms/test; "
          f"plan/real x{med['planned_s'] / med['real_s']:.2f}; {args.nodes} nodes, {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
