"""Adapter for perftest's ib_{write,read,send}_{bw,lat}: build the command line, run it
(subprocess, argument list, no shell), parse its report into the keys the native loops
produce, so records from both engines sit in one table. ``benchfab import perftest``
(benchfab.importers) reads saved reports with the same parsers (parse_bw, parse_lat,
parse_header).

Units: perftest prints bandwidth in MiB/s (2^20 B/s; builds before 2024-03 label the
same unit "MB/sec") or Gb/s with --report_gbits (1e9 bit/s), latency in microseconds;
we convert to bytes/s and seconds.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchfab.errors import WorkloadError
from benchfab.workloads.p2p_workloads import p2p_workload

from .discovery import select_port
from .oob import Exchange
from .params import RdmaParams, make_record

_BW_UNITS = {"MiB/sec": float(1 << 20), "MB/sec": float(1 << 20), "Gb/sec": 125e6}


def find_binary(test: str, bin_dir: str | None = None) -> str:
    """The perftest binary of ``test`` (write_bw: ib_write_bw), in ``bin_dir`` or on PATH."""
    name = p2p_workload(test).perftest_binary
    if bin_dir:
        path = Path(bin_dir) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if not found:
        raise WorkloadError(f"{name} not found", hint="install perftest (apt install perftest)")
    return found


def _help_text(binary: str) -> str:
    try:
        proc = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorkloadError(f"cannot run {binary} --help: {exc}") from exc
    return proc.stdout + proc.stderr


def cuda_flags(binary: str, memory: str, cuda_device: int,
               help_text: str | None = None) -> tuple[list[str], str]:
    """perftest's flags for ``memory`` and the label the record gets.

    perftest lists --use_cuda in its --help only when it was built with CUDA, and
    --use_cuda_dmabuf only when that build can export dma-bufs; without them it would
    reject the flag (or, were we to drop it, measure host memory under a GPU label).
    memory "cuda" takes dma-buf where the binary offers it, else ibv_reg_mr on the device
    pointer (nvidia-peermem); perftest has no fallback between the two at run time.
    """
    if memory == "host":
        return [], "host"
    if memory == "hugepages":
        return ["--use_hugepages"], "hugepages"
    name = Path(binary).name
    text = help_text if help_text is not None else _help_text(binary)
    if "--use_cuda" not in text:
        raise WorkloadError(f"{name} ({binary}) was built without CUDA support (its --help lists "
                            "no --use_cuda), so it cannot measure GPU memory",
                            hint="use a perftest built with CUDA (configure CUDA_H_PATH=...), "
                                 "or engine: native")
    has_dmabuf = "--use_cuda_dmabuf" in text
    if memory == "cuda-dmabuf" and not has_dmabuf:
        raise WorkloadError(f"{name} ({binary}) was built without CUDA DMA-BUF support "
                            "(its --help lists no --use_cuda_dmabuf)",
                            hint="use memory: cuda-peermem, a newer perftest, or engine: native")
    if memory == "cuda-dmabuf" or (memory == "cuda" and has_dmabuf):
        return [f"--use_cuda={cuda_device}", "--use_cuda_dmabuf"], "cuda-dmabuf"
    return [f"--use_cuda={cuda_device}"], "cuda-peermem"


def build_args(test: str, *, binary: str, device: str, port: int, gid_index: int,
               size: int, iters: int, server_host: str | None, tcp_port: int = 18515,
               tx_depth: int | None = None, cq_mod: int | None = None, post_list: int = 1,
               duration_s: float = 0.0, mtu: int = 0, inline_size: int | None = None,
               bidirectional: bool = False, qps: int = 1, out_reads: int | None = None,
               extra: Sequence[str] = ()) -> list[str]:
    """perftest command line; ``server_host`` None makes the server side. perftest picks
    its inline size (``inline_size`` None) by device, or takes -I; its outstanding READs
    (``out_reads`` None) by device, or takes -o."""
    args = [binary, "-d", device, "-i", str(port), "-s", str(size), "-p", str(tcp_port), "-F"]
    if gid_index >= 0:
        args += ["-x", str(gid_index)]
    if mtu:
        args += ["-m", str(mtu)]
    if inline_size is not None:
        args += ["-I", str(inline_size)]
    if duration_s > 0:
        args += ["-D", f"{duration_s:g}"]
    else:
        args += ["-n", str(iters)]
    workload = p2p_workload(test)
    if workload.bandwidth_flags:
        if bidirectional:
            args.append("-b")
        if qps > 1:
            args += ["-q", str(qps)]
        if tx_depth:
            args += ["-t", str(tx_depth)]
        if cq_mod:
            args += ["-Q", str(cq_mod)]
        if post_list > 1:
            args += ["-l", str(post_list)]
    if out_reads is not None and workload.one_sided:
        args += ["-o", str(out_reads)]
    args += list(extra)
    if server_host:
        args.append(server_host)
    return args


def _numbers(line: str) -> list[float] | None:
    """The line's cells as numbers; None for a line that is not all finite numbers (perftest
    prints no inf or nan, so such a line is not one of its rows)."""
    parts = line.split()
    try:
        values = [float(x) for x in parts]
    except ValueError:
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _bw_factor(header: str, lineno: int) -> float:
    unit = re.search(r"BW average\[([^\]]+)\]", header)
    if not unit or unit.group(1) not in _BW_UNITS:
        raise WorkloadError(f"perftest: line {lineno}: unknown bandwidth unit in {header.strip()!r}",
                            hint=f"perftest reports {', '.join(_BW_UNITS)}; give the report as perftest printed it")
    return _BW_UNITS[unit.group(1)]


def parse_bw(text: str) -> list[dict[str, Any]]:
    """Rows of an ib_write_bw (ib_read_bw, ib_send_bw) report: size_bytes, iterations,
    bw_peak_Bps, bw_avg_Bps, msg_rate_pps (one row per size; several with -a), each with
    the ``line`` (1-based) it came from."""
    rows: list[dict[str, Any]] = []
    factor: float | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("#bytes") and "BW average" in s:
            factor = _bw_factor(s, lineno)
            continue
        if factor is None:
            continue
        nums = _numbers(s)
        if nums and len(nums) >= 5:
            size, iters, peak, avg, rate = nums[:5]
            rows.append({"size_bytes": int(size), "iterations": int(iters),
                         "bw_peak_Bps": peak * factor if peak > 0 else math.nan,
                         "bw_avg_Bps": avg * factor, "msg_rate_pps": rate * 1e6, "line": lineno})
    return rows


# ib_*_lat columns after #bytes and #iterations, in perftest's order; releases before
# 4.x print only the first three (t_min, t_max, t_typical).
_LAT_COLUMNS = ("lat_min_s", "lat_max_s", "lat_median_s", "lat_mean_s", "lat_stdev_s", "lat_p99_s", "lat_p999_s")


def parse_lat(text: str) -> list[dict[str, Any]]:
    """Rows of an ib_write_lat (ib_read_lat, ib_send_lat) report (iterations mode): t_min,
    t_max, t_typical (the median), t_avg, t_stdev, 99% and 99.9% in seconds, one-way (half
    round trip); columns an older perftest does not print are NaN. Each row has its ``line``."""
    rows: list[dict[str, Any]] = []
    in_table = False
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("#bytes") and "t_typical" in s:
            if "usec" not in s:
                raise WorkloadError(f"perftest: line {lineno}: latency not reported in usec (was -C given?)",
                                    hint="rerun without -C (cycles), or give a report in microseconds")
            in_table = True
            continue
        if not in_table:
            continue
        nums = _numbers(s)
        if nums and len(nums) >= 5:
            figures = [v * 1e-6 for v in nums[2:2 + len(_LAT_COLUMNS)]]
            row: dict[str, Any] = {"size_bytes": int(nums[0]), "iterations": int(nums[1]), "line": lineno}
            row.update({k: (figures[i] if i < len(figures) else math.nan) for i, k in enumerate(_LAT_COLUMNS)})
            rows.append(row)
    return rows


# The title line perftest prints above its settings ("RDMA_Write BW Test", "Send Latency
# Test", "RDMA_Read Bidirectional BW Test"): the verb and whether it measured bandwidth.
_TITLE_RE = re.compile(r"^\s*(RDMA_Write|RDMA_Read|Send)\b(.*?)\b(BW|Latency) Test\s*$", re.MULTILINE)


def parse_header(text: str) -> dict[str, Any]:
    """What perftest says it used: link type, MTU, GID index, device, TX depth, CQ
    moderation, post list, inline size ("Max inline data"), the test's title and verb
    (write / read / send), and the GIDs it printed (local first)."""
    info: dict[str, Any] = {}
    pats = {"device": r"Device\s*:\s*(\S+)", "link_type": r"Link type\s*:\s*(\S+)",
            "mtu": r"Mtu\s*:\s*(\d+)", "gid_index": r"GID index\s*:\s*(\d+)",
            "tx_depth": r"TX depth\s*:\s*(\d+)", "cq_mod": r"CQ Moderation\s*:\s*(\d+)",
            "post_list": r"Post List\s*:\s*(\d+)", "qps": r"Number of qps\s*:\s*(\d+)",
            "inline_size": r"Max inline data\s*:\s*(\d+)", "out_reads": r"Outstand reads\s*:\s*(\d+)",
            "connection": r"Connection type\s*:\s*(\S+)", "version": r"Version:\s*(\S+)"}
    for key, pat in pats.items():
        m = re.search(pat, text, re.IGNORECASE)  # "Gid index" in releases before 3.x
        if m:
            info[key] = int(m.group(1)) if m.group(1).isdigit() else m.group(1)
    title = _TITLE_RE.search(text)
    if title:
        info["title"] = " ".join(title.group(0).split())
        info["verb"] = {"RDMA_Write": "write", "RDMA_Read": "read", "Send": "send"}[title.group(1)]
        info["kind"] = "bw" if title.group(3) == "BW" else "lat"
        info["bidirectional"] = "Bidirectional" in title.group(2)
    gids = re.findall(r"^\s*GID:\s*(\S+)", text, re.MULTILINE)
    if gids:
        info["gids"] = gids
    return info


def run(args: Sequence[str], timeout_s: float) -> str:
    """Run one perftest process to completion; its stdout, or WorkloadError with the tail
    of its output when it fails or overruns (then it is killed)."""
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise WorkloadError(f"{Path(args[0]).name} did not finish within {timeout_s:g} s",
                            hint="peer not running or fabric path broken") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        raise WorkloadError(f"{Path(args[0]).name} exited {proc.returncode}: {' | '.join(tail)}")
    return proc.stdout


def wait_listening(tcp_port: int, timeout_s: float) -> bool:
    """Poll /proc/net/tcp{,6} until something listens on ``tcp_port`` (connecting to
    test it would use up perftest's single accept)."""
    deadline = time.monotonic() + timeout_s
    needle = f":{tcp_port:04X} "
    while time.monotonic() < deadline:
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(name) as fh:
                    next(fh)
                    for line in fh:
                        cols = line.split()
                        if len(cols) > 3 and (cols[1] + " ").endswith(needle) and cols[3] == "0A":
                            return True
            except OSError:
                continue
        time.sleep(0.05)
    return False


def run_pair(role: str, p: RdmaParams, exchange: Exchange) -> list[dict[str, Any]]:
    """perftest between two processes, one size per perftest run (so any size list
    works); the client returns the records."""
    choice = select_port(p.device, p.port if p.device else None, p.gid_index, p.prefer_ip)
    binary = find_binary(p.test, p.perftest_bin_dir)
    extra, memory = cuda_flags(binary, p.memory, p.cuda_device)
    records: list[dict[str, Any]] = []
    for size in p.sizes:
        cq_mod = p.effective_cq_mod(size) if p.workload.bandwidth_flags else None
        tx = p.effective_tx_depth() if p.workload.bandwidth_flags else None
        shape: dict[str, Any] = {"bidirectional": p.bidirectional, "qps": p.qps, "out_reads": p.out_reads}
        if role == "server":
            args = build_args(p.test, binary=binary, device=choice.device, port=choice.port,
                              gid_index=choice.gid_index, size=size, iters=p.iters(),
                              server_host=None, tcp_port=p.perftest_port, tx_depth=tx,
                              cq_mod=cq_mod, post_list=p.post_list, duration_s=p.duration_s,
                              mtu=p.mtu, inline_size=p.max_inline, extra=extra, **shape)
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            try:
                if not wait_listening(p.perftest_port, 10.0):
                    raise WorkloadError(f"{Path(binary).name} server did not listen on "
                                        f"port {p.perftest_port}")
                exchange(f"perftest-{size}", {"ready": True})
                _, err = proc.communicate(timeout=p.timeout_s + p.duration_s)
                if proc.returncode != 0:
                    raise WorkloadError(f"{Path(binary).name} server exited "
                                        f"{proc.returncode}: {err.strip()[-300:]}")
            except subprocess.TimeoutExpired as exc:
                raise WorkloadError(f"{Path(binary).name} server did not finish within "
                                    f"{p.timeout_s:g} s") from exc
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            exchange(f"perftest-done-{size}", {})
            continue
        if not p.peer_host:
            raise WorkloadError("perftest engine: the client needs peer_host (the server's IP)")
        exchange(f"perftest-{size}", {})
        args = build_args(p.test, binary=binary, device=choice.device, port=choice.port,
                          gid_index=choice.gid_index, size=size, iters=p.iters(),
                          server_host=p.peer_host, tcp_port=p.perftest_port, tx_depth=tx,
                          cq_mod=cq_mod, post_list=p.post_list, duration_s=p.duration_s,
                          mtu=p.mtu, inline_size=p.max_inline, extra=extra, **shape)
        out = run(args, p.timeout_s + p.duration_s)
        rows = parse_bw(out) if p.workload.bandwidth else parse_lat(out)
        for row in rows:
            row.pop("line")
        if not rows:
            tail = " | ".join(line.strip() for line in out.strip().splitlines()[-3:])
            raise WorkloadError(f"{Path(binary).name}: no result line in its output (it ended: {tail})")
        head = parse_header(out)
        exchange(f"perftest-done-{size}", {})
        link = str(head.get("link_type", "")).lower()
        records.append(make_record(
            p, rows[-1], engine="perftest", transport="verbs", device=choice.device,
            port=choice.port, gid_index=choice.gid_index,
            link_layer="roce" if link == "ethernet" else ("ib" if link else choice.link_layer),
            link_rate_bps=choice.link_rate_bps,
            mtu=head.get("mtu"), cq_mod=head.get("cq_mod", cq_mod or 1),
            tx_depth=head.get("tx_depth", tx or 1), inline_size=head.get("inline_size"), memory=memory,
            qps=head.get("qps", p.qps), out_reads=head.get("out_reads") if p.workload.one_sided else None))
    return records
