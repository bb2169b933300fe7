"""How often `benchfab compare` cries wolf, and the smallest slowdown it catches, at its
defaults (factor 1.10, z 5 against the runs' noise: docs/COMPARE.md). Prints figures,
asserts nothing. Two parts, both by default:

  false-alarms  N back-to-back pairs of `benchfab sweep SPEC` (default jobs/local.yaml),
                real processes as a user runs them, each pair compared at the defaults:
                per pair its verdicts and noise, then the pairs with 0 worse (the target:
                at least 9 of 10 on an idle host) and what `--history 7` says of each run
                from the fourth on (the same runs as its history). The load average is
                printed before and after: on a shared machine it is part of the result.
  sensitivity   the simulated cluster (tests/fakecluster: 3 nodes in network namespaces,
                htb-shaped 100 Mbit/s links; needs root): per seed a fresh cluster, a base
                run and a second run of the same spec (the false-alarm check on steady
                links), then one link and one node's NIC (where the seed puts them) shaped
                to each rate in turn. Caught: exactly the pairs through the shaped link or
                NIC are worse, nothing else is. Prints the smallest slowdown caught in every
                seed.

  .venv/bin/python benchmarks/verdict_noise.py false-alarms --pairs 10
  sudo .venv/bin/python benchmarks/verdict_noise.py sensitivity --seeds 3 --rates 95,90,85,80
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchfab.compare import Comparison, Method, parse_base, run_comparison
from benchfab.verdicts import noise_text

ROOT = Path(__file__).resolve().parent.parent
RATE = 100.0  # Mbit/s, every simulated NIC


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "?"


def _line(c: Comparison) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(c.counts().items()))
    spread = "-" if c.spread is None else f"±{c.spread * 100:.0f} %"
    widest = max((v.noise for v in c.verdicts if v.noise is not None), default=None)
    return f"{counts}; run-to-run spread {spread}; widest noise band {noise_text(widest)}"


def false_alarms(spec: Path, pairs: int, workdir: Path) -> None:
    results = workdir / "results"
    benchfab = [sys.executable, "-m", "benchfab"]
    print(f"# false alarms: {pairs} back-to-back pairs of `benchfab sweep {spec}`, compared at the defaults")
    print(f"# load average before: {load()} ({os.cpu_count()} CPUs)")
    runs: list[str] = []
    clean = 0
    started = time.time()
    for i in range(pairs):
        ids = []
        for side in ("a", "b"):
            run_id = f"pair{i:02d}{side}"
            proc = subprocess.run([*benchfab, "sweep", str(spec), "--results", str(results), "--run-id", run_id,
                                   "--no-progress"], capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                print(f"# pair {i}: sweep {run_id} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
            ids.append(run_id)
        runs += ids
        c = run_comparison(parse_base(ids[0], results), results / ids[1], results, Method())
        worse = [v for v in c.verdicts if v.verdict == "worse"]
        clean += not worse
        print(f"pair {i}: {_line(c)}" + "".join(f"\n    worse: {v.key_id} ratio {v.ratio:.3f} noise "
                                                   f"{noise_text(v.noise)}" for v in worse), flush=True)
    print(f"# pairs with 0 worse: {clean}/{pairs} (target: at least 9 of 10); "
          f"{time.time() - started:.0f} s; load average after: {load()}")
    history_worse = []
    for run_id in runs[3:]:
        c = run_comparison(parse_base("history:7", results), results / run_id, results, Method())
        history_worse.append(c.counts().get("worse", 0))
    if history_worse:
        print(f"# --history 7 of each run from the 4th on: runs with 0 worse: "
              f"{sum(1 for w in history_worse if not w)}/{len(history_worse)} (worse keys: {history_worse})")


def _sweep(sim: object, results: Path, run_id: str) -> Path:
    from benchfab.backends.kubernetes.backend import KubernetesBackend
    from benchfab.backends.kubernetes.client import ClusterOptions
    from benchfab.spec import load_spec_text
    from benchfab.sweep import run_sweep
    from tests.fakecluster.simcluster import all_pairs_spec

    # all pairs, 256 KiB x 60: at 100 Mbit/s about 21 ms an iteration, so the shaper, not the CPU,
    # sets each iteration's time
    text = all_pairs_spec(iterations=60, warmup=5, start_timeout="60s", timeout="120s")
    spec = load_spec_text(text)
    backend = KubernetesBackend(spec, ClusterOptions(kubeconfig=str(sim.cluster.kubeconfig)))  # type: ignore[attr-defined]
    result = run_sweep(spec, text, results_dir=str(results), run_id=run_id, out=io.StringIO(), progress=False,
                       backend=backend)
    if result.counts != {"ok": 3}:
        print(f"# {run_id}: {result.counts}")
    return result.path


def sensitivity(seeds: int, rates: list[float], workdir: Path) -> None:
    from tests.fakecluster.netsim import why_unavailable
    from tests.fakecluster.simcluster import SimCluster

    why = why_unavailable()
    if why:
        print(f"# sensitivity: skipped ({why})")
        return
    print(f"# sensitivity: 3 simulated nodes, {RATE:g} Mbit/s htb links, all-pairs tcp bandwidth (256 KiB x 60); "
          f"one link, then one NIC, shaped to {', '.join(f'{r:g} %' for r in rates)} of the rate; {seeds} seed(s)")
    print(f"# load average before: {load()}")
    caught: dict[tuple[str, float], list[bool]] = {}
    false_alarm = []
    for seed in range(seeds):
        sim = SimCluster.start(3, workdir / f"cluster-{seed}", RATE)
        try:
            for node in sim.net.nodes:  # a send buffer the shaper fills (tests/sim does the same)
                subprocess.run(["ip", "netns", "exec", node.netns, "sysctl", "-q", "-w",
                                "net.ipv4.tcp_wmem=4096 65536 262144"], check=True)
            results = workdir / f"results-{seed}"
            a, b, c = random.Random(seed).sample(sim.names, 3)
            _sweep(sim, results, "base")
            same = run_comparison(parse_base("base", results), _sweep(sim, results, "same"), results, Method())
            false_alarm.append(bool(same.regressions))
            print(f"seed {seed}: same spec again: {_line(same)}", flush=True)
            for fault, pairs in (("link", {frozenset((a, b))}), ("nic", {frozenset((c, a)), frozenset((c, b))})):
                for rate in rates:
                    if fault == "link":
                        sim.slow_link(a, b, RATE * rate / 100)
                    else:
                        sim.slow_node(c, RATE * rate / 100)
                    run_id = f"{fault}{rate:g}"
                    comparison = run_comparison(parse_base("base", results), _sweep(sim, results, run_id), results,
                                                Method())
                    flagged = {frozenset(str(v.key["hosts"]).split(",")) for v in comparison.regressions}
                    ok = flagged == pairs and all(v.verdict == "worse" for v in comparison.regressions)
                    caught.setdefault((fault, rate), []).append(ok)
                    ratios = ", ".join(f"{v.ratio:.3f}" for v in comparison.verdicts if v.ratio is not None)
                    print(f"seed {seed}: {fault} at {rate:g} %: {'caught' if ok else 'MISSED'}; {_line(comparison)}; "
                          f"ratios {ratios}", flush=True)
                if fault == "link":
                    sim.slow_link(a, b, RATE)
                else:
                    sim.slow_node(c, RATE)
        finally:
            sim.stop()
    print(f"# same spec twice on steady links: {sum(false_alarm)}/{seeds} seed(s) with a regression")
    for fault in ("link", "nic"):
        always = [rate for rate in rates if all(caught[(fault, rate)])]
        row = ", ".join(f"{rate:g} %: {sum(caught[(fault, rate)])}/{seeds}" for rate in rates)
        smallest = f"{100 - max(always):g} % slower" if always else "none"
        print(f"# {fault} shaped to: {row}; smallest slowdown caught in every seed: {smallest}")
    print(f"# load average after: {load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", nargs="?", choices=("false-alarms", "sensitivity"), help="one part (default: both)")
    ap.add_argument("--pairs", type=int, default=10, help="false alarms: back-to-back pairs of sweeps (default 10)")
    ap.add_argument("--spec", type=Path, default=ROOT / "jobs" / "local.yaml")
    ap.add_argument("--seeds", type=int, default=3, help="sensitivity: fresh simulated clusters (default 3)")
    ap.add_argument("--rates", default="95,90,85,80", help="sensitivity: percentages of the link rate")
    ap.add_argument("--dir", type=Path, help="keep the runs here (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="benchfab-verdict-noise-") as tmp:
        workdir = args.dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.part in (None, "false-alarms"):
            false_alarms(args.spec, args.pairs, workdir / "local")
        if args.part in (None, "sensitivity"):
            sensitivity(args.seeds, [float(r) for r in args.rates.split(",")], workdir / "sim")


if __name__ == "__main__":
    main()
