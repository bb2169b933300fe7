# The timed RDMA loops, in C without the GIL. Each runs to its end or to the first
# failure, which it records in a LoopStatus (loop_status.pxi) for rdma_runs.pxi to raise.
# Their helpers are `cdef inline ... nogil`, called from one place each, so the C compiler
# folds them back into the loop: splitting the source adds nothing per iteration.

# --------------------------------------------------------------------------------------
# Bandwidth loop (perftest run_iter_bw / run_iter_bi): WRITE, READ or SEND on 1..N QPs
# --------------------------------------------------------------------------------------

# A WR's id: its index on its QP, shifted, with the QP's index in the low bits; a receive
# WR's id is its QP's index. QP_LIMIT bounds perftest's -q here.
cdef enum:
    QP_SHIFT = 8
    QP_MASK = 255
    QP_LIMIT = 64


# One QP's counters in a bandwidth loop (an array of them, one per QP, in the BwPlan).
cdef struct QpCounts:
    uint64_t posted         # WRs posted on this QP
    uint64_t completed      # ... and covered by a CQE
    uint64_t target         # WRs this QP posts in all (trimmed when a duration ends)
    uint64_t recv_posted    # receive WRs posted on its receive queue
    uint64_t recv_done      # ... and completed (messages that arrived)


cdef inline uint64_t _bw_trim_target(uint64_t scnt, uint64_t target,
                                     uint64_t cq_mod) noexcept nogil:
    """Time is up: finish on the next signaled boundary so every posted WR is covered by
    a CQE."""
    cdef uint64_t k = ((scnt + cq_mod - 1) // cq_mod) * cq_mod
    if k < target:
        return k
    return target


cdef inline int _bw_post(ibv_qp *qp, uint64_t q, ibv_send_wr *wrs, int n, uint64_t scnt,
                         uint64_t target, uint64_t cq_mod, unsigned int base_flags,
                         uint64_t *tposted, uint64_t t) noexcept nogil:
    """Chain wrs[0..n) as WRs scnt..scnt+n-1 of QP `q` (signaling every cq_mod-th and the
    last), stamp them posted at `t` (tposted[0..n)) and post them; ibv_post_send's code."""
    cdef uint64_t k
    cdef int e
    cdef ibv_send_wr *bad = NULL
    for e in range(n):
        k = scnt + <uint64_t>e
        wrs[e].wr_id = (k << QP_SHIFT) | q
        wrs[e].send_flags = base_flags
        if (k + 1) % cq_mod == 0 or k + 1 == target:
            wrs[e].send_flags = base_flags | IBV_SEND_SIGNALED
        wrs[e].next = &wrs[e + 1] if e + 1 < n else NULL
        tposted[e] = t
    return ibv_post_send(qp, wrs, &bad)


cdef inline int _bw_complete(const ibv_wc *wcs, int ne, QpCounts *qc, uint64_t scnt,
                             uint64_t *ccnt, uint64_t *tcompleted, uint64_t t,
                             LoopStatus *st) noexcept nogil:
    """Account `ne` polled CQEs: each completes all WRs of its QP up to its own (RC
    completes in order), stamped completed at `t` in the order the CQEs came. -1 (st
    filled) on a bad completion."""
    cdef uint64_t done
    cdef QpCounts *c
    cdef int e
    for e in range(ne):
        if wcs[e].status != IBV_WC_SUCCESS:
            return _st_fail_wc(st, &wcs[e], scnt, ccnt[0])
        c = &qc[wcs[e].wr_id & QP_MASK]
        done = (wcs[e].wr_id >> QP_SHIFT) + 1
        while c.completed < done:
            tcompleted[ccnt[0]] = t
            ccnt[0] += 1
            c.completed += 1
    return 0


# What a bandwidth loop posts and where (built by rdma_runs.pxi). The opcode lives in the
# WRs; a side that only receives (the SEND server) has no WRs, a side that receives SENDs
# (the server, or both with -b) a receive WR and a receive CQ.
cdef struct BwPlan:
    ibv_qp **qps
    uint64_t num_qps
    ibv_cq *cq              # send completions
    ibv_cq *rcq             # receive completions, or NULL
    ibv_send_wr *wrs        # post_list WRs, chained by _bw_post; NULL: post none
    ibv_recv_wr *rwr        # the receive WR (its wr_id set per QP), or NULL
    QpCounts *qc            # num_qps counters, zeroed before each loop
    int post_list           # WRs per ibv_post_send (perftest -l)
    uint64_t tx_depth       # most WRs outstanding per QP (perftest -t)
    uint64_t cq_mod         # every cq_mod-th WR of a QP signaled (perftest -Q)
    unsigned int base_flags # IBV_SEND_INLINE or 0
    uint64_t recv_target    # messages each QP receives (0: none)
    uint64_t rx_depth       # receives kept posted per QP
    uint64_t timeout_ns


cdef inline int _post_recv(const BwPlan *p, uint64_t q) noexcept nogil:
    cdef ibv_recv_wr *bad = NULL
    p.rwr.wr_id = q
    p.qc[q].recv_posted += 1
    return ibv_post_recv(p.qps[q], p.rwr, &bad)


cdef int _bw_prepost(const BwPlan *p, LoopStatus *st) noexcept nogil:
    """Receives posted ahead, before the peer may send: up to rx_depth per QP."""
    cdef uint64_t q
    for q in range(p.num_qps):
        while p.qc[q].recv_posted < p.recv_target and p.qc[q].recv_posted < p.rx_depth:
            st.code = _post_recv(p, q)
            if st.code != 0:
                return _st_fail(st, BF_ERR_POST_RECV, 0, 0)
    return 0


cdef inline int _bw_received(const BwPlan *p, const ibv_wc *wcs, int ne, uint64_t *rdone,
                             LoopStatus *st) noexcept nogil:
    """Account `ne` arrived messages; each frees a receive, posted again while its QP
    expects more (the receive queue stays full, as perftest's server keeps it)."""
    cdef uint64_t q
    cdef int e
    for e in range(ne):
        if wcs[e].status != IBV_WC_SUCCESS:
            return _st_fail_wc(st, &wcs[e], 0, rdone[0])
        q = wcs[e].wr_id
        p.qc[q].recv_done += 1
        rdone[0] += 1
        if p.qc[q].recv_posted < p.recv_target:
            st.code = _post_recv(p, q)
            if st.code != 0:
                return _st_fail(st, BF_ERR_POST_RECV, 0, rdone[0])
    return 0


cdef inline uint64_t _bw_trim_all(const BwPlan *p) noexcept nogil:
    """A duration ended: every QP stops at its next signaled WR; the new total."""
    cdef uint64_t q, total = 0
    for q in range(p.num_qps):
        p.qc[q].target = _bw_trim_target(p.qc[q].posted, p.qc[q].target, p.cq_mod)
        total += p.qc[q].target
    return total


cdef int _bw_loop(const BwPlan *p, uint64_t iters, uint64_t stop_at_ns,
                  uint64_t *tposted, uint64_t *tcompleted, const StampClock *clk,
                  LoopStatus *st) noexcept nogil:
    """Post `iters` WRs on each QP (round robin, as perftest), keeping at most tx_depth
    outstanding per QP; every cq_mod-th WR of a QP (and its last) is signaled and its CQE
    completes all the QP's WRs up to it (RC completes in order). Stamps are `clk` ticks,
    indexed across QPs in posting / completion order. Meanwhile receive recv_target
    messages per QP, reposting receives. stop_at_ns != 0 is duration mode (the OS clock
    is then read at each post to stop on time): `iters` is only the capacity."""
    cdef uint64_t scnt = 0, ccnt = 0, total = 0, rdone = 0, t, q
    cdef uint64_t rtotal = p.recv_target * p.num_qps
    cdef QpCounts *c
    cdef int n, ne, rc
    cdef bint progress, stopping = False
    cdef SpinWait wait
    cdef ibv_wc wcs[POLL_BATCH]
    if p.wrs != NULL:
        for q in range(p.num_qps):
            p.qc[q].target = iters
        total = iters * p.num_qps
    _spin_reset(&wait)
    while scnt < total or ccnt < scnt or rdone < rtotal:
        progress = False
        for q in range(p.num_qps):
            c = &p.qc[q]
            while c.posted < c.target and c.posted + <uint64_t>p.post_list <= p.tx_depth + c.completed:
                if stop_at_ns != 0 and not stopping and scnt > 0 and bf_now_ns() >= stop_at_ns:
                    stopping = True
                    total = _bw_trim_all(p)
                    if c.posted >= c.target:
                        break
                n = p.post_list
                if <uint64_t>n > c.target - c.posted:
                    n = <int>(c.target - c.posted)
                t = _stamp(clk)
                rc = _bw_post(p.qps[q], q, p.wrs, n, c.posted, c.target, p.cq_mod,
                              p.base_flags, tposted + scnt, t)
                if rc != 0:
                    st.code = rc
                    return _st_fail(st, BF_ERR_POST, scnt, ccnt)
                c.posted += <uint64_t>n
                scnt += <uint64_t>n
                progress = True
        if ccnt < scnt:
            ne = ibv_poll_cq(p.cq, POLL_BATCH, wcs)
            if ne < 0:
                st.code = ne
                return _st_fail(st, BF_ERR_POLL, scnt, ccnt)
            if ne > 0:
                t = _stamp(clk)
                if _bw_complete(wcs, ne, p.qc, scnt, &ccnt, tcompleted, t, st) != 0:
                    return -1
                progress = True
        if rdone < rtotal:
            ne = ibv_poll_cq(p.rcq, POLL_BATCH, wcs)
            if ne < 0:
                st.code = ne
                return _st_fail(st, BF_ERR_POLL, scnt, ccnt)
            if ne > 0:
                if _bw_received(p, wcs, ne, &rdone, st) != 0:
                    return -1
                progress = True
        if progress:
            _spin_reset(&wait)
        elif _spin_expired(&wait, p.timeout_ns):
            st.waiting_peer = ccnt == scnt
            return _st_fail(st, BF_ERR_TIMEOUT, scnt, ccnt)
    st.received = rdone
    return _st_done(st, scnt, ccnt)


# --------------------------------------------------------------------------------------
# Latency loop (perftest run_iter_lat_write, run_iter_lat_send, run_iter_lat for READ)
# --------------------------------------------------------------------------------------

# What a ping-pong (or a READ after READ) posts and polls (built by rdma_runs.pxi).
cdef struct LatPlan:
    ibv_qp *qp
    ibv_cq *cq
    ibv_send_wr *wr          # one signaled WR (inline where the size allows)
    uint8_t *post_byte       # the last byte we send, stamped with the round number
    const uint8_t *poll_byte # WRITE: where the peer's stamp of each round lands
    ibv_cq *rcq              # SEND: where the peer's messages complete (NULL: poll_byte)
    ibv_recv_wr *rwr         # SEND: the receive WR, posted again after each arrival
    uint64_t recv_posted     # SEND: receives posted ahead of the loop
    bint one_sided           # READ: no peer rounds to wait for, one READ at a time
    bint initiator           # sends first (perftest: the server for WRITE, the client for SEND)
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


cdef inline int _lat_recv(const LatPlan *p, uint64_t *rposted, uint64_t iters, uint64_t scnt,
                          uint64_t ccnt, LoopStatus *st) noexcept nogil:
    """SEND: wait for the peer's next message and post its receive again while more are
    to come (the receives stay ahead of the peer's sends)."""
    cdef ibv_wc wc
    cdef ibv_recv_wr *bad = NULL
    cdef int ne = _lat_wait_cqe(p.rcq, &wc, p.timeout_ns)
    if ne < 0:
        st.code = ne
        return _st_fail(st, BF_ERR_POLL, scnt, ccnt)
    if ne == 0:
        st.waiting_peer = 1
        return _st_fail(st, BF_ERR_TIMEOUT, scnt, ccnt)
    if wc.status != IBV_WC_SUCCESS:
        return _st_fail_wc(st, &wc, scnt, ccnt)
    if rposted[0] < iters:
        rposted[0] += 1
        st.code = ibv_post_recv(p.qp, p.rwr, &bad)
        if st.code != 0:
            return _st_fail(st, BF_ERR_POST_RECV, scnt, ccnt)
    return 0


cdef int _lat_loop(const LatPlan *p, uint64_t iters, uint64_t *tposted,
                   const StampClock *clk, LoopStatus *st) noexcept nogil:
    """Step for step perftest's latency loops: wait until the peer's round r arrives
    (WRITE: its last byte, stamped with r, shows up in our receive buffer; SEND: its
    message completes a receive), then stamp and post round r+1 (one signaled WR, one
    ibv_post_send) and reap its CQE. The initiator skips the first wait; a READ waits
    for no peer (it posts, reaps, stamps the next). tposted[i] is taken right before
    post i, so tposted[i+1]-tposted[i] is one round trip; a stamp is one tick read, no
    other clock is read unless a wait lasts SPIN_CHECK polls."""
    cdef uint64_t scnt = 0, ccnt = 0, rcnt = 0, rposted = p.recv_posted
    cdef uint64_t rounds = 0 if p.one_sided else iters
    cdef int ne, rc
    cdef ibv_send_wr *bad = NULL
    cdef ibv_wc wc
    while scnt < iters or ccnt < iters or rcnt < rounds:
        if rcnt < rounds and not (scnt < 1 and p.initiator):
            rcnt += 1
            if p.rcq != NULL:
                if _lat_recv(p, &rposted, iters, scnt, ccnt, st) != 0:
                    return -1
            elif _lat_wait_peer(p.poll_byte, <uint8_t>rcnt, p.timeout_ns) != 0:
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
