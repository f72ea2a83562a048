/*
 * worker.h - one worker process: an event loop that accepts on the listening sockets it
 * inherited from the master and serves thousands of sessions, or one stdio session.
 *
 * Interface: worker_run / worker_run_stdio run the loop until the worker is told to stop
 * (SIGTERM: drain) and return the process exit code. The worker owns its sessions, its
 * session table (sessions are found by id, never kept by raw pointer across waits), its record
 * of per-client-IP connection counts (ip_board.h), the thread pool for run_blocking, the DNS
 * resolver and the plugins' store.
 * Fatal: out of memory, failure to create the event base.
 */
#ifndef PORTER_WORKER_H
#define PORTER_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct porter_config;
struct plugin_registry;
struct porter_session;
struct thread_pool;
struct dns_resolver;
struct store;

/* A listening socket the master opened, with its role. */
struct worker_listener {
    int fd;
    const char *role;
    bool proxy_protocol; /* a PROXY header comes first, from one of proxy_sources */
};

struct worker;

/* worker_current - the worker of this process (one per process) */
extern struct worker *worker_current;

struct ip_board;
/* worker_run - serve the listeners; ips/ip_record: the master's per-IP board and this worker's
 * record in it (NULL / -1: a board of the worker's own) */
int worker_run(const struct porter_config *config, struct plugin_registry *plugins,
               const struct worker_listener *listeners, size_t listener_count,
               struct ip_board *ips, int ip_record);
int worker_run_stdio(const struct porter_config *config, struct plugin_registry *plugins,
                     const char *client_ip, bool trace);

/* worker_create / worker_destroy - the loop, pool and session table without serving (the
 * transports above use them; unit tests drive sessions on a worker made this way) */
struct worker *worker_create(const struct porter_config *config, struct plugin_registry *plugins,
                             bool stdio);
void worker_destroy(struct worker *worker);
/* worker_spool_take / worker_spool_give - a pool of empty anonymous spool files, so that a
 * message does not cost a file creation; take gives -1 when the pool is empty, give empties
 * the file (or closes it when the pool is full) */
int worker_spool_take(struct worker *worker);
void worker_spool_give(struct worker *worker, int fd);
/* worker_add_session - enter a started session into the table (before session_attach) */
void worker_add_session(struct worker *worker, struct porter_session *s);
struct porter_session *worker_find_session(struct worker *worker, uint64_t id);
struct thread_pool *worker_thread_pool(struct worker *worker);
/* worker_dns - the worker's DNS resolver (dns.h); NULL for a NULL worker */
struct dns_resolver *worker_dns(struct worker *worker);
/* worker_store - the worker's store (store.h); NULL for a NULL worker */
struct store *worker_store(struct worker *worker);
struct event_base *worker_event_base(struct worker *worker);
/* worker_session_closed - the session's connection ended: forget it */
void worker_session_closed(struct worker *worker, struct porter_session *s);
uint64_t worker_next_session_id(struct worker *worker);
bool worker_draining(const struct worker *worker);
/* worker_stressed - stress mode: most slots are taken, idle sessions get short timeouts */
bool worker_stressed(const struct worker *worker);
/* worker_in_drain_grace - SIGTERM came, drain_grace runs: new connections are told 421 (on a
 * proxy_protocol listener only the balancer's own, LOCAL ones) */
bool worker_in_drain_grace(const struct worker *worker);
/* worker_admit - count the session's client against max_connections_per_ip (a session of a
 * proxy_protocol listener is counted once its header named the client); false when over the
 * limit. The count is released when the session closes. */
bool worker_admit(struct worker *worker, struct porter_session *s);
/* worker_at_loop_end - fn(arg) runs when worker_destroy starts, before the loop is freed
 * (latest registered first) */
void worker_at_loop_end(struct worker *worker, void (*fn)(void *arg), void *arg);

#endif
