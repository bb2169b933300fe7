# How a nogil loop reports its outcome: a LoopStatus filled in C, turned into an
# exception (errors.pxi: _loop_error) once the GIL is back; and the loops' shared
# constants and timeout (SpinWait). The setters below are `cdef inline`: they run on the loops'
# exit paths only, and the C compiler inlines them.

cdef enum:
    BF_OK = 0
    BF_ERR_POST = 1
    BF_ERR_WC = 2
    BF_ERR_POLL = 3
    BF_ERR_TIMEOUT = 4
    BF_ERR_SOCK = 5
    BF_ERR_CLOSED = 6
    BF_ERR_POST_RECV = 7

cdef struct LoopStatus:
    int kind
    int code            # errno / return code of the failed call
    int wc_status
    uint32_t vendor_err
    uint64_t wr_id
    uint64_t posted     # WRs (or messages) posted so far
    uint64_t completed  # WRs (or messages) completed so far
    uint64_t received   # messages received (a SEND receiver)
    int waiting_peer    # 1 when the timeout hit while waiting for what the peer sends

# Compile-time constants of the loops (a cdef enum: C constants the compiler folds, as
# Cython's deprecated DEF did). POLL_BATCH: how many CQEs one ibv_poll_cq may return
# (perftest's batch is 16 as well). SPIN_CHECK: spins between tick-counter reads while
# waiting; CHECK_TICKS: ticks between OS clock reads (2^22: 1.6 ms of a 2.6 GHz TSC, 4 ms
# where ticks are ns, 170 ms of a 25 MHz arm64 timer), so the timeout check stays off the
# hot path.
cdef enum:
    POLL_BATCH = 16
    SPIN_CHECK = 256
    CHECK_TICKS = 4194304


cdef struct SpinWait:
    unsigned int spins      # empty polls since the last progress
    uint64_t tick0          # tick counter at the last look at the OS clock (0: none yet)
    uint64_t since_ns       # OS clock when this wait first looked at it (0: not yet)


cdef inline void _spin_reset(SpinWait *w) noexcept nogil:
    """Progress was made: the next wait starts afresh."""
    w.spins = 0
    w.tick0 = 0
    w.since_ns = 0


cdef inline bint _spin_expired(SpinWait *w, uint64_t timeout_ns) noexcept nogil:
    """Count one empty poll; true once `timeout_ns` passed without progress.

    Every SPIN_CHECK polls it reads the tick counter (a few ns), and only every
    CHECK_TICKS ticks (about a millisecond) the OS clock: a wait that ends sooner, as
    nearly every wait of a healthy run does, reads no OS clock at all. That matters
    where a clock read is a system call (stamp_clock.pxi): a peer's write landing during
    one is seen a microsecond late. Timeouts are seconds, so the millisecond of slack is
    nothing."""
    cdef uint64_t t, now
    w.spins += 1
    if w.spins % SPIN_CHECK != 0:
        return False
    t = bf_ticks()
    if w.tick0 == 0:
        w.tick0 = t
        return False
    if t - w.tick0 < CHECK_TICKS:
        return False
    w.tick0 = t
    now = bf_now_ns()
    if w.since_ns == 0:
        w.since_ns = now
        return False
    return now - w.since_ns > timeout_ns


cdef inline uint64_t _timeout_ns(double timeout_s):
    if timeout_s <= 0:
        return <uint64_t>0xFFFFFFFFFFFFFFFF
    return <uint64_t>(timeout_s * 1e9)


cdef inline int _st_fail(LoopStatus *st, int kind, uint64_t posted,
                         uint64_t completed) noexcept nogil:
    """Record a failure of `kind` after `posted`/`completed` WRs; returns -1."""
    st.kind = kind
    st.posted = posted
    st.completed = completed
    return -1


cdef inline int _st_fail_wc(LoopStatus *st, const ibv_wc *wc, uint64_t posted,
                            uint64_t completed) noexcept nogil:
    """Record the bad work completion `wc`; returns -1."""
    st.kind = BF_ERR_WC
    st.wc_status = <int>wc.status
    st.vendor_err = wc.vendor_err
    st.wr_id = wc.wr_id
    st.posted = posted
    st.completed = completed
    return -1


cdef inline int _st_done(LoopStatus *st, uint64_t posted, uint64_t completed) noexcept nogil:
    """Record a loop that ran to its end; returns 0."""
    st.kind = BF_OK
    st.posted = posted
    st.completed = completed
    return 0
