# The clock the timed RDMA loops stamp with. Inside a loop a stamp is one read of the
# CPU's tick counter (bf_ticks: the TSC on x86-64, the generic timer on arm64), as
# perftest's get_cycles(); after the loop the stamps become CLOCK_MONOTONIC_RAW ns along
# the line through two (ticks, ns) pairs read around it. Why not clock_gettime in the
# loop: on a host whose clocksource has no vDSO path (hpet or acpi_pm, as in emulated VMs)
# each read is a system call of about 1 us, paid once per round trip on each side, which
# made an 8 B ping-pong 7-9 % slower than perftest's (docs/NATIVE.md has the figures).
#
# BENCHFAB_STAMP_CLOCK=os stamps with clock_gettime instead: the way out on a host whose
# tick counters differ between CPUs (the check after each loop names it).

cdef enum:
    CAL_MIN_NS = 2000000    # the two pairs lie at least 2 ms apart (short loops wait)
    PAIR_TRIES = 5

cdef struct StampClock:
    bint os_clock           # stamps are clock_gettime ns already
    uint64_t ticks0         # a (ticks, ns) pair read before the loop...
    uint64_t ns0
    double ns_per_tick      # ...and the slope to the pair read after it


_OS_STAMPS = BF_TICKS_ARE_NS or os.environ.get("BENCHFAB_STAMP_CLOCK", "") == "os"


cdef inline uint64_t _stamp(const StampClock *c) noexcept nogil:
    """One stamp: ticks (or ns with the OS clock); the branch always goes the same way."""
    if c.os_clock:
        return bf_now_ns()
    return bf_ticks()


cdef inline void _clock_pair(uint64_t *ticks, uint64_t *ns) noexcept nogil:
    """A (ticks, ns) pair read as close together as the clocks allow: of a few tries,
    the clock read that took the fewest ticks, paired with the ticks at its middle."""
    cdef uint64_t a, b, n, best = 0xFFFFFFFFFFFFFFFF
    cdef int i
    ticks[0] = 0
    ns[0] = 0
    for i in range(PAIR_TRIES):
        a = bf_ticks()
        n = bf_now_ns()
        b = bf_ticks()
        if b - a < best:
            best = b - a
            ticks[0] = a + (b - a) // 2
            ns[0] = n


cdef inline void _clock_start(StampClock *c, bint os_clock) noexcept nogil:
    """Call right before the loop's first stamp."""
    c.os_clock = os_clock
    c.ns_per_tick = 1.0
    if os_clock:
        c.ticks0 = 0
        c.ns0 = 0
        return
    _clock_pair(&c.ticks0, &c.ns0)


cdef inline void _clock_finish(StampClock *c) noexcept nogil:
    """Call after the loop's last stamp: fixes the slope (after CAL_MIN_NS at least, so
    that the pairs' own read error stays below 1e-4 of it even on a slow clock)."""
    cdef uint64_t t1, n1
    if c.os_clock:
        return
    _clock_pair(&t1, &n1)
    while n1 - c.ns0 < CAL_MIN_NS:
        _clock_pair(&t1, &n1)
    if t1 > c.ticks0:
        c.ns_per_tick = <double>(n1 - c.ns0) / <double>(t1 - c.ticks0)


cdef inline bint _stamps_to_ns(const StampClock *c, uint64_t *s, uint64_t n) noexcept nogil:
    """Turn `n` stamps into ns in place; false when they go backwards, which means the
    tick counters of the CPUs the loop ran on disagree (unsynchronised TSCs)."""
    cdef uint64_t i
    cdef int64_t d
    if not c.os_clock:
        for i in range(n):
            d = <int64_t>(s[i] - c.ticks0)
            s[i] = c.ns0 + <uint64_t>(<int64_t>(<double>d * c.ns_per_tick + 0.5))
    for i in range(1, n):
        if s[i] < s[i - 1]:
            return False
    return True


cdef object _stamps_went_back(str what):
    return WorkloadError(f"{what}: the loop's timestamps went backwards (the CPU tick "
                         "counters of this host's cores disagree)",
                         hint="pin the rank to one core (taskset -c N), or set "
                              "BENCHFAB_STAMP_CLOCK=os to stamp with clock_gettime")

