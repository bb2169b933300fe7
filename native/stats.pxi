# The figures of a run (bandwidth, message rate, latency percentiles) are computed in one
# pure-Python place, benchfab.rdma.stats, shared with the perftest adapter and the Python
# TCP fallback; the loops here only add them to their result dicts, after the timed part.


cdef _stats():
    # Imported lazily, at the first result (not when benchfab._native is imported).
    from benchfab.rdma import stats
    return stats


cdef dict _with_bw_figures(dict out, size_t size):
    """``out`` (with tposted_ns / tcompleted_ns) plus the bandwidth figures."""
    out.update(_stats().bw_figures(out["tposted_ns"], out["tcompleted_ns"], size))
    return out


cdef dict _with_lat_figures(dict out, int rtt_factor):
    """``out`` (with tposted_ns, one stamp per round) plus the latency figures: a round
    over `rtt_factor` (2 for a ping-pong, 1 for a READ: perftest's rule)."""
    out.update(_stats().lat_figures(out["tposted_ns"], rtt_factor=rtt_factor))
    return out
