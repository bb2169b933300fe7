"""``benchfab report RUN``: PNG curves and a markdown summary of one run.

Figures: bus bandwidth vs message size and time per op vs message size, log2
size axis with binary labels, one line per test (solid out-of-place, dashed
in-place). Units are in the axis labels: GB/s = 1e9 B/s as nccl-tests prints.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from .analysis import bandwidth_table, curve_label, curves, p2p_table, size_ticks  # noqa: E402
from .store import Run  # noqa: E402
from .workloads.catalog import COLLECTIVES  # noqa: E402


def _plot(run: Run, column: str, scale: float, ylabel: str, title: str, path: Path, logy: bool,
          workloads: list[str] | None = None, band: str | None = None) -> Path | None:
    summary = run.summary
    if workloads is not None and not summary.empty:
        summary = summary[summary["workload"].isin(workloads)]
    data = curves(summary, column)
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    test_ids = sorted({c.iloc[0]["test_id"] for c in data.values()})
    all_sizes: list[int] = []
    for curve in data.values():
        first = curve.iloc[0]
        color = colors[test_ids.index(first["test_id"]) % len(colors)]
        ax.plot(curve["size_bytes"], curve[column] * scale, marker="o", markersize=3, linewidth=1.4, color=color,
                linestyle="--" if bool(first["in_place"]) else "-", label=curve_label(curve))
        if band is not None and curve[band].notna().any():
            # The tail (p99) as a shaded band above the typical value.
            ax.fill_between(curve["size_bytes"], curve[column] * scale, curve[band] * scale, color=color, alpha=0.15)
        all_sizes.extend(int(s) for s in curve["size_bytes"])
    ax.set_xscale("log", base=2)
    values = [v for c in data.values() for v in (c[column] * scale).tolist() if v > 0]
    if logy and values and max(values) / min(values) > 20:  # a log axis only pays off over decades
        ax.set_yscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
    ticks, labels = size_ticks(all_sizes)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, rotation=45)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("message size (bytes, binary prefixes)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\nrun {run.run_id}", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(run: Run, out_dir: Path | None = None) -> list[Path]:
    """Write busbw.png, time.png and summary.md; return their paths."""
    out = Path(out_dir) if out_dir else run.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    collectives = list(COLLECTIVES)
    for path in (
        _plot(run, "busbw_Bps", 1e-9, "bus bandwidth (GB/s, 1e9 B/s)", "Bus bandwidth vs message size",
              out / "busbw.png", True, collectives),
        _plot(run, "time_s", 1e6, "time per op (us)", "Time per op vs message size", out / "time.png", True, collectives),
        _plot(run, "bw_avg_Bps", 8e-9, "BW average (Gb/s, 1e9 bit/s)", "Write bandwidth vs message size (perftest semantics)",
              out / "p2p_bw.png", True, ["rdma_write_bw"]),
        _plot(run, "lat_median_s", 1e6, "latency, half round trip (us); band: median to p99",
              "Write latency vs message size (perftest t_typical)", out / "p2p_lat.png", True, ["rdma_write_lat"],
              band="lat_p99_s"),
    ):
        if path is not None:
            written.append(path)
    md = out / "summary.md"
    md.write_text(markdown_summary(run, [p.name for p in written]))
    written.append(md)
    return written


def markdown_summary(run: Run, images: list[str]) -> str:
    meta = run.meta
    versions = meta.get("versions", {})
    lines = [
        f"# benchfab run `{run.run_id}`",
        "",
        f"- spec: `{meta.get('spec_path')}` ({meta.get('spec', {}).get('name')})",
        f"- status: {meta.get('status')}; started {meta.get('started')}, ended {meta.get('ended')}",
        f"- host: {meta.get('host', {}).get('hostname')}; benchfab {versions.get('benchfab')}, "
        f"torch {versions.get('torch')}, python {versions.get('python')}",
        f"- git: {(meta.get('git') or {}).get('revision', 'n/a')}",
        "",
        "## Tests",
        "",
        "| test | workload | ranks | status | reason |",
        "|---|---|---|---|---|",
    ]
    for _, t in run.tests.sort_values("test_id").iterrows() if not run.tests.empty else []:
        reason = str(t["reason"] or "").replace("|", "\\|")
        lines.append(f"| {t['test_id']} | {t['workload']} | {t['ranks']} | {t['status']} | {reason} |")
    table = bandwidth_table(run.summary)
    lines += ["", "## Bandwidth (GB/s = 1e9 B/s)", "", "| test | peak busbw | avg busbw | min time (us) | #wrong |",
              "|---|---|---|---|---|"]
    for _, r in table.iterrows():
        wrong = "N/A" if pd.isna(r["wrong"]) else str(int(r["wrong"]))
        lines.append(f"| {r['test_id']} | {r['peak_busbw_GBps']:.3f} | {r['avg_busbw_GBps']:.3f} | {r['min_time_us']:.1f} | {wrong} |")
    p2p = p2p_table(run.summary)
    if not p2p.empty:
        lines += ["", "## Point-to-point (Gb/s = 1e9 bit/s; latency = half round trip)", "",
                  "| test | workload | transport | engine | max BW average (Gb/s) | min t_typical (us) |", "|---|---|---|---|---|---|"]
        for _, r in p2p.iterrows():
            bw = "" if pd.isna(r["max_bw_avg_Gbps"]) else f"{r['max_bw_avg_Gbps']:.3f}"
            lat = "" if pd.isna(r["min_lat_median_us"]) else f"{r['min_lat_median_us']:.2f}"
            lines.append(f"| {r['test_id']} | {r['workload']} | {r['transport']} | {r['engine']} | {bw} | {lat} |")
    if images:
        lines += [""] + [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"
