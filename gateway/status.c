/*
 * status.c - the text of `porter status` and `porter top` (see status.h).
 *
 * Every line is "kind key=value ...", so that a script can grep it and a person can read it.
 * Plugin state: "ok", or "failing" while the plugin had an error (timeout, invalid verdict,
 * an error it logged) in the last STATUS_FAILING_SECONDS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "reply.h"
#include "session.h"
#include "status.h"

#define STATUS_FAILING_SECONDS 60
#define STATUS_SESSIONS_SHOWN 200

/* status_duration - seconds as "42s", "5m12s", "3h04m", "2d05h" */
static void status_duration(double seconds, char *out, size_t size)
{
    long s = seconds < 0 ? 0 : (long)seconds;
    if (s < 60)
        snprintf(out, size, "%lds", s);
    else if (s < 3600)
        snprintf(out, size, "%ldm%02lds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, size, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else
        snprintf(out, size, "%ldd%02ldh", s / 86400, (s % 86400) / 3600);
}

/* status_worker_line - one worker: its sessions in total and per listener */
static void status_worker_line(FILE *out, const struct status_worker *w)
{
    const struct metrics_slot *slot = metrics_slot_of(w->pid);
    fprintf(out, "worker pid=%ld generation=%u state=%s", (long)w->pid, w->generation,
            w->retiring ? "retiring" : "serving");
    if (slot == NULL || !slot->described) {
        fprintf(out, " sessions=unknown\n");
        return;
    }
    uint64_t total = 0;
    size_t listeners = slot->listener_count < METRICS_LISTENERS ? slot->listener_count
                                                                 : METRICS_LISTENERS;
    for (size_t i = 0; i < listeners; i++)
        total += __atomic_load_n(&slot->sessions_open[i], __ATOMIC_RELAXED);
    fprintf(out, " sessions=%llu", (unsigned long long)total);
    for (size_t i = 0; i < listeners; i++)
        fprintf(out, " listener=%s:%llu", slot->listener_labels[i],
                (unsigned long long)__atomic_load_n(&slot->sessions_open[i], __ATOMIC_RELAXED));
    fprintf(out, "\n");
}

/* status_current_slot - a described slot of the current generation (for the plugin list) */
static const struct metrics_slot *status_current_slot(const struct status_facts *facts)
{
    for (size_t i = 0; i < facts->worker_count; i++) {
        const struct metrics_slot *slot = metrics_slot_of(facts->workers[i].pid);
        if (!facts->workers[i].retiring && slot != NULL && slot->described)
            return slot;
    }
    return NULL;
}

char *status_text(const struct status_facts *facts)
{
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);
    if (out == NULL)
        abort();
    const struct metrics_master_facts *mf = facts->metrics;
    char uptime[32];
    status_duration(difftime(time(NULL), facts->started), uptime, sizeof uptime);
    size_t serving = 0;
    for (size_t i = 0; i < facts->worker_count; i++)
        serving += !facts->workers[i].retiring;
    fprintf(out, "master pid=%ld state=%s generation=%u uptime=%s config=%s workers=%zu "
            "restarts=%llu\n", (long)facts->pid, facts->stopping ? "stopping" : "running",
            mf->generation, uptime, facts->directory, serving,
            (unsigned long long)mf->worker_restarts);
    for (size_t i = 0; i < facts->worker_count; i++)
        status_worker_line(out, &facts->workers[i]);
    struct metrics_sums *sums = metrics_collect();
    for (size_t i = 0; i < sums->listener_count; i++)
        fprintf(out, "listener address=%s role=%s sessions=%llu total=%llu\n",
                sums->listeners[i].label, sums->listeners[i].role,
                (unsigned long long)sums->listeners[i].open,
                (unsigned long long)sums->listeners[i].total);
    const struct metrics_slot *current = status_current_slot(facts);
    size_t plugins = current == NULL ? 0
                     : current->plugin_count < METRICS_PLUGINS ? current->plugin_count
                                                               : METRICS_PLUGINS;
    int64_t now = metrics_now_usec();
    for (size_t i = 0; i < plugins; i++) {
        const struct metrics_plugin_sum *p = NULL;
        for (size_t j = 0; j < sums->plugin_count && p == NULL; j++)
            if (strcmp(sums->plugins[j].label, current->plugin_labels[i]) == 0)
                p = &sums->plugins[j];
        uint64_t calls = 0;
        for (int h = 0; p != NULL && h < PORTER_HOOK_COUNT; h++)
            for (int r = 0; r < PORTER_RC_COUNT; r++)
                calls += p->hooks[h].verdicts[r];
        bool failing = p != NULL && p->error_usec > 0 &&
                       now - p->error_usec < (int64_t)STATUS_FAILING_SECONDS * 1000000;
        fprintf(out, "plugin name=%s kind=%s state=%s calls=%llu errors=%llu",
                current->plugin_labels[i],
                strncmp(current->plugin_labels[i], "milter", 6) == 0 ? "milter" : "native",
                failing ? "failing" : "ok", (unsigned long long)calls,
                (unsigned long long)(p != NULL ? p->errors : 0));
        if (p != NULL && p->error_usec > 0) {
            char ago[32];
            status_duration((double)(now - p->error_usec) / 1e6, ago, sizeof ago);
            fprintf(out, " last_error=%s_ago", ago);
        }
        fprintf(out, "\n");
    }
    metrics_sums_free(sums);
    if (mf->queue_depth >= 0) {
        char oldest[32];
        status_duration(mf->queue_oldest_seconds, oldest, sizeof oldest);
        fprintf(out, "queue active=%ld hold=%ld oldest=%s\n", mf->queue_depth, mf->queue_held,
                oldest);
    } else {
        fprintf(out, "queue none\n");
    }
    if (facts->delivery_pid != 0)
        fprintf(out, "delivery pid=%ld\n", (long)facts->delivery_pid);
    fclose(out);
    return text;
}

/* One session found in a slot, for sorting. */
struct status_session {
    struct metrics_session_view view;
    pid_t worker;
    char plugin[METRICS_LABEL_MAX];
};

/* status_session_order - hooks that waited longest first, then the oldest sessions */
static int status_session_order(const void *a, const void *b)
{
    const struct status_session *x = a, *y = b;
    int64_t xs = x->view.hook_started_usec ? x->view.hook_started_usec : INT64_MAX;
    int64_t ys = y->view.hook_started_usec ? y->view.hook_started_usec : INT64_MAX;
    if (xs != ys)
        return xs < ys ? -1 : 1;
    return x->view.connected_usec < y->view.connected_usec ? -1
           : x->view.connected_usec > y->view.connected_usec;
}

/* status_label - the label of plugin index in slot, "-" when none */
static const char *status_label(const struct metrics_slot *slot, int plugin)
{
    if (plugin < 0 || plugin >= METRICS_PLUGINS || (uint32_t)plugin >= slot->plugin_count)
        return "-";
    return slot->plugin_labels[plugin];
}

char *status_sessions_text(void)
{
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);
    if (out == NULL)
        abort();
    int64_t now = metrics_now_usec();
    size_t count = 0, capacity = 64;
    struct status_session *sessions = xcalloc(capacity, sizeof *sessions);
    struct metrics_verdict_view recent[METRICS_RECENT * 4];
    char recent_plugins[METRICS_RECENT * 4][METRICS_LABEL_MAX];
    size_t recent_count = 0;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        const struct metrics_slot *slot = metrics_slot_at(i);
        if (slot == NULL || !slot->described)
            continue;
        for (int j = 0; j < METRICS_VIEW_SESSIONS; j++) {
            struct metrics_session_view view = slot->sessions[j];
            if (__atomic_load_n(&slot->sessions[j].id, __ATOMIC_ACQUIRE) == 0 || view.id == 0)
                continue;
            view.client[sizeof view.client - 1] = '\0';
            if (count == capacity) {
                capacity *= 2;
                sessions = xrealloc(sessions, capacity * sizeof *sessions);
            }
            sessions[count].view = view;
            sessions[count].worker = slot->pid;
            snprintf(sessions[count].plugin, METRICS_LABEL_MAX, "%s",
                     view.hook_started_usec ? status_label(slot, view.plugin) : "-");
            count++;
        }
        uint64_t written = __atomic_load_n(&slot->recent_next, __ATOMIC_ACQUIRE);
        for (uint64_t k = 0; k < METRICS_RECENT && k < written &&
                             recent_count < sizeof recent / sizeof recent[0]; k++) {
            recent[recent_count] = slot->recent[(written - 1 - k) % METRICS_RECENT];
            recent[recent_count].client[sizeof recent[0].client - 1] = '\0';
            snprintf(recent_plugins[recent_count], METRICS_LABEL_MAX, "%s",
                     status_label(slot, recent[recent_count].plugin));
            recent_count++;
        }
    }
    qsort(sessions, count, sizeof *sessions, status_session_order);
    fprintf(out, "sessions %zu\n", count);
    fprintf(out, "%-18s %-8s %-40s %-8s %8s %-18s %-20s %8s\n", "SESSION", "WORKER", "CLIENT",
            "STATE", "AGE", "HOOK", "PLUGIN", "WAITED");
    for (size_t i = 0; i < count && i < STATUS_SESSIONS_SHOWN; i++) {
        const struct metrics_session_view *v = &sessions[i].view;
        char age[32], waited[32] = "-";
        status_duration((double)(now - v->connected_usec) / 1e6, age, sizeof age);
        if (v->hook_started_usec != 0)
            snprintf(waited, sizeof waited, "%.3fs", (double)(now - v->hook_started_usec) / 1e6);
        fprintf(out, "%-18llX %-8ld %-40s %-8s %8s %-18s %-20s %8s\n",
                (unsigned long long)v->id, (long)sessions[i].worker, v->client,
                session_state_name(v->state), age,
                v->hook_started_usec != 0 && v->hook >= 0 ? porter_hook_name(v->hook) : "-",
                sessions[i].plugin, waited);
    }
    if (count > STATUS_SESSIONS_SHOWN)
        fprintf(out, "... and %zu more\n", count - STATUS_SESSIONS_SHOWN);
    free(sessions);
    /* newest first across workers: a small insertion sort by time */
    for (size_t i = 1; i < recent_count; i++) {
        for (size_t j = i; j > 0 && recent[j].usec > recent[j - 1].usec; j--) {
            struct metrics_verdict_view swap = recent[j];
            recent[j] = recent[j - 1];
            recent[j - 1] = swap;
            char label[METRICS_LABEL_MAX];
            memcpy(label, recent_plugins[j], sizeof label);
            memcpy(recent_plugins[j], recent_plugins[j - 1], sizeof label);
            memcpy(recent_plugins[j - 1], label, sizeof label);
        }
    }
    fprintf(out, "verdicts %zu\n", recent_count < METRICS_RECENT ? recent_count : METRICS_RECENT);
    fprintf(out, "%-8s %-18s %-40s %-18s %-20s %-20s %10s\n", "AGO", "SESSION", "CLIENT", "HOOK",
            "PLUGIN", "VERDICT", "TOOK");
    for (size_t i = 0; i < recent_count && i < METRICS_RECENT; i++) {
        char ago[32];
        status_duration((double)(now - recent[i].usec) / 1e6, ago, sizeof ago);
        fprintf(out, "%-8s %-18llX %-40s %-18s %-20s %-20s %9.3fs\n", ago,
                (unsigned long long)recent[i].session, recent[i].client,
                porter_hook_name(recent[i].hook), recent_plugins[i], porter_rc_name(recent[i].rc),
                (double)recent[i].elapsed_usec / 1e6);
    }
    fclose(out);
    return text;
}
