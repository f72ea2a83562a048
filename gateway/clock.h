/*
 * clock.h - the one conversion from a duration setting (seconds, fractions allowed) to the
 * struct timeval that libevent timers take. Pure; nothing allocated.
 */
#ifndef PORTER_CLOCK_H
#define PORTER_CLOCK_H

#include <sys/time.h>

/* clock_timeval - seconds as a timeval; negative durations become zero */
static inline struct timeval clock_timeval(double seconds)
{
    if (seconds < 0)
        seconds = 0;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    return tv;
}

#endif
