# Small C helpers, emitted verbatim into the generated C file so the build needs no
# extra include path. They cover what Cython cannot say directly: volatile byte access
# (the latency loop spin-polls memory the NIC writes), the anonymous union inside
# ibv_send_wr, a monotonic clock and the CPU's tick counter the timed loops stamp with.

from libc.stdint cimport uint8_t, uint32_t, uint64_t

cdef extern from *:
    """
    #include <time.h>
    #include <stdint.h>
    #include <infiniband/verbs.h>

    /* CLOCK_MONOTONIC_RAW: not slewed by NTP, served from the vDSO (tens of ns). */
    static inline uint64_t bf_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    /* The CPU's tick counter, perftest's get_cycles(): the TSC on x86-64, the generic
       timer on arm64; a few ns everywhere, where clock_gettime costs ~1 us on hosts whose
       clocksource has no vDSO path (hpet, acpi_pm: emulated VMs). Elsewhere it is the
       clock itself (BF_TICKS_ARE_NS). stamp_clock.pxi turns ticks into ns. */
    #if defined(__x86_64__) || defined(__i386__)
    #define BF_TICKS_ARE_NS 0
    static inline uint64_t bf_ticks(void) { return __builtin_ia32_rdtsc(); }
    #elif defined(__aarch64__)
    #define BF_TICKS_ARE_NS 0
    static inline uint64_t bf_ticks(void) {
        uint64_t v;
        __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
        return v;
    }
    #else
    #define BF_TICKS_ARE_NS 1
    static inline uint64_t bf_ticks(void) { return bf_now_ns(); }
    #endif
    /* The NIC writes these bytes behind the compiler's back: force real loads/stores. */
    static inline uint8_t bf_load_u8(const void *p) { return *(const volatile uint8_t *)p; }
    static inline void bf_store_u8(void *p, uint8_t v) { *(volatile uint8_t *)p = v; }
    static inline void bf_wr_set_rdma(struct ibv_send_wr *wr, uint64_t raddr, uint32_t rkey) {
        wr->wr.rdma.remote_addr = raddr;
        wr->wr.rdma.rkey = rkey;
    }
    """
    uint64_t bf_now_ns() nogil
    uint64_t bf_ticks() nogil
    bint BF_TICKS_ARE_NS
    uint8_t bf_load_u8(const void *p) nogil
    void bf_store_u8(void *p, uint8_t v) nogil
    void bf_wr_set_rdma(ibv_send_wr *wr, uint64_t raddr, uint32_t rkey) nogil
