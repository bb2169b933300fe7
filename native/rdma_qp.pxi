# The RC queue pair's state machine, RESET -> INIT -> RTR -> RTS, as perftest sets it up
# (ctx_modify_qp_to_init / ctx_connect), and the peer connection info it is driven by.
# Used by RdmaEndpoint (rdma_endpoint.pxi) at creation and in connect().

_MTU_BYTES = {IBV_MTU_256: 256, IBV_MTU_512: 512, IBV_MTU_1024: 1024,
              IBV_MTU_2048: 2048, IBV_MTU_4096: 4096}
_MTU_ENUM = {v: k for k, v in _MTU_BYTES.items()}


cdef _qp_to_init(ibv_qp *qp, int port):
    cdef ibv_qp_attr attr
    cdef int rc
    memset(&attr, 0, sizeof(attr))
    attr.qp_state = IBV_QPS_INIT
    attr.pkey_index = 0
    attr.port_num = <uint8_t>port
    attr.qp_access_flags = (IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE |
                            IBV_ACCESS_REMOTE_READ)
    rc = ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
                       IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)
    if rc != 0:
        raise VerbsError(f"modify QP to INIT failed: {os.strerror(rc)}", errno=rc)


cdef tuple _parse_peer_info(remote, int mtu_enum):
    """(mtu, gid, qpns, psn, lid, addr, rkey, length, src_addr, out_reads) from a peer's
    local_info(); its mtu defaults to ours (`mtu_enum`), its QPs to its one `qpn`, its
    send region to the one below its receive region, its READ limit to 0 (unknown)."""
    cdef bytes dgid
    try:
        rmtu = int(remote.get("mtu", _MTU_BYTES[mtu_enum]))
        dgid = bytes.fromhex(remote["gid"])
        qpn, psn, lid = int(remote["qpn"]), int(remote["psn"]), int(remote["lid"])
        raddr, rkey, rlen = int(remote["addr"]), int(remote["rkey"]), int(remote["length"])
        qpns = [int(q) for q in remote.get("qpns", [qpn])]
        rsrc = int(remote.get("src_addr", raddr - rlen))
        rreads = int(remote.get("out_reads", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise VerbsError(f"malformed peer connection info {remote!r}: {exc}") from exc
    if len(dgid) != 16:
        raise VerbsError(f"peer GID {remote['gid']!r} is not 16 bytes")
    return rmtu, dgid, qpns, psn, lid, raddr, rkey, rlen, rsrc, rreads


cdef _qp_to_rtr(ibv_qp *qp, int port, int gid_index, mtu_value, qpn, psn, lid, bytes dgid,
                int dest_rd_atomic):
    """INIT -> RTR towards the peer QP `qpn` (receive PSN `psn`, LID `lid`, GID `dgid`,
    used when `gid_index` >= 0) at path MTU `mtu_value` (an ibv_mtu), accepting
    `dest_rd_atomic` READs in flight from it."""
    cdef ibv_qp_attr attr
    cdef int rc, mask
    memset(&attr, 0, sizeof(attr))
    attr.qp_state = IBV_QPS_RTR
    attr.path_mtu = <ibv_mtu><int>mtu_value
    attr.dest_qp_num = qpn
    attr.rq_psn = psn
    attr.max_dest_rd_atomic = <uint8_t>dest_rd_atomic
    attr.min_rnr_timer = 12
    attr.ah_attr.dlid = lid
    attr.ah_attr.sl = 0
    attr.ah_attr.src_path_bits = 0
    attr.ah_attr.port_num = <uint8_t>port
    if gid_index >= 0:
        # RoCE always routes by GID; on IB a GID index asks for a GRH too.
        attr.ah_attr.is_global = 1
        memcpy(attr.ah_attr.grh.dgid.raw, <const char *>dgid, 16)
        attr.ah_attr.grh.sgid_index = <uint8_t>gid_index
        attr.ah_attr.grh.hop_limit = 64
        attr.ah_attr.grh.traffic_class = 0
        attr.ah_attr.grh.flow_label = 0
    mask = (IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
            IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER)
    rc = ibv_modify_qp(qp, &attr, mask)
    if rc != 0:
        raise VerbsError(f"modify QP to RTR failed: {os.strerror(rc)}", errno=rc,
                         hint="check GID index / LID and that both sides use the same fabric")


cdef _qp_to_rts(ibv_qp *qp, uint32_t sq_psn, int qp_timeout, int retry_cnt, int rd_atomic):
    """RTR -> RTS, issuing up to `rd_atomic` READs at a time (perftest -o)."""
    cdef ibv_qp_attr attr
    cdef int rc, mask
    memset(&attr, 0, sizeof(attr))
    attr.qp_state = IBV_QPS_RTS
    attr.timeout = <uint8_t>qp_timeout
    attr.retry_cnt = <uint8_t>retry_cnt
    attr.rnr_retry = 7
    attr.sq_psn = sq_psn
    attr.max_rd_atomic = <uint8_t>rd_atomic
    mask = (IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
            IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC)
    rc = ibv_modify_qp(qp, &attr, mask)
    if rc != 0:
        raise VerbsError(f"modify QP to RTS failed: {os.strerror(rc)}", errno=rc)
