# The bodies of RdmaEndpoint.write_bw / write_lat: check the parameters, build the work
# requests, allocate the timestamp arrays, run the nogil loop of rdma_loops.pxi, raise
# its failure, and add the figures (stats.pxi). Everything here is outside the timed
# region: each loop runs in one `with nogil:` block from start to end.


cdef inline void _init_sge(RdmaEndpoint ep, ibv_sge *sge, size_t size) noexcept:
    """`sge`: the first `size` bytes of our send region."""
    memset(sge, 0, sizeof(ibv_sge))
    sge.addr = ep.base
    sge.length = <uint32_t>size
    sge.lkey = ep.mr.lkey


cdef uint64_t _bw_depth(RdmaEndpoint ep, int tx_depth, int post_list) except 0:
    """The send-queue depth write_bw keeps (`tx_depth`, or the QP's when <= 0)."""
    cdef uint64_t depth = <uint64_t>(tx_depth if tx_depth > 0 else ep.sq_depth)
    if depth > ep.sq_depth:
        raise ValueError(f"tx_depth {depth} exceeds the QP's send queue ({ep.sq_depth})")
    if post_list < 1 or <uint64_t>post_list > depth:
        raise ValueError(f"post_list must be in 1..tx_depth ({depth})")
    return depth


cdef ibv_send_wr *_bw_wrs(RdmaEndpoint ep, ibv_sge *sge, int post_list) except NULL:
    """`post_list` RDMA WRITE WRs of `sge` to the peer's receive region (free() them);
    _bw_post sets their ids, flags and chaining."""
    cdef int e
    cdef ibv_send_wr *wrs = <ibv_send_wr *>malloc(sizeof(ibv_send_wr) * post_list)
    if wrs == NULL:
        raise MemoryError()
    memset(wrs, 0, sizeof(ibv_send_wr) * post_list)
    for e in range(post_list):
        wrs[e].sg_list = sge
        wrs[e].num_sge = 1
        wrs[e].opcode = IBV_WR_RDMA_WRITE
        bf_wr_set_rdma(&wrs[e], ep.r_addr, ep.r_rkey)
    return wrs


cdef tuple _bw_run(RdmaEndpoint ep, ibv_send_wr *wrs, int post_list, uint64_t iters,
                   uint64_t depth, uint64_t cqm, unsigned int flags, double duration_s,
                   uint64_t timeout_ns, double timeout_s, str what):
    """One _bw_loop over fresh timestamp arrays of `iters` entries (in duration mode, its
    capacity): (tposted, tcompleted, WRs completed). A failure raises `what`'s error."""
    cdef LoopStatus st
    cdef uint64_t stop_at
    cdef int rc
    cdef uint64_t[::1] tp, tc
    a_tp = np.zeros(iters, dtype=np.uint64)
    a_tc = np.zeros(iters, dtype=np.uint64)
    tp = a_tp
    tc = a_tc
    memset(&st, 0, sizeof(st))
    # Two calls, as before the split: the C compiler then keeps _bw_loop a function of its
    # own, which benchmarks/loop_cost_callgrind.py measures by name.
    with nogil:
        if duration_s > 0:
            stop_at = bf_now_ns() + <uint64_t>(duration_s * 1e9)
            rc = _bw_loop(ep.qp, ep.cq, wrs, post_list, iters, depth, cqm, flags,
                          &tp[0], &tc[0], stop_at, timeout_ns, &st)
        else:
            rc = _bw_loop(ep.qp, ep.cq, wrs, post_list, iters, depth, cqm, flags,
                          &tp[0], &tc[0], 0, timeout_ns, &st)
    if rc != 0:
        ep.broken = st.kind == BF_ERR_WC
        raise _loop_error(&st, what, timeout_s)
    return a_tp, a_tc, st.completed


cdef dict _write_bw(RdmaEndpoint ep, size_t size, uint64_t iters, int tx_depth, int cq_mod,
                    int post_list, uint64_t warmup, double duration_s, double timeout_s,
                    barrier):
    """RdmaEndpoint.write_bw."""
    cdef ibv_sge sge
    cdef ibv_send_wr *wrs
    cdef uint64_t depth, cqm, timeout_ns
    cdef unsigned int flags = 0
    ep._check_ready(size)
    if iters < 1:
        raise ValueError("iters must be >= 1")
    depth = _bw_depth(ep, tx_depth, post_list)
    # perftest caps cq_mod at tx_depth; a CQE at least every tx_depth WRs is what
    # frees send-queue slots, so a bigger value would deadlock.
    cqm = <uint64_t>(cq_mod if cq_mod > 0 else 1)
    if cqm > depth:
        cqm = depth
    if size <= ep.max_inline:
        flags = IBV_SEND_INLINE
    timeout_ns = _timeout_ns(timeout_s)
    _init_sge(ep, &sge, size)
    wrs = _bw_wrs(ep, &sge, post_list)
    try:
        if warmup > 0:
            _bw_run(ep, wrs, post_list, warmup, depth, cqm, flags, 0.0, timeout_ns,
                    timeout_s, f"rdma write_bw warm-up ({size} B)")
        if barrier is not None:
            barrier()
        a_tp, a_tc, n = _bw_run(ep, wrs, post_list, iters, depth, cqm, flags, duration_s,
                                timeout_ns, timeout_s, f"rdma write_bw ({size} B)")
    finally:
        free(wrs)
    out = {"tposted_ns": a_tp[:n], "tcompleted_ns": a_tc[:n], "size_bytes": size,
           "tx_depth": depth, "cq_mod": cqm, "post_list": post_list,
           "inline": bool(flags & IBV_SEND_INLINE)}
    return _with_bw_figures(out, size)


cdef _lat_check(RdmaEndpoint ep, size_t size, uint64_t iters):
    ep._check_ready(size)
    if ep.host_buf == NULL:
        # perftest master rejects --use_cuda with write_lat for the same reason.
        raise VerbsError(f"write_lat polls its receive buffer with the CPU, which is "
                         f"invalid for {ep.memory} memory",
                         hint="measure GPU-memory latency with write_bw at 1 outstanding, "
                              "or use host memory")
    if iters < 5:
        raise ValueError("write_lat needs iters >= 5 (perftest's minimum)")


cdef dict _write_lat(RdmaEndpoint ep, size_t size, uint64_t iters, bint initiator,
                     uint64_t warmup, double timeout_s, barrier):
    """RdmaEndpoint.write_lat."""
    cdef LoopStatus st
    cdef ibv_sge sge
    cdef ibv_send_wr wr
    cdef uint64_t total, timeout_ns
    cdef uint8_t *send_region
    cdef uint8_t *recv_region
    cdef uint64_t[::1] tp
    cdef int rc
    _lat_check(ep, size, iters)
    total = iters + warmup
    send_region = <uint8_t *>ep.host_buf
    recv_region = send_region + ep.region
    # Stale stamps from an earlier run would end a wait early: clear both places.
    memset(send_region, 0, size)
    bf_store_u8(recv_region + size - 1, 0)
    _init_sge(ep, &sge, size)
    memset(&wr, 0, sizeof(wr))
    wr.sg_list = &sge
    wr.num_sge = 1
    wr.opcode = IBV_WR_RDMA_WRITE
    wr.send_flags = IBV_SEND_SIGNALED
    if size <= ep.max_inline:
        wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE
    bf_wr_set_rdma(&wr, ep.r_addr, ep.r_rkey)
    timeout_ns = _timeout_ns(timeout_s)
    a_tp = np.zeros(total, dtype=np.uint64)
    tp = a_tp
    memset(&st, 0, sizeof(st))
    if barrier is not None:
        barrier()
    with nogil:
        rc = _lat_loop(ep.qp, ep.cq, &wr, send_region + size - 1,
                       recv_region + size - 1, total, initiator, &tp[0], timeout_ns, &st)
    if rc != 0:
        ep.broken = st.kind == BF_ERR_WC
        raise _loop_error(&st, f"rdma write_lat ({size} B)", timeout_s)
    out = {"tposted_ns": a_tp[warmup:], "size_bytes": size,
           "inline": bool(wr.send_flags & IBV_SEND_INLINE)}
    return _with_lat_figures(out)
