# TCP loops with the same shapes as the RDMA ones, over an already-connected stream
# socket (made and owned by Python). Blocking send/recv with SO_SNDTIMEO/SO_RCVTIMEO as
# the timeout: a silent peer makes a call fail with EAGAIN instead of hanging. The socket
# calls are declared in includes/system_decl.pxi.


cdef int _sock_fail(LoopStatus *st, ssize_t r, int err) noexcept nogil:
    if r == 0:
        st.kind = BF_ERR_CLOSED
    elif err == EAGAIN:  # SO_RCVTIMEO/SO_SNDTIMEO expired
        st.kind = BF_ERR_TIMEOUT
        st.waiting_peer = 1
    else:
        st.kind = BF_ERR_SOCK
        st.code = err
    return -1


cdef int _send_all(int fd, const char *p, size_t n, LoopStatus *st) noexcept nogil:
    cdef ssize_t r
    while n > 0:
        r = c_send(fd, p, n, MSG_NOSIGNAL)
        if r < 0:
            if errno == EINTR:
                continue
            return _sock_fail(st, 1, errno)
        p += r
        n -= <size_t>r
    return 0


cdef int _recv_all(int fd, char *p, size_t n, LoopStatus *st) noexcept nogil:
    cdef ssize_t r
    while n > 0:
        r = c_recv(fd, p, n, 0)
        if r <= 0:
            if r < 0 and errno == EINTR:
                continue
            return _sock_fail(st, r, errno)
        p += r
        n -= <size_t>r
    return 0


cdef int _recv_bytes(int fd, char *buf, size_t bufsize, uint64_t total,
                     LoopStatus *st) noexcept nogil:
    # Drain `total` bytes in recv calls of at most bufsize (a sink does not keep data).
    cdef ssize_t r
    cdef size_t want
    while total > 0:
        want = bufsize if total > bufsize else <size_t>total
        r = c_recv(fd, buf, want, 0)
        if r <= 0:
            if r < 0 and errno == EINTR:
                continue
            return _sock_fail(st, r, errno)
        total -= <uint64_t>r
    return 0


cdef _set_timeouts(int fd, double timeout_s):
    cdef timeval tv
    if timeout_s <= 0:
        tv.tv_sec = 0
        tv.tv_usec = 0
    else:
        tv.tv_sec = <long>timeout_s
        tv.tv_usec = <long>((timeout_s - <long>timeout_s) * 1e6)
        if tv.tv_sec == 0 and tv.tv_usec == 0:
            tv.tv_usec = 1
    if (c_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 or
            c_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0):
        err = errno
        raise TransportError(f"setsockopt(SO_RCVTIMEO/SO_SNDTIMEO) failed: {os.strerror(err)}",
                             errno=err)


def tcp_write_bw(int fd, size_t size, uint64_t iters, uint64_t warmup=0,
                 double timeout_s=10.0):
    """Sender side of TCP bandwidth: ``iters`` messages of ``size`` bytes, back to back.
    tposted[i]/tcompleted[i] bracket send() of message i, except that the last
    tcompleted is when the receiver's 1-byte ack arrives (it acks after the last byte),
    so BW average counts delivered bytes, not bytes queued in the kernel. Warm-up
    messages are acked separately and not timed. The peer runs ``tcp_sink_bw``."""
    cdef LoopStatus st
    cdef char *buf
    cdef char ack = 0
    cdef uint64_t i
    cdef int rc = 0
    cdef uint64_t[::1] tp, tc
    if size < 1 or iters < 1:
        raise ValueError("size and iters must be >= 1")
    _set_timeouts(fd, timeout_s)
    buf = <char *>malloc(size)
    if buf == NULL:
        raise MemoryError()
    a_tp = np.zeros(iters, dtype=np.uint64)
    a_tc = np.zeros(iters, dtype=np.uint64)
    tp = a_tp
    tc = a_tc
    memset(&st, 0, sizeof(st))
    try:
        for i in range(size):
            buf[i] = <char>(i * 31 + 7)
        with nogil:
            for i in range(warmup):
                rc = _send_all(fd, buf, size, &st)
                if rc != 0:
                    break
            if rc == 0 and warmup > 0:
                rc = _recv_all(fd, &ack, 1, &st)
            if rc == 0:
                for i in range(iters):
                    tp[i] = bf_now_ns()
                    rc = _send_all(fd, buf, size, &st)
                    tc[i] = bf_now_ns()
                    if rc != 0:
                        st.completed = i
                        break
            if rc == 0:
                rc = _recv_all(fd, &ack, 1, &st)
                tc[iters - 1] = bf_now_ns()
                st.completed = iters
        if rc != 0:
            raise _loop_error(&st, f"tcp write_bw ({size} B)", timeout_s)
    finally:
        free(buf)
    out = {"tposted_ns": a_tp, "tcompleted_ns": a_tc, "size_bytes": size}
    return _with_bw_figures(out, size)


def tcp_sink_bw(int fd, size_t size, uint64_t iters, uint64_t warmup=0,
                double timeout_s=10.0):
    """Receiver side of ``tcp_write_bw``: drain warm-up bytes, ack, drain the timed bytes,
    ack. Returns the number of bytes received."""
    cdef LoopStatus st
    cdef char *buf
    cdef char ack = 1
    cdef int rc = 0
    # Drain in 128 KiB reads whatever the message size, like iperf3's receiver: a buffer
    # that stays in cache beats one read per (large) message.
    cdef size_t bufsize = 131072
    _set_timeouts(fd, timeout_s)
    buf = <char *>malloc(bufsize)
    if buf == NULL:
        raise MemoryError()
    memset(&st, 0, sizeof(st))
    try:
        with nogil:
            if warmup > 0:
                rc = _recv_bytes(fd, buf, bufsize, warmup * size, &st)
                if rc == 0:
                    rc = _send_all(fd, &ack, 1, &st)
            if rc == 0:
                rc = _recv_bytes(fd, buf, bufsize, iters * size, &st)
            if rc == 0:
                rc = _send_all(fd, &ack, 1, &st)
        if rc != 0:
            raise _loop_error(&st, f"tcp sink ({size} B)", timeout_s)
    finally:
        free(buf)
    return (warmup + iters) * size


def tcp_write_lat(int fd, size_t size, uint64_t iters, bint initiator, uint64_t warmup=0,
                  double timeout_s=10.0):
    """TCP ping-pong with the RDMA loop's shape: the initiator sends first, each side
    sends a ``size``-byte message after receiving the peer's. tposted[i] is taken right
    before send i, so consecutive differences are round trips (set TCP_NODELAY)."""
    cdef LoopStatus st
    cdef char *buf
    cdef uint64_t i, total = iters + warmup
    cdef int rc = 0
    cdef uint64_t[::1] tp
    if size < 1 or iters < 5:
        raise ValueError("size must be >= 1 and iters >= 5")
    _set_timeouts(fd, timeout_s)
    buf = <char *>malloc(size)
    if buf == NULL:
        raise MemoryError()
    memset(buf, 0, size)
    a_tp = np.zeros(total, dtype=np.uint64)
    tp = a_tp
    memset(&st, 0, sizeof(st))
    try:
        with nogil:
            for i in range(total):
                if not (initiator and i == 0):
                    rc = _recv_all(fd, buf, size, &st)
                    if rc != 0:
                        break
                tp[i] = bf_now_ns()
                rc = _send_all(fd, buf, size, &st)
                if rc != 0:
                    break
                st.completed = i + 1
            if rc == 0 and initiator:
                # Collect the answer to our last message so both sides end together.
                rc = _recv_all(fd, buf, size, &st)
        if rc != 0:
            raise _loop_error(&st, f"tcp write_lat ({size} B)", timeout_s)
    finally:
        free(buf)
    out = {"tposted_ns": a_tp[warmup:], "size_bytes": size}
    return _with_lat_figures(out, 2)
