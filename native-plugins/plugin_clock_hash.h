/*
 * plugin_clock_hash.h - the monotonic clock and FNV-1a for native plugins, which see only
 * porter/plugin.h (not the core's clock.h): one copy for the plugins that keep deadlines or
 * per-worker tables of their own (client_name, greylist, ratelimit). Header-only.
 */
#ifndef PORTER_PLUGIN_CLOCK_HASH_H
#define PORTER_PLUGIN_CLOCK_HASH_H

#include <stdint.h>
#include <time.h>

/* plugin_monotonic - seconds on the monotonic clock */
static inline double plugin_monotonic(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* plugin_fnv - FNV-1a (64 bits) of text, continuing from hash (PLUGIN_FNV_START to begin) */
#define PLUGIN_FNV_START 14695981039346656037ull
static inline uint64_t plugin_fnv(uint64_t hash, const char *text)
{
    for (const char *p = text; *p != '\0'; p++)
        hash = (hash ^ (unsigned char)*p) * 1099511628211ull;
    return hash;
}

#endif
