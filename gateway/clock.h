/*
 * clock.h - the one conversion from a duration setting (seconds, fractions allowed) to the
 * struct timeval that libevent timers take, and a monotonic clock in seconds for deadlines.
 * Nothing allocated.
 */
#ifndef PORTER_CLOCK_H
#define PORTER_CLOCK_H

#include <sys/time.h>
#include <time.h>

/* clock_timeval - seconds as a timeval; negative durations become zero */
static inline struct timeval clock_timeval(double seconds)
{
    if (seconds < 0)
        seconds = 0;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    return tv;
}

/* clock_monotonic - seconds on a clock that never jumps (for deadlines and rates) */
static inline double clock_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
