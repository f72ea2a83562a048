/*
 * metrics_bench.c - what the workers' counters cost on the hot path: nanoseconds per call of
 * metrics_add (one counter), metrics_hook (a plugin verdict: histogram, sum, verdict) and
 * metrics_transaction, each called N times on one thread into a slot of shared memory, as a
 * worker does; and how long the master takes to sum every slot of METRICS_SLOTS (a scrape's
 * work). Prints the figures; asserts nothing.
 * Usage: bench/metrics_bench [CALLS]   (default 20000000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long calls = argc > 1 ? atol(argv[1]) : 20000000;
    if (calls <= 0 || metrics_shared_create() != 0)
        return 1;
    int slot = metrics_slot_claim(1);
    metrics_slot_bind(slot, getpid());
    metrics_worker_attach(slot);
    const char *plugins[] = {"rcpt_ok", "queue_maildir"};
    const char *listeners[] = {"127.0.0.1:25"};
    const char *roles[] = {"smtp"};
    metrics_worker_describe(plugins, 2, listeners, roles, 1);
    double start = now();
    for (long i = 0; i < calls; i++)
        metrics_add(&metrics_here->dns_queries, 1);
    double add = (now() - start) / (double)calls * 1e9;
    start = now();
    for (long i = 0; i < calls; i++)
        metrics_hook((int)(i & 1), PORTER_HOOK_RCPT, PORTER_OK, i & 1023);
    double hook = (now() - start) / (double)calls * 1e9;
    start = now();
    for (long i = 0; i < calls; i++)
        metrics_transaction(250, 1, true, 4096);
    double transaction = (now() - start) / (double)calls * 1e9;
    /* a scrape's work with every slot in use */
    for (int i = 0; i < METRICS_SLOTS - 1; i++) {
        int other = metrics_slot_claim(1);
        metrics_slot_bind(other, 100000 + i);
    }
    start = now();
    int rounds = 20;
    size_t bytes = 0;
    for (int i = 0; i < rounds; i++) {
        struct metrics_sums *sums = metrics_collect();
        char *text = metrics_render(sums, NULL);
        bytes = 0;
        for (char *p = text; *p; p++)
            bytes++;
        free(text);
        metrics_sums_free(sums);
    }
    double scrape = (now() - start) / rounds * 1e3;
    printf("metrics_add          %6.2f ns/call\n", add);
    printf("metrics_hook         %6.2f ns/call (histogram bucket, sum, verdict)\n", hook);
    printf("metrics_transaction  %6.2f ns/call (class, decider, message, bytes)\n", transaction);
    printf("collect+render       %6.2f ms with %d slots in use (%zu bytes of text)\n", scrape,
           METRICS_SLOTS, bytes);
    return 0;
}
