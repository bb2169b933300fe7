# Our own declarations of the slice of <infiniband/verbs.h> the hot path uses.
#
# Why not `cimport pyverbs`: no distribution ships pyverbs' .pxd files, the ones in
# rdma-core include the internal <infiniband/driver.h>, and they declare the data-path
# calls without `nogil` (see docs/reference style-anchors §2). Cython reads struct layouts
# from the real header at C compile time, so only the fields we touch are listed here;
# nested anonymous unions (ibv_send_wr.wr.rdma) are set from the C helpers in
# includes/c_helpers.pxi instead of being declared.
#
# ibv_post_send / ibv_poll_cq are `static inline` in the header (they dispatch through
# qp->context->ops), so the loop makes no library calls; ibv_query_port and ibv_reg_mr
# are macros in rdma-core >= 2x and expand correctly from the generated C.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "infiniband/verbs.h" nogil:
    cdef struct ibv_device:
        pass
    cdef struct ibv_context:
        pass
    cdef struct ibv_pd:
        pass
    cdef struct ibv_cq:
        pass
    cdef struct ibv_comp_channel:
        pass
    cdef struct ibv_srq:
        pass
    cdef struct ibv_qp:
        uint32_t qp_num
    cdef struct ibv_mr:
        void *addr
        size_t length
        uint32_t lkey
        uint32_t rkey

    cdef union ibv_gid:
        uint8_t raw[16]

    cdef enum ibv_mtu:
        IBV_MTU_256
        IBV_MTU_512
        IBV_MTU_1024
        IBV_MTU_2048
        IBV_MTU_4096

    cdef enum ibv_port_state:
        IBV_PORT_NOP
        IBV_PORT_DOWN
        IBV_PORT_INIT
        IBV_PORT_ARMED
        IBV_PORT_ACTIVE
        IBV_PORT_ACTIVE_DEFER

    enum:
        IBV_LINK_LAYER_UNSPECIFIED
        IBV_LINK_LAYER_INFINIBAND
        IBV_LINK_LAYER_ETHERNET

    cdef struct ibv_port_attr:
        ibv_port_state state
        ibv_mtu max_mtu
        ibv_mtu active_mtu
        int gid_tbl_len
        uint16_t lid
        uint8_t active_width
        uint8_t active_speed
        uint8_t link_layer

    cdef struct ibv_global_route:
        ibv_gid dgid
        uint32_t flow_label
        uint8_t sgid_index
        uint8_t hop_limit
        uint8_t traffic_class

    cdef struct ibv_ah_attr:
        ibv_global_route grh
        uint16_t dlid
        uint8_t sl
        uint8_t src_path_bits
        uint8_t static_rate
        uint8_t is_global
        uint8_t port_num

    cdef enum ibv_qp_type:
        IBV_QPT_RC

    cdef enum ibv_qp_state:
        IBV_QPS_RESET
        IBV_QPS_INIT
        IBV_QPS_RTR
        IBV_QPS_RTS
        IBV_QPS_SQD
        IBV_QPS_SQE
        IBV_QPS_ERR

    cdef enum ibv_qp_attr_mask:
        IBV_QP_STATE
        IBV_QP_CUR_STATE
        IBV_QP_EN_SQD_ASYNC_NOTIFY
        IBV_QP_ACCESS_FLAGS
        IBV_QP_PKEY_INDEX
        IBV_QP_PORT
        IBV_QP_QKEY
        IBV_QP_AV
        IBV_QP_PATH_MTU
        IBV_QP_TIMEOUT
        IBV_QP_RETRY_CNT
        IBV_QP_RNR_RETRY
        IBV_QP_RQ_PSN
        IBV_QP_MAX_QP_RD_ATOMIC
        IBV_QP_ALT_PATH
        IBV_QP_MIN_RNR_TIMER
        IBV_QP_SQ_PSN
        IBV_QP_MAX_DEST_RD_ATOMIC
        IBV_QP_PATH_MIG_STATE
        IBV_QP_CAP
        IBV_QP_DEST_QPN

    cdef struct ibv_qp_cap:
        uint32_t max_send_wr
        uint32_t max_recv_wr
        uint32_t max_send_sge
        uint32_t max_recv_sge
        uint32_t max_inline_data

    cdef struct ibv_qp_init_attr:
        void *qp_context
        ibv_cq *send_cq
        ibv_cq *recv_cq
        ibv_srq *srq
        ibv_qp_cap cap
        ibv_qp_type qp_type
        int sq_sig_all

    cdef struct ibv_qp_attr:
        ibv_qp_state qp_state
        ibv_mtu path_mtu
        uint32_t rq_psn
        uint32_t sq_psn
        uint32_t dest_qp_num
        unsigned int qp_access_flags
        ibv_qp_cap cap
        ibv_ah_attr ah_attr
        uint16_t pkey_index
        uint8_t max_rd_atomic
        uint8_t max_dest_rd_atomic
        uint8_t min_rnr_timer
        uint8_t port_num
        uint8_t timeout
        uint8_t retry_cnt
        uint8_t rnr_retry

    cdef enum ibv_access_flags:
        IBV_ACCESS_LOCAL_WRITE
        IBV_ACCESS_REMOTE_WRITE
        IBV_ACCESS_REMOTE_READ
        IBV_ACCESS_RELAXED_ORDERING

    cdef enum ibv_wr_opcode:
        IBV_WR_RDMA_WRITE
        IBV_WR_SEND
        IBV_WR_RDMA_READ

    cdef enum ibv_send_flags:
        IBV_SEND_FENCE
        IBV_SEND_SIGNALED
        IBV_SEND_SOLICITED
        IBV_SEND_INLINE

    cdef struct ibv_sge:
        uint64_t addr
        uint32_t length
        uint32_t lkey

    cdef struct ibv_send_wr:
        uint64_t wr_id
        ibv_send_wr *next
        ibv_sge *sg_list
        int num_sge
        ibv_wr_opcode opcode
        unsigned int send_flags

    cdef struct ibv_recv_wr:
        uint64_t wr_id
        ibv_recv_wr *next
        ibv_sge *sg_list
        int num_sge

    cdef struct ibv_device_attr:
        uint32_t max_qp_wr
        int max_qp_rd_atom
        int max_qp_init_rd_atom

    cdef enum ibv_wc_status:
        IBV_WC_SUCCESS

    cdef struct ibv_wc:
        uint64_t wr_id
        ibv_wc_status status
        uint32_t vendor_err
        uint32_t byte_len
        uint32_t qp_num

    ibv_device **ibv_get_device_list(int *num_devices)
    void ibv_free_device_list(ibv_device **lst)
    const char *ibv_get_device_name(ibv_device *device)
    ibv_context *ibv_open_device(ibv_device *device)
    int ibv_close_device(ibv_context *context)
    int ibv_query_port(ibv_context *context, uint8_t port_num, ibv_port_attr *port_attr)
    int ibv_query_gid(ibv_context *context, uint8_t port_num, int index, ibv_gid *gid)
    ibv_pd *ibv_alloc_pd(ibv_context *context)
    int ibv_dealloc_pd(ibv_pd *pd)
    ibv_mr *ibv_reg_mr(ibv_pd *pd, void *addr, size_t length, int access)
    ibv_mr *ibv_reg_dmabuf_mr(ibv_pd *pd, uint64_t offset, size_t length,
                              uint64_t iova, int fd, int access)
    int ibv_dereg_mr(ibv_mr *mr)
    ibv_cq *ibv_create_cq(ibv_context *context, int cqe, void *cq_context,
                          ibv_comp_channel *channel, int comp_vector)
    int ibv_destroy_cq(ibv_cq *cq)
    ibv_qp *ibv_create_qp(ibv_pd *pd, ibv_qp_init_attr *qp_init_attr)
    int ibv_modify_qp(ibv_qp *qp, ibv_qp_attr *attr, int attr_mask)
    int ibv_destroy_qp(ibv_qp *qp)
    int ibv_post_send(ibv_qp *qp, ibv_send_wr *wr, ibv_send_wr **bad_wr)
    int ibv_post_recv(ibv_qp *qp, ibv_recv_wr *wr, ibv_recv_wr **bad_wr)
    int ibv_query_device(ibv_context *context, ibv_device_attr *device_attr)
    int ibv_poll_cq(ibv_cq *cq, int num_entries, ibv_wc *wc)
    const char *ibv_wc_status_str(ibv_wc_status status)
