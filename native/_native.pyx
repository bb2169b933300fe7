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

# The module is one C extension built from this file and the files it includes, in this
# order (Cython pastes each include in place, as uvloop's loop.pyx does):
#
#   includes/system_decl.pxi  POSIX declarations: posix_memalign, mmap, sockets
#   includes/verbs_decl.pxi   the slice of <infiniband/verbs.h> the hot path uses
#   includes/c_helpers.pxi    verbatim C: clock, volatile byte access, ibv_send_wr union
#   loop_status.pxi           LoopStatus, how a nogil loop reports its outcome; SpinWait
#   stamp_clock.pxi           the loops' stamps: CPU ticks, turned into ns after the loop
#   errors.pxi                VerbsError / PeerTimeout / TransportError, _loop_error
#   stats.pxi                 the figures of a run (benchfab.rdma.stats)
#   rdma_loops.pxi            the timed nogil RDMA WRITE loops (bw, lat)
#   rdma_qp.pxi               QP state transitions, peer connection info, MTU tables
#   rdma_memory.pxi           host / hugepage / external buffers and their MRs
#   rdma_endpoint.pxi         class RdmaEndpoint
#   rdma_runs.pxi             write_bw / write_lat around the loops
#   tcp_loops.pxi             tcp_write_bw / tcp_sink_bw / tcp_write_lat
#
# Python-level functions keep the order they had (monotonic_ns, wc_status_str,
# list_device_names, then the tcp_* ones, new ones after them): Cython numbers them in C
# by that order, and benchmarks/loop_cost_callgrind.py finds the loops by those names.

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, uintptr_t
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset, memcpy
from libc.errno cimport errno

include "includes/system_decl.pxi"
include "includes/verbs_decl.pxi"
include "includes/c_helpers.pxi"

import os
import numpy as np

from benchfab.errors import WorkloadError

include "loop_status.pxi"
include "stamp_clock.pxi"
include "errors.pxi"
include "stats.pxi"


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


include "rdma_loops.pxi"
include "rdma_qp.pxi"
include "rdma_memory.pxi"
include "rdma_endpoint.pxi"
include "rdma_runs.pxi"
include "tcp_loops.pxi"


# After the tcp_* functions: see the note on Python-level functions at the top.
def clock_read_costs(int n=100000):
    """ns per read of the OS clock (clock_gettime) and of the tick counter the loops
    stamp with, measured here with `n` reads of each: why the loops stamp with ticks."""
    cdef uint64_t t0, t1
    cdef int i
    if n < 1:
        raise ValueError("n must be >= 1")
    with nogil:
        t0 = bf_now_ns()
        for i in range(n):
            bf_now_ns()
        t1 = bf_now_ns()
    os_ns = <double>(t1 - t0) / n
    with nogil:
        t0 = bf_now_ns()
        for i in range(n):
            bf_ticks()
        t1 = bf_now_ns()
    return {"clock_gettime_ns": os_ns, "ticks_ns": <double>(t1 - t0) / n,
            "stamps": "os" if _OS_STAMPS else "ticks"}
