# RdmaEndpoint: 1..N RC QPs with their own device context, PD, CQs and registered buffer;
# set-up (open, query port, memory, QP) in __init__, teardown in close(). The buffer
# helpers are in rdma_memory.pxi, the QP state transitions in rdma_qp.pxi and the bodies
# of write_bw / write_lat (around the nogil loops of rdma_loops.pxi) in rdma_runs.pxi.


cdef class RdmaEndpoint:
    """1..N RC queue pairs (perftest -q) with their own context, PD, send and receive
    CQs (shared by the QPs, as in perftest) and a registered buffer.

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
    cdef ibv_cq *cq         # send completions of every QP
    cdef ibv_cq *rcq        # receive completions of every QP (SEND)
    cdef ibv_qp *qp         # qps[0]: the latency loops' QP
    cdef ibv_qp **qps
    cdef uint64_t num_qps
    cdef uint32_t rx_depth
    cdef int dev_rd_atom    # the device's most outstanding READs per QP (max_qp_rd_atom)
    cdef int out_reads      # READs outstanding per QP: asked for (0: the device's most)...
    cdef int rd_atomic      # ...and used after connect(): capped by what the peer accepts
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
    cdef uint64_t r_src     # the peer's send region: where our READs read from
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
        self.qps = NULL
        self.num_qps = 0
        self.rcq = NULL
        self.mr = NULL
        self.host_buf = NULL
        self.huge_len = 0

    def __init__(self, device=None, int port=1, int gid_index=-1, size_t buf_size=1 << 20,
                 int tx_depth=128, int mtu=0, int max_inline=0, int qp_timeout=14,
                 int retry_cnt=7, *, int num_qps=1, int rx_depth=512, int out_reads=0,
                 uint64_t ext_addr=0, int dmabuf_fd=-1,
                 uint64_t dmabuf_offset=0, size_t ext_length=0, str memory="host",
                 object keepalive=None, bint hugepages=False):
        if buf_size < 64:
            raise ValueError("buf_size must be at least 64 bytes")
        if tx_depth < 1:
            raise ValueError("tx_depth must be >= 1")
        if max_inline < 0:
            raise ValueError("max_inline must be >= 0")
        if num_qps < 1 or num_qps > QP_LIMIT:
            raise ValueError(f"num_qps must be in 1..{QP_LIMIT}")
        if rx_depth < 1:
            raise ValueError("rx_depth must be >= 1")
        if out_reads < 0:
            raise ValueError("out_reads must be >= 0 (0: the device's maximum)")
        if mtu and mtu not in _MTU_ENUM:
            raise ValueError(f"mtu must be 0 (port default) or one of {sorted(_MTU_ENUM)}")
        self.port = port
        self.gid_index = gid_index
        self.region = buf_size
        self.memory = memory
        self.keepalive = keepalive
        self.qp_timeout = qp_timeout
        self.retry_cnt = retry_cnt
        self.num_qps = num_qps
        self.rx_depth = rx_depth
        try:
            self._open(device)
            self._query_port(mtu)
            self._query_reads(out_reads)
            self._alloc_memory(buf_size, ext_addr, dmabuf_fd, dmabuf_offset, ext_length, hugepages)
            # Inline data is copied from the buffer by the CPU at post time: never from
            # GPU memory (perftest refuses inline with --use_cuda for the same reason).
            self._create_qp(tx_depth, max_inline if self.host_buf != NULL else 0)
        except BaseException:
            self.close()
            raise
        # Random 24-bit start PSN, as perftest does (lrand48() & 0xffffff); QP i uses psn + i.
        self.psn = int.from_bytes(os.urandom(3), "little") & 0xFFF000

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

    cdef _query_reads(self, int out_reads):
        """perftest -o: READs outstanding per QP, the device's most unless asked for fewer."""
        cdef ibv_device_attr attr
        cdef int rc
        memset(&attr, 0, sizeof(attr))
        rc = ibv_query_device(self.ctx, &attr)
        if rc != 0:
            raise VerbsError(f"ibv_query_device({self.device}) failed: {os.strerror(rc)}", errno=rc)
        self.dev_rd_atom = max(1, min(attr.max_qp_rd_atom, attr.max_qp_init_rd_atom or attr.max_qp_rd_atom))
        if out_reads > self.dev_rd_atom:
            raise VerbsError(f"{out_reads} outstanding READs asked for, {self.device} allows "
                             f"{self.dev_rd_atom} per QP (max_qp_rd_atom)",
                             hint=f"use -o {self.dev_rd_atom} or fewer, or leave it unset")
        self.out_reads = out_reads or self.dev_rd_atom
        self.rd_atomic = self.out_reads

    cdef _alloc_memory(self, size_t buf_size, uint64_t ext_addr, int dmabuf_fd,
                       uint64_t dmabuf_offset, size_t ext_length, bint hugepages):
        cdef size_t total = 2 * buf_size
        cdef int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ
        self.pd = ibv_alloc_pd(self.ctx)
        if self.pd == NULL:
            err = errno
            raise VerbsError(f"ibv_alloc_pd failed: {os.strerror(err)}", errno=err)
        if dmabuf_fd >= 0 or ext_addr != 0:
            self.mr = _reg_external_mr(self.pd, self.device, buf_size, total, ext_addr,
                                       dmabuf_fd, dmabuf_offset, ext_length, access)
            self.base = ext_addr
            return
        if hugepages:
            self.host_buf = _map_hugepages(total, &self.huge_len)
        else:
            self.host_buf = _alloc_aligned(total)
        memset(self.host_buf, 0, total)
        self.mr = _reg_host_mr(self.pd, self.host_buf, total, access)
        self.base = <uintptr_t>self.host_buf

    cdef _create_qp(self, int tx_depth, int max_inline):
        cdef ibv_qp_init_attr init
        cdef uint64_t i
        cdef int cqe = <int>self.num_qps * tx_depth
        self.cq = ibv_create_cq(self.ctx, cqe if cqe > 16 else 16, NULL, NULL, 0)
        if self.cq != NULL:
            self.rcq = ibv_create_cq(self.ctx, <int>(self.num_qps * self.rx_depth), NULL, NULL, 0)
        if self.cq == NULL or self.rcq == NULL:
            err = errno
            raise VerbsError(f"ibv_create_cq failed: {os.strerror(err)}", errno=err)
        self.qps = <ibv_qp **>calloc(self.num_qps, sizeof(ibv_qp *))
        if self.qps == NULL:
            raise MemoryError()
        memset(&init, 0, sizeof(init))
        init.send_cq = self.cq
        init.recv_cq = self.rcq
        init.qp_type = IBV_QPT_RC
        init.sq_sig_all = 0
        init.cap.max_send_wr = tx_depth
        init.cap.max_recv_wr = self.rx_depth
        init.cap.max_send_sge = 1
        init.cap.max_recv_sge = 1
        init.cap.max_inline_data = max_inline
        for i in range(self.num_qps):
            init.cap.max_inline_data = max_inline
            self.qps[i] = ibv_create_qp(self.pd, &init)
            if self.qps[i] == NULL and max_inline > 0:
                # Some providers cap inline data lower than asked; inline is an optimisation.
                init.cap.max_inline_data = 0
                max_inline = 0
                self.qps[i] = ibv_create_qp(self.pd, &init)
            if self.qps[i] == NULL:
                err = errno
                raise VerbsError(f"ibv_create_qp(RC, max_send_wr={tx_depth}, max_recv_wr="
                                 f"{self.rx_depth}) failed: {os.strerror(err)}", errno=err)
            _qp_to_init(self.qps[i], self.port)
        self.qp = self.qps[0]
        # Providers may round the inline size up (the WQE's size); perftest posts inline
        # up to what it asked for, and so do we.
        self.max_inline = min(<uint32_t>max_inline, init.cap.max_inline_data)
        self.sq_depth = tx_depth

    def close(self):
        """Destroy the verbs objects (idempotent). Call only after the peer is done."""
        cdef uint64_t i
        if self.qps != NULL:
            for i in range(self.num_qps):
                if self.qps[i] != NULL:
                    ibv_destroy_qp(self.qps[i])
            free(self.qps)
            self.qps = NULL
        self.qp = NULL
        if self.cq != NULL:
            ibv_destroy_cq(self.cq)
            self.cq = NULL
        if self.rcq != NULL:
            ibv_destroy_cq(self.rcq)
            self.rcq = NULL
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
        """Messages up to this many bytes are posted inline (perftest's "Max inline
        data"): what was asked for, capped by what the QP accepted; 0 for GPU memory."""
        return self.max_inline

    @property
    def buf_size(self):
        return self.region

    @property
    def num_qps(self):
        return self.num_qps

    @property
    def out_reads(self):
        """READs kept outstanding per QP (perftest -o): asked for or the device's most,
        after connect() capped by what the peer's device accepts."""
        return self.rd_atomic

    def local_info(self):
        """What the peer needs to connect to us; JSON-serialisable."""
        self._check_open()
        return {
            "qpn": self.qp.qp_num,
            "psn": self.psn,
            "qpns": [self.qps[i].qp_num for i in range(self.num_qps)],
            "out_reads": self.out_reads,
            "src_addr": self.base,             # our send region (a READ's source)
            "lid": self.pattr.lid,
            "gid": bytes(self.gid.raw[:16]).hex(),
            "rkey": self.mr.rkey,
            "addr": self.base + self.region,   # our receive region
            "length": self.region,
            "mtu": _MTU_BYTES[self.mtu_enum],
            "link_layer": self.link_layer,
        }

    def connect(self, remote):
        """Move each QP INIT -> RTR -> RTS towards the peer's QP of the same index, as
        described by ``remote`` (the peer's local_info(); both have the same num_qps)."""
        cdef uint64_t i
        self._check_open()
        rmtu, dgid, qpns, psn, lid, raddr, rkey, rlen, rsrc, rreads = _parse_peer_info(
            remote, self.mtu_enum)
        if len(qpns) != <Py_ssize_t>self.num_qps:
            raise VerbsError(f"the peer has {len(qpns)} QP(s), this endpoint {self.num_qps}",
                             hint="give both sides the same number of QPs (-q)")
        path_mtu = min(_MTU_BYTES[self.mtu_enum], rmtu)
        mtu_value = _MTU_ENUM.get(path_mtu, self.mtu_enum)
        # We accept as many READs as we would issue; we issue no more than the peer accepts.
        self.rd_atomic = min(self.out_reads, rreads or self.out_reads)
        for i in range(self.num_qps):
            _qp_to_rtr(self.qps[i], self.port, self.gid_index, mtu_value, qpns[i], psn + i,
                       lid, dgid, self.out_reads)
            _qp_to_rts(self.qps[i], self.psn + <uint32_t>i, self.qp_timeout, self.retry_cnt,
                       self.rd_atomic)
        self.r_src = rsrc
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
            raise VerbsError("RDMA endpoint failed a run (its QP is in error state, or WRs of "
                             "a timed-out loop may still complete); make a new endpoint")
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
    def bw(self, str verb, size_t size, uint64_t iters, int tx_depth=0, int cq_mod=100,
           int post_list=1, uint64_t warmup=0, double duration_s=0.0, double timeout_s=10.0,
           barrier=None, bint post=True, bint receive=False):
        """Bandwidth, as perftest's run_iter_bw: ``size``-byte ``verb`` WRs ("write",
        "read" or "send"; see rdma_runs.pxi for the regions), ``iters`` on each QP, at
        most ``tx_depth`` outstanding per QP, every ``cq_mod``-th signaled, ``post_list``
        WRs per ibv_post_send. READs stay at most ``out_reads`` in flight per QP (the QP's
        limit, perftest -o). ``receive``: also take ``iters`` SENDs per QP from the peer,
        keeping the receive queues full (the SEND server; with ``post`` too, perftest -b);
        ``post=False``: only that.

        ``warmup`` untimed rounds go first; receives are then posted ahead and
        ``barrier()`` (if given) is called right before the timed loop. With
        ``duration_s`` > 0 the loop stops posting after that long and ``iters`` is only
        the capacity of the timestamp arrays. Returns a dict: tposted_ns, tcompleted_ns
        (uint64 arrays, one entry per WR), iterations, size_bytes, bw_avg_Bps,
        bw_peak_Bps, msg_rate_pps, elapsed_s, opcode, qps, out_reads, received (only the
        settings and ``received`` when ``post`` is False).
        """
        return _bw(self, verb, size, iters, tx_depth, cq_mod, post_list, warmup, duration_s,
                   timeout_s, barrier, post, receive)

    def lat(self, str verb, size_t size, uint64_t iters, bint initiator, uint64_t warmup=0,
            double timeout_s=10.0, barrier=None):
        """Latency, as perftest's run_iter_lat_write / run_iter_lat_send (a ping-pong:
        both sides call it with the same size/iters, exactly one with ``initiator=True``,
        which sends first) or run_iter_lat for "read" (one READ at a time, polled to its
        completion; only the reading side calls it). ``barrier()`` is called after our
        buffers are reset (and a SEND's receives posted) and before the loop: it must not
        return before the peer is as ready (any two-sided exchange does). The first
        ``warmup`` rounds are dropped from the samples. Returns a dict: tposted_ns
        (uint64, one per round), iterations, size_bytes, opcode and
        lat_{min,median,mean,stdev,p99,p999,max}_s (half round trip for a ping-pong, the
        whole READ for read: perftest's rules)."""
        return _lat(self, verb, size, iters, initiator, warmup, timeout_s, barrier)

    def write_bw(self, size_t size, uint64_t iters, int tx_depth=0, int cq_mod=100,
                 int post_list=1, uint64_t warmup=0, double duration_s=0.0,
                 double timeout_s=10.0, barrier=None):
        """bw("write", ...): RDMA WRITEs from our send region into the peer's receive
        region; the peer is passive."""
        return _bw(self, "write", size, iters, tx_depth, cq_mod, post_list, warmup,
                   duration_s, timeout_s, barrier, True, False)

    def write_lat(self, size_t size, uint64_t iters, bint initiator, uint64_t warmup=0,
                  double timeout_s=10.0, barrier=None):
        """lat("write", ...): the RDMA WRITE ping-pong (perftest's server initiates)."""
        return _lat(self, "write", size, iters, initiator, warmup, timeout_s, barrier)
