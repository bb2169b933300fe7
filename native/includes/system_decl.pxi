# POSIX declarations the hot path uses beyond libc's .pxd files: aligned and hugepage
# allocation (the RDMA buffers) and the socket calls of the TCP loops.

from libc.errno cimport EINTR, EAGAIN  # EWOULDBLOCK == EAGAIN on Linux
from posix.time cimport timeval

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

cdef extern from "sys/socket.h" nogil:
    ssize_t c_send "send"(int fd, const void *buf, size_t n, int flags)
    ssize_t c_recv "recv"(int fd, void *buf, size_t n, int flags)
    int c_setsockopt "setsockopt"(int fd, int level, int name, const void *val, unsigned int len)
    enum:
        MSG_NOSIGNAL
        SOL_SOCKET
        SO_RCVTIMEO
        SO_SNDTIMEO
