/*
 * plugin_host.h - loads plugins (dlopen) into a registry and runs hook chains on sessions.
 *
 * Interface: plugin_registry_load reads the plugins file of a configuration, loads and
 * initialises every plugin in order and returns a frozen registry (reference-counted, so a
 * reload can swap registries while old sessions finish on the old one). hook_chain_run runs
 * one hook's chain on a session and calls done(session, rc) exactly once, now or later.
 * Fatal: out of memory. Load errors are returned as "FILE:LINE: message" strings.
 */
#ifndef PORTER_PLUGIN_HOST_H
#define PORTER_PLUGIN_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "session.h"
#include "store.h"

struct plugin_instance {
    char *name;
    char *label;           /* name, or "name:NAME" for a line with name=NAME (a milter): logs
                              and metrics tell instances apart by it */
    char *file;
    int line;
    void *dl_handle;
    const struct porter_plugin *descriptor;
    void *state;
    double timeout;        /* PENDING answer deadline (hook_timeout= or plugin_timeout) */
    size_t index;          /* position in the registry: the slot of porter_data_get/set */
    /* porter_deliver: this instance's jobs, run one at a time (loop thread only) */
    struct hook_continuation *serial_head, *serial_tail;
    bool serial_busy;      /* one of them is on the pool */
};

struct plugin_registry {
    unsigned refcount;
    struct plugin_instance *items;
    size_t count;
    size_t *by_hook[PORTER_HOOK_COUNT]; /* indexes into items, in chain order */
    size_t by_hook_count[PORTER_HOOK_COUNT];
};

/* plugin_registry_load - load every plugin in config's plugins file; NULL if any failed */
struct plugin_registry *plugin_registry_load(const struct porter_config *config,
                                             struct config_error_list *errors);
void plugin_registry_retain(struct plugin_registry *registry);
/* plugin_registry_release - drop a reference; the last one runs each fini and dlcloses */
void plugin_registry_release(struct plugin_registry *registry);

/* hook_chain_run - run hook's chain on s; done is called once with the verdict */
void hook_chain_run(struct porter_session *s, enum porter_hook hook,
                    void (*done)(struct porter_session *s, int rc));
/* hook_chain_notify - run a notification hook (disconnect, deny, reset): verdicts ignored,
 * PENDING not allowed */
void hook_chain_notify(struct porter_session *s, enum porter_hook hook);
/* hook_chain_cancel - the session is going away: forget a waiting hook (late answers drop) */
void hook_chain_cancel(struct porter_session *s);

/* Used by plugin_api.c for PENDING verdicts. */
porter_handle hook_chain_handle(struct porter_session *s);
int hook_chain_resume(porter_handle handle, int rc, int code, const char *enhanced,
                      const char *text);
/* hook_chain_waiting - porter_waiting_session: the session whose hook handle names while that
 * hook still waits for its answer; NULL when it was answered, timed out or the client left */
struct porter_session *hook_chain_waiting(porter_handle handle);
/* hook_chain_wait_extend - porter_wait_extend: the waiting hook's deadline is seconds from now
 * (inside the hook call: the deadline its wait will start with); 0 or -1 */
int hook_chain_wait_extend(porter_handle handle, double seconds);
/* hook_chain_timer - the waiting hook continues with done(s, arg, 0) after seconds */
int hook_chain_timer(struct porter_session *s, double seconds, porter_done_fn done, void *arg);
/* hook_chain_dns - a DNS lookup (dns.c), then callback(s, arg, answer) on the loop */
int hook_chain_dns(struct porter_session *s, int type, const char *name, porter_dns_fn callback,
                   void *arg);
/* hook_chain_store - a store request (store.c) on key, then callback(s, arg, result) on the
 * loop; callback NULL: in the background, PORTER_DECLINED */
int hook_chain_store(struct porter_session *s, enum store_operation operation, const char *key,
                     const char *value, long long by, double ttl, porter_store_fn callback,
                     void *arg);
/* hook_chain_store_increments - porter_store_increments: counts[i] on keys[i] (keys as
 * stored, copied), all submitted at once; callback once when every one is in */
int hook_chain_store_increments(struct porter_session *s, struct porter_store_count *counts,
                                const char *const *keys, size_t count, porter_store_fn callback,
                                void *arg);
/* hook_chain_dns_background - porter_dns_background: a lookup outside the chain, cancelled
 * (its callback never runs) by hook_chain_cancel */
int hook_chain_dns_background(struct porter_session *s, int type, const char *name,
                              porter_dns_background_fn callback, void *arg);
/* hook_chain_store_increments_background - porter_store_increments_background: counts[i] on
 * keys[i] (copied) outside the chain, all written at once; callback once when every one is
 * in, cancelled (never called; the counts are still made) by hook_chain_cancel. 0 or -1 */
int hook_chain_store_increments_background(struct porter_session *s,
                                           struct porter_store_count *counts,
                                           const char *const *keys, size_t count,
                                           porter_store_background_fn callback, void *arg);
/* hook_chain_run_blocking - work(arg) on the pool, then done(s, arg, result) on the loop */
int hook_chain_run_blocking(struct porter_session *s, porter_work_fn work, porter_done_fn done,
                            void *arg);
/* hook_chain_run_serial - like hook_chain_run_blocking, but the jobs of one plugin instance
 * run one at a time, in order, and a job nobody waits for any more when its turn comes (the
 * client left, the hook timed out) does not run: done(NULL, arg, -1) frees it. Waiting jobs
 * hold no pool thread. */
int hook_chain_run_serial(struct porter_session *s, porter_work_fn work, porter_done_fn done,
                          void *arg);
/* hook_trace_escape - text for a --trace line: '\n' and '\r' written as \n and \r, so one
 * event stays one line; NULL gives ""; the caller frees */
char *hook_trace_escape(const char *text);

/* The table every plugin gets (plugin_api.c). */
extern const struct porter_api plugin_api_table;

#endif
