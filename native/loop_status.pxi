# How a nogil loop reports its outcome: a LoopStatus filled in C, turned into an
# exception (errors.pxi: _loop_error) once the GIL is back; and the loops' shared
# constants and timeout. The setters below are `cdef inline`: they run on the loops'
# exit paths only, and the C compiler inlines them.

cdef enum:
    BF_OK = 0
    BF_ERR_POST = 1
    BF_ERR_WC = 2
    BF_ERR_POLL = 3
    BF_ERR_TIMEOUT = 4
    BF_ERR_SOCK = 5
    BF_ERR_CLOSED = 6

cdef struct LoopStatus:
    int kind
    int code            # errno / return code of the failed call
    int wc_status
    uint32_t vendor_err
    uint64_t wr_id
    uint64_t posted     # WRs (or messages) posted so far
    uint64_t completed  # WRs (or messages) completed so far
    int waiting_peer    # 1 when the timeout hit while polling memory the peer writes

# How many CQEs one ibv_poll_cq may return; perftest's default batch is 16 as well.
DEF POLL_BATCH = 16
# Spins between clock reads while waiting; keeps the timeout check off the hot path.
DEF SPIN_CHECK = 256


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
