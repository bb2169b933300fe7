# The timed RDMA WRITE loops, in C without the GIL. Each runs to its end or to the first
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


cdef int _bw_loop(ibv_qp *qp, ibv_cq *cq, ibv_send_wr *wrs, int post_list,
                  uint64_t iters, uint64_t tx_depth, uint64_t cq_mod, unsigned int base_flags,
                  uint64_t *tposted, uint64_t *tcompleted, uint64_t stop_at_ns,
                  uint64_t timeout_ns, LoopStatus *st) noexcept nogil:
    """Post `iters` WRITEs keeping at most tx_depth outstanding; every cq_mod-th WR (and
    the last) is signaled and its CQE completes all WRs up to it (RC completes in order).
    stop_at_ns != 0 is duration mode: `iters` is then only the capacity."""
    cdef uint64_t scnt = 0, ccnt = 0, target = iters, t, last_progress
    cdef int n, ne, rc
    cdef unsigned int spins = 0
    cdef ibv_wc wcs[POLL_BATCH]
    last_progress = bf_now_ns()
    while scnt < target or ccnt < scnt:
        while scnt < target and scnt + <uint64_t>post_list <= tx_depth + ccnt:
            t = bf_now_ns()
            if stop_at_ns != 0 and t >= stop_at_ns and scnt > 0:
                target = _bw_trim_target(scnt, target, cq_mod)
                if scnt >= target:
                    break
            n = post_list
            if <uint64_t>n > target - scnt:
                n = <int>(target - scnt)
            rc = _bw_post(qp, wrs, n, scnt, target, cq_mod, base_flags, tposted, t)
            if rc != 0:
                st.code = rc
                return _st_fail(st, BF_ERR_POST, scnt, ccnt)
            scnt += <uint64_t>n
            last_progress = t
        if ccnt < scnt:
            ne = ibv_poll_cq(cq, POLL_BATCH, wcs)
            if ne < 0:
                st.code = ne
                return _st_fail(st, BF_ERR_POLL, scnt, ccnt)
            if ne > 0:
                t = bf_now_ns()
                if _bw_complete(wcs, ne, scnt, &ccnt, tcompleted, t, st) != 0:
                    return -1
                last_progress = t
                spins = 0
            else:
                spins += 1
                if spins % SPIN_CHECK == 0 and bf_now_ns() - last_progress > timeout_ns:
                    return _st_fail(st, BF_ERR_TIMEOUT, scnt, ccnt)
    return _st_done(st, scnt, ccnt)


# --------------------------------------------------------------------------------------
# RDMA WRITE latency loop (perftest run_iter_lat_write)
# --------------------------------------------------------------------------------------

cdef inline int _lat_wait_peer(const uint8_t *poll_byte, uint8_t expect,
                               uint64_t timeout_ns) noexcept nogil:
    """Spin until the peer's write stamped `expect` lands in `poll_byte`; -1 on timeout."""
    cdef unsigned int spins = 0
    cdef uint64_t t0 = bf_now_ns()
    while bf_load_u8(poll_byte) != expect:
        spins += 1
        if spins % SPIN_CHECK == 0 and bf_now_ns() - t0 > timeout_ns:
            return -1
    return 0


cdef inline int _lat_wait_cqe(ibv_cq *cq, ibv_wc *wc, uint64_t timeout_ns) noexcept nogil:
    """Spin until one CQE lands in `wc`: > 0; ibv_poll_cq's code (< 0) if it fails, 0 on
    timeout."""
    cdef unsigned int spins = 0
    cdef uint64_t t0 = bf_now_ns()
    cdef int ne
    while True:
        ne = ibv_poll_cq(cq, 1, wc)
        if ne > 0:
            return ne
        if ne < 0:
            return ne
        spins += 1
        if spins % SPIN_CHECK == 0 and bf_now_ns() - t0 > timeout_ns:
            return 0


cdef int _lat_loop(ibv_qp *qp, ibv_cq *cq, ibv_send_wr *wr, uint8_t *post_byte,
                   const uint8_t *poll_byte, uint64_t iters, bint initiator,
                   uint64_t *tposted, uint64_t timeout_ns, LoopStatus *st) noexcept nogil:
    """Ping-pong: wait until the peer's write of round r lands (its last byte, stamped
    with r, shows up in our receive buffer), then stamp and write round r+1. The
    initiator skips the first wait. tposted[i] is taken right before post i, so
    tposted[i+1]-tposted[i] is one round trip."""
    cdef uint64_t scnt = 0, ccnt = 0, rcnt = 0
    cdef int ne, rc
    cdef ibv_send_wr *bad = NULL
    cdef ibv_wc wc
    while scnt < iters or ccnt < iters or rcnt < iters:
        if rcnt < iters and not (scnt < 1 and initiator):
            rcnt += 1
            if _lat_wait_peer(poll_byte, <uint8_t>rcnt, timeout_ns) != 0:
                st.waiting_peer = 1
                return _st_fail(st, BF_ERR_TIMEOUT, scnt, ccnt)
        if scnt < iters:
            tposted[scnt] = bf_now_ns()
            scnt += 1
            bf_store_u8(post_byte, <uint8_t>scnt)
            rc = ibv_post_send(qp, wr, &bad)
            if rc != 0:
                st.code = rc
                return _st_fail(st, BF_ERR_POST, scnt - 1, ccnt)
        if ccnt < iters:
            ne = _lat_wait_cqe(cq, &wc, timeout_ns)
            if ne < 0:
                st.code = ne
                return _st_fail(st, BF_ERR_POLL, scnt, ccnt)
            if ne == 0:
                return _st_fail(st, BF_ERR_TIMEOUT, scnt, ccnt)
            if wc.status != IBV_WC_SUCCESS:
                return _st_fail_wc(st, &wc, scnt, ccnt)
            ccnt += 1
    return _st_done(st, scnt, ccnt)
