"""perftest's reports (ib_write_bw / ib_write_lat, ib_read_*, ib_send_*): the client's
console output, read with the parsers the perftest engine uses (benchfab.rdma.perftest),
so an imported row and a row benchfab measured through perftest hold the same figures.

The title line ("RDMA_Read BW Test") says the verb and bandwidth or latency; the settings
block below it the device, link type (IB or Ethernet = RoCE), MTU, GID index, TX depth and
CQ moderation; ``GID:`` lines the local and remote GIDs. A bidirectional test (-b) sums both
directions and is refused: benchfab's rows are one direction.
"""

from __future__ import annotations

from typing import Any

from ..errors import WorkloadError
from ..rdma.perftest import parse_bw, parse_header, parse_lat
from ..workloads.p2p_workloads import P2PWorkload, p2p_by_title
from .parsed import ParsedReport, ParsedTest, bad_input

_FIX = "give the client side's output of ib_write_bw, ib_read_lat, ... as perftest printed it"

# perftest's "Link type" -> the link layer benchfab's rows name (records: link_layer)
LINK_LAYERS = {"IB": "ib", "Ethernet": "roce"}


def parse(text: str, path: str, max_rows: int | None = None) -> ParsedReport:
    head = parse_header(text)
    if "kind" not in head:
        raise bad_input(path, None, "no perftest title line (such as 'RDMA_Write BW Test')", _FIX)
    if head["bidirectional"]:
        raise bad_input(path, None, f"a bidirectional test ({head['title']}): its bandwidth is both directions "
                        "summed, benchfab's rows are one direction", "import the output of a run without -b")
    try:
        described = p2p_by_title(str(head["verb"]), str(head["kind"]))
    except WorkloadError as exc:
        raise bad_input(path, None, exc.message, exc.hint or _FIX) from None
    try:
        rows = parse_bw(text) if described.bandwidth else parse_lat(text)
    except WorkloadError as exc:
        raise bad_input(path, None, exc.message.removeprefix("perftest: "), exc.hint or _FIX) from None
    if max_rows is not None and len(rows) > max_rows:
        raise bad_input(path, rows[max_rows]["line"], f"more than {max_rows} rows",
                        "split the report, or raise the cap with --max-rows N")
    if not rows:
        table = "'#bytes ... BW average[...]'" if described.bandwidth else "'#bytes ... t_typical[usec]'"
        raise bad_input(path, None, f"no result row under a {table} header (the server side prints none)", _FIX)
    link = head.get("link_type")
    # perftest uses host memory unless --use_cuda, which prints its CUDA device set-up.
    memory = "cuda" if "CUDA" in text else "host"
    test = ParsedTest(workload=described.name, binary=described.perftest_binary, family="p2p", memory=memory,
                      transport="verbs")
    for row in rows:
        line = row["line"]
        if row["size_bytes"] <= 0 or row["iterations"] <= 0:
            raise bad_input(path, line, "#bytes and #iterations must be positive", _FIX)
        test.rows.append({
            **row, "in_place": False, "rdma_device": head.get("device"), "link_layer": LINK_LAYERS.get(str(link)),
            "mtu": head.get("mtu"), "gid_index": head.get("gid_index"), "tx_depth": head.get("tx_depth"),
            "cq_mod": head.get("cq_mod"), "post_list": head.get("post_list", 1),
            "time_s": _time_per_message(row, described),
            "method": described.method("verbs"),
        })
    facts: dict[str, Any] = {k: v for k, v in head.items() if k not in ("kind", "verb", "bidirectional", "version")}
    return ParsedReport("perftest", "text", head.get("version"), [test], ranks=2, facts=facts)


def _time_per_message(row: dict[str, Any], described: P2PWorkload) -> float | None:
    """What the store's time_s holds for a point-to-point row (as benchfab's own p2p rows):
    the time per message for bandwidth (size / BW average), the median one-way latency."""
    if not described.bandwidth:
        median: float = row["lat_median_s"]
        return median if median == median else None  # NaN: not printed
    avg = row.get("bw_avg_Bps")
    return row["size_bytes"] / avg if avg else None
