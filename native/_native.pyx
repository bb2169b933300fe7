# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
"""benchfab._native: the timed hot loops of benchfab, in C via Cython.

RDMA: ``RdmaEndpoint`` owns its verbs objects (device context, PD, CQ, RC QP, MR), made
with libibverbs directly (design option B in docs: pyverbs cannot hand raw QP pointers
to Cython on the rdma-core versions we meet). Its ``write_bw`` and ``write_lat`` run
perftest's ib_write_bw / ib_write_lat loops with the GIL released and return the raw
per-iteration timestamps (CLOCK_MONOTONIC_RAW, ns) plus the figures perftest prints,
computed by ``benchfab.rdma.stats``.

TCP: ``tcp_write_bw`` / ``tcp_sink_bw`` / ``tcp_write_lat`` run the same loop shapes
over a connected stream socket with plain send/recv, also without the GIL.

Every failure (bad work completion, failed post, silent peer) raises a
``benchfab.errors.WorkloadError`` subclass; no loop waits longer than its timeout.
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, uintptr_t
from libc.stdlib cimport malloc, free

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)
cdef extern from "sys/mman.h" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void *addr, size_t length)
    void *MAP_FAILED
    enum:
        PROT_READ
        PROT_WRITE
        MAP_PRIVATE
        MAP_ANONYMOUS
        MAP_HUGETLB
        MAP_POPULATE

# The default hugepage size on x86-64 and arm64 (4 KiB base pages); MAP_HUGETLB takes it.
cdef enum:
    HUGEPAGE_BYTES = 2 * 1024 * 1024
from libc.string cimport memset, memcpy
from libc.errno cimport errno

import os
import numpy as np

from benchfab.errors import WorkloadError

include "verbs.pxi"
include "helpers.pxi"


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


# Outcome of a nogil loop; turned into an exception once the GIL is back.
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

_MTU_BYTES = {IBV_MTU_256: 256, IBV_MTU_512: 512, IBV_MTU_1024: 1024,
              IBV_MTU_2048: 2048, IBV_MTU_4096: 4096}
_MTU_ENUM = {v: k for k, v in _MTU_BYTES.items()}


def monotonic_ns():
    """The clock the loops stamp with (CLOCK_MONOTONIC_RAW), in ns."""
    return bf_now_ns()


def wc_status_str(int status):
    """libibverbs' text for a work-completion status number."""
    return ibv_wc_status_str(<ibv_wc_status>status).decode()


def list_device_names():
    """Names of the RDMA devices libibverbs sees (raises VerbsError when it cannot list)."""
    cdef int n = 0
    cdef ibv_device **lst = ibv_get_device_list(&n)
    if lst == NULL:
        err = errno
        raise VerbsError(f"ibv_get_device_list failed: {os.strerror(err)}", errno=err,
                         hint="no RDMA driver is loaded (rdma_rxe, mlx5_ib...)")
    try:
        return [ibv_get_device_name(lst[i]).decode() for i in range(n)]
    finally:
        ibv_free_device_list(lst)


cdef _stats():
    # Imported lazily: the figures live in one pure-Python place (benchfab.rdma.stats)
    # shared with the perftest adapter and the Python TCP fallback.
    from benchfab.rdma import stats
    return stats


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


cdef inline uint64_t _timeout_ns(double timeout_s):
    if timeout_s <= 0:
        return <uint64_t>0xFFFFFFFFFFFFFFFF
    return <uint64_t>(timeout_s * 1e9)


# --------------------------------------------------------------------------------------
# RDMA WRITE bandwidth loop (perftest run_iter_bw, one QP)
# --------------------------------------------------------------------------------------

cdef int _bw_loop(ibv_qp *qp, ibv_cq *cq, ibv_send_wr *wrs, int post_list,
                  uint64_t iters, uint64_t tx_depth, uint64_t cq_mod, unsigned int base_flags,
                  uint64_t *tposted, uint64_t *tcompleted, uint64_t stop_at_ns,
                  uint64_t timeout_ns, LoopStatus *st) noexcept nogil:
    """Post `iters` WRITEs keeping at most tx_depth outstanding; every cq_mod-th WR (and
    the last) is signaled and its CQE completes all WRs up to it (RC completes in order).
    stop_at_ns != 0 is duration mode: `iters` is then only the capacity."""
    cdef uint64_t scnt = 0, ccnt = 0, target = iters, k, done, t, last_progress
    cdef int n, e, ne, rc
    cdef unsigned int spins = 0
    cdef ibv_send_wr *bad = NULL
    cdef ibv_wc wcs[POLL_BATCH]
    last_progress = bf_now_ns()
    while scnt < target or ccnt < scnt:
        while scnt < target and scnt + <uint64_t>post_list <= tx_depth + ccnt:
            t = bf_now_ns()
            if stop_at_ns != 0 and t >= stop_at_ns and scnt > 0:
                # Time is up: finish on the next signaled boundary so every posted WR
                # is covered by a CQE.
                k = ((scnt + cq_mod - 1) // cq_mod) * cq_mod
                if k < target:
                    target = k
                if scnt >= target:
                    break
            n = post_list
            if <uint64_t>n > target - scnt:
                n = <int>(target - scnt)
            for e in range(n):
                k = scnt + <uint64_t>e
                wrs[e].wr_id = k
                wrs[e].send_flags = base_flags
                if (k + 1) % cq_mod == 0 or k + 1 == target:
                    wrs[e].send_flags = base_flags | IBV_SEND_SIGNALED
                wrs[e].next = &wrs[e + 1] if e + 1 < n else NULL
                tposted[k] = t
            rc = ibv_post_send(qp, wrs, &bad)
            if rc != 0:
                st.kind = BF_ERR_POST
                st.code = rc
                st.posted = scnt
                st.completed = ccnt
                return -1
            scnt += <uint64_t>n
            last_progress = t
        if ccnt < scnt:
            ne = ibv_poll_cq(cq, POLL_BATCH, wcs)
            if ne < 0:
                st.kind = BF_ERR_POLL
                st.code = ne
                st.posted = scnt
                st.completed = ccnt
                return -1
            if ne > 0:
                t = bf_now_ns()
                for e in range(ne):
                    if wcs[e].status != IBV_WC_SUCCESS:
                        st.kind = BF_ERR_WC
                        st.wc_status = <int>wcs[e].status
                        st.vendor_err = wcs[e].vendor_err
                        st.wr_id = wcs[e].wr_id
                        st.posted = scnt
                        st.completed = ccnt
                        return -1
                    done = wcs[e].wr_id + 1
                    while ccnt < done:
                        tcompleted[ccnt] = t
                        ccnt += 1
                last_progress = t
                spins = 0
            else:
                spins += 1
                if spins % SPIN_CHECK == 0 and bf_now_ns() - last_progress > timeout_ns:
                    st.kind = BF_ERR_TIMEOUT
                    st.posted = scnt
                    st.completed = ccnt
                    return -1
    st.kind = BF_OK
    st.posted = scnt
    st.completed = ccnt
    return 0


# --------------------------------------------------------------------------------------
# RDMA WRITE latency loop (perftest run_iter_lat_write)
# --------------------------------------------------------------------------------------

cdef int _lat_loop(ibv_qp *qp, ibv_cq *cq, ibv_send_wr *wr, uint8_t *post_byte,
                   const uint8_t *poll_byte, uint64_t iters, bint initiator,
                   uint64_t *tposted, uint64_t timeout_ns, LoopStatus *st) noexcept nogil:
    """Ping-pong: wait until the peer's write of round r lands (its last byte, stamped
    with r, shows up in our receive buffer), then stamp and write round r+1. The
    initiator skips the first wait. tposted[i] is taken right before post i, so
    tposted[i+1]-tposted[i] is one round trip."""
    cdef uint64_t scnt = 0, ccnt = 0, rcnt = 0, t0
    cdef uint8_t expect
    cdef unsigned int spins
    cdef int ne, rc
    cdef ibv_send_wr *bad = NULL
    cdef ibv_wc wc
    while scnt < iters or ccnt < iters or rcnt < iters:
        if rcnt < iters and not (scnt < 1 and initiator):
            rcnt += 1
            expect = <uint8_t>rcnt
            spins = 0
            t0 = bf_now_ns()
            while bf_load_u8(poll_byte) != expect:
                spins += 1
                if spins % SPIN_CHECK == 0 and bf_now_ns() - t0 > timeout_ns:
                    st.kind = BF_ERR_TIMEOUT
                    st.waiting_peer = 1
                    st.posted = scnt
                    st.completed = ccnt
                    return -1
        if scnt < iters:
            tposted[scnt] = bf_now_ns()
            scnt += 1
            bf_store_u8(post_byte, <uint8_t>scnt)
            rc = ibv_post_send(qp, wr, &bad)
            if rc != 0:
                st.kind = BF_ERR_POST
                st.code = rc
                st.posted = scnt - 1
                st.completed = ccnt
                return -1
        if ccnt < iters:
            spins = 0
            t0 = bf_now_ns()
            while True:
                ne = ibv_poll_cq(cq, 1, &wc)
                if ne > 0:
                    break
                if ne < 0:
                    st.kind = BF_ERR_POLL
                    st.code = ne
                    st.posted = scnt
                    st.completed = ccnt
                    return -1
                spins += 1
                if spins % SPIN_CHECK == 0 and bf_now_ns() - t0 > timeout_ns:
                    st.kind = BF_ERR_TIMEOUT
                    st.posted = scnt
                    st.completed = ccnt
                    return -1
            if wc.status != IBV_WC_SUCCESS:
                st.kind = BF_ERR_WC
                st.wc_status = <int>wc.status
                st.vendor_err = wc.vendor_err
                st.wr_id = wc.wr_id
                st.posted = scnt
                st.completed = ccnt
                return -1
            ccnt += 1
    st.kind = BF_OK
    st.posted = scnt
    st.completed = ccnt
    return 0


cdef class RdmaEndpoint:
    """One RC queue pair with its own context, PD, CQ and a registered buffer.

    The buffer has two regions of ``buf_size`` bytes each: we write *from* the send
    region (offset 0) *into* the peer's receive region (offset ``buf_size``), so a
    ping-pong never reads what it is about to overwrite.

    Memory: by default a page-aligned host buffer we allocate (``hugepages=True``: backed
    by 2 MiB hugepages, which the host must have reserved). For GPU memory pass
    ``dmabuf_fd`` (+ ``dmabuf_offset``; ``ext_addr`` becomes the MR's iova, usually the
    CUDA device pointer) to use ``ibv_reg_dmabuf_mr``, or only ``ext_addr`` to call
    ``ibv_reg_mr`` on a device pointer (works only with a peer-memory client such as
    nvidia-peermem). ``ext_length`` must cover both regions; ``keepalive`` is held for
    the endpoint's life (e.g. the object owning the GPU allocation).
    """

    cdef ibv_context *ctx
    cdef ibv_pd *pd
    cdef ibv_cq *cq
    cdef ibv_qp *qp
    cdef ibv_mr *mr
    cdef void *host_buf
    cdef size_t huge_len    # > 0: host_buf is a MAP_HUGETLB mapping of this length
    cdef uint64_t base
    cdef uint64_t region
    cdef uint32_t psn
    cdef uint32_t max_inline
    cdef uint32_t sq_depth
    cdef ibv_port_attr pattr
    cdef ibv_gid gid
    cdef int mtu_enum
    cdef int qp_timeout
    cdef int retry_cnt
    cdef uint64_t r_addr
    cdef uint32_t r_rkey
    cdef uint64_t r_len
    cdef bint connected
    cdef bint broken
    cdef readonly str device
    cdef readonly int port
    cdef readonly int gid_index
    cdef readonly str memory
    cdef object keepalive

    def __cinit__(self):
        self.ctx = NULL
        self.pd = NULL
        self.cq = NULL
        self.qp = NULL
        self.mr = NULL
        self.host_buf = NULL
        self.huge_len = 0

    def __init__(self, device=None, int port=1, int gid_index=-1, size_t buf_size=1 << 20,
                 int tx_depth=128, int mtu=0, int max_inline=0, int qp_timeout=14,
                 int retry_cnt=7, *, uint64_t ext_addr=0, int dmabuf_fd=-1,
                 uint64_t dmabuf_offset=0, size_t ext_length=0, str memory="host",
                 object keepalive=None, bint hugepages=False):
        if buf_size < 64:
            raise ValueError("buf_size must be at least 64 bytes")
        if tx_depth < 1:
            raise ValueError("tx_depth must be >= 1")
        if mtu and mtu not in _MTU_ENUM:
            raise ValueError(f"mtu must be 0 (port default) or one of {sorted(_MTU_ENUM)}")
        self.port = port
        self.gid_index = gid_index
        self.region = buf_size
        self.memory = memory
        self.keepalive = keepalive
        self.qp_timeout = qp_timeout
        self.retry_cnt = retry_cnt
        try:
            self._open(device)
            self._query_port(mtu)
            self._alloc_memory(buf_size, ext_addr, dmabuf_fd, dmabuf_offset, ext_length, hugepages)
            self._create_qp(tx_depth, max_inline)
        except BaseException:
            self.close()
            raise
        # Random 24-bit start PSN, as perftest does (lrand48() & 0xffffff).
        self.psn = int.from_bytes(os.urandom(3), "little")

    cdef _open(self, device):
        cdef int n = 0, i
        cdef ibv_device **lst = ibv_get_device_list(&n)
        if lst == NULL:
            err = errno
            raise VerbsError(f"cannot list RDMA devices: {os.strerror(err)}", errno=err,
                             hint="no RDMA driver is loaded on this host")
        try:
            names = [ibv_get_device_name(lst[i]).decode() for i in range(n)]
            if not names:
                raise VerbsError("no RDMA devices found", hint="load a NIC driver or rdma_rxe")
            if device is None or device == "":
                i = 0
            elif device in names:
                i = names.index(device)
            else:
                raise VerbsError(f"RDMA device {device!r} not found (have: {', '.join(names)})")
            self.device = names[i]
            self.ctx = ibv_open_device(lst[i])
            if self.ctx == NULL:
                err = errno
                raise VerbsError(f"ibv_open_device({self.device}) failed: {os.strerror(err)}",
                                 errno=err)
        finally:
            ibv_free_device_list(lst)

    cdef _query_port(self, int mtu):
        cdef int rc
        memset(&self.pattr, 0, sizeof(self.pattr))
        rc = ibv_query_port(self.ctx, <uint8_t>self.port, &self.pattr)
        if rc != 0:
            raise VerbsError(f"ibv_query_port({self.device}, {self.port}) failed: "
                             f"{os.strerror(rc)}", errno=rc)
        if self.pattr.state != IBV_PORT_ACTIVE:
            raise VerbsError(f"{self.device} port {self.port} is not ACTIVE "
                             f"(state {<int>self.pattr.state})",
                             hint="check the cable/link, or the subnet manager on IB")
        if self.pattr.link_layer == IBV_LINK_LAYER_ETHERNET and self.gid_index < 0:
            raise VerbsError(f"{self.device} is RoCE (Ethernet link layer): a GID index is "
                             "required", hint="pick one with benchfab.rdma.discovery")
        memset(&self.gid, 0, sizeof(self.gid))
        if self.gid_index >= 0:
            rc = ibv_query_gid(self.ctx, <uint8_t>self.port, self.gid_index, &self.gid)
            if rc != 0:
                raise VerbsError(f"ibv_query_gid({self.device}, port {self.port}, index "
                                 f"{self.gid_index}) failed", errno=rc)
        self.mtu_enum = _MTU_ENUM[mtu] if mtu else <int>self.pattr.active_mtu

    cdef _alloc_memory(self, size_t buf_size, uint64_t ext_addr, int dmabuf_fd,
                       uint64_t dmabuf_offset, size_t ext_length, bint hugepages):
        cdef size_t total = 2 * buf_size
        cdef size_t page = os.sysconf("SC_PAGE_SIZE")
        cdef int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ
        self.pd = ibv_alloc_pd(self.ctx)
        if self.pd == NULL:
            err = errno
            raise VerbsError(f"ibv_alloc_pd failed: {os.strerror(err)}", errno=err)
        if dmabuf_fd >= 0 or ext_addr != 0:
            if ext_length < total:
                raise VerbsError(f"external buffer of {ext_length} bytes is smaller than the "
                                 f"two {buf_size}-byte regions the endpoint needs")
            if dmabuf_fd >= 0:
                # iova = ext_addr: SGE and remote addresses then look like device pointers.
                self.mr = ibv_reg_dmabuf_mr(self.pd, dmabuf_offset, total, ext_addr,
                                            dmabuf_fd, access)
                what, hint = "ibv_reg_dmabuf_mr", ("needs kernel >= 5.12, a NIC driver with "
                                                   "dma-buf support and NVIDIA open kernel modules")
            else:
                # A device pointer is pinnable only through a peer-memory client.
                self.mr = ibv_reg_mr(self.pd, <void *>(<uintptr_t>ext_addr), total,
                                     access | IBV_ACCESS_RELAXED_ORDERING)
                what, hint = "ibv_reg_mr on an external (device) pointer", (
                    "GPU memory without dma-buf needs the nvidia-peermem kernel module")
            if self.mr == NULL:
                err = errno
                raise VerbsError(f"{what} failed on {self.device}: {os.strerror(err)}",
                                 errno=err, hint=hint)
            self.base = ext_addr
            return
        if hugepages:
            self._alloc_hugepages(total)
        elif posix_memalign(&self.host_buf, page, total) != 0:
            self.host_buf = NULL
            raise MemoryError(f"cannot allocate {total} bytes of page-aligned memory")
        memset(self.host_buf, 0, total)
        # Relaxed ordering is on by default in perftest; optional, so devices ignore it.
        self.mr = ibv_reg_mr(self.pd, self.host_buf, total,
                             access | IBV_ACCESS_RELAXED_ORDERING)
        if self.mr == NULL:
            err = errno
            raise VerbsError(f"ibv_reg_mr of {total} bytes failed: {os.strerror(err)}",
                             errno=err, hint="raise the memlock limit (ulimit -l) or grant IPC_LOCK")
        self.base = <uintptr_t>self.host_buf

    cdef _alloc_hugepages(self, size_t total):
        cdef size_t length = (total + HUGEPAGE_BYTES - 1) // HUGEPAGE_BYTES * HUGEPAGE_BYTES
        # MAP_POPULATE: fault the pages in now, so a short reserve fails here (ENOMEM)
        # rather than as SIGBUS on first touch.
        cdef void *p = mmap(NULL, length, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0)
        if p == MAP_FAILED:
            err = errno
            need = length // HUGEPAGE_BYTES
            raise VerbsError(f"cannot map {need} hugepage(s) of 2 MiB for {total} bytes: "
                             f"{os.strerror(err)}", errno=err,
                             hint=f"reserve them (sysctl vm.nr_hugepages={need} or more; in a "
                                  "pod request hugepages-2Mi), or use memory: host")
        self.host_buf = p
        self.huge_len = length

    cdef _create_qp(self, int tx_depth, int max_inline):
        cdef ibv_qp_init_attr init
        cdef ibv_qp_attr attr
        cdef int rc
        self.cq = ibv_create_cq(self.ctx, tx_depth if tx_depth > 16 else 16, NULL, NULL, 0)
        if self.cq == NULL:
            err = errno
            raise VerbsError(f"ibv_create_cq failed: {os.strerror(err)}", errno=err)
        memset(&init, 0, sizeof(init))
        init.send_cq = self.cq
        init.recv_cq = self.cq
        init.qp_type = IBV_QPT_RC
        init.sq_sig_all = 0
        init.cap.max_send_wr = tx_depth
        init.cap.max_recv_wr = 1
        init.cap.max_send_sge = 1
        init.cap.max_recv_sge = 1
        init.cap.max_inline_data = max_inline
        self.qp = ibv_create_qp(self.pd, &init)
        if self.qp == NULL and max_inline > 0:
            # Some providers cap inline data lower than asked; inline is an optimisation.
            init.cap.max_inline_data = 0
            self.qp = ibv_create_qp(self.pd, &init)
        if self.qp == NULL:
            err = errno
            raise VerbsError(f"ibv_create_qp(RC, max_send_wr={tx_depth}) failed: "
                             f"{os.strerror(err)}", errno=err)
        self.max_inline = init.cap.max_inline_data
        self.sq_depth = tx_depth
        memset(&attr, 0, sizeof(attr))
        attr.qp_state = IBV_QPS_INIT
        attr.pkey_index = 0
        attr.port_num = <uint8_t>self.port
        attr.qp_access_flags = (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE |
                                IBV_ACCESS_REMOTE_READ)
        rc = ibv_modify_qp(self.qp, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
                           IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
        if rc != 0:
            raise VerbsError(f"modify QP to INIT failed: {os.strerror(rc)}", errno=rc)

    def close(self):
        """Destroy the verbs objects (idempotent). Call only after the peer is done."""
        if self.qp != NULL:
            ibv_destroy_qp(self.qp)
            self.qp = NULL
        if self.cq != NULL:
            ibv_destroy_cq(self.cq)
            self.cq = NULL
        if self.mr != NULL:
            ibv_dereg_mr(self.mr)
            self.mr = NULL
        if self.pd != NULL:
            ibv_dealloc_pd(self.pd)
            self.pd = NULL
        if self.ctx != NULL:
            ibv_close_device(self.ctx)
            self.ctx = NULL
        if self.host_buf != NULL:
            if self.huge_len:
                munmap(self.host_buf, self.huge_len)
                self.huge_len = 0
            else:
                free(self.host_buf)
            self.host_buf = NULL
        self.keepalive = None
        self.connected = False

    def __dealloc__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @property
    def link_layer(self):
        """'ib' for InfiniBand, 'roce' for Ethernet link layer."""
        return "roce" if self.pattr.link_layer == IBV_LINK_LAYER_ETHERNET else "ib"

    @property
    def mtu(self):
        """Path MTU in bytes this endpoint asks for (the port's active MTU by default)."""
        return _MTU_BYTES[self.mtu_enum]

    @property
    def max_inline(self):
        return self.max_inline

    @property
    def buf_size(self):
        return self.region

    def local_info(self):
        """What the peer needs to connect to us; JSON-serialisable."""
        self._check_open()
        return {
            "qpn": self.qp.qp_num,
            "psn": self.psn,
            "lid": self.pattr.lid,
            "gid": bytes(self.gid.raw[:16]).hex(),
            "rkey": self.mr.rkey,
            "addr": self.base + self.region,   # our receive region
            "length": self.region,
            "mtu": _MTU_BYTES[self.mtu_enum],
            "link_layer": self.link_layer,
        }

    def connect(self, remote):
        """Move the QP INIT -> RTR -> RTS towards the peer described by ``remote``
        (the peer's local_info())."""
        cdef ibv_qp_attr attr
        cdef int rc, mask
        cdef bytes dgid
        self._check_open()
        try:
            rmtu = int(remote.get("mtu", _MTU_BYTES[self.mtu_enum]))
            dgid = bytes.fromhex(remote["gid"])
            qpn, psn, lid = int(remote["qpn"]), int(remote["psn"]), int(remote["lid"])
            raddr, rkey, rlen = int(remote["addr"]), int(remote["rkey"]), int(remote["length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VerbsError(f"malformed peer connection info {remote!r}: {exc}") from exc
        if len(dgid) != 16:
            raise VerbsError(f"peer GID {remote['gid']!r} is not 16 bytes")
        path_mtu = min(_MTU_BYTES[self.mtu_enum], rmtu)
        memset(&attr, 0, sizeof(attr))
        attr.qp_state = IBV_QPS_RTR
        mtu_value = _MTU_ENUM.get(path_mtu, self.mtu_enum)
        attr.path_mtu = <ibv_mtu><int>mtu_value
        attr.dest_qp_num = qpn
        attr.rq_psn = psn
        attr.max_dest_rd_atomic = 1
        attr.min_rnr_timer = 12
        attr.ah_attr.dlid = lid
        attr.ah_attr.sl = 0
        attr.ah_attr.src_path_bits = 0
        attr.ah_attr.port_num = <uint8_t>self.port
        if self.gid_index >= 0:
            # RoCE always routes by GID; on IB a GID index asks for a GRH too.
            attr.ah_attr.is_global = 1
            memcpy(attr.ah_attr.grh.dgid.raw, <const char *>dgid, 16)
            attr.ah_attr.grh.sgid_index = <uint8_t>self.gid_index
            attr.ah_attr.grh.hop_limit = 64
            attr.ah_attr.grh.traffic_class = 0
            attr.ah_attr.grh.flow_label = 0
        mask = (IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER)
        rc = ibv_modify_qp(self.qp, &attr, mask)
        if rc != 0:
            raise VerbsError(f"modify QP to RTR failed: {os.strerror(rc)}", errno=rc,
                             hint="check GID index / LID and that both sides use the same fabric")
        memset(&attr, 0, sizeof(attr))
        attr.qp_state = IBV_QPS_RTS
        attr.timeout = <uint8_t>self.qp_timeout
        attr.retry_cnt = <uint8_t>self.retry_cnt
        attr.rnr_retry = 7
        attr.sq_psn = self.psn
        attr.max_rd_atomic = 1
        mask = (IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC)
        rc = ibv_modify_qp(self.qp, &attr, mask)
        if rc != 0:
            raise VerbsError(f"modify QP to RTS failed: {os.strerror(rc)}", errno=rc)
        self.r_addr = raddr
        self.r_rkey = rkey
        self.r_len = rlen
        self.connected = True
        self.broken = False

    cdef _check_open(self):
        if self.qp == NULL:
            raise VerbsError("RDMA endpoint is closed")

    cdef _check_ready(self, size_t size):
        self._check_open()
        if not self.connected:
            raise VerbsError("RDMA endpoint is not connected: call connect() first")
        if self.broken:
            raise VerbsError("RDMA endpoint's QP is in error state after a failed run; "
                             "make a new endpoint")
        if size < 1 or size > self.region:
            raise ValueError(f"message size {size} outside 1..{self.region} (buf_size)")
        if size > self.r_len:
            raise ValueError(f"message size {size} exceeds the peer's buffer ({self.r_len})")

    # -- host-buffer access, for data-integrity checks ---------------------------------
    def write_local(self, data, size_t offset=0, str region="send"):
        """Copy ``data`` into our send (or receive) region at ``offset``. Host memory only."""
        cdef const uint8_t[::1] view = memoryview(data).cast("B")
        cdef size_t start = self._host_offset(region, offset, view.shape[0])
        if view.shape[0]:
            memcpy(<char *>self.host_buf + start, &view[0], view.shape[0])

    def read_local(self, size_t n, size_t offset=0, str region="recv"):
        """A copy of ``n`` bytes of our receive (or send) region. Host memory only."""
        cdef size_t start = self._host_offset(region, offset, n)
        return (<char *>self.host_buf)[start:start + n]

    cdef size_t _host_offset(self, str region, size_t offset, size_t n) except? 0:
        if self.host_buf == NULL:
            raise VerbsError(f"buffer is {self.memory} memory, not host memory: "
                             "copy it out with the GPU API instead")
        if region not in ("send", "recv"):
            raise ValueError("region must be 'send' or 'recv'")
        if offset + n > self.region:
            raise ValueError(f"{offset}+{n} bytes exceed the {self.region}-byte region")
        return offset + (self.region if region == "recv" else 0)

    # -- the timed loops ----------------------------------------------------------------
    def write_bw(self, size_t size, uint64_t iters, int tx_depth=0, int cq_mod=100,
                 int post_list=1, uint64_t warmup=0, double duration_s=0.0,
                 double timeout_s=10.0, barrier=None):
        """RDMA WRITE bandwidth, as perftest's run_iter_bw: ``size``-byte writes from our
        send region to the peer's receive region, at most ``tx_depth`` outstanding,
        every ``cq_mod``-th signaled, ``post_list`` WRs per ibv_post_send.

        ``warmup`` untimed writes go first; ``barrier()`` (if given) is called after
        them and right before the timed loop. With ``duration_s`` > 0 the loop stops
        posting after that long and ``iters`` is only the capacity of the timestamp
        arrays. Returns a dict: tposted_ns, tcompleted_ns (uint64 arrays, one entry per
        WR), iterations, size_bytes, bw_avg_Bps, bw_peak_Bps, msg_rate_pps, elapsed_s.
        """
        cdef LoopStatus st
        cdef ibv_sge sge
        cdef ibv_send_wr *wrs = NULL
        cdef uint64_t depth, cqm, timeout_ns, stop_at = 0
        cdef unsigned int flags = 0
        cdef int rc, e
        cdef uint64_t[::1] tp, tc, wtp, wtc
        self._check_ready(size)
        if iters < 1:
            raise ValueError("iters must be >= 1")
        depth = <uint64_t>(tx_depth if tx_depth > 0 else self.sq_depth)
        if depth > self.sq_depth:
            raise ValueError(f"tx_depth {depth} exceeds the QP's send queue ({self.sq_depth})")
        if post_list < 1 or <uint64_t>post_list > depth:
            raise ValueError(f"post_list must be in 1..tx_depth ({depth})")
        # perftest caps cq_mod at tx_depth; a CQE at least every tx_depth WRs is what
        # frees send-queue slots, so a bigger value would deadlock.
        cqm = <uint64_t>(cq_mod if cq_mod > 0 else 1)
        if cqm > depth:
            cqm = depth
        if size <= self.max_inline:
            flags = IBV_SEND_INLINE
        timeout_ns = _timeout_ns(timeout_s)
        wrs = <ibv_send_wr *>malloc(sizeof(ibv_send_wr) * post_list)
        if wrs == NULL:
            raise MemoryError()
        try:
            memset(&sge, 0, sizeof(sge))
            sge.addr = self.base
            sge.length = <uint32_t>size
            sge.lkey = self.mr.lkey
            memset(wrs, 0, sizeof(ibv_send_wr) * post_list)
            for e in range(post_list):
                wrs[e].sg_list = &sge
                wrs[e].num_sge = 1
                wrs[e].opcode = IBV_WR_RDMA_WRITE
                bf_wr_set_rdma(&wrs[e], self.r_addr, self.r_rkey)
            memset(&st, 0, sizeof(st))
            if warmup > 0:
                w_tp = np.zeros(warmup, dtype=np.uint64)
                w_tc = np.zeros(warmup, dtype=np.uint64)
                wtp = w_tp
                wtc = w_tc
                with nogil:
                    rc = _bw_loop(self.qp, self.cq, wrs, post_list, warmup, depth, cqm,
                                  flags, &wtp[0], &wtc[0], 0, timeout_ns, &st)
                if rc != 0:
                    self.broken = st.kind == BF_ERR_WC
                    raise _loop_error(&st, f"rdma write_bw warm-up ({size} B)", timeout_s)
            if barrier is not None:
                barrier()
            a_tp = np.zeros(iters, dtype=np.uint64)
            a_tc = np.zeros(iters, dtype=np.uint64)
            tp = a_tp
            tc = a_tc
            memset(&st, 0, sizeof(st))
            with nogil:
                if duration_s > 0:
                    stop_at = bf_now_ns() + <uint64_t>(duration_s * 1e9)
                rc = _bw_loop(self.qp, self.cq, wrs, post_list, iters, depth, cqm, flags,
                              &tp[0], &tc[0], stop_at, timeout_ns, &st)
            if rc != 0:
                self.broken = st.kind == BF_ERR_WC
                raise _loop_error(&st, f"rdma write_bw ({size} B)", timeout_s)
        finally:
            free(wrs)
        n = st.completed
        out = {"tposted_ns": a_tp[:n], "tcompleted_ns": a_tc[:n], "size_bytes": size,
               "tx_depth": depth, "cq_mod": cqm, "post_list": post_list,
               "inline": bool(flags & IBV_SEND_INLINE)}
        out.update(_stats().bw_figures(out["tposted_ns"], out["tcompleted_ns"], size))
        return out

    def write_lat(self, size_t size, uint64_t iters, bint initiator, uint64_t warmup=0,
                  double timeout_s=10.0, barrier=None):
        """RDMA WRITE ping-pong latency, as perftest's run_iter_lat_write. Both sides call
        it with the same size/iters; exactly one passes ``initiator=True`` (it writes
        first). ``barrier()`` is called after our buffers are reset and before the loop:
        it must not return before the peer has reset its buffers too (any two-sided
        exchange does). The first ``warmup`` rounds are dropped from the samples.
        Returns a dict: tposted_ns (uint64, one per round), iterations, size_bytes and
        lat_{min,median,mean,stdev,p99,p999,max}_s (half round trip, perftest rules)."""
        cdef LoopStatus st
        cdef ibv_sge sge
        cdef ibv_send_wr wr
        cdef uint64_t total, timeout_ns
        cdef uint8_t *send_region
        cdef uint8_t *recv_region
        cdef uint64_t[::1] tp
        cdef int rc
        self._check_ready(size)
        if self.host_buf == NULL:
            # perftest master rejects --use_cuda with write_lat for the same reason.
            raise VerbsError(f"write_lat polls its receive buffer with the CPU, which is "
                             f"invalid for {self.memory} memory",
                             hint="measure GPU-memory latency with write_bw at 1 outstanding, "
                                  "or use host memory")
        if iters < 5:
            raise ValueError("write_lat needs iters >= 5 (perftest's minimum)")
        total = iters + warmup
        send_region = <uint8_t *>self.host_buf
        recv_region = send_region + self.region
        # Stale stamps from an earlier run would end a wait early: clear both places.
        memset(send_region, 0, size)
        bf_store_u8(recv_region + size - 1, 0)
        memset(&sge, 0, sizeof(sge))
        sge.addr = self.base
        sge.length = <uint32_t>size
        sge.lkey = self.mr.lkey
        memset(&wr, 0, sizeof(wr))
        wr.sg_list = &sge
        wr.num_sge = 1
        wr.opcode = IBV_WR_RDMA_WRITE
        wr.send_flags = IBV_SEND_SIGNALED
        if size <= self.max_inline:
            wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE
        bf_wr_set_rdma(&wr, self.r_addr, self.r_rkey)
        timeout_ns = _timeout_ns(timeout_s)
        a_tp = np.zeros(total, dtype=np.uint64)
        tp = a_tp
        memset(&st, 0, sizeof(st))
        if barrier is not None:
            barrier()
        with nogil:
            rc = _lat_loop(self.qp, self.cq, &wr, send_region + size - 1,
                           recv_region + size - 1, total, initiator, &tp[0], timeout_ns, &st)
        if rc != 0:
            self.broken = st.kind == BF_ERR_WC
            raise _loop_error(&st, f"rdma write_lat ({size} B)", timeout_s)
        out = {"tposted_ns": a_tp[warmup:], "size_bytes": size,
               "inline": bool(wr.send_flags & IBV_SEND_INLINE)}
        out.update(_stats().lat_figures(out["tposted_ns"], rtt_factor=2))
        return out


include "tcp.pxi"
