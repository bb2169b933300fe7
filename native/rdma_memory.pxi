# The endpoint's buffer: page-aligned or hugepage-backed host memory we allocate, or an
# external (GPU) buffer registered by dma-buf fd or by device pointer. RdmaEndpoint
# (rdma_endpoint.pxi) owns what these return and releases it in close().


cdef ibv_mr *_reg_external_mr(ibv_pd *pd, str device, size_t buf_size, size_t total,
                              uint64_t ext_addr, int dmabuf_fd, uint64_t dmabuf_offset,
                              size_t ext_length, int access) except NULL:
    """Register `total` bytes of an external buffer: by dma-buf fd (iova `ext_addr`) when
    `dmabuf_fd` >= 0, else the device pointer `ext_addr` itself."""
    cdef ibv_mr *mr
    if ext_length < total:
        raise VerbsError(f"external buffer of {ext_length} bytes is smaller than the "
                         f"two {buf_size}-byte regions the endpoint needs")
    if dmabuf_fd >= 0:
        # iova = ext_addr: SGE and remote addresses then look like device pointers.
        mr = ibv_reg_dmabuf_mr(pd, dmabuf_offset, total, ext_addr, dmabuf_fd, access)
        what, hint = "ibv_reg_dmabuf_mr", ("needs kernel >= 5.12, a NIC driver with "
                                           "dma-buf support and NVIDIA open kernel modules")
    else:
        # A device pointer is pinnable only through a peer-memory client.
        mr = ibv_reg_mr(pd, <void *>(<uintptr_t>ext_addr), total,
                        access | IBV_ACCESS_RELAXED_ORDERING)
        what, hint = "ibv_reg_mr on an external (device) pointer", (
            "GPU memory without dma-buf needs the nvidia-peermem kernel module")
    if mr == NULL:
        err = errno
        raise VerbsError(f"{what} failed on {device}: {os.strerror(err)}",
                         errno=err, hint=hint)
    return mr


cdef void *_alloc_aligned(size_t total) except NULL:
    """`total` bytes of page-aligned host memory (free() it)."""
    cdef size_t page = os.sysconf("SC_PAGE_SIZE")
    cdef void *p = NULL
    if posix_memalign(&p, page, total) != 0:
        raise MemoryError(f"cannot allocate {total} bytes of page-aligned memory")
    return p


cdef void *_map_hugepages(size_t total, size_t *length_out) except NULL:
    """A MAP_HUGETLB mapping covering `total` bytes (munmap() it with *length_out)."""
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
    length_out[0] = length
    return p


cdef ibv_mr *_reg_host_mr(ibv_pd *pd, void *buf, size_t total, int access) except NULL:
    # Relaxed ordering is on by default in perftest; optional, so devices ignore it.
    cdef ibv_mr *mr = ibv_reg_mr(pd, buf, total, access | IBV_ACCESS_RELAXED_ORDERING)
    if mr == NULL:
        err = errno
        raise VerbsError(f"ibv_reg_mr of {total} bytes failed: {os.strerror(err)}",
                         errno=err, hint="raise the memlock limit (ulimit -l) or grant IPC_LOCK")
    return mr
