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


cdef unsigned int _inline_flag(RdmaEndpoint ep, size_t size) noexcept:
    """IBV_SEND_INLINE where perftest posts inline: the message fits the endpoint's
    inline size (perftest: size <= inline_size), so the CPU copies it into the WQE and
    the NIC does not fetch it. An opcode that carries no local data out (READ) passes 0."""
    if size <= ep.max_inline:
        return IBV_SEND_INLINE
    return 0


cdef void _init_wr(RdmaEndpoint ep, ibv_send_wr *wr, ibv_sge *sge, ibv_wr_opcode opcode,
                   unsigned int flags) noexcept:
    """`wr`: one `opcode` WR of `sge` towards the peer's receive region."""
    memset(wr, 0, sizeof(ibv_send_wr))
    wr.sg_list = sge
    wr.num_sge = 1
    wr.opcode = opcode
    wr.send_flags = flags
    bf_wr_set_rdma(wr, ep.r_addr, ep.r_rkey)


cdef ibv_send_wr *_bw_wrs(RdmaEndpoint ep, ibv_sge *sge, int post_list,
                          ibv_wr_opcode opcode) except NULL:
    """`post_list` `opcode` WRs of `sge` (free() them); _bw_post sets their ids, flags
    and chaining."""
    cdef int e
    cdef ibv_send_wr *wrs = <ibv_send_wr *>malloc(sizeof(ibv_send_wr) * post_list)
    if wrs == NULL:
        raise MemoryError()
    for e in range(post_list):
        _init_wr(ep, &wrs[e], sge, opcode, 0)
    return wrs


cdef _finish_stamps(StampClock *clk, uint64_t[::1] a, uint64_t n, str what):
    """Stamps 0..n of `a` (ticks, as the loop took them) into ns; raise if they went
    backwards."""
    if n > 0 and not _stamps_to_ns(clk, &a[0], n):
        raise _stamps_went_back(what)


cdef tuple _bw_run(RdmaEndpoint ep, const BwPlan *plan, uint64_t iters, double duration_s,
                   double timeout_s, str what):
    """One _bw_loop over fresh timestamp arrays of `iters` entries (in duration mode, its
    capacity): (tposted, tcompleted, WRs completed). A failure raises `what`'s error."""
    cdef LoopStatus st
    cdef StampClock clk
    cdef uint64_t stop_at
    cdef int rc
    cdef bint os_clock = _OS_STAMPS
    cdef uint64_t[::1] tp, tc
    a_tp = np.zeros(iters, dtype=np.uint64)
    a_tc = np.zeros(iters, dtype=np.uint64)
    tp = a_tp
    tc = a_tc
    memset(&st, 0, sizeof(st))
    # Two calls, as before the split: the C compiler then keeps _bw_loop a function of its
    # own, which benchmarks/loop_cost_callgrind.py measures by name.
    with nogil:
        _clock_start(&clk, os_clock)
        if duration_s > 0:
            stop_at = bf_now_ns() + <uint64_t>(duration_s * 1e9)
            rc = _bw_loop(plan, iters, stop_at, &tp[0], &tc[0], &clk, &st)
        else:
            rc = _bw_loop(plan, iters, 0, &tp[0], &tc[0], &clk, &st)
        _clock_finish(&clk)
    if rc != 0:
        ep.broken = st.kind == BF_ERR_WC
        raise _loop_error(&st, what, timeout_s)
    _finish_stamps(&clk, tp, st.completed, what)
    _finish_stamps(&clk, tc, st.completed, what)
    return a_tp, a_tc, st.completed


cdef dict _write_bw(RdmaEndpoint ep, size_t size, uint64_t iters, int tx_depth, int cq_mod,
                    int post_list, uint64_t warmup, double duration_s, double timeout_s,
                    barrier):
    """RdmaEndpoint.write_bw."""
    cdef ibv_sge sge
    cdef BwPlan plan
    ep._check_ready(size)
    if iters < 1:
        raise ValueError("iters must be >= 1")
    memset(&plan, 0, sizeof(plan))
    plan.qp = ep.qp
    plan.cq = ep.cq
    plan.post_list = post_list
    plan.tx_depth = _bw_depth(ep, tx_depth, post_list)
    # perftest caps cq_mod at tx_depth; a CQE at least every tx_depth WRs is what
    # frees send-queue slots, so a bigger value would deadlock.
    plan.cq_mod = <uint64_t>(cq_mod if cq_mod > 0 else 1)
    if plan.cq_mod > plan.tx_depth:
        plan.cq_mod = plan.tx_depth
    plan.base_flags = _inline_flag(ep, size)
    plan.timeout_ns = _timeout_ns(timeout_s)
    _init_sge(ep, &sge, size)
    plan.wrs = _bw_wrs(ep, &sge, post_list, IBV_WR_RDMA_WRITE)
    try:
        if warmup > 0:
            _bw_run(ep, &plan, warmup, 0.0, timeout_s, f"rdma write_bw warm-up ({size} B)")
        if barrier is not None:
            barrier()
        a_tp, a_tc, n = _bw_run(ep, &plan, iters, duration_s, timeout_s,
                                f"rdma write_bw ({size} B)")
    finally:
        free(plan.wrs)
    out = {"tposted_ns": a_tp[:n], "tcompleted_ns": a_tc[:n], "size_bytes": size,
           "tx_depth": plan.tx_depth, "cq_mod": plan.cq_mod, "post_list": post_list,
           "inline": bool(plan.base_flags & IBV_SEND_INLINE), "inline_size": ep.max_inline}
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
    cdef StampClock clk
    cdef LatPlan plan
    cdef ibv_sge sge
    cdef ibv_send_wr wr
    cdef uint64_t total
    cdef uint8_t *send_region
    cdef uint64_t[::1] tp
    cdef int rc
    cdef bint os_clock = _OS_STAMPS
    _lat_check(ep, size, iters)
    total = iters + warmup
    send_region = <uint8_t *>ep.host_buf
    # A stale stamp from an earlier run would end the first wait early: clear it. The
    # rest of the send region is the caller's (a data check's pattern).
    bf_store_u8(send_region + ep.region + size - 1, 0)
    _init_sge(ep, &sge, size)
    _init_wr(ep, &wr, &sge, IBV_WR_RDMA_WRITE, IBV_SEND_SIGNALED | _inline_flag(ep, size))
    memset(&plan, 0, sizeof(plan))
    plan.qp = ep.qp
    plan.cq = ep.cq
    plan.wr = &wr
    plan.post_byte = send_region + size - 1
    plan.poll_byte = send_region + ep.region + size - 1
    plan.initiator = initiator
    plan.timeout_ns = _timeout_ns(timeout_s)
    a_tp = np.zeros(total, dtype=np.uint64)
    tp = a_tp
    memset(&st, 0, sizeof(st))
    if barrier is not None:
        barrier()
    with nogil:
        _clock_start(&clk, os_clock)
        rc = _lat_loop(&plan, total, &tp[0], &clk, &st)
        _clock_finish(&clk)
    what = f"rdma write_lat ({size} B)"
    if rc != 0:
        ep.broken = st.kind == BF_ERR_WC
        raise _loop_error(&st, what, timeout_s)
    _finish_stamps(&clk, tp, total, what)
    out = {"tposted_ns": a_tp[warmup:], "size_bytes": size,
           "inline": bool(wr.send_flags & IBV_SEND_INLINE), "inline_size": ep.max_inline}
    return _with_lat_figures(out)
