/*
 * bench_cpu.h - the CPU time this process has used, user and system, in seconds: what the C
 * benchmarks (dns_bench.c, store_bench.c) print per request beside the wall clock (clock_monotonic in
 * gateway/clock.h). Nothing allocated.
 */
#ifndef PORTER_BENCH_CPU_H
#define PORTER_BENCH_CPU_H

#include <sys/resource.h>

static inline double bench_cpu_seconds(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

#endif
