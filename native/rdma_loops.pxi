# The timed RDMA loops, in C without the GIL. Each runs to its end or to the first
# failure, which it records in a LoopStatus (loop_status.pxi) for rdma_runs.pxi to raise.
# Their helpers are `cdef inline ... nogil`, called from one place each, so the C compiler
# folds them back into the loop: splitting the source adds nothing per iteration.

# --------------------------------------------------------------------------------------
# RDMA WRITE bandwidth loop (perftest run_iter_bw, one QP)
# --------------------------------------------------------------------------------------

cdef inline uint64_t _bw_trim_target(uint64_t scnt, uint64_t target,
                                     uint64_t cq_mod) noexcept nogil:
    """Time is up: finish on the next signaled boundary so every posted WR is covered by
    a CQE."""
    cdef uint64_t k = ((scnt + cq_mod - 1) // cq_mod) * cq_mod
    if k < target:
        return k
    return target


cdef inline int _bw_post(ibv_qp *qp, ibv_send_wr *wrs, int n, uint64_t scnt,
                         uint64_t target, uint64_t cq_mod, unsigned int base_flags,
                         uint64_t *tposted, uint64_t t) noexcept nogil:
    """Chain wrs[0..n) as WRs scnt..scnt+n-1 (signaling every cq_mod-th and the last),
    stamp them posted at `t` and post them; ibv_post_send's return code."""
    cdef uint64_t k
    cdef int e
    cdef ibv_send_wr *bad = NULL
    for e in range(n):
        k = scnt + <uint64_t>e
        wrs[e].wr_id = k
        wrs[e].send_flags = base_flags
        if (k + 1) % cq_mod == 0 or k + 1 == target:
            wrs[e].send_flags = base_flags | IBV_SEND_SIGNALED
        wrs[e].next = &wrs[e + 1] if e + 1 < n else NULL
        tposted[k] = t
    return ibv_post_send(qp, wrs, &bad)


cdef inline int _bw_complete(const ibv_wc *wcs, int ne, uint64_t scnt, uint64_t *ccnt,
                             uint64_t *tcompleted, uint64_t t, LoopStatus *st) noexcept nogil:
    """Account `ne` polled CQEs: each completes all WRs up to its wr_id (RC completes in
    order), stamped completed at `t`. -1 (st filled) on a bad completion."""
    cdef uint64_t done
    cdef int e
    for e in range(ne):
        if wcs[e].status != IBV_WC_SUCCESS:
            return _st_fail_wc(st, &wcs[e], scnt, ccnt[0])
        done = wcs[e].wr_id + 1
        while ccnt[0] < done:
            tcompleted[ccnt[0]] = t
            ccnt[0] += 1
    return 0


# What a bandwidth loop posts and where (built by rdma_runs.pxi). The opcode lives in
# the WRs: a READ loop would be this loop over READ WRs.
cdef struct BwPlan:
    ibv_qp *qp
    ibv_cq *cq
    ibv_send_wr *wrs        # post_list WRs, chained by _bw_post
    int post_list           # WRs per ibv_post_send (perftest -l)
    uint64_t tx_depth       # most WRs outstanding (perftest -t)
    uint64_t cq_mod         # every cq_mod-th WR signaled (perftest -Q)
    unsigned int base_flags # IBV_SEND_INLINE or 0
    uint64_t timeout_ns


cdef int _bw_loop(const BwPlan *p, uint64_t iters, uint64_t stop_at_ns,
                  uint64_t *tposted, uint64_t *tcompleted, const StampClock *clk,
                  LoopStatus *st) noexcept nogil:
    """Post `iters` WRs keeping at most tx_depth outstanding; every cq_mod-th WR (and
    the last) is signaled and its CQE completes all WRs up to it (RC completes in order).
    Stamps are `clk` ticks. stop_at_ns != 0 is duration mode (the OS clock is then read
    at each post to stop on time): `iters` is only the capacity."""
    cdef uint64_t scnt = 0, ccnt = 0, target = iters, t
    cdef int n, ne, rc
    cdef SpinWait wait
    cdef ibv_wc wcs[POLL_BATCH]
    _spin_reset(&wait)
    while scnt < target or ccnt < scnt:
        while scnt < target and scnt + <uint64_t>p.post_list <= p.tx_depth + ccnt:
            if stop_at_ns != 0 and scnt > 0 and bf_now_ns() >= stop_at_ns:
                target = _bw_trim_target(scnt, target, p.cq_mod)
                if scnt >= target:
                    break
            n = p.post_list
            if <uint64_t>n > target - scnt:
                n = <int>(target - scnt)
            t = _stamp(clk)
            rc = _bw_post(p.qp, p.wrs, n, scnt, target, p.cq_mod, p.base_flags, tposted, t)
            if rc != 0:
                st.code = rc
                return _st_fail(st, BF_ERR_POST, scnt, ccnt)
            scnt += <uint64_t>n
            _spin_reset(&wait)
        if ccnt < scnt:
            ne = ibv_poll_cq(p.cq, POLL_BATCH, wcs)
            if ne < 0:
                st.code = ne
                return _st_fail(st, BF_ERR_POLL, scnt, ccnt)
            if ne > 0:
                t = _stamp(clk)
                if _bw_complete(wcs, ne, scnt, &ccnt, tcompleted, t, st) != 0:
                    return -1
                _spin_reset(&wait)
            elif _spin_expired(&wait, p.timeout_ns):
                return _st_fail(st, BF_ERR_TIMEOUT, scnt, ccnt)
    return _st_done(st, scnt, ccnt)


# --------------------------------------------------------------------------------------
# RDMA WRITE latency loop (perftest run_iter_lat_write)
# --------------------------------------------------------------------------------------

# What a ping-pong posts and polls (built by rdma_runs.pxi).
cdef struct LatPlan:
    ibv_qp *qp
    ibv_cq *cq
    ibv_send_wr *wr          # one signaled WR (inline where the size allows)
    uint8_t *post_byte       # the last byte we send, stamped with the round number
    const uint8_t *poll_byte # where the peer's stamp of each round lands
    bint initiator           # writes first (perftest's server)
    uint64_t timeout_ns


cdef inline int _lat_wait_peer(const uint8_t *poll_byte, uint8_t expect,
                               uint64_t timeout_ns) noexcept nogil:
    """Spin until the peer's write stamped `expect` lands in `poll_byte`; -1 on timeout."""
    cdef SpinWait wait
    _spin_reset(&wait)
    while bf_load_u8(poll_byte) != expect:
        if _spin_expired(&wait, timeout_ns):
            return -1
    return 0


cdef inline int _lat_wait_cqe(ibv_cq *cq, ibv_wc *wc, uint64_t timeout_ns) noexcept nogil:
    """Spin until one CQE lands in `wc`: > 0; ibv_poll_cq's code (< 0) if it fails, 0 on
    timeout."""
    cdef SpinWait wait
    cdef int ne
    _spin_reset(&wait)
    while True:
        ne = ibv_poll_cq(cq, 1, wc)
        if ne != 0:
            return ne
        if _spin_expired(&wait, timeout_ns):
            return 0


cdef int _lat_loop(const LatPlan *p, uint64_t iters, uint64_t *tposted,
                   const StampClock *clk, LoopStatus *st) noexcept nogil:
    """Ping-pong, step for step perftest's run_iter_lat_write: wait until the peer's
    write of round r lands (its last byte, stamped with r, shows up in our receive
    buffer), then stamp and write round r+1 (one signaled WR, one ibv_post_send) and
    reap its CQE. The initiator skips the first wait. tposted[i] is taken right before
    post i, so tposted[i+1]-tposted[i] is one round trip; a stamp is one tick read, no
    other clock is read unless a wait lasts SPIN_CHECK polls."""
    cdef uint64_t scnt = 0, ccnt = 0, rcnt = 0
    cdef int ne, rc
    cdef ibv_send_wr *bad = NULL
    cdef ibv_wc wc
    while scnt < iters or ccnt < iters or rcnt < iters:
        if rcnt < iters and not (scnt < 1 and p.initiator):
            rcnt += 1
            if _lat_wait_peer(p.poll_byte, <uint8_t>rcnt, p.timeout_ns) != 0:
                st.waiting_peer = 1
                return _st_fail(st, BF_ERR_TIMEOUT, scnt, ccnt)
        if scnt < iters:
            tposted[scnt] = _stamp(clk)
            scnt += 1
            bf_store_u8(p.post_byte, <uint8_t>scnt)
            rc = ibv_post_send(p.qp, p.wr, &bad)
            if rc != 0:
                st.code = rc
                return _st_fail(st, BF_ERR_POST, scnt - 1, ccnt)
        if ccnt < iters:
            ne = _lat_wait_cqe(p.cq, &wc, p.timeout_ns)
            if ne < 0:
                st.code = ne
                return _st_fail(st, BF_ERR_POLL, scnt, ccnt)
            if ne == 0:
                return _st_fail(st, BF_ERR_TIMEOUT, scnt, ccnt)
            if wc.status != IBV_WC_SUCCESS:
                return _st_fail_wc(st, &wc, scnt, ccnt)
            ccnt += 1
    return _st_done(st, scnt, ccnt)
