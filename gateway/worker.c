/*
 * worker.c - one worker process: accept connections, hold sessions, drain on SIGTERM.
 *
 * The worker accepts on the listening sockets the master opened (every worker accepts on the
 * same sockets; the kernel hands each connection to one of them), enforces the connection
 * limits (in total and per client IP) before a session starts, and keeps its sessions in a
 * table keyed by session id so that late answers can be matched without raw pointers.
 * SIGTERM (or SIGINT in the foreground) drains: stop accepting, let sessions finish, close
 * idle ones with 421, and after shutdown_timeout close whatever is left. With drain_grace set,
 * the drain waits that long first while new connections get 421 (on a proxy_protocol listener
 * only the balancer's LOCAL health checks do), so a load balancer marks this node down before
 * it stops accepting (docs/scale-out.md). On a proxy_protocol listener only proxy_sources may
 * connect, and a session is counted per client IP once its PROXY header named the client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "cidr.h"
#include "config.h"
#include "dns.h"
#include "clock.h"
#include "ip_board.h"
#include "log.h"
#include "memory.h"
#include "metrics.h"
#include "milter_listener.h"
#include "policy_listener.h"
#include "plugin_host.h"
#include "refusal_log.h"
#include "session.h"
#include "store.h"
#include "thread_pool.h"
#include "worker.h"

#define WORKER_THREADS 4
#define WORKER_SPARE_SPOOLS 64 /* emptied spool files kept for reuse: inode creation is costly */
#define WORKER_TABLE_INITIAL 1024
#define WORKER_LISTEN_WAIT 0.01 /* seconds a listener rests while its socket does not listen yet */
/* Connections accepted in one loop pass at most: a burst is taken in batches, each batch's
 * connect hooks answered (DNS, store) before the next is accepted, so that sessions already
 * open are served meanwhile and the hooks' short-lived memory is reused by the next batch
 * instead of all of it being held at once (heap holes that idle sessions would keep). */
#define WORKER_ACCEPT_BATCH 16

/* A plugin's cleanup for the end of the loop (porter_at_loop_end). */
struct worker_loop_end_call {
    void (*fn)(void *arg);
    void *arg;
};

struct worker {
    struct event_base *base;
    const struct porter_config *config;
    struct plugin_registry *plugins;
    struct thread_pool *pool;
    struct dns_resolver *dns;      /* the one resolver of this worker (dns.c) */
    struct store *store;           /* the plugins' store (store.c), opened on first use */
    struct evconnlistener **listeners;
    struct worker_listener *listener_facts; /* role and options, one per listener */
    size_t listener_count;
    /* sessions by id: open addressing with linear probing, power-of-two size */
    struct porter_session **table;
    size_t table_size;
    size_t session_count;
    struct ip_board *ips;          /* connections per client IP, shared by all workers */
    int ip_record;                 /* this worker's record in it */
    bool ips_private;              /* ips is this worker's own (no shared record was left) */
    uint64_t next_id;
    bool draining;
    bool stressed;                 /* stress mode: the slots passed stress_threshold */
    bool grace;                    /* SIGTERM came; drain_grace runs before draining */
    struct event *grace_timer;
    bool retiring;                 /* a reload replaced us: finish sessions, accept no more */
    struct event *signal_retire;
    struct event *signal_term;
    struct event *signal_int;
    struct event *drain_deadline;
    struct event *listen_wait;     /* a listener is not listening yet: try it again soon */
    struct event *accept_pass_over; /* active: this loop pass's accepting is over */
    unsigned accepted_this_pass;
    bool accept_paused;            /* WORKER_ACCEPT_BATCH reached: listeners off this pass */
    bool stdio;
    int spare_spools[WORKER_SPARE_SPOOLS];
    size_t spare_count;
    struct refusal_log *refusals;  /* connections refused before a session, summarised */
    struct worker_loop_end_call *loop_end_calls; /* porter_at_loop_end */
    size_t loop_end_count;
};

struct worker *worker_current;

/* worker_hash - mix a 64-bit id */
static size_t worker_hash(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id;
}

static void worker_table_insert(struct worker *w, struct porter_session *s);

/* worker_table_grow - double the session table */
static void worker_table_grow(struct worker *w)
{
    struct porter_session **old = w->table;
    size_t old_size = w->table_size;
    w->table_size = old_size ? old_size * 2 : WORKER_TABLE_INITIAL;
    w->table = xcalloc(w->table_size, sizeof *w->table);
    w->session_count = 0;
    for (size_t i = 0; i < old_size; i++)
        if (old[i] != NULL)
            worker_table_insert(w, old[i]);
    free(old);
}

static void worker_table_insert(struct worker *w, struct porter_session *s)
{
    if ((w->session_count + 1) * 2 > w->table_size)
        worker_table_grow(w);
    size_t mask = w->table_size - 1;
    size_t i = worker_hash(s->id) & mask;
    while (w->table[i] != NULL)
        i = (i + 1) & mask;
    w->table[i] = s;
    w->session_count++;
}

struct porter_session *worker_find_session(struct worker *w, uint64_t id)
{
    if (w->table_size == 0)
        return NULL;
    size_t mask = w->table_size - 1;
    for (size_t i = worker_hash(id) & mask; w->table[i] != NULL; i = (i + 1) & mask)
        if (w->table[i]->id == id)
            return w->table[i];
    return NULL;
}

/* worker_table_remove - delete with backward-shift so probing stays correct */
static void worker_table_remove(struct worker *w, uint64_t id)
{
    size_t mask = w->table_size - 1;
    size_t i = worker_hash(id) & mask;
    while (w->table[i] != NULL && w->table[i]->id != id)
        i = (i + 1) & mask;
    if (w->table[i] == NULL)
        return;
    w->table[i] = NULL;
    w->session_count--;
    for (size_t j = (i + 1) & mask; w->table[j] != NULL; j = (j + 1) & mask) {
        struct porter_session *moved = w->table[j];
        w->table[j] = NULL;
        w->session_count--;
        worker_table_insert(w, moved);
    }
}

/* worker_ip_acquire - count a new connection from ip; false when the daemon has the limit */
static bool worker_ip_acquire(struct worker *w, const char *ip)
{
    return ip_board_acquire(w->ips, w->ip_record, ip, (unsigned)w->config->max_connections_per_ip);
}

static void worker_ip_release(struct worker *w, const char *ip)
{
    ip_board_release(w->ips, w->ip_record, ip);
}

int worker_spool_take(struct worker *w)
{
    return w->spare_count > 0 ? w->spare_spools[--w->spare_count] : -1;
}

void worker_spool_give(struct worker *w, int fd)
{
    if (fd < 0)
        return;
    if (w->spare_count < WORKER_SPARE_SPOOLS && ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0)
        w->spare_spools[w->spare_count++] = fd;
    else
        close(fd);
}

void worker_add_session(struct worker *w, struct porter_session *s)
{
    worker_table_insert(w, s);
}

struct thread_pool *worker_thread_pool(struct worker *w)
{
    return w->pool;
}

struct store *worker_store(struct worker *w)
{
    return w != NULL ? w->store : NULL;
}

struct dns_resolver *worker_dns(struct worker *w)
{
    return w != NULL ? w->dns : NULL;
}

struct event_base *worker_event_base(struct worker *w)
{
    return w->base;
}

uint64_t worker_next_session_id(struct worker *w)
{
    return ((uint64_t)getpid() << 32) | ++w->next_id;
}

bool worker_stressed(const struct worker *w)
{
    return w != NULL && w->stressed;
}

bool worker_draining(const struct worker *w)
{
    return w->draining;
}

bool worker_in_drain_grace(const struct worker *w)
{
    return w->grace;
}

bool worker_admit(struct worker *w, struct porter_session *s)
{
    if (w->stdio)
        return true;
    metrics_view_client(s->view, s->client_ip); /* the client a PROXY header named */
    if (!worker_ip_acquire(w, s->client_ip)) {
        log_message(PORTER_LOG_WARNING, s->id_string, "event=connection_refused client=%s "
                    "reason=max_connections_per_ip limit=%ld", s->client_ip,
                    w->config->max_connections_per_ip);
        return false;
    }
    snprintf(s->counted_ip, sizeof s->counted_ip, "%s", s->client_ip);
    return true;
}

static void worker_stress_check(struct worker *w);

void worker_session_closed(struct worker *w, struct porter_session *s)
{
    worker_table_remove(w, s->id);
    worker_stress_check(w);
    metrics_session_closed(s->listener);
    metrics_view_close(s->view);
    s->view = -1;
    if (!w->stdio && s->counted_ip[0] != '\0')
        worker_ip_release(w, s->counted_ip);
    if (w->stdio || ((w->draining || w->retiring) && w->session_count == 0))
        event_base_loopexit(w->base, NULL);
}

/* worker_refuse - answer a connection we will not serve, without a session: "421 ENHANCED
 * HOSTNAME text", counted in the refusal summary under cause */
static void worker_refuse(struct worker *w, int fd, const char *enhanced, const char *text,
                          const char *cause, const char *client, long limit)
{
    refusal_log_note(w->refusals, cause, client, limit); /* logged before the client knows */
    char reply[512];
    int n = snprintf(reply, sizeof reply, "421 %s %s %s\r\n", enhanced, w->config->hostname, text);
    if (n > 0 && (size_t)n < sizeof reply) {
        ssize_t ignored = write(fd, reply, (size_t)n);
        (void)ignored;
    }
    close(fd);
    metrics_add(&metrics_here->connections_refused, 1);
}

/* worker_accept_pass_over - the loop pass that accepted is over: count afresh, and listeners
 * paused for the batch accept again (not while stopping) */
static void worker_accept_pass_over(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    w->accepted_this_pass = 0;
    if (!w->accept_paused)
        return;
    w->accept_paused = false;
    if (w->draining || w->retiring)
        return;
    for (size_t i = 0; i < w->listener_count; i++)
        evconnlistener_enable(w->listeners[i]);
}

/* worker_accept_count - one more connection accepted in this loop pass; at
 * WORKER_ACCEPT_BATCH the listeners rest until the pass is over */
static void worker_accept_count(struct worker *w)
{
    if (w->accepted_this_pass++ == 0)
        event_active(w->accept_pass_over, 0, 0);
    if (w->accepted_this_pass < WORKER_ACCEPT_BATCH || w->accept_paused)
        return;
    w->accept_paused = true;
    for (size_t i = 0; i < w->listener_count; i++)
        evconnlistener_disable(w->listeners[i]);
}

/* worker_accept - a new connection on one of the listeners */
static void worker_accept(struct evconnlistener *listener, evutil_socket_t fd,
                          struct sockaddr *address, int length, void *arg)
{
    struct worker *w = worker_current;
    const struct worker_listener *facts = arg;
    worker_accept_count(w);
    if (strcmp(facts->role, "milter") == 0 || strcmp(facts->role, "policy") == 0) {
        /* The MTA in front: one connection serves many clients, no per-IP limit. */
        if (w->draining || w->session_count >= (size_t)w->config->max_connections) {
            log_message(PORTER_LOG_WARNING, NULL, "event=connection_refused role=%s reason=%s",
                        facts->role, w->draining ? "shutting_down" : "max_connections");
            close(fd);
            return;
        }
        evutil_make_socket_nonblocking(fd);
        if (strcmp(facts->role, "milter") == 0)
            milter_listener_accept(w, w->config, w->plugins, fd);
        else
            policy_listener_accept(w, w->config, w->plugins, fd);
        return;
    }
    char ip[64];
    int port;
    session_address_string(address, ip, sizeof ip, &port);
    if (w->draining || (w->grace && !facts->proxy_protocol)) {
        worker_refuse(w, fd, "4.3.2", "Service shutting down, closing connection",
                      w->grace ? "drain_grace" : "shutting_down", ip, -1);
        return;
    }
    if (w->session_count >= (size_t)w->config->max_connections) {
        worker_refuse(w, fd, "4.7.0", "Too many connections, try again later", "max_connections",
                      ip, w->config->max_connections);
        return;
    }
    if (facts->proxy_protocol && !cidr_match(w->config->proxy_sources_list, ip)) {
        /* only a listed load balancer may name another client */
        worker_refuse(w, fd, "4.7.0", "Not a trusted proxy, closing connection",
                      "not_in_proxy_sources", ip, -1);
        return;
    }
    if (!facts->proxy_protocol && !worker_ip_acquire(w, ip)) {
        worker_refuse(w, fd, "4.7.0", "Too many connections from your address, try again later",
                      "max_connections_per_ip", ip, w->config->max_connections_per_ip);
        return;
    }
    evutil_make_socket_nonblocking(fd);
    struct porter_session *s = session_start(w, fd, address, (socklen_t)length, facts->role);
    s->listener = (unsigned)(facts - w->listener_facts);
    metrics_session_opened(s->listener);
    s->view = metrics_view_open(s->id, ip, s->listener, metrics_now_usec());
    if (facts->proxy_protocol)
        s->proxy_wait = true; /* counted by worker_admit once the header names the client */
    else
        snprintf(s->counted_ip, sizeof s->counted_ip, "%s", ip);
    worker_table_insert(w, s);
    session_attach(s, w->config, w->plugins);
    worker_stress_check(w);
}

/* worker_listen_wait_over - the master may listen now: accept again (not while stopping) */
static void worker_listen_wait_over(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining || w->retiring)
        return;
    for (size_t i = 0; i < w->listener_count; i++)
        evconnlistener_enable(w->listeners[i]);
}

/* worker_accept_error - EMFILE and friends: log, keep going. EINVAL is a socket that does
 * not listen yet (at start the master listens once every worker has loaded its plugins): its
 * listener rests for WORKER_LISTEN_WAIT instead of spinning on accept. */
static void worker_accept_error(struct evconnlistener *listener, void *arg)
{
    int error = EVUTIL_SOCKET_ERROR();
    struct worker *w = worker_current;
    if (error == EINVAL && w != NULL) {
        evconnlistener_disable(listener);
        if (w->listen_wait == NULL)
            w->listen_wait = evtimer_new(w->base, worker_listen_wait_over, w);
        struct timeval wait = clock_timeval(WORKER_LISTEN_WAIT);
        if (w->listen_wait != NULL && !evtimer_pending(w->listen_wait, NULL))
            evtimer_add(w->listen_wait, &wait);
        return;
    }
    log_message(PORTER_LOG_ERR, NULL, "event=accept_error error=\"%s\"",
                evutil_socket_error_to_string(error));
}

/* worker_each_session - call fn on every session; fn may close sessions */
static void worker_each_session(struct worker *w, void (*fn)(struct porter_session *s))
{
    size_t count = 0;
    uint64_t *ids = xcalloc(w->session_count + 1, sizeof *ids);
    for (size_t i = 0; i < w->table_size; i++)
        if (w->table[i] != NULL)
            ids[count++] = w->table[i]->id;
    for (size_t i = 0; i < count; i++) {
        struct porter_session *s = worker_find_session(w, ids[i]);
        if (s != NULL)
            fn(s);
    }
    free(ids);
}

/* worker_stress_check - enter stress mode when the sessions pass stress_threshold percent of
 * max_connections, leave it 10 points below (as Postfix's stress mode, the greeting and
 * command timeouts shrink so that idle connections are shed first); every session's timer is
 * armed again with the timeouts of the new mode */
static void worker_stress_check(struct worker *w)
{
    if (w->stdio || w->config->stress_threshold <= 0)
        return;
    double used = 100.0 * (double)w->session_count / (double)w->config->max_connections;
    bool stressed = w->stressed ? used >= (double)w->config->stress_threshold - 10
                                : used >= (double)w->config->stress_threshold;
    if (stressed == w->stressed)
        return;
    w->stressed = stressed;
    log_message(PORTER_LOG_WARNING, NULL, "event=stress_mode mode=%s sessions=%zu "
                "max_connections=%ld threshold=%ld%% greeting_timeout=%gs command_timeout=%gs",
                stressed ? "on" : "off", w->session_count, w->config->max_connections,
                w->config->stress_threshold,
                stressed ? w->config->stress_greeting_timeout : w->config->greeting_timeout,
                stressed ? w->config->stress_command_timeout : w->config->command_timeout);
    worker_each_session(w, session_timers_changed);
}

/* worker_close_late - a session still open at the drain deadline */
static void worker_close_late(struct porter_session *s)
{
    session_reply(s, 421, "4.3.2", "Service shutting down, closing connection");
    session_close(s, "shutdown_deadline");
}

/* worker_drain_deadline - sessions had their time: close what is left */
static void worker_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    log_message(PORTER_LOG_NOTICE, NULL, "event=drain_deadline sessions=%zu", w->session_count);
    worker_each_session(w, worker_close_late);
    event_base_loopexit(w->base, NULL);
}

/* worker_drain - stop accepting; sessions finish; idle ones are told 421 now */
static void worker_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    if (w->drain_deadline != NULL) {
        event_free(w->drain_deadline);
        w->drain_deadline = NULL;
    }
    log_message(PORTER_LOG_NOTICE, NULL, "event=draining sessions=%zu timeout=%.0fs",
                w->session_count, w->config->shutdown_timeout);
    for (size_t i = 0; i < w->listener_count; i++)
        evconnlistener_disable(w->listeners[i]);
    worker_each_session(w, session_drain);
    if (w->session_count == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    double seconds = w->config->shutdown_timeout;
    struct timeval tv = clock_timeval(seconds);
    w->drain_deadline = evtimer_new(w->base, worker_drain_deadline, w);
    evtimer_add(w->drain_deadline, &tv);
}

/* worker_grace_over - drain_grace ended: drain as usual */
static void worker_grace_over(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    w->grace = false;
    worker_drain(w);
}

/* worker_signal - SIGTERM/SIGINT: drain, after drain_grace when one is set (a second signal
 * during the grace drains at once) */
static void worker_signal(evutil_socket_t signal_number, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining || w->grace || w->config->drain_grace <= 0 || w->retiring) {
        w->grace = false;
        if (w->grace_timer != NULL)
            evtimer_del(w->grace_timer);
        worker_drain(w);
        return;
    }
    w->grace = true;
    log_message(PORTER_LOG_NOTICE, NULL, "event=drain_grace sessions=%zu grace=%.1fs",
                w->session_count, w->config->drain_grace);
    struct timeval tv = clock_timeval(w->config->drain_grace);
    w->grace_timer = evtimer_new(w->base, worker_grace_over, w);
    evtimer_add(w->grace_timer, &tv);
}

/* worker_drain_timer - a retiring worker's sessions ran out of time: drain now */
static void worker_retire_deadline(evutil_socket_t fd, short what, void *arg)
{
    worker_drain(arg);
}

/* worker_retire - SIGUSR1 from the master after a reload: stop accepting, finish sessions */
static void worker_retire(evutil_socket_t signal_number, short what, void *arg)
{
    struct worker *w = arg;
    if (w->retiring || w->draining)
        return;
    w->retiring = true;
    log_message(PORTER_LOG_INFO, NULL, "event=retiring sessions=%zu", w->session_count);
    for (size_t i = 0; i < w->listener_count; i++)
        evconnlistener_disable(w->listeners[i]);
    if (w->session_count == 0) {
        event_base_loopexit(w->base, NULL);
        return;
    }
    struct timeval tv = clock_timeval(w->config->session_timeout);
    w->drain_deadline = evtimer_new(w->base, worker_retire_deadline, w);
    evtimer_add(w->drain_deadline, &tv);
}

/* worker_create - event base, thread pool, signals */
struct worker *worker_create(const struct porter_config *config,
                                 struct plugin_registry *plugins, bool stdio)
{
    evthread_use_pthreads();
    struct worker *w = xcalloc(1, sizeof *w);
    struct event_config *event_config = event_config_new();
    if (stdio)
        event_config_avoid_method(event_config, "epoll"); /* stdin may be a regular file */
    w->base = event_base_new_with_config(event_config);
    event_config_free(event_config);
    if (w->base == NULL) {
        log_message(PORTER_LOG_ERR, NULL, "event=fatal error=\"cannot create the event loop\"");
        exit(1);
    }
    evthread_make_base_notifiable(w->base);
    w->config = config;
    w->plugins = plugins;
    w->stdio = stdio;
    w->dns = dns_resolver_new(w->base, config);
    w->pool = thread_pool_start(w->base, WORKER_THREADS);
    w->refusals = refusal_log_new(w->base);
    w->store = store_new(config, w->base, w->pool);
    worker_current = w;
    signal(SIGPIPE, SIG_IGN);
    w->signal_term = evsignal_new(w->base, SIGTERM, worker_signal, w);
    evsignal_add(w->signal_term, NULL);
    if (!stdio) {
        w->signal_int = evsignal_new(w->base, SIGINT, worker_signal, w);
        evsignal_add(w->signal_int, NULL);
        w->signal_retire = evsignal_new(w->base, SIGUSR1, worker_retire, w);
        evsignal_add(w->signal_retire, NULL);
    }
    worker_table_grow(w);
    return w;
}

void worker_at_loop_end(struct worker *w, void (*fn)(void *arg), void *arg)
{
    w->loop_end_calls = xrealloc(w->loop_end_calls,
                                 (w->loop_end_count + 1) * sizeof *w->loop_end_calls);
    w->loop_end_calls[w->loop_end_count++] = (struct worker_loop_end_call){fn, arg};
}

/* worker_destroy - after the loop ended */
void worker_destroy(struct worker *w)
{
    while (w->loop_end_count > 0) {
        struct worker_loop_end_call call = w->loop_end_calls[--w->loop_end_count];
        call.fn(call.arg);
    }
    free(w->loop_end_calls);
    thread_pool_stop(w->pool);
    dns_resolver_free(w->dns); /* after the pool: blocking queries use it */
    store_free(w->store);      /* after the pool: the LMDB sweep runs there */
    for (size_t i = 0; i < w->listener_count; i++)
        evconnlistener_free(w->listeners[i]);
    free(w->listeners);
    if (w->signal_term)
        event_free(w->signal_term);
    if (w->signal_int)
        event_free(w->signal_int);
    if (w->signal_retire)
        event_free(w->signal_retire);
    if (w->listen_wait)
        event_free(w->listen_wait);
    if (w->accept_pass_over)
        event_free(w->accept_pass_over);
    if (w->drain_deadline)
        event_free(w->drain_deadline);
    if (w->grace_timer)
        event_free(w->grace_timer);
    free(w->listener_facts);
    while (w->spare_count > 0)
        close(w->spare_spools[--w->spare_count]);
    free(w->table);
    if (w->ips_private)
        ip_board_free(w->ips);
    refusal_log_free(w->refusals);
    event_base_free(w->base);
    worker_current = NULL;
    free(w);
}

int worker_run(const struct porter_config *config, struct plugin_registry *plugins,
               const struct worker_listener *listeners, size_t listener_count,
               struct ip_board *ips, int ip_record)
{
    struct worker *w = worker_create(config, plugins, false);
    w->ips = ips;
    w->ip_record = ip_record;
    if (ips == NULL || ip_record < 0) {
        log_message(PORTER_LOG_WARNING, NULL, "event=ip_board_unavailable pid=%ld error=\"no "
                    "shared record left (many workers still finishing after reloads): "
                    "max_connections_per_ip counts this worker's connections only\"",
                    (long)getpid());
        w->ips = ip_board_create(1, (size_t)config->max_connections, false);
        w->ip_record = ip_board_record_claim(w->ips);
        w->ips_private = true;
    }
    w->accept_pass_over = event_new(w->base, -1, 0, worker_accept_pass_over, w);
    if (w->accept_pass_over == NULL)
        return 1;
    w->listeners = xcalloc(listener_count + 1, sizeof *w->listeners);
    w->listener_facts = xcalloc(listener_count + 1, sizeof *w->listener_facts);
    for (size_t i = 0; i < listener_count; i++) {
        w->listener_facts[i] = listeners[i];
        w->listeners[i] = evconnlistener_new(w->base, worker_accept, &w->listener_facts[i],
                                             LEV_OPT_REUSEABLE, 0 /* already listening: keep the master's backlog */, listeners[i].fd);
        if (w->listeners[i] == NULL) {
            log_message(PORTER_LOG_ERR, NULL, "event=fatal error=\"cannot listen on fd %d\"",
                        listeners[i].fd);
            return 1;
        }
        evconnlistener_set_error_cb(w->listeners[i], worker_accept_error);
        w->listener_count++;
    }
    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY &&
        files.rlim_cur < (rlim_t)config->max_connections + 256)
        log_message(PORTER_LOG_WARNING, NULL, "event=rlimit_warning pid=%ld max_connections=%ld "
                    "open_files=%llu error=\"fewer file descriptors than max_connections needs: "
                    "raise the hard RLIMIT_NOFILE (systemd LimitNOFILE=) or lower "
                    "max_connections\"", (long)getpid(), config->max_connections,
                    (unsigned long long)files.rlim_cur);
    log_message(PORTER_LOG_INFO, NULL, "event=worker_started pid=%ld", (long)getpid());
    event_base_dispatch(w->base);
    log_message(PORTER_LOG_INFO, NULL, "event=worker_stopped pid=%ld", (long)getpid());
    worker_destroy(w);
    return 0;
}

int worker_run_stdio(const struct porter_config *config, struct plugin_registry *plugins,
                     const char *client_ip, bool trace)
{
    struct worker *w = worker_create(config, plugins, true);
    struct porter_session *s = session_start_stdio(w, client_ip, trace);
    worker_table_insert(w, s);
    session_attach(s, config, plugins);
    event_base_dispatch(w->base);
    worker_destroy(w);
    return 0;
}
