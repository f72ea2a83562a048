/*
 * metrics.h - counters every worker keeps for the master: Prometheus metrics, `porter
 * status` and `porter top` read them.
 *
 * Design: the master maps one shared anonymous memory area before it forks anything. It
 * holds a slot per worker process (current and retiring ones); the master gives each worker
 * it forks a slot, the worker writes only its own slot, without locks (relaxed atomic adds:
 * one writer per slot except for run_blocking threads), and the master sums the slots when
 * it is asked (a scrape, a status). When a worker is reaped the master folds its counters
 * into totals of its own, so counters never go backwards, and frees the slot. Gauges
 * (sessions open, the live session view) are the worker's only while it lives.
 *
 * Each slot also holds a small view of the worker's sessions (client, state, the hook being
 * run and since when) and a ring of its latest decisive verdicts, for `porter top`.
 *
 * Outside a master (porter stdio, unit tests) the counters go to a private slot of this
 * process and nobody reads them.
 *
 * Interface: the master calls metrics_shared_create, metrics_slot_claim/_release and the
 * readers; a worker calls metrics_worker_attach and metrics_worker_describe once, then the
 * metrics_* event functions. Fatal: none (without the shared area, the private slot is used).
 */
#ifndef PORTER_METRICS_H
#define PORTER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

#define METRICS_SLOTS 320        /* worker processes counted at once */
#define METRICS_PLUGINS 32       /* plugin instances counted per worker (the first ones) */
#define METRICS_LISTENERS 64     /* the most listen lines */
#define METRICS_LABEL_MAX 64
#define METRICS_BUCKETS 15       /* finite histogram bounds (metrics_bucket_bounds) */
#define METRICS_VIEW_SESSIONS 256 /* sessions per worker shown by porter top */
#define METRICS_RECENT 64        /* latest decisive verdicts kept per worker */
#define METRICS_CLASSES 3        /* final reply classes: 2xx, 4xx, 5xx */

/* One plugin's calls of one hook: latency histogram (per-bucket counts, the last one +Inf)
 * and verdicts. */
struct metrics_hook_cell {
    uint64_t buckets[METRICS_BUCKETS + 1];
    uint64_t sum_usec;
    uint64_t verdicts[PORTER_RC_COUNT];
};

/* One session as porter top shows it; id 0 is a free entry. */
struct metrics_session_view {
    uint64_t id;
    int64_t connected_usec;    /* wall clock, microseconds */
    int64_t hook_started_usec; /* 0: no hook running */
    char client[48];
    uint8_t state;             /* enum session_state */
    int8_t hook;               /* enum porter_hook, -1 none */
    int8_t plugin;             /* instance index, -1 none */
    uint8_t listener;
};

/* One decisive verdict (a plugin answered something other than DECLINED). */
struct metrics_verdict_view {
    int64_t usec;
    uint64_t session;
    uint32_t elapsed_usec;
    int8_t hook, plugin, rc;
    char client[48];
};

/* A worker's slot. pid and generation are the master's; the rest is the worker's. */
struct metrics_slot {
    int32_t pid;               /* 0: free */
    uint32_t generation;
    uint32_t described;        /* names below are filled */
    uint32_t plugin_count;
    uint32_t listener_count;
    char plugin_labels[METRICS_PLUGINS][METRICS_LABEL_MAX];
    char listener_labels[METRICS_LISTENERS][METRICS_LABEL_MAX];
    char listener_roles[METRICS_LISTENERS][16];
    /* counters */
    uint64_t sessions_open[METRICS_LISTENERS]; /* gauge */
    uint64_t sessions_total[METRICS_LISTENERS];
    uint64_t connections_refused;
    uint64_t transactions[METRICS_CLASSES][METRICS_PLUGINS + 1]; /* [class][decider], last: none */
    uint64_t messages_accepted;
    uint64_t bytes_accepted;
    uint64_t tls_handshakes;
    uint64_t tls_failures;
    uint64_t dns_queries;
    uint64_t dns_cache_hits;
    uint64_t plugin_errors[METRICS_PLUGINS];     /* timeouts, bad verdicts, logged errors */
    int64_t plugin_error_usec[METRICS_PLUGINS];  /* when the last one happened */
    struct metrics_hook_cell hooks[METRICS_PLUGINS][PORTER_HOOK_COUNT];
    /* porter top */
    struct metrics_session_view sessions[METRICS_VIEW_SESSIONS];
    uint64_t recent_next;      /* verdicts written so far; the ring index is this % RECENT */
    struct metrics_verdict_view recent[METRICS_RECENT];
};

/* The slot this process writes to (a private one until metrics_worker_attach). */
extern struct metrics_slot *metrics_here;

/* metrics_bucket_bounds - the finite upper bounds of the latency buckets, in seconds */
const double *metrics_bucket_bounds(void);
/* metrics_now_usec - the wall clock in microseconds */
int64_t metrics_now_usec(void);

/* ---- master ---- */
/* metrics_shared_create - map the shared slots (before any fork); 0 or -1 */
int metrics_shared_create(void);
/* metrics_slot_claim - a zeroed free slot for a worker about to be forked; -1 when none */
int metrics_slot_claim(unsigned generation);
/* metrics_slot_bind - the forked worker's pid owns the claimed slot */
void metrics_slot_bind(int index, pid_t pid);
/* metrics_slot_release - the worker is gone: fold its counters into the totals, free it */
void metrics_slot_release(pid_t pid);
/* metrics_slot_of - the live slot of a worker (read only), NULL when it has none */
const struct metrics_slot *metrics_slot_of(pid_t pid);
/* metrics_slot_at - the slot at index when it is in use, else NULL (for iteration) */
const struct metrics_slot *metrics_slot_at(int index);

/* Facts only the master knows, for a scrape. */
struct metrics_master_facts {
    unsigned generation;
    uint64_t worker_restarts;
    size_t workers;
    long queue_depth;          /* -1: no spool queue */
    long queue_held;
    double queue_oldest_seconds;
    double start_time;         /* unix seconds */
};

/* Sums of everything, keyed by label; built by metrics_collect, freed by metrics_sums_free. */
struct metrics_plugin_sum {
    char label[METRICS_LABEL_MAX];
    struct metrics_hook_cell hooks[PORTER_HOOK_COUNT];
    uint64_t decided[METRICS_CLASSES];
    uint64_t errors;
    int64_t error_usec;
};
struct metrics_listener_sum {
    char label[METRICS_LABEL_MAX];
    char role[16];
    uint64_t open, total;
};
struct metrics_sums {
    uint64_t connections_refused, undecided[METRICS_CLASSES], messages_accepted,
        bytes_accepted, tls_handshakes, tls_failures, dns_queries, dns_cache_hits;
    struct metrics_plugin_sum *plugins;
    size_t plugin_count;
    struct metrics_listener_sum *listeners;
    size_t listener_count;
};
/* metrics_collect - the folded totals plus every live slot; caller frees with metrics_sums_free */
struct metrics_sums *metrics_collect(void);
void metrics_sums_free(struct metrics_sums *sums);
/* metrics_render - Prometheus text exposition (version 0.0.4); caller frees */
char *metrics_render(const struct metrics_sums *sums, const struct metrics_master_facts *facts);

/* ---- worker ---- */
/* metrics_worker_attach - this process writes to slot index (-1: keep the private slot) */
void metrics_worker_attach(int index);
/* metrics_worker_describe - names of the plugin instances and listeners, in index order */
void metrics_worker_describe(const char *const *plugin_labels, size_t plugin_count,
                             const char *const *listener_labels, const char *const *roles,
                             size_t listener_count);

/* metrics_add - the one increment of the hot path (relaxed atomic, no lock) */
static inline void metrics_add(uint64_t *counter, uint64_t amount)
{
    __atomic_fetch_add(counter, amount, __ATOMIC_RELAXED);
}

void metrics_session_opened(unsigned listener);
void metrics_session_closed(unsigned listener);
/* metrics_transaction - a transaction ended with reply code (0: without one, not counted);
 * plugin: the decider's index or -1; message: the reply answers a message of bytes bytes */
void metrics_transaction(int code, int plugin, bool message, unsigned long long bytes);
/* metrics_hook - one plugin's verdict on one hook after elapsed_usec */
void metrics_hook(int plugin, int hook, int rc, int64_t elapsed_usec);
/* metrics_plugin_error - a plugin timed out, answered nonsense or logged an error */
void metrics_plugin_error(int plugin);

/* The session view (porter top): view is the index metrics_view_open gave, -1 ignored. */
int metrics_view_open(uint64_t session, const char *client, unsigned listener, int64_t usec);
void metrics_view_state(int view, int state);
/* metrics_view_client - the client is known only now (a PROXY header) */
void metrics_view_client(int view, const char *client);
void metrics_view_hook(int view, int hook, int plugin, int64_t started_usec);
void metrics_view_close(int view);
/* metrics_verdict - remember a decisive verdict for porter top */
void metrics_verdict(uint64_t session, const char *client, int hook, int plugin, int rc,
                     int64_t elapsed_usec);

#endif
