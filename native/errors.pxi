# The exceptions the native loops raise (WorkloadError subclasses, part of the module's
# API: see benchfab/_native.pyi) and the translation of a failed loop's LoopStatus
# (loop_status.pxi) into one of them.


class VerbsError(WorkloadError):
    """A verbs call or work completion failed.

    ``status``/``status_str`` carry the ibv_wc_status of a bad completion (None when a
    call failed instead); ``errno`` the error number of a failed call.
    """

    def __init__(self, message, *, status=None, status_str=None, vendor_err=None,
                 wr_id=None, errno=None, hint=None):
        super().__init__(message, hint=hint)
        self.status = status
        self.status_str = status_str
        self.vendor_err = vendor_err
        self.wr_id = wr_id
        self.errno = errno


class PeerTimeout(WorkloadError):
    """The peer (or the NIC) made no progress within the loop's timeout."""


class TransportError(WorkloadError):
    """A socket call of the TCP loops failed (peer closed, reset...)."""

    def __init__(self, message, *, errno=None, hint=None):
        super().__init__(message, hint=hint)
        self.errno = errno


cdef object _loop_error(LoopStatus *st, str what, double timeout_s):
    if st.kind == BF_ERR_WC:
        text = ibv_wc_status_str(<ibv_wc_status>st.wc_status).decode()
        hint = None
        if text.startswith("remote access error"):
            hint = "the peer's rkey/address/length do not cover the write (stale or wrong connection info)"
        elif text.startswith("transport retry counter exceeded"):
            hint = "the peer QP is gone or unreachable (peer died, wrong GID/LID, link down)"
        return VerbsError(
            f"{what}: work completion failed: {text} (status {st.wc_status}, vendor_err "
            f"0x{st.vendor_err:x}, wr_id {st.wr_id}, {st.completed}/{st.posted} completed)",
            status=st.wc_status, status_str=text, vendor_err=st.vendor_err,
            wr_id=st.wr_id, hint=hint)
    if st.kind == BF_ERR_POST:
        return VerbsError(f"{what}: ibv_post_send failed: {os.strerror(st.code)} "
                          f"(after {st.posted} posted)", errno=st.code,
                          hint="send queue overflow or QP in error state")
    if st.kind == BF_ERR_POST_RECV:
        return VerbsError(f"{what}: ibv_post_recv failed: {os.strerror(st.code)} "
                          f"({st.completed} received)", errno=st.code,
                          hint="receive queue overflow or QP in error state")
    if st.kind == BF_ERR_POLL:
        return VerbsError(f"{what}: ibv_poll_cq failed ({st.code})", errno=st.code)
    if st.kind == BF_ERR_TIMEOUT:
        who = "the peer never wrote back" if st.waiting_peer else "no completion arrived"
        return PeerTimeout(f"{what}: timed out after {timeout_s:g} s: {who} "
                           f"({st.completed}/{st.posted} completed)",
                           hint="peer process dead or stuck, or the fabric path is broken")
    if st.kind == BF_ERR_CLOSED:
        return TransportError(f"{what}: peer closed the connection "
                              f"({st.completed} messages done)")
    if st.kind == BF_ERR_SOCK:
        return TransportError(f"{what}: socket error: {os.strerror(st.code)}", errno=st.code)
    return WorkloadError(f"{what}: unknown loop failure {st.kind}")
