/*
 * dns_bench.c - Porter's resolver (gateway/dns.c) against libunbound on the same libevent loop,
 * for bench/dns.py, which starts the servers and prints the comparison (docs/dns.md).
 *
 *   dns_bench porter|unbound SERVER_PORT PREFIX COUNT CONCURRENCY PHASES
 *
 * Asks A records of hN.PREFIX.bench.example (N = 0..COUNT-1) of the server on
 * 127.0.0.1:SERVER_PORT, at most CONCURRENCY at once, once per phase in PHASES (a comma list
 * of names: "cold,warm" asks the same names twice, the second time from the cache). Prints one
 * line per phase: lookups, answered with 10.0.0.1 (right), with another address (wrong: a
 * hostile server got one accepted), failed, wall seconds, lookups/s, CPU seconds of this
 * process, resident memory, and the mean seconds a failed lookup took. Both resolvers: one
 * server, a 1 s try timeout where it can be set, the answer cache on (porter: dns_cache_size,
 * unbound: its default caches). Built by make, not installed. Loopback only.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound-event.h>
#include <unbound.h>

#include "bench_cpu.h"
#include "clock.h"
#include "config.h"
#include "dns.h"
#include "dns_packet.h"

struct bench {
    struct event_base *base;
    const char *resolver;
    const char *prefix;
    int count, concurrency;
    int next, inflight, done;
    int right, wrong, failed;
    bool starting;              /* inside bench_start_more: answers given at once queue up */
    double failed_seconds;
    double *started;            /* per lookup */
    struct dns_resolver *porter;
    struct ub_ctx *unbound;
};

/* One lookup in flight. */
struct bench_lookup {
    struct bench *b;
    int index;
};

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void bench_start_more(struct bench *b);

/* bench_finish - one lookup's outcome: address "10.0.0.1" is right, another one wrong */
static void bench_finish(struct bench *b, int index, const char *address)
{
    if (address == NULL) {
        b->failed++;
        b->failed_seconds += clock_monotonic() - b->started[index];
    } else if (strcmp(address, "10.0.0.1") == 0) {
        b->right++;
    } else {
        b->wrong++;
    }
    b->inflight--;
    b->done++;
    if (b->done == b->count)
        event_base_loopbreak(b->base);
    else if (!b->starting)
        bench_start_more(b); /* libunbound answers from its cache inside ub_resolve_event */
}

static void porter_answered(const struct porter_dns_answer *answer, void *arg)
{
    struct bench_lookup *l = arg;
    const char *address = answer->status == PORTER_DNS_OK && answer->count > 0
                              ? answer->records[0].text
                              : NULL;
    bench_finish(l->b, l->index, address);
    free(l);
}

static void unbound_answered(void *arg, int rcode, void *packet, int length, int sec,
                             char *why_bogus, int rate_limited)
{
    (void)sec, (void)why_bogus, (void)rate_limited;
    struct bench_lookup *l = arg;
    char address[INET6_ADDRSTRLEN] = "";
    const char *found = NULL;
    if (rcode == 0 && packet != NULL) {
        /* the first A record of the answer section, read with our own decoder */
        struct porter_dns_answer *answer = NULL;
        const unsigned char *p = packet;
        unsigned id = (unsigned)p[0] << 8 | p[1];
        char name[300];
        snprintf(name, sizeof name, "h%d.%s.bench.example", l->index, l->b->prefix);
        if (dns_reply_decode(packet, (size_t)length, id, PORTER_DNS_A, name, &answer) ==
                DNS_REPLY_ANSWER &&
            answer != NULL && answer->status == PORTER_DNS_OK && answer->count > 0) {
            snprintf(address, sizeof address, "%s", answer->records[0].text);
            found = address;
        }
        dns_answer_free(answer);
    }
    bench_finish(l->b, l->index, found);
    free(l);
}

static void bench_start_more(struct bench *b)
{
    b->starting = true;
    while (b->inflight < b->concurrency && b->next < b->count) {
        struct bench_lookup *l = malloc(sizeof *l);
        if (l == NULL)
            abort();
        l->b = b;
        l->index = b->next++;
        char name[300];
        snprintf(name, sizeof name, "h%d.%s.bench.example", l->index, b->prefix);
        b->started[l->index] = clock_monotonic();
        b->inflight++;
        if (b->porter != NULL) {
            dns_lookup(b->porter, PORTER_DNS_A, name, porter_answered, l);
        } else if (ub_resolve_event(b->unbound, name, 1, 1, l, unbound_answered, NULL) != 0) {
            bench_finish(b, l->index, NULL);
            free(l);
        }
    }
    b->starting = false;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s porter|unbound SERVER_PORT PREFIX COUNT CONCURRENCY PHASES\n",
                argv[0]);
        return 2;
    }
    struct bench b = {.resolver = argv[1], .prefix = argv[3], .count = atoi(argv[4]),
                      .concurrency = atoi(argv[5])};
    int port = atoi(argv[2]);
    if (b.count <= 0 || b.concurrency <= 0 || port <= 0)
        return 2;
    b.started = calloc((size_t)b.count, sizeof *b.started);
    b.base = event_base_new();
    long rss_before = rss_kb();
    if (strcmp(b.resolver, "porter") == 0) {
        char text[256];
        snprintf(text, sizeof text, "dns_servers = 127.0.0.1:%d\ndns_timeout = 1\n"
                 "dns_retries = 1\ndns_cache_size = %d\n", port, b.count * 2);
        struct config_error_list errors = {0};
        struct porter_config *c = config_parse("/tmp", "porter.conf", text, strlen(text), &errors);
        if (c == NULL)
            return 2;
        b.porter = dns_resolver_new(b.base, c);
        config_free(c);
    } else {
        char forward[64];
        snprintf(forward, sizeof forward, "127.0.0.1@%d", port);
        b.unbound = ub_ctx_create_event(b.base);
        if (b.unbound == NULL || ub_ctx_set_option(b.unbound, "do-not-query-localhost:", "no") ||
            ub_ctx_set_fwd(b.unbound, forward) != 0) {
            fprintf(stderr, "dns_bench: libunbound setup failed\n");
            return 2;
        }
    }
    char *phases = strdup(argv[6]);
    char *saveptr = NULL;
    for (char *phase = strtok_r(phases, ",", &saveptr); phase != NULL;
         phase = strtok_r(NULL, ",", &saveptr)) {
        b.next = b.inflight = b.done = b.right = b.wrong = b.failed = 0;
        b.failed_seconds = 0;
        double cpu = bench_cpu_seconds(), started = clock_monotonic();
        bench_start_more(&b);
        struct timeval limit = {300, 0};
        event_base_loopexit(b.base, &limit);
        if (b.done < b.count)
            event_base_dispatch(b.base);
        double seconds = clock_monotonic() - started;
        printf("resolver=%s phase=%s lookups=%d right=%d wrong=%d failed=%d seconds=%.3f "
               "per_second=%.0f cpu_seconds=%.3f rss_kb=%ld rss_growth_kb=%ld "
               "failed_mean_seconds=%.2f\n", b.resolver, phase, b.done, b.right, b.wrong,
               b.failed, seconds, seconds > 0 ? b.done / seconds : 0, bench_cpu_seconds() - cpu,
               rss_kb(), rss_kb() - rss_before, b.failed ? b.failed_seconds / b.failed : 0);
        fflush(stdout);
    }
    free(phases);
    dns_resolver_free(b.porter);
    if (b.unbound != NULL)
        ub_ctx_delete(b.unbound);
    event_base_free(b.base);
    free(b.started);
    return 0;
}
