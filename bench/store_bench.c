/*
 * store_bench.c - the cost of one store request in the core (gateway/store.c and its
 * backends), for bench/store.py, which starts a private redis-server and prints the figures.
 *
 *   store_bench STORE COUNT CONCURRENCY [SPOOL_DIR]
 *
 * Sends COUNT requests through store_submit on one libevent loop, CONCURRENCY chains at once
 * (each answer submits that chain's next request), the mix a policy chain makes: an
 * increment with a TTL (a rate counter), then a get (a greylisting triplet), over 100 keys.
 * STORE is a store setting (lmdb, redis://..., redis+unix://...); lmdb lives in SPOOL_DIR.
 * Prints one line: requests, errors, wall seconds, requests/s, microseconds per request
 * (wall / COUNT * CONCURRENCY: the round trip at CONCURRENCY 1) and the CPU microseconds of
 * this process per request (getrusage). Built by make, not installed. Loopback only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "bench_cpu.h"
#include "clock.h"
#include "config.h"
#include "store.h"
#include "thread_pool.h"

struct bench {
    struct event_base *base;
    struct store *store;
    long count, submitted, answered, errors;
};

static void bench_answered(const struct porter_store_result *result, void *arg);

/* bench_next - the chain's next request: an increment, then a get of the same key */
static void bench_next(struct bench *b)
{
    if (b->submitted >= b->count)
        return;
    long n = b->submitted++;
    char key[32];
    snprintf(key, sizeof key, "bench:k%ld", (n / 2) % 100);
    if (n % 2 == 0)
        store_submit(b->store, STORE_INCREMENT, key, NULL, 1, 60, bench_answered, b);
    else
        store_submit(b->store, STORE_GET, key, NULL, 0, 0, bench_answered, b);
}

static void bench_answered(const struct porter_store_result *result, void *arg)
{
    struct bench *b = arg;
    b->answered++;
    b->errors += result->status == PORTER_STORE_ERROR;
    if (b->answered >= b->count)
        event_base_loopbreak(b->base);
    else
        bench_next(b);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: store_bench STORE COUNT CONCURRENCY [SPOOL_DIR]\n");
        return 2;
    }
    struct porter_config config = {0};
    config.store = argv[1];
    config.spool_dir = argc > 4 ? argv[4] : "/tmp";
    config.store_size = 64 << 20;
    config.store_timeout = 5;
    config.store_sweep_interval = 3600;
    struct bench b = {.count = atol(argv[2])};
    long concurrency = atol(argv[3]);
    if (b.count <= 0 || concurrency <= 0)
        return 2;
    b.base = event_base_new();
    struct thread_pool *pool = thread_pool_start(b.base, 1);
    b.store = store_new(&config, b.base, pool);
    if (b.base == NULL || b.store == NULL)
        return 1;
    /* Open the store and connect before the clock starts. */
    struct bench warm = {.base = b.base, .store = b.store, .count = 2};
    bench_next(&warm);
    event_base_dispatch(b.base);
    double start = clock_monotonic(), cpu = bench_cpu_seconds();
    for (long i = 0; i < concurrency; i++)
        bench_next(&b);
    event_base_dispatch(b.base);
    double wall = clock_monotonic() - start;
    cpu = bench_cpu_seconds() - cpu;
    printf("requests=%ld errors=%ld wall=%.3f rate=%.0f round_trip_us=%.1f cpu_us=%.2f\n",
           b.answered, b.errors + warm.errors, wall, (double)b.answered / wall,
           wall / (double)b.answered * (double)concurrency * 1e6, cpu / (double)b.answered * 1e6);
    thread_pool_stop(pool);
    store_free(b.store); /* after the pool: the LMDB sweep runs there */
    event_base_free(b.base);
    return b.errors + warm.errors > 0;
}
