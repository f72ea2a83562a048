/*
 * metrics.c - per-worker counters in shared memory, summed by the master (see metrics.h).
 *
 * The shared area is METRICS_SLOTS slots mapped MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE by the
 * master before it forks: pages are only backed once a worker touches them. The master owns
 * the slot table (pid, generation); a worker writes its own slot. Counters are added with
 * relaxed atomics, so a reader may see a slot a few events behind, never a torn counter.
 * The master's totals of reaped workers live in its private memory (metrics_folded).
 *
 * Fatal: out of memory (memory.h). Without the shared area the private slot is used.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "memory.h"
#include "metrics.h"
#include "reply.h"

static struct metrics_slot metrics_private;
struct metrics_slot *metrics_here = &metrics_private;

static struct metrics_slot *metrics_shared; /* METRICS_SLOTS of them, or NULL */
static struct metrics_sums metrics_folded;  /* master: what reaped workers counted */

static const double metrics_bounds[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

const double *metrics_bucket_bounds(void)
{
    return metrics_bounds;
}

int64_t metrics_now_usec(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- master: slots */

int metrics_shared_create(void)
{
    if (metrics_shared != NULL)
        return 0;
    void *area = mmap(NULL, sizeof(struct metrics_slot) * METRICS_SLOTS, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        return -1;
    metrics_shared = area;
    return 0;
}

int metrics_slot_claim(unsigned generation)
{
    for (int i = 0; metrics_shared != NULL && i < METRICS_SLOTS; i++) {
        struct metrics_slot *slot = &metrics_shared[i];
        if (slot->pid != 0)
            continue;
        if (slot->generation != 0 || slot->described != 0)
            memset(slot, 0, sizeof *slot); /* a used slot; a fresh one is already zero */
        slot->pid = -1; /* claimed, not yet bound */
        slot->generation = generation;
        return i;
    }
    return -1;
}

void metrics_slot_bind(int index, pid_t pid)
{
    if (metrics_shared != NULL && index >= 0 && index < METRICS_SLOTS)
        metrics_shared[index].pid = pid > 0 ? (int32_t)pid : 0;
}

const struct metrics_slot *metrics_slot_at(int index)
{
    if (metrics_shared == NULL || index < 0 || index >= METRICS_SLOTS ||
        metrics_shared[index].pid <= 0)
        return NULL;
    return &metrics_shared[index];
}

const struct metrics_slot *metrics_slot_of(pid_t pid)
{
    if (pid <= 0)
        return NULL;
    for (int i = 0; metrics_shared != NULL && i < METRICS_SLOTS; i++)
        if (metrics_shared[i].pid == pid)
            return &metrics_shared[i];
    return NULL;
}

/* metrics_load - one counter of a slot another process writes */
static uint64_t metrics_load(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* metrics_plugin_sum_find - the sum of a label, created when missing */
static struct metrics_plugin_sum *metrics_plugin_sum_find(struct metrics_sums *sums,
                                                         const char *label)
{
    for (size_t i = 0; i < sums->plugin_count; i++)
        if (strcmp(sums->plugins[i].label, label) == 0)
            return &sums->plugins[i];
    sums->plugins = xrealloc(sums->plugins, (sums->plugin_count + 1) * sizeof *sums->plugins);
    struct metrics_plugin_sum *p = &sums->plugins[sums->plugin_count++];
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    return p;
}

static struct metrics_listener_sum *metrics_listener_sum_find(struct metrics_sums *sums,
                                                             const char *label, const char *role)
{
    for (size_t i = 0; i < sums->listener_count; i++)
        if (strcmp(sums->listeners[i].label, label) == 0 &&
            strcmp(sums->listeners[i].role, role) == 0)
            return &sums->listeners[i];
    sums->listeners =
        xrealloc(sums->listeners, (sums->listener_count + 1) * sizeof *sums->listeners);
    struct metrics_listener_sum *l = &sums->listeners[sums->listener_count++];
    memset(l, 0, sizeof *l);
    snprintf(l->label, sizeof l->label, "%s", label);
    snprintf(l->role, sizeof l->role, "%s", role);
    return l;
}

/* metrics_add_slot - add one slot's counters into sums (gauges too when live) */
static void metrics_add_slot(struct metrics_sums *sums, const struct metrics_slot *slot, bool live)
{
    sums->connections_refused += metrics_load(&slot->connections_refused);
    sums->messages_accepted += metrics_load(&slot->messages_accepted);
    sums->bytes_accepted += metrics_load(&slot->bytes_accepted);
    sums->tls_handshakes += metrics_load(&slot->tls_handshakes);
    sums->tls_failures += metrics_load(&slot->tls_failures);
    sums->dns_queries += metrics_load(&slot->dns_queries);
    sums->dns_cache_hits += metrics_load(&slot->dns_cache_hits);
    for (int c = 0; c < METRICS_CLASSES; c++)
        sums->undecided[c] += metrics_load(&slot->transactions[c][METRICS_PLUGINS]);
    if (!__atomic_load_n(&slot->described, __ATOMIC_ACQUIRE))
        return;
    size_t listeners = slot->listener_count < METRICS_LISTENERS ? slot->listener_count
                                                                 : METRICS_LISTENERS;
    for (size_t i = 0; i < listeners; i++) {
        struct metrics_listener_sum *l =
            metrics_listener_sum_find(sums, slot->listener_labels[i], slot->listener_roles[i]);
        l->total += metrics_load(&slot->sessions_total[i]);
        if (live)
            l->open += metrics_load(&slot->sessions_open[i]);
    }
    size_t plugins = slot->plugin_count < METRICS_PLUGINS ? slot->plugin_count : METRICS_PLUGINS;
    for (size_t i = 0; i < plugins; i++) {
        struct metrics_plugin_sum *p = metrics_plugin_sum_find(sums, slot->plugin_labels[i]);
        for (int h = 0; h < PORTER_HOOK_COUNT; h++) {
            const struct metrics_hook_cell *from = &slot->hooks[i][h];
            struct metrics_hook_cell *to = &p->hooks[h];
            for (int b = 0; b <= METRICS_BUCKETS; b++)
                to->buckets[b] += metrics_load(&from->buckets[b]);
            to->sum_usec += metrics_load(&from->sum_usec);
            for (int r = 0; r < PORTER_RC_COUNT; r++)
                to->verdicts[r] += metrics_load(&from->verdicts[r]);
        }
        for (int c = 0; c < METRICS_CLASSES; c++)
            p->decided[c] += metrics_load(&slot->transactions[c][i]);
        p->errors += metrics_load(&slot->plugin_errors[i]);
        int64_t when = __atomic_load_n(&slot->plugin_error_usec[i], __ATOMIC_RELAXED);
        if (when > p->error_usec)
            p->error_usec = when;
    }
}

void metrics_slot_release(pid_t pid)
{
    for (int i = 0; metrics_shared != NULL && i < METRICS_SLOTS; i++) {
        struct metrics_slot *slot = &metrics_shared[i];
        if (slot->pid != pid || pid <= 0)
            continue;
        metrics_add_slot(&metrics_folded, slot, false);
        slot->pid = 0; /* zeroed when claimed again */
        return;
    }
}

/* metrics_sums_copy - a deep copy of the folded totals */
static struct metrics_sums *metrics_sums_copy(const struct metrics_sums *from)
{
    struct metrics_sums *sums = xcalloc(1, sizeof *sums);
    *sums = *from;
    sums->plugins = xcalloc(from->plugin_count + 1, sizeof *sums->plugins);
    if (from->plugin_count > 0)
        memcpy(sums->plugins, from->plugins, from->plugin_count * sizeof *sums->plugins);
    sums->listeners = xcalloc(from->listener_count + 1, sizeof *sums->listeners);
    if (from->listener_count > 0)
        memcpy(sums->listeners, from->listeners, from->listener_count * sizeof *sums->listeners);
    return sums;
}

struct metrics_sums *metrics_collect(void)
{
    struct metrics_sums *sums = metrics_sums_copy(&metrics_folded);
    if (metrics_shared == NULL) {
        metrics_add_slot(sums, &metrics_private, true);
        return sums;
    }
    for (int i = 0; i < METRICS_SLOTS; i++)
        if (metrics_shared[i].pid > 0)
            metrics_add_slot(sums, &metrics_shared[i], true);
    return sums;
}

void metrics_sums_free(struct metrics_sums *sums)
{
    if (sums == NULL)
        return;
    free(sums->plugins);
    free(sums->listeners);
    free(sums);
}

/* ---------------------------------------------------------------- master: exposition */

/* metrics_label - a label value with \, " and newline escaped (static buffer per slot) */
static const char *metrics_label(const char *value, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = value; *p != '\0' && n + 3 < size; p++) {
        if (*p == '\\' || *p == '"') {
            out[n++] = '\\';
            out[n++] = *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return out;
}

/* metrics_family - the HELP and TYPE lines of one metric */
static void metrics_family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const metrics_class_names[METRICS_CLASSES] = {"2xx", "4xx", "5xx"};

/* metrics_render_plugins - hook histograms, verdicts, decisions and errors per plugin */
static void metrics_render_plugins(FILE *out, const struct metrics_sums *sums)
{
    char label[2 * METRICS_LABEL_MAX + 2];
    metrics_family(out, "porter_plugin_hook_duration_seconds", "histogram",
                   "Time a plugin took to answer a hook (milters included).");
    for (size_t i = 0; i < sums->plugin_count; i++) {
        const struct metrics_plugin_sum *p = &sums->plugins[i];
        metrics_label(p->label, label, sizeof label);
        for (int h = 0; h < PORTER_HOOK_COUNT; h++) {
            const struct metrics_hook_cell *cell = &p->hooks[h];
            uint64_t count = 0;
            for (int b = 0; b <= METRICS_BUCKETS; b++)
                count += cell->buckets[b];
            if (count == 0)
                continue;
            uint64_t cumulative = 0;
            for (int b = 0; b < METRICS_BUCKETS; b++) {
                cumulative += cell->buckets[b];
                fprintf(out, "porter_plugin_hook_duration_seconds_bucket{plugin=\"%s\",hook=\"%s\","
                        "le=\"%g\"} %llu\n", label, porter_hook_name(h), metrics_bounds[b],
                        (unsigned long long)cumulative);
            }
            fprintf(out, "porter_plugin_hook_duration_seconds_bucket{plugin=\"%s\",hook=\"%s\","
                    "le=\"+Inf\"} %llu\n", label, porter_hook_name(h), (unsigned long long)count);
            fprintf(out, "porter_plugin_hook_duration_seconds_sum{plugin=\"%s\",hook=\"%s\"} %.6f\n",
                    label, porter_hook_name(h), (double)cell->sum_usec / 1e6);
            fprintf(out, "porter_plugin_hook_duration_seconds_count{plugin=\"%s\",hook=\"%s\"} "
                    "%llu\n", label, porter_hook_name(h), (unsigned long long)count);
        }
    }
    metrics_family(out, "porter_plugin_verdicts_total", "counter",
                   "Verdicts plugins returned, by plugin, hook and verdict.");
    for (size_t i = 0; i < sums->plugin_count; i++) {
        const struct metrics_plugin_sum *p = &sums->plugins[i];
        metrics_label(p->label, label, sizeof label);
        for (int h = 0; h < PORTER_HOOK_COUNT; h++)
            for (int r = 0; r < PORTER_RC_COUNT; r++)
                if (p->hooks[h].verdicts[r] > 0)
                    fprintf(out, "porter_plugin_verdicts_total{plugin=\"%s\",hook=\"%s\","
                            "verdict=\"%s\"} %llu\n", label, porter_hook_name(h), porter_rc_name(r),
                            (unsigned long long)p->hooks[h].verdicts[r]);
    }
    metrics_family(out, "porter_plugin_errors_total", "counter",
                   "Plugin timeouts, invalid verdicts and errors the plugin logged.");
    for (size_t i = 0; i < sums->plugin_count; i++)
        fprintf(out, "porter_plugin_errors_total{plugin=\"%s\"} %llu\n",
                metrics_label(sums->plugins[i].label, label, sizeof label),
                (unsigned long long)sums->plugins[i].errors);
    metrics_family(out, "porter_transactions_total", "counter",
                   "Transactions by the class of their final reply and the plugin that decided.");
    for (int c = 0; c < METRICS_CLASSES; c++) {
        for (size_t i = 0; i < sums->plugin_count; i++)
            if (sums->plugins[i].decided[c] > 0)
                fprintf(out, "porter_transactions_total{class=\"%s\",plugin=\"%s\"} %llu\n",
                        metrics_class_names[c],
                        metrics_label(sums->plugins[i].label, label, sizeof label),
                        (unsigned long long)sums->plugins[i].decided[c]);
        if (sums->undecided[c] > 0)
            fprintf(out, "porter_transactions_total{class=\"%s\",plugin=\"-\"} %llu\n",
                    metrics_class_names[c], (unsigned long long)sums->undecided[c]);
    }
}

char *metrics_render(const struct metrics_sums *sums, const struct metrics_master_facts *facts)
{
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);
    if (out == NULL)
        return xstrdup("");
    char label[2 * METRICS_LABEL_MAX + 2], role[40];
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } per_listener[] = {
        {"porter_sessions_open", "gauge", "Client connections open now.",
         offsetof(struct metrics_listener_sum, open)},
        {"porter_sessions_total", "counter", "Client connections accepted.",
         offsetof(struct metrics_listener_sum, total)},
    };
    for (size_t k = 0; k < sizeof per_listener / sizeof per_listener[0]; k++) {
        metrics_family(out, per_listener[k].name, per_listener[k].type, per_listener[k].help);
        for (size_t i = 0; i < sums->listener_count; i++)
            fprintf(out, "%s{listener=\"%s\",role=\"%s\"} %llu\n", per_listener[k].name,
                    metrics_label(sums->listeners[i].label, label, sizeof label),
                    metrics_label(sums->listeners[i].role, role, sizeof role),
                    *(const unsigned long long *)(const void *)((const char *)&sums->listeners[i] +
                                                                per_listener[k].offset));
    }
    metrics_family(out, "porter_connections_refused_total", "counter",
                   "Connections answered 421 before a session started (limits, draining).");
    fprintf(out, "porter_connections_refused_total %llu\n",
            (unsigned long long)sums->connections_refused);
    metrics_family(out, "porter_messages_accepted_total", "counter",
                   "Messages answered 2xx after DATA.");
    fprintf(out, "porter_messages_accepted_total %llu\n", (unsigned long long)sums->messages_accepted);
    metrics_family(out, "porter_messages_accepted_bytes_total", "counter",
                   "Bytes of the messages answered 2xx after DATA.");
    fprintf(out, "porter_messages_accepted_bytes_total %llu\n",
            (unsigned long long)sums->bytes_accepted);
    metrics_render_plugins(out, sums);
    metrics_family(out, "porter_tls_handshakes_total", "counter", "TLS handshakes completed.");
    fprintf(out, "porter_tls_handshakes_total %llu\n", (unsigned long long)sums->tls_handshakes);
    metrics_family(out, "porter_tls_handshake_failures_total", "counter", "TLS handshakes failed.");
    fprintf(out, "porter_tls_handshake_failures_total %llu\n",
            (unsigned long long)sums->tls_failures);
    metrics_family(out, "porter_dns_queries_total", "counter", "DNS lookups asked by plugins.");
    fprintf(out, "porter_dns_queries_total %llu\n", (unsigned long long)sums->dns_queries);
    metrics_family(out, "porter_dns_cache_hits_total", "counter",
                   "DNS lookups answered from the workers' caches.");
    fprintf(out, "porter_dns_cache_hits_total %llu\n", (unsigned long long)sums->dns_cache_hits);
    if (facts != NULL) {
        if (facts->queue_depth >= 0) {
            metrics_family(out, "porter_queue_messages", "gauge",
                           "Messages in the spool queue, by queue.");
            fprintf(out, "porter_queue_messages{queue=\"active\"} %ld\n", facts->queue_depth);
            fprintf(out, "porter_queue_messages{queue=\"hold\"} %ld\n", facts->queue_held);
            metrics_family(out, "porter_queue_oldest_message_age_seconds", "gauge",
                           "Age of the oldest message in the active queue (0 when empty).");
            fprintf(out, "porter_queue_oldest_message_age_seconds %.3f\n",
                    facts->queue_oldest_seconds);
        }
        metrics_family(out, "porter_worker_restarts_total", "counter",
                       "Workers the master replaced after they died.");
        fprintf(out, "porter_worker_restarts_total %llu\n",
                (unsigned long long)facts->worker_restarts);
        metrics_family(out, "porter_workers", "gauge", "Worker processes of the current generation.");
        fprintf(out, "porter_workers %zu\n", facts->workers);
        metrics_family(out, "porter_config_generation", "gauge",
                       "Configuration generation (1 at start, +1 per reload taken).");
        fprintf(out, "porter_config_generation %u\n", facts->generation);
        metrics_family(out, "porter_start_time_seconds", "gauge",
                       "When the master started, in unix seconds.");
        fprintf(out, "porter_start_time_seconds %.3f\n", facts->start_time);
    }
    fclose(out);
    return text;
}

/* ---------------------------------------------------------------- worker */

void metrics_worker_attach(int index)
{
    if (metrics_shared != NULL && index >= 0 && index < METRICS_SLOTS)
        metrics_here = &metrics_shared[index];
}

void metrics_worker_describe(const char *const *plugin_labels, size_t plugin_count,
                             const char *const *listener_labels, const char *const *roles,
                             size_t listener_count)
{
    struct metrics_slot *slot = metrics_here;
    for (size_t i = 0; i < plugin_count && i < METRICS_PLUGINS; i++)
        snprintf(slot->plugin_labels[i], METRICS_LABEL_MAX, "%s", plugin_labels[i]);
    for (size_t i = 0; i < listener_count && i < METRICS_LISTENERS; i++) {
        snprintf(slot->listener_labels[i], METRICS_LABEL_MAX, "%s", listener_labels[i]);
        snprintf(slot->listener_roles[i], sizeof slot->listener_roles[i], "%s", roles[i]);
    }
    slot->plugin_count = (uint32_t)plugin_count;
    slot->listener_count = (uint32_t)listener_count;
    for (size_t i = 0; i < METRICS_VIEW_SESSIONS; i++)
        slot->sessions[i].id = 0;
    __atomic_store_n(&slot->described, 1, __ATOMIC_RELEASE);
}

void metrics_session_opened(unsigned listener)
{
    if (listener >= METRICS_LISTENERS)
        return;
    metrics_add(&metrics_here->sessions_open[listener], 1);
    metrics_add(&metrics_here->sessions_total[listener], 1);
}

void metrics_session_closed(unsigned listener)
{
    if (listener < METRICS_LISTENERS)
        __atomic_fetch_sub(&metrics_here->sessions_open[listener], 1, __ATOMIC_RELAXED);
}

void metrics_transaction(int code, int plugin, bool message, unsigned long long bytes)
{
    if (code < 200 || code > 599)
        return; /* ended without a reply of its own (RSET, QUIT, a disconnect) */
    int class = code >= 500 ? 2 : code >= 400 ? 1 : 0;
    int column = plugin >= 0 && plugin < METRICS_PLUGINS ? plugin : METRICS_PLUGINS;
    metrics_add(&metrics_here->transactions[class][column], 1);
    if (class == 0 && message) {
        metrics_add(&metrics_here->messages_accepted, 1);
        metrics_add(&metrics_here->bytes_accepted, bytes);
    }
}

void metrics_hook(int plugin, int hook, int rc, int64_t elapsed_usec)
{
    if (plugin < 0 || plugin >= METRICS_PLUGINS || hook < 0 || hook >= PORTER_HOOK_COUNT ||
        rc < 0 || rc >= PORTER_RC_COUNT)
        return;
    struct metrics_hook_cell *cell = &metrics_here->hooks[plugin][hook];
    if (elapsed_usec < 0)
        elapsed_usec = 0;
    double seconds = (double)elapsed_usec / 1e6;
    int bucket = 0;
    while (bucket < METRICS_BUCKETS && seconds > metrics_bounds[bucket])
        bucket++;
    metrics_add(&cell->buckets[bucket], 1);
    metrics_add(&cell->sum_usec, (uint64_t)elapsed_usec);
    metrics_add(&cell->verdicts[rc], 1);
}

void metrics_plugin_error(int plugin)
{
    if (plugin < 0 || plugin >= METRICS_PLUGINS)
        return;
    metrics_add(&metrics_here->plugin_errors[plugin], 1);
    __atomic_store_n(&metrics_here->plugin_error_usec[plugin], metrics_now_usec(),
                     __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- worker: session view */

int metrics_view_open(uint64_t session, const char *client, unsigned listener, int64_t usec)
{
    struct metrics_session_view *views = metrics_here->sessions;
    for (int i = 0; i < METRICS_VIEW_SESSIONS; i++) {
        if (views[i].id != 0)
            continue;
        struct metrics_session_view *v = &views[i];
        v->connected_usec = usec;
        v->hook_started_usec = 0;
        snprintf(v->client, sizeof v->client, "%s", client);
        v->state = 0;
        v->hook = -1;
        v->plugin = -1;
        v->listener = (uint8_t)listener;
        __atomic_store_n(&v->id, session, __ATOMIC_RELEASE);
        return i;
    }
    return -1;
}

void metrics_view_state(int view, int state)
{
    if (view >= 0 && view < METRICS_VIEW_SESSIONS)
        metrics_here->sessions[view].state = (uint8_t)state;
}

void metrics_view_client(int view, const char *client)
{
    if (view >= 0 && view < METRICS_VIEW_SESSIONS)
        snprintf(metrics_here->sessions[view].client, sizeof metrics_here->sessions[view].client,
                 "%s", client);
}

void metrics_view_hook(int view, int hook, int plugin, int64_t started_usec)
{
    if (view < 0 || view >= METRICS_VIEW_SESSIONS)
        return;
    struct metrics_session_view *v = &metrics_here->sessions[view];
    v->hook = (int8_t)hook;
    v->plugin = (int8_t)(plugin < METRICS_PLUGINS ? plugin : -1);
    v->hook_started_usec = started_usec;
}

void metrics_view_close(int view)
{
    if (view >= 0 && view < METRICS_VIEW_SESSIONS)
        __atomic_store_n(&metrics_here->sessions[view].id, 0, __ATOMIC_RELEASE);
}

void metrics_verdict(uint64_t session, const char *client, int hook, int plugin, int rc,
                     int64_t elapsed_usec)
{
    uint64_t n = metrics_here->recent_next;
    struct metrics_verdict_view *v = &metrics_here->recent[n % METRICS_RECENT];
    v->usec = metrics_now_usec();
    v->session = session;
    v->elapsed_usec = elapsed_usec < 0 ? 0 : elapsed_usec > UINT32_MAX ? UINT32_MAX
                                                                       : (uint32_t)elapsed_usec;
    v->hook = (int8_t)hook;
    v->plugin = (int8_t)(plugin < METRICS_PLUGINS ? plugin : -1);
    v->rc = (int8_t)rc;
    snprintf(v->client, sizeof v->client, "%s", client);
    __atomic_store_n(&metrics_here->recent_next, n + 1, __ATOMIC_RELEASE);
}
