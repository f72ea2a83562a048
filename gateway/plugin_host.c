/*
 * plugin_host.c - load plugins into a frozen registry; run hook chains; resume PENDING hooks.
 *
 * A chain calls each plugin registered for a hook, in conf/plugins order, until one gives a
 * verdict other than DECLINED. A PENDING verdict parks the chain: the answer comes through
 * porter_resume (by handle: session id + generation), a timer, or a blocking job, and the chain
 * goes on from the event loop. Each wait has the plugin's deadline; when it passes the hook
 * gets DENYSOFT and a log line. Answers that come late, twice, or after the client left are
 * logged and dropped. The session is never freed while a chain runs on it or a blocking job
 * refers to it (session_release checks both). Serial jobs (porter_deliver) wait in their plugin
 * instance's queue, on the loop thread, and go to the pool one at a time.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "clock.h"
#include "dns.h"
#include "log.h"
#include "memory.h"
#include "metrics.h"
#include "plugin_args.h"
#include "plugin_dir.h"
#include "plugin_host.h"
#include "store.h"
#include "thread_pool.h"
#include "worker.h"

/* The longest deadline porter_wait_extend sets, seconds. */
#define HOOK_WAIT_EXTEND_MAX 86400.0

/* The counters of one porter_store_increments call (a waiting hook's, or a background
 * one's), from their submission until the last is in. */
struct hook_counts {
    struct porter_store_count *counts;          /* the plugin's; filled as answers come */
    struct hook_count_request *requests;        /* one per counter */
    size_t total, waiting;
    char *error;                                /* the first failure's text; NULL while none */
    void (*answered)(void *owner, const struct porter_store_result *all); /* the last is in */
    void *owner;
};

/* A timer or a blocking job that a waiting hook depends on. */
struct hook_continuation {
    struct porter_session *session;
    unsigned long long generation;
    porter_done_fn done;
    void *arg;
    struct event *timer; /* NULL for a blocking job */
    porter_work_fn work;
    /* a DNS lookup (porter_dns_lookup): dns_done replaces done */
    porter_dns_fn dns_done;
    struct dns_query *dns;                      /* NULL once answered */
    const struct porter_dns_answer *answer;     /* during dns_done only */
    /* a store request (porter_store_*): store_done replaces done */
    porter_store_fn store_done;
    struct store_request *store;                /* NULL once answered */
    const struct porter_store_result *store_result; /* during store_done only */
    /* porter_store_increments (store_done set) */
    struct hook_counts counts;
    /* a serial job (porter_deliver): its instance's queue */
    struct plugin_instance *serial;
    struct hook_continuation *serial_next;
};

/* One counter's request of a porter_store_increments call. */
struct hook_count_request {
    struct hook_counts *counts;
    struct store_request *request;      /* NULL once answered */
};

/* hook_counts_release - what a counts call owns (not the plugin's counters) */
static void hook_counts_release(struct hook_counts *h)
{
    free(h->requests);
    free(h->error);
}

/* hook_counts_cancel - the counters' requests still out: their answers are dropped (the
 * counts themselves are made: a request once submitted runs) */
static void hook_counts_cancel(struct hook_counts *h)
{
    for (size_t i = 0; i < h->total && h->waiting > 0; i++) {
        if (h->requests[i].request != NULL) {
            store_request_cancel(h->requests[i].request);
            h->requests[i].request = NULL;
            h->waiting--;
        }
    }
}

/* hook_continuation_free - c and what it owns */
static void hook_continuation_free(struct hook_continuation *c)
{
    hook_counts_release(&c->counts);
    free(c);
}

/* hook_continuation_call - the plugin's continuation (s NULL: nobody waits any more) */
static int hook_continuation_call(struct hook_continuation *c, struct porter_session *s,
                                  int result)
{
    if (c->dns_done != NULL)
        return c->dns_done(s, c->arg, s != NULL ? c->answer : NULL);
    if (c->store_done != NULL)
        return c->store_done(s, c->arg, s != NULL ? c->store_result : NULL);
    return c->done(s, c->arg, result);
}

/* plugin_find_file - the NAME.so that loads: the first in plugin_dir order; caller frees */
static char *plugin_find_file(const struct porter_config *config, const char *name)
{
    size_t count;
    char **found = plugin_dir_find(config, name, &count);
    char *path = count > 0 ? xstrdup(found[0]) : NULL;
    plugin_dir_list_free(found, count);
    return path;
}

/* plugin_error - append "FILE:LINE: message" to errors */
static void plugin_error(struct config_error_list *errors, const struct plugin_line *line,
                         const char *format, ...) __attribute__((format(printf, 3, 4)));
static void plugin_error(struct config_error_list *errors, const struct plugin_line *line,
                         const char *format, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(message, sizeof message, format, ap);
    va_end(ap);
    errors->messages = xrealloc(errors->messages, (errors->count + 1) * sizeof *errors->messages);
    errors->messages[errors->count++] = xasprintf("%s:%d: %s: %s", line->file, line->line,
                                                  line->name, message);
}

/* plugin_instance_load - dlopen one plugin line and run its init; 0 or -1 */
static int plugin_instance_load(const struct porter_config *config, const struct plugin_line *line,
                                struct plugin_instance *out, struct config_error_list *errors)
{
    memset(out, 0, sizeof *out);
    char *path = plugin_find_file(config, line->name);
    if (path == NULL) {
        char *where = plugin_dir_describe(config);
        plugin_error(errors, line, "no %s.so in plugin_dir %s%s", line->name, config->plugin_dir,
                     where);
        free(where);
        return -1;
    }
    void *handle;
    char *error = NULL;
    const struct porter_plugin *descriptor = plugin_dir_open(path, &handle, &error);
    if (descriptor == NULL) {
        plugin_error(errors, line, "%s", error);
        free(error);
        free(path);
        return -1;
    }
    free(path);
    *descriptor->api = &plugin_api_table;
    struct porter_args *args = plugin_args_new(line, config->directory);
    double timeout = plugin_api_table.arg_seconds(args, "hook_timeout", config->plugin_timeout);
    void *state = descriptor->init != NULL ? descriptor->init(args) : NULL;
    plugin_args_finish(args);
    if (descriptor->description != NULL || descriptor->arguments != NULL)
        plugin_args_check_declared(args, descriptor->arguments);
    size_t failures = plugin_args_error_count(args);
    for (size_t i = 0; i < failures; i++) {
        errors->messages = xrealloc(errors->messages, (errors->count + 1) * sizeof *errors->messages);
        errors->messages[errors->count++] = xstrdup(plugin_args_error(args, i));
    }
    plugin_args_free(args);
    if (failures > 0) {
        if (descriptor->fini != NULL)
            descriptor->fini(state);
        dlclose(handle);
        return -1;
    }
    out->name = xstrdup(line->name);
    out->label = NULL;
    for (int i = 0; i < line->argc && out->label == NULL; i++)
        if (strncmp(line->argv[i], "name=", 5) == 0 && line->argv[i][5] != '\0')
            out->label = xasprintf("%s:%s", line->name, line->argv[i] + 5);
    if (out->label == NULL)
        out->label = xstrdup(line->name);
    out->file = xstrdup(line->file);
    out->line = line->line;
    out->dl_handle = handle;
    out->descriptor = descriptor;
    out->state = state;
    out->timeout = timeout;
    return 0;
}

/* plugin_instance_unload - fini and dlclose */
static void plugin_instance_unload(struct plugin_instance *instance)
{
    if (instance->descriptor != NULL && instance->descriptor->fini != NULL)
        instance->descriptor->fini(instance->state);
    if (instance->dl_handle != NULL)
        dlclose(instance->dl_handle);
    free(instance->name);
    free(instance->label);
    free(instance->file);
}

struct plugin_registry *plugin_registry_load(const struct porter_config *config,
                                             struct config_error_list *errors)
{
    struct plugin_line_list lines = {0};
    size_t errors_before = errors->count;
    config_plugin_lines(config, &lines, errors);
    struct plugin_registry *registry = xcalloc(1, sizeof *registry);
    registry->refcount = 1;
    registry->items = xcalloc(lines.count + 1, sizeof *registry->items);
    for (size_t i = 0; i < lines.count; i++) {
        if (plugin_instance_load(config, &lines.items[i], &registry->items[registry->count],
                                 errors) == 0) {
            registry->items[registry->count].index = registry->count;
            registry->count++;
        }
    }
    plugin_lines_clear(&lines);
    for (int hook = 0; hook < PORTER_HOOK_COUNT; hook++) {
        registry->by_hook[hook] = xcalloc(registry->count + 1, sizeof(size_t));
        for (size_t i = 0; i < registry->count; i++)
            if (registry->items[i].descriptor->hooks[hook] != NULL)
                registry->by_hook[hook][registry->by_hook_count[hook]++] = i;
    }
    if (errors->count > errors_before) {
        plugin_registry_release(registry);
        return NULL;
    }
    return registry;
}

void plugin_registry_retain(struct plugin_registry *registry)
{
    registry->refcount++;
}

void plugin_registry_release(struct plugin_registry *registry)
{
    if (registry == NULL || --registry->refcount > 0)
        return;
    /* fini in reverse order: later plugins may rely on earlier ones' state */
    for (size_t i = registry->count; i-- > 0;)
        plugin_instance_unload(&registry->items[i]);
    for (int hook = 0; hook < PORTER_HOOK_COUNT; hook++)
        free(registry->by_hook[hook]);
    free(registry->items);
    free(registry);
}

/* hook_trace - --trace: one line per plugin call to stderr */
static void hook_trace(struct porter_session *s, const char *plugin, int rc)
{
    if (!(s->flags & SESSION_FLAG_TRACE))
        return;
    struct timeval now, elapsed;
    gettimeofday(&now, NULL);
    timersub(&now, &s->run.started, &elapsed);
    char *text = hook_trace_escape(s->run.reply.text);
    fprintf(stderr, "trace: hook=%s plugin=%s verdict=%s time=%.3fms%s%s\n",
            porter_hook_name(s->run.hook), plugin, porter_rc_name(rc),
            (double)elapsed.tv_sec * 1000.0 + (double)elapsed.tv_usec / 1000.0,
            s->run.reply.text ? " reply=" : "", text);
    free(text);
}

/* hook_continuation_drop - forget the continuation of a wait that ended without it */
static void hook_continuation_drop(struct porter_session *s)
{
    struct hook_continuation *c = s->run.continuation;
    if (c == NULL)
        return;
    s->run.continuation = NULL;
    if (c->timer != NULL || c->dns != NULL || c->store != NULL || c->counts.waiting > 0) {
        /* A timer, a DNS lookup or store requests can be stopped: its callback learns now
         * that nobody waits. */
        if (c->timer != NULL)
            event_free(c->timer);
        dns_query_cancel(c->dns);
        store_request_cancel(c->store);
        hook_counts_cancel(&c->counts);
        hook_continuation_call(c, NULL, 0);
        hook_continuation_free(c);
    } else {
        /* A blocking job runs on: its completion sees the stale generation. */
        c->session = s;
    }
}

/* hook_chain_finish - the chain has its verdict: notify deny listeners, call done */
static void hook_chain_finish(struct porter_session *s, int rc)
{
    struct hook_run *run = &s->run;
    run->active = false;
    run->waiting = false;
    run->generation++;
    metrics_view_hook(s->view, -1, -1, 0);
    if (run->timeout_event != NULL)
        evtimer_del(run->timeout_event);
    if (rc == PORTER_DENY || rc == PORTER_DENYSOFT || rc == PORTER_DENY_DISCONNECT ||
        rc == PORTER_DENYSOFT_DISCONNECT)
        hook_chain_notify(s, PORTER_HOOK_DENY);
    void (*done)(struct porter_session *, int) = run->done;
    run->done = NULL;
    session_hold(s);
    done(s, rc);
    session_unhold(s);
}

static void hook_chain_step(struct porter_session *s);

/* hook_chain_verdict - apply one plugin's verdict; true when the chain goes on */
static bool hook_chain_verdict(struct porter_session *s, int rc)
{
    struct hook_run *run = &s->run;
    const char *name = run->plugin != NULL ? run->plugin->name : "?";
    int index = run->plugin != NULL ? (int)run->plugin->index : -1;
    hook_trace(s, name, rc);
    struct timeval now, elapsed;
    gettimeofday(&now, NULL);
    timersub(&now, &run->started, &elapsed);
    int64_t elapsed_usec = (int64_t)elapsed.tv_sec * 1000000 + elapsed.tv_usec;
    if (rc < 0 || rc >= PORTER_RC_COUNT) {
        metrics_plugin_error(index);
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error plugin=%s hook=%s "
                    "error=\"invalid verdict %d\"", name, porter_hook_name(run->hook), rc);
        rc = PORTER_DENYSOFT;
        reply_clear(&run->reply);
    }
    metrics_hook(index, (int)run->hook, rc, elapsed_usec);
    if (rc == PORTER_DECLINED) {
        run->position++;
        return true;
    }
    metrics_verdict(s->id, s->client_ip, (int)run->hook, index, rc, elapsed_usec);
    run->decider = name;
    hook_chain_finish(s, rc);
    return false;
}

/* hook_chain_wait - a plugin answered PENDING: arm its deadline (once per hook call) */
static void hook_chain_wait(struct porter_session *s)
{
    struct hook_run *run = &s->run;
    if (run->waiting)
        return;
    run->waiting = true;
    double seconds = run->plugin->timeout > 0 ? run->plugin->timeout : 30;
    struct timeval tv = clock_timeval(seconds);
    evtimer_add(run->timeout_event, &tv);
}

/* hook_chain_answer - a waiting plugin's verdict arrived (resume, timer, blocking job) */
static void hook_chain_answer(struct porter_session *s, int rc)
{
    if (rc == PORTER_PENDING) {
        if (s->run.continuation == NULL && !s->run.resumed)
            hook_trace(s, s->run.plugin->name, rc);
        return; /* still waiting, deadline unchanged */
    }
    s->run.waiting = false;
    evtimer_del(s->run.timeout_event);
    if (hook_chain_verdict(s, rc))
        hook_chain_step(s);
}

/* hook_chain_call - call one plugin function with the in_call guard */
static int hook_chain_call(struct porter_session *s, porter_hook_fn hook, void *state)
{
    s->run.in_call = true;
    int rc = hook(s, state);
    s->run.in_call = false;
    return rc;
}

/* hook_chain_step - call plugins from the current position until one decides or waits */
static void hook_chain_step(struct porter_session *s)
{
    struct hook_run *run = &s->run;
    const struct plugin_registry *registry = s->plugins;
    while (run->position < registry->by_hook_count[run->hook]) {
        const struct plugin_instance *instance =
            &registry->items[registry->by_hook[run->hook][run->position]];
        run->plugin = instance;
        reply_clear(&run->reply);
        gettimeofday(&run->started, NULL);
        metrics_view_hook(s->view, (int)run->hook, (int)instance->index,
                          (int64_t)run->started.tv_sec * 1000000 + run->started.tv_usec);
        int rc = hook_chain_call(s, instance->descriptor->hooks[run->hook], instance->state);
        if (rc == PORTER_PENDING) {
            hook_chain_wait(s);
            return;
        }
        if (run->waiting) {
            /* porter_wait_extend armed a deadline for a wait that did not happen */
            run->waiting = false;
            evtimer_del(run->timeout_event);
        }
        if (run->resumed || run->continuation != NULL) {
            log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error plugin=%s hook=%s "
                        "error=\"asked to wait but returned %s; the wait is dropped\"",
                        instance->name, porter_hook_name(run->hook), porter_rc_name(rc));
            run->resumed = false;
            event_del(run->resume_event);
            run->generation++;
            hook_continuation_drop(s);
        }
        if (!hook_chain_verdict(s, rc))
            return;
    }
    run->decider = NULL;
    hook_chain_finish(s, PORTER_DECLINED);
}

/* hook_chain_timeout - a waiting plugin missed its deadline: DENYSOFT */
static void hook_chain_timeout_locked(struct porter_session *s);

static void hook_chain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct porter_session *s = arg;
    session_hold(s);
    hook_chain_timeout_locked(s);
    session_unhold(s);
}

static void hook_chain_timeout_locked(struct porter_session *s)
{
    struct hook_run *run = &s->run;
    if (!run->active || !run->waiting)
        return;
    struct timeval now, waited; /* differs from timeout after porter_wait_extend */
    gettimeofday(&now, NULL);
    timersub(&now, &run->started, &waited);
    log_message(PORTER_LOG_WARNING, s->id_string,
                "event=plugin_timeout plugin=%s hook=%s timeout=%.1fs waited=%.1fs "
                "error=\"the plugin did not answer\"", run->plugin->name,
                porter_hook_name(run->hook), run->plugin->timeout,
                (double)waited.tv_sec + (double)waited.tv_usec / 1e6);
    run->generation++;
    run->resumed = false;
    event_del(run->resume_event);
    hook_continuation_drop(s);
    run->waiting = false;
    metrics_plugin_error((int)run->plugin->index);
    reply_set(&run->reply, 451, "4.3.0", "Temporary local problem, please try again later");
    hook_chain_verdict(s, PORTER_DENYSOFT);
}

/* hook_chain_resumed - the resume event: continue with the stored answer */
static void hook_chain_resumed(evutil_socket_t fd, short what, void *arg)
{
    struct porter_session *s = arg;
    if (!s->run.active || !s->run.resumed)
        return;
    s->run.resumed = false;
    session_hold(s);
    hook_chain_answer(s, s->run.resumed_rc);
    session_unhold(s);
}

/* hook_chain_events - create the session's two chain events on first use */
static void hook_chain_events(struct porter_session *s)
{
    if (s->run.timeout_event == NULL) {
        s->run.timeout_event = evtimer_new(s->base, hook_chain_timeout, s);
        s->run.resume_event = event_new(s->base, -1, 0, hook_chain_resumed, s);
        if (s->run.timeout_event == NULL || s->run.resume_event == NULL)
            abort();
    }
}

void hook_chain_run(struct porter_session *s, enum porter_hook hook,
                    void (*done)(struct porter_session *s, int rc))
{
    struct hook_run *run = &s->run;
    if (run->active) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=internal_error error=\"hook %s started "
                    "while %s runs\" file=%s line=%d", porter_hook_name(hook),
                    porter_hook_name(run->hook), __FILE__, __LINE__);
        abort();
    }
    hook_chain_events(s);
    run->active = true;
    run->waiting = false;
    run->resumed = false;
    run->hook = hook;
    run->position = 0;
    run->done = done;
    run->decider = NULL;
    run->plugin = NULL;
    reply_clear(&run->reply);
    hook_chain_step(s);
}

void hook_chain_notify(struct porter_session *s, enum porter_hook hook)
{
    const struct plugin_registry *registry = s->plugins;
    for (size_t i = 0; i < registry->by_hook_count[hook]; i++) {
        const struct plugin_instance *instance = &registry->items[registry->by_hook[hook][i]];
        const struct plugin_instance *previous = s->run.plugin;
        s->run.plugin = instance;
        int rc = instance->descriptor->hooks[hook](s, instance->state);
        s->run.plugin = previous;
        if (s->flags & SESSION_FLAG_TRACE)
            fprintf(stderr, "trace: hook=%s plugin=%s verdict=%s (notification)\n",
                    porter_hook_name(hook), instance->name, porter_rc_name(rc));
        if (rc == PORTER_PENDING)
            log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error plugin=%s hook=%s "
                        "error=\"PENDING is not allowed in a notification hook\"",
                        instance->name, porter_hook_name(hook));
    }
}

static void hook_background_cancel(struct porter_session *s);

void hook_chain_cancel(struct porter_session *s)
{
    struct hook_run *run = &s->run;
    if (run->active && run->waiting)
        log_message(PORTER_LOG_INFO, s->id_string, "event=hook_cancelled plugin=%s hook=%s "
                    "reason=disconnect", run->plugin->name, porter_hook_name(run->hook));
    run->active = false;
    run->waiting = false;
    run->resumed = false;
    run->generation++;
    hook_continuation_drop(s);
    hook_background_cancel(s);
    if (run->timeout_event != NULL) {
        event_free(run->timeout_event);
        event_free(run->resume_event);
        run->timeout_event = run->resume_event = NULL;
    }
    reply_clear(&run->reply);
}

porter_handle hook_chain_handle(struct porter_session *s)
{
    porter_handle handle = {s->id, s->run.generation};
    return handle;
}

int hook_chain_resume(porter_handle handle, int rc, int code, const char *enhanced,
                      const char *text)
{
    struct porter_session *s = worker_current ? worker_find_session(worker_current,
                                                                    handle.session_id) : NULL;
    if (s == NULL || s->closed || !s->run.active || s->run.generation != handle.generation ||
        s->run.resumed || s->run.continuation != NULL) {
        log_message(PORTER_LOG_WARNING, s ? s->id_string : NULL,
                    "event=late_answer session_id=%llu verdict=%s error=\"the hook is no longer "
                    "waiting (answered already, timed out, or the client left); answer dropped\"",
                    handle.session_id, porter_rc_name(rc));
        return -1;
    }
    if (rc < 0 || rc >= PORTER_RC_COUNT)
        rc = PORTER_DENYSOFT;
    reply_set(&s->run.reply, code, enhanced, text);
    s->run.resumed = true;
    s->run.resumed_rc = rc;
    s->run.generation++;
    event_active(s->run.resume_event, EV_READ, 0);
    return 0;
}

struct porter_session *hook_chain_waiting(porter_handle handle)
{
    struct porter_session *s = worker_current ? worker_find_session(worker_current,
                                                                    handle.session_id) : NULL;
    if (s == NULL || s->closed || !s->run.active || s->run.generation != handle.generation ||
        s->run.resumed)
        return NULL;
    return s;
}

int hook_chain_wait_extend(porter_handle handle, double seconds)
{
    struct porter_session *s = hook_chain_waiting(handle);
    if (s == NULL)
        return -1;
    if (!(seconds > 0)) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error plugin=%s hook=%s "
                    "error=\"porter_wait_extend with %g seconds\"",
                    s->run.plugin ? s->run.plugin->name : "?", porter_hook_name(s->run.hook),
                    seconds);
        return -1;
    }
    if (!s->run.waiting) {
        /* Inside the hook call, before it returns PENDING: the wait starts with this deadline
         * (hook_chain_wait keeps it; hook_chain_step drops it if no wait follows). */
        if (!s->run.in_call)
            return -1;
        s->run.waiting = true;
    }
    if (seconds > HOOK_WAIT_EXTEND_MAX)
        seconds = HOOK_WAIT_EXTEND_MAX;
    struct timeval tv = clock_timeval(seconds);
    evtimer_add(s->run.timeout_event, &tv);
    return 0;
}

/* hook_continuation_new - the waiting hook now depends on a timer or a blocking job */
static struct hook_continuation *hook_continuation_new(struct porter_session *s,
                                                       porter_done_fn done, void *arg)
{
    struct hook_continuation *c = xcalloc(1, sizeof *c);
    c->session = s;
    c->generation = s->run.generation;
    c->done = done;
    c->arg = arg;
    s->run.continuation = c;
    return c;
}

/* hook_continuation_run - the continuation's event: call done and use its verdict */
static void hook_continuation_run(struct porter_session *s, struct hook_continuation *c,
                                  int result)
{
    bool current = s->run.active && s->run.waiting && s->run.continuation == c &&
                   s->run.generation == c->generation && !s->closed;
    if (!current) {
        hook_continuation_call(c, NULL, result);
        hook_continuation_free(c);
        return;
    }
    s->run.continuation = NULL;
    reply_clear(&s->run.reply);
    s->run.in_call = true;
    int rc = hook_continuation_call(c, s, result);
    s->run.in_call = false;
    hook_continuation_free(c);
    if (rc == PORTER_PENDING && s->run.continuation == NULL && !s->run.resumed) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error plugin=%s hook=%s "
                    "error=\"PENDING without a timer, job or handle\"", s->run.plugin->name,
                    porter_hook_name(s->run.hook));
    }
    hook_chain_answer(s, rc);
}

/* hook_continuation_answered - what c waited for is over (a timer, a blocking job, a lookup, a
 * store request): run it with result, its session held meanwhile (a blocking job's count given
 * back first) */
static void hook_continuation_answered(struct hook_continuation *c, int result, bool blocking)
{
    struct porter_session *s = c->session;
    session_hold(s);
    if (blocking)
        session_blocking_done(s);
    hook_continuation_run(s, c, result);
    session_unhold(s);
}

/* hook_chain_timer_fired - a plugin's timer */
static void hook_chain_timer_fired(evutil_socket_t fd, short what, void *arg)
{
    struct hook_continuation *c = arg;
    event_free(c->timer);
    c->timer = NULL;
    hook_continuation_answered(c, 0, false);
}

/* hook_guard - PENDING helpers are allowed only inside a chain's hook call */
static bool hook_guard(struct porter_session *s, const char *what)
{
    if (s->run.active && s->run.in_call && s->run.continuation == NULL && !s->run.resumed)
        return true;
    log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error error=\"%s outside a hook, in "
                "a notification hook, or twice in one call\"", what);
    return false;
}

int hook_chain_timer(struct porter_session *s, double seconds, porter_done_fn done, void *arg)
{
    if (!hook_guard(s, "porter_timer"))
        return PORTER_DENYSOFT;
    struct hook_continuation *c = hook_continuation_new(s, done, arg);
    c->timer = evtimer_new(s->base, hook_chain_timer_fired, c);
    if (c->timer == NULL)
        abort();
    struct timeval tv = clock_timeval(seconds);
    evtimer_add(c->timer, &tv);
    return PORTER_PENDING;
}

/* hook_chain_job_work / _done - the blocking job on the pool, its completion on the loop */
static int hook_chain_job_work(void *arg)
{
    struct hook_continuation *c = arg;
    return c->work(c->arg);
}

static void hook_chain_job_done(void *arg, int result)
{
    hook_continuation_answered(arg, result, true);
}

int hook_chain_run_blocking(struct porter_session *s, porter_work_fn work, porter_done_fn done,
                            void *arg)
{
    if (!hook_guard(s, "porter_run_blocking"))
        return PORTER_DENYSOFT;
    struct hook_continuation *c = hook_continuation_new(s, done, arg);
    c->work = work;
    s->blocking_jobs++;
    thread_pool_submit(worker_thread_pool(s->worker), hook_chain_job_work, c, hook_chain_job_done,
                       c);
    return PORTER_PENDING;
}

/* hook_chain_dns_answered - the answer to a plugin's DNS lookup (a dns.c callback) */
static void hook_chain_dns_answered(const struct porter_dns_answer *answer, void *arg)
{
    struct hook_continuation *c = arg;
    c->dns = NULL;
    c->answer = answer;
    hook_continuation_answered(c, answer->status, false);
}

int hook_chain_dns(struct porter_session *s, int type, const char *name, porter_dns_fn callback,
                   void *arg)
{
    if (!hook_guard(s, "porter_dns_lookup"))
        return PORTER_DENYSOFT;
    struct dns_resolver *resolver = worker_dns(s->worker);
    if (resolver == NULL) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error error=\"porter_dns_lookup "
                    "without a worker resolver\"");
        return PORTER_DENYSOFT;
    }
    struct hook_continuation *c = hook_continuation_new(s, NULL, arg);
    c->dns_done = callback;
    c->dns = dns_lookup(resolver, type, name, hook_chain_dns_answered, c);
    return PORTER_PENDING;
}

/* hook_chain_store_answered - the outcome of a plugin's store request (a store.c callback) */
static void hook_chain_store_answered(const struct porter_store_result *result, void *arg)
{
    struct hook_continuation *c = arg;
    c->store = NULL;
    c->store_result = result;
    hook_continuation_answered(c, result->status, false);
}

int hook_chain_store(struct porter_session *s, enum store_operation operation, const char *key,
                     const char *value, long long by, double ttl, porter_store_fn callback,
                     void *arg)
{
    struct store *store = worker_store(s->worker);
    if (callback == NULL) {
        if (store != NULL)
            store_submit(store, operation, key, value, by, ttl, NULL, NULL);
        return PORTER_DECLINED;
    }
    if (!hook_guard(s, "porter_store_*"))
        return PORTER_DENYSOFT;
    if (store == NULL) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error error=\"porter_store_* "
                    "without a worker store\"");
        return PORTER_DENYSOFT;
    }
    struct hook_continuation *c = hook_continuation_new(s, NULL, arg);
    c->store_done = callback;
    c->store = store_submit(store, operation, key, value, by, ttl, hook_chain_store_answered, c);
    return PORTER_PENDING;
}

/* hook_counts_answered - one counter of a porter_store_increments call is in (a store.c
 * callback); the last one hands the whole outcome to the call's owner */
static void hook_counts_answered(const struct porter_store_result *result, void *arg)
{
    struct hook_count_request *item = arg;
    struct hook_counts *h = item->counts;
    struct porter_store_count *count = &h->counts[item - h->requests];
    item->request = NULL;
    count->status = result->status == PORTER_STORE_OK ? PORTER_STORE_OK : PORTER_STORE_ERROR;
    count->count = result->count;
    count->ttl_left = result->ttl;
    if (count->status == PORTER_STORE_ERROR && h->error == NULL)
        h->error = xstrdup(result->error != NULL ? result->error : "unknown error");
    if (--h->waiting > 0)
        return;
    struct porter_store_result all = {.status = PORTER_STORE_OK, .ttl = -1,
                                      .count = (long long)h->total};
    for (size_t i = 0; i < h->total; i++) {
        if (h->counts[i].status == PORTER_STORE_ERROR) {
            h->counts[i].error = h->error;
            all.status = PORTER_STORE_ERROR;
            all.error = h->error;
        }
    }
    h->answered(h->owner, &all);
}

/* hook_counts_start - submit counts[i] on keys[i] together (a remote store gets them in one
 * write; requests with a callback are written at once, unless riding: then they may travel
 * with the next request, as the background ones do); answered(owner, outcome) runs once
 * when the last is in. An answer never comes inside store_submit, so h is whole before the
 * first one runs. False (logged) without a store or counters. */
static bool hook_counts_start(struct porter_session *s, struct hook_counts *h,
                              struct porter_store_count *counts, const char *const *keys,
                              size_t count,
                              void (*answered)(void *, const struct porter_store_result *),
                              void *owner, const char *what, bool riding)
{
    struct store *store = worker_store(s->worker);
    if (store == NULL || count == 0 || counts == NULL) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error error=\"%s %s\"", what,
                    store == NULL ? "without a worker store" : "without counters or a callback");
        return false;
    }
    h->counts = counts;
    h->total = h->waiting = count;
    h->requests = xcalloc(count, sizeof *h->requests);
    h->answered = answered;
    h->owner = owner;
    for (size_t i = 0; i < count; i++) {
        h->requests[i].counts = h;
        counts[i].status = PORTER_STORE_ERROR;
        counts[i].error = NULL;
    }
    for (size_t i = 0; i < count; i++)
        h->requests[i].request =
            (riding ? store_submit_riding : store_submit)(store, STORE_INCREMENT, keys[i], NULL,
                                                          counts[i].by, counts[i].ttl,
                                                          hook_counts_answered, &h->requests[i]);
    return true;
}

/* hook_continuation_counted - a waiting hook's counters are all in: its continuation */
static void hook_continuation_counted(void *owner, const struct porter_store_result *all)
{
    struct hook_continuation *c = owner;
    c->store_result = all;
    hook_continuation_answered(c, all->status, false);
}

int hook_chain_store_increments(struct porter_session *s, struct porter_store_count *counts,
                                const char *const *keys, size_t count, porter_store_fn callback,
                                void *arg)
{
    if (!hook_guard(s, "porter_store_increments"))
        return PORTER_DENYSOFT;
    if (callback == NULL) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error error=\"porter_store_"
                    "increments without counters or a callback\"");
        return PORTER_DENYSOFT;
    }
    struct hook_continuation *c = hook_continuation_new(s, NULL, arg);
    c->store_done = callback;
    if (!hook_counts_start(s, &c->counts, counts, keys, count, hook_continuation_counted, c,
                           "porter_store_increments", false)) {
        s->run.continuation = NULL;
        hook_continuation_free(c);
        return PORTER_DENYSOFT;
    }
    return PORTER_PENDING;
}

/* ---------------------------------------------------------------- background lookups */

/* One porter_dns_background lookup or porter_store_increments_background call: on its
 * session's list until answered or cancelled. */
struct hook_background {
    struct hook_background *prev, *next;
    struct porter_session *session;
    const struct plugin_instance *plugin;   /* the plugin that asked: its name and data slot */
    struct dns_query *query;                /* a lookup: NULL once answered */
    porter_dns_background_fn callback;
    struct hook_counts counts;              /* counters (total > 0) */
    porter_store_background_fn store_callback;
    void *arg;
};

/* hook_background_add - a new background call of the running plugin, on s's list; NULL
 * (logged) outside a plugin call or after the disconnect */
static struct hook_background *hook_background_add(struct porter_session *s, void *arg,
                                                   const char *what)
{
    if (s->closed || s->run.plugin == NULL) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error error=\"%s outside a "
                    "plugin call or after the disconnect\"", what);
        return NULL;
    }
    struct hook_background *b = xcalloc(1, sizeof *b);
    b->session = s;
    b->plugin = s->run.plugin;
    b->arg = arg;
    b->next = s->run.background;
    if (b->next != NULL)
        b->next->prev = b;
    s->run.background = b;
    return b;
}

/* hook_background_unlink - off the session's list */
static void hook_background_unlink(struct hook_background *b)
{
    struct porter_session *s = b->session;
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        s->run.background = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
}

/* hook_background_free - b and what it owns */
static void hook_background_free(struct hook_background *b)
{
    hook_counts_release(&b->counts);
    free(b);
}

/* hook_background_call - the answer is in: off the list, and the plugin's callback, as the
 * plugin (its name in logs, its data slot) but outside any hook */
static void hook_background_call(struct hook_background *b, const struct porter_dns_answer *answer,
                                 const struct porter_store_result *result)
{
    struct porter_session *s = b->session;
    hook_background_unlink(b);
    session_hold(s);
    const struct plugin_instance *previous = s->run.plugin;
    bool in_call = s->run.in_call;
    s->run.plugin = b->plugin;
    s->run.in_call = false; /* no verdict and no PENDING helper from here */
    if (b->store_callback != NULL)
        b->store_callback(s, b->arg, result);
    else
        b->callback(s, b->arg, answer);
    s->run.plugin = previous;
    s->run.in_call = in_call;
    hook_background_free(b);
    session_unhold(s);
}

/* hook_background_answered - a dns.c callback */
static void hook_background_answered(const struct porter_dns_answer *answer, void *arg)
{
    struct hook_background *b = arg;
    b->query = NULL;
    hook_background_call(b, answer, NULL);
}

/* hook_background_counted - a background call's counters are all in */
static void hook_background_counted(void *owner, const struct porter_store_result *all)
{
    hook_background_call(owner, NULL, all);
}

/* hook_background_cancel - the session ends: stop every lookup and drop every counters'
 * answer, without callbacks (the counts are still made) */
static void hook_background_cancel(struct porter_session *s)
{
    while (s->run.background != NULL) {
        struct hook_background *b = s->run.background;
        s->run.background = b->next;
        dns_query_cancel(b->query);
        hook_counts_cancel(&b->counts);
        hook_background_free(b);
    }
}

int hook_chain_dns_background(struct porter_session *s, int type, const char *name,
                              porter_dns_background_fn callback, void *arg)
{
    struct dns_resolver *resolver = worker_dns(s->worker);
    if (resolver == NULL) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error error=\"porter_dns_background "
                    "without a worker resolver\"");
        return -1;
    }
    struct hook_background *b = hook_background_add(s, arg, "porter_dns_background");
    if (b == NULL)
        return -1;
    b->callback = callback;
    b->query = dns_lookup(resolver, type, name, hook_background_answered, b);
    return 0;
}

int hook_chain_store_increments_background(struct porter_session *s,
                                           struct porter_store_count *counts,
                                           const char *const *keys, size_t count,
                                           porter_store_background_fn callback, void *arg)
{
    const char *what = "porter_store_increments_background";
    if (callback == NULL) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error error=\"%s without a "
                    "callback\"", what);
        return -1;
    }
    struct hook_background *b = hook_background_add(s, arg, what);
    if (b == NULL)
        return -1;
    b->store_callback = callback;
    /* nobody waits for the answer: the counts ride with the worker's next request (a hook
     * that waits sends them at once) */
    if (!hook_counts_start(s, &b->counts, counts, keys, count, hook_background_counted, b, what,
                           true)) {
        hook_background_unlink(b);
        hook_background_free(b);
        return -1;
    }
    return 0;
}

/* hook_chain_serial_start - start the instance's next job unless one runs; jobs nobody waits
 * for any more are finished without running. The instance lives as long as any queued job's
 * session (sessions hold the registry), so it is not touched after the last job is gone. */
static void hook_chain_serial_done(void *arg, int result);

static void hook_chain_serial_start(struct plugin_instance *instance)
{
    while (!instance->serial_busy && instance->serial_head != NULL) {
        struct hook_continuation *c = instance->serial_head;
        instance->serial_head = c->serial_next;
        bool last = instance->serial_head == NULL;
        if (last)
            instance->serial_tail = NULL;
        struct porter_session *s = c->session;
        if (!s->closed && s->run.continuation == c) {
            instance->serial_busy = true;
            thread_pool_submit(worker_thread_pool(s->worker), hook_chain_job_work, c,
                               hook_chain_serial_done, c);
            return;
        }
        hook_continuation_answered(c, -1, true); /* not current: done(NULL, arg, -1), free */
        if (last)
            return;
    }
}

/* hook_chain_serial_done - a serial job ended: start the next one, then finish this one (its
 * session, still counted busy, keeps the instance alive meanwhile) */
static void hook_chain_serial_done(void *arg, int result)
{
    struct hook_continuation *c = arg;
    c->serial->serial_busy = false;
    hook_chain_serial_start(c->serial);
    hook_chain_job_done(c, result);
}

int hook_chain_run_serial(struct porter_session *s, porter_work_fn work, porter_done_fn done,
                          void *arg)
{
    if (!hook_guard(s, "porter_deliver"))
        return PORTER_DENYSOFT;
    struct plugin_instance *instance = &s->plugins->items[s->run.plugin->index];
    struct hook_continuation *c = hook_continuation_new(s, done, arg);
    c->work = work;
    c->serial = instance;
    s->blocking_jobs++;
    if (instance->serial_tail != NULL)
        instance->serial_tail->serial_next = c;
    else
        instance->serial_head = c;
    instance->serial_tail = c;
    hook_chain_serial_start(instance);
    return PORTER_PENDING;
}

char *hook_trace_escape(const char *text)
{
    if (text == NULL)
        return xstrdup("");
    size_t length = strlen(text), used = 0;
    char *escaped = xmalloc(2 * length + 1);
    for (size_t i = 0; i < length; i++) {
        if (text[i] == '\n' || text[i] == '\r') {
            escaped[used++] = '\\';
            escaped[used++] = text[i] == '\n' ? 'n' : 'r';
        } else {
            escaped[used++] = text[i];
        }
    }
    escaped[used] = '\0';
    return escaped;
}
