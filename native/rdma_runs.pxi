# The bodies of RdmaEndpoint.bw / lat: check the parameters, build the work requests,
# allocate the timestamp arrays, run the nogil loop of rdma_loops.pxi, raise its failure,
# and add the figures (stats.pxi). Everything here is outside the timed region: each loop
# runs in one `with nogil:` block from start to end.
#
# The verbs, as perftest's tests use them (our regions: send at offset 0, receive above):
#   write  RDMA WRITE from our send region into the peer's receive region
#   read   RDMA READ of the peer's send region into our receive region
#   send   SEND from our send region; the peer's receive WRs point at its receive region

_OPCODES = {"write": IBV_WR_RDMA_WRITE, "read": IBV_WR_RDMA_READ, "send": IBV_WR_SEND}


cdef ibv_wr_opcode _opcode(str verb) except *:
    if verb not in _OPCODES:
        raise ValueError(f"verb must be one of {', '.join(_OPCODES)}, not {verb!r}")
    return <ibv_wr_opcode><int>_OPCODES[verb]


cdef inline void _init_sge(RdmaEndpoint ep, ibv_sge *sge, size_t size, bint recv_region) noexcept:
    """`sge`: the first `size` bytes of our send (or receive) region."""
    memset(sge, 0, sizeof(ibv_sge))
    sge.addr = ep.base + (ep.region if recv_region else 0)
    sge.length = <uint32_t>size
    sge.lkey = ep.mr.lkey


cdef inline void _init_recv(RdmaEndpoint ep, ibv_recv_wr *rwr, ibv_sge *sge, size_t size) noexcept:
    """`rwr`: one receive of up to `size` bytes into our receive region."""
    _init_sge(ep, sge, size, True)
    memset(rwr, 0, sizeof(ibv_recv_wr))
    rwr.sg_list = sge
    rwr.num_sge = 1


cdef uint64_t _bw_depth(RdmaEndpoint ep, int tx_depth, int post_list) except 0:
    """The send-queue depth a bandwidth loop keeps (`tx_depth`, or the QP's when <= 0)."""
    cdef uint64_t depth = <uint64_t>(tx_depth if tx_depth > 0 else ep.sq_depth)
    if depth > ep.sq_depth:
        raise ValueError(f"tx_depth {depth} exceeds the QP's send queue ({ep.sq_depth})")
    if post_list < 1 or <uint64_t>post_list > depth:
        raise ValueError(f"post_list must be in 1..tx_depth ({depth})")
    return depth


cdef unsigned int _inline_flag(RdmaEndpoint ep, ibv_wr_opcode opcode, size_t size) noexcept:
    """IBV_SEND_INLINE where perftest posts inline: the message fits the endpoint's
    inline size (perftest: size <= inline_size), so the CPU copies it into the WQE and
    the NIC does not fetch it. A READ carries no local data out: never inline."""
    if opcode != IBV_WR_RDMA_READ and size <= ep.max_inline:
        return IBV_SEND_INLINE
    return 0


cdef void _init_wr(RdmaEndpoint ep, ibv_send_wr *wr, ibv_sge *sge, ibv_wr_opcode opcode,
                   unsigned int flags) noexcept:
    """`wr`: one `opcode` WR of `sge`; a WRITE targets the peer's receive region, a READ
    its send region (a SEND names no remote address)."""
    memset(wr, 0, sizeof(ibv_send_wr))
    wr.sg_list = sge
    wr.num_sge = 1
    wr.opcode = opcode
    wr.send_flags = flags
    bf_wr_set_rdma(wr, ep.r_src if opcode == IBV_WR_RDMA_READ else ep.r_addr, ep.r_rkey)


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


cdef _failed(RdmaEndpoint ep, LoopStatus *st, str what, double timeout_s):
    """The loop's failure as an exception. The endpoint is broken from now on, whatever
    failed: after a bad completion the QP is in the error state, and after a timeout WRs
    may still be outstanding whose late completions a next loop would count as its own."""
    ep.broken = True
    return _loop_error(st, what, timeout_s)


cdef tuple _bw_run(RdmaEndpoint ep, BwPlan *plan, uint64_t iters, double duration_s,
                   double timeout_s, str what, barrier):
    """One _bw_loop over fresh counters and timestamp arrays of `iters` entries per QP (in
    duration mode, their capacity); receives are posted ahead, then `barrier()` (if any).
    Returns (tposted, tcompleted, WRs completed, messages received). A failure raises
    `what`'s error."""
    cdef LoopStatus st
    cdef StampClock clk
    cdef uint64_t stop_at, n = iters * plan.num_qps if plan.wrs != NULL else 1
    cdef int rc
    cdef bint os_clock = _OS_STAMPS
    cdef uint64_t[::1] tp, tc
    a_tp = np.zeros(n, dtype=np.uint64)
    a_tc = np.zeros(n, dtype=np.uint64)
    tp = a_tp
    tc = a_tc
    memset(&st, 0, sizeof(st))
    memset(plan.qc, 0, sizeof(QpCounts) * plan.num_qps)
    plan.recv_target = iters if plan.rwr != NULL else 0
    if _bw_prepost(plan, &st) != 0:
        raise _failed(ep, &st, what, timeout_s)
    if barrier is not None:
        barrier()
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
        raise _failed(ep, &st, what, timeout_s)
    _finish_stamps(&clk, tp, st.completed, what)
    _finish_stamps(&clk, tc, st.completed, what)
    return a_tp, a_tc, st.completed, st.received


cdef dict _bw(RdmaEndpoint ep, str verb, size_t size, uint64_t iters, int tx_depth, int cq_mod,
              int post_list, uint64_t warmup, double duration_s, double timeout_s, barrier,
              bint post, bint receive):
    """RdmaEndpoint.bw."""
    cdef ibv_sge sge, rsge
    cdef ibv_recv_wr rwr
    cdef BwPlan plan
    cdef ibv_wr_opcode opcode = _opcode(verb)
    ep._check_ready(size)
    if iters < 1:
        raise ValueError("iters must be >= 1")
    if receive and opcode != IBV_WR_SEND:
        raise ValueError(f"only SEND has a receiving side, not {verb}")
    if not post and not receive:
        raise ValueError("a loop must post, receive or both")
    if receive and duration_s > 0:
        raise ValueError("a SEND receiver counts the messages it expects: give iterations, "
                         "not a duration")
    memset(&plan, 0, sizeof(plan))
    plan.qps = ep.qps
    plan.num_qps = ep.num_qps
    plan.cq = ep.cq
    plan.rcq = ep.rcq
    plan.rx_depth = ep.rx_depth
    plan.post_list = post_list
    plan.tx_depth = _bw_depth(ep, tx_depth, post_list)
    # perftest caps cq_mod at tx_depth; a CQE at least every tx_depth WRs is what
    # frees send-queue slots, so a bigger value would deadlock.
    plan.cq_mod = <uint64_t>(cq_mod if cq_mod > 0 else 1)
    if plan.cq_mod > plan.tx_depth:
        plan.cq_mod = plan.tx_depth
    plan.base_flags = _inline_flag(ep, opcode, size)
    plan.timeout_ns = _timeout_ns(timeout_s)
    _init_sge(ep, &sge, size, opcode == IBV_WR_RDMA_READ)
    if receive:
        _init_recv(ep, &rwr, &rsge, size)
        plan.rwr = &rwr
    plan.qc = <QpCounts *>calloc(ep.num_qps, sizeof(QpCounts))
    if plan.qc == NULL:
        raise MemoryError()
    try:
        if post:
            plan.wrs = _bw_wrs(ep, &sge, post_list, opcode)
        if warmup > 0:
            _bw_run(ep, &plan, warmup, 0.0, timeout_s, f"rdma {verb}_bw warm-up ({size} B)", None)
        a_tp, a_tc, n, received = _bw_run(ep, &plan, iters, duration_s, timeout_s,
                                          f"rdma {verb}_bw ({size} B)", barrier)
    finally:
        free(plan.wrs)
        free(plan.qc)
    out = {"size_bytes": size, "tx_depth": plan.tx_depth, "cq_mod": plan.cq_mod,
           "post_list": post_list, "opcode": verb, "qps": ep.num_qps,
           "out_reads": ep.rd_atomic if opcode == IBV_WR_RDMA_READ else None,
           "received": received, "inline": bool(plan.base_flags & IBV_SEND_INLINE),
           "inline_size": ep.max_inline}
    if not post:
        return out
    out.update(tposted_ns=a_tp[:n], tcompleted_ns=a_tc[:n])
    return _with_bw_figures(out, size)


cdef _lat_check(RdmaEndpoint ep, str verb, size_t size, uint64_t iters):
    ep._check_ready(size)
    if ep.host_buf == NULL:
        # perftest master rejects --use_cuda with write_lat for the same reason.
        raise VerbsError(f"{verb}_lat stamps and polls its buffers with the CPU, which is "
                         f"invalid for {ep.memory} memory",
                         hint="measure GPU-memory latency with a bw test at 1 outstanding, "
                              "or use host memory")
    if iters < 5:
        raise ValueError(f"{verb}_lat needs iters >= 5 (perftest's minimum)")


cdef dict _lat(RdmaEndpoint ep, str verb, size_t size, uint64_t iters, bint initiator,
               uint64_t warmup, double timeout_s, barrier):
    """RdmaEndpoint.lat."""
    cdef LoopStatus st
    cdef StampClock clk
    cdef LatPlan plan
    cdef ibv_sge sge, rsge
    cdef ibv_send_wr wr
    cdef ibv_recv_wr rwr
    cdef ibv_recv_wr *bad = NULL
    cdef uint64_t total
    cdef uint8_t *send_region
    cdef uint8_t unused_stamp = 0
    cdef uint64_t[::1] tp
    cdef int rc
    cdef bint os_clock = _OS_STAMPS
    cdef ibv_wr_opcode opcode = _opcode(verb)
    _lat_check(ep, verb, size, iters)
    total = iters + warmup
    send_region = <uint8_t *>ep.host_buf
    # A stale stamp from an earlier run would end the first wait early: clear it. The
    # rest of the send region is the caller's (a data check's pattern).
    bf_store_u8(send_region + ep.region + size - 1, 0)
    _init_sge(ep, &sge, size, opcode == IBV_WR_RDMA_READ)
    _init_wr(ep, &wr, &sge, opcode, IBV_SEND_SIGNALED | _inline_flag(ep, opcode, size))
    memset(&plan, 0, sizeof(plan))
    plan.qp = ep.qp
    plan.cq = ep.cq
    plan.wr = &wr
    # A READ brings the peer's bytes in and sends none of ours: its round number goes nowhere.
    plan.post_byte = &unused_stamp if opcode == IBV_WR_RDMA_READ else send_region + size - 1
    plan.poll_byte = send_region + ep.region + size - 1
    plan.one_sided = opcode == IBV_WR_RDMA_READ
    plan.initiator = initiator
    plan.timeout_ns = _timeout_ns(timeout_s)
    if opcode == IBV_WR_SEND:
        # perftest posts the receives of a SEND ping-pong before the peer may send.
        _init_recv(ep, &rwr, &rsge, size)
        plan.rwr = &rwr
        plan.rcq = ep.rcq
        while plan.recv_posted < total and plan.recv_posted < ep.rx_depth:
            rc = ibv_post_recv(ep.qp, &rwr, &bad)
            if rc != 0:
                ep.broken = True
                raise VerbsError(f"rdma send_lat ({size} B): ibv_post_recv failed: "
                                 f"{os.strerror(rc)}", errno=rc)
            plan.recv_posted += 1
    a_tp = np.zeros(total, dtype=np.uint64)
    tp = a_tp
    memset(&st, 0, sizeof(st))
    if barrier is not None:
        barrier()
    with nogil:
        _clock_start(&clk, os_clock)
        rc = _lat_loop(&plan, total, &tp[0], &clk, &st)
        _clock_finish(&clk)
    what = f"rdma {verb}_lat ({size} B)"
    if rc != 0:
        raise _failed(ep, &st, what, timeout_s)
    _finish_stamps(&clk, tp, total, what)
    out = {"tposted_ns": a_tp[warmup:], "size_bytes": size, "opcode": verb, "qps": 1,
           "out_reads": 1 if plan.one_sided else None,
           "inline": bool(wr.send_flags & IBV_SEND_INLINE), "inline_size": ep.max_inline}
    # A READ's time is a whole round trip; a ping-pong's round trip is two messages.
    return _with_lat_figures(out, 1 if plan.one_sided else 2)
