/*
 * store.h - the key/value store that plugins share (porter_store_* in porter/plugin.h).
 *
 * Each worker has one store, made from the store setting: LMDB in the spool directory
 * (store = lmdb; store_lmdb.c), shared by the workers of one daemon, or a Redis server
 * (store = redis://HOST:PORT/DB or redis+unix:///PATH; store_redis.c), shared by every
 * gateway that names it. This file's store.c is the dispatch: it parses the setting, opens
 * the backend on the first request, gives each request its deadline (store_timeout) and
 * delivers every outcome on the loop, on a later turn than the one that asked.
 *
 * Interface: store_new / store_free (worker.c); store_submit starts one request and returns
 * it; done(result, arg) then runs exactly once on the loop, unless store_request_cancel was
 * called first. Requests without done run in the background (failures are logged).
 * Ownership: the store owns every request from store_submit until its done has run (or it
 * was cancelled and the backend let go of it); key and value are copied into it.
 * Fatal: out of memory. A store that fails (Redis unreachable, LMDB full) gives results with
 * PORTER_STORE_ERROR and a log line, never a fatal error.
 */
#ifndef PORTER_STORE_H
#define PORTER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <porter/plugin.h>

struct event;
struct event_base;
struct thread_pool;
struct porter_config;
struct store;

/* Longest key (the plugin's name and ':' included) and value the store takes, bytes. */
#define STORE_KEY_MAX 480
#define STORE_VALUE_MAX 65536

enum store_operation { STORE_GET = 0, STORE_SET, STORE_INCREMENT, STORE_DELETE, STORE_OPERATION_COUNT };
const char *store_operation_name(enum store_operation operation);
const char *store_status_name(int status);

/* What a store setting names. */
enum store_kind { STORE_LMDB = 0, STORE_REDIS_TCP, STORE_REDIS_UNIX, STORE_KIND_COUNT };
struct store_address {
    enum store_kind kind;
    char host[256];         /* REDIS_TCP: name or address, without brackets */
    int port;               /* REDIS_TCP */
    char path[108];         /* REDIS_UNIX: the socket */
    int database;           /* Redis SELECT number */
    char user[128];         /* Redis ACL user ("" : none) */
    char password[256];     /* Redis AUTH ("" : none) */
};

/* store_address_parse - a store setting: "lmdb", "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"
 * (HOST may be [IPV6]; PORT 6379 by default) or "redis+unix://[[USER]:PASSWORD@]/PATH[?db=N]";
 * 0, or -1 with the reason in error. Pure. */
int store_address_parse(const char *text, struct store_address *out, char *error,
                        size_t error_size);
/* store_address_text - the setting without its password, for logs; pure */
void store_address_text(const struct store_address *address, char *out, size_t size);

typedef void (*store_done_fn)(const struct porter_store_result *result, void *arg);

/* Bytes of a result value kept inside the request (longer ones are allocated). */
#define STORE_RESULT_INLINE 64

/* One request and, once a backend has answered it, its outcome: one allocation with the copies
 * of its key and value behind it. */
struct store_request {
    enum store_operation operation;
    char *key;                     /* NUL-terminated copy (in text) */
    size_t key_length;
    char *value;                   /* SET: NUL-terminated copy (in text); NULL otherwise */
    size_t value_length;
    long long by;                  /* INCREMENT */
    double ttl;                    /* SET, INCREMENT: seconds; 0 none */
    struct porter_store_result result;
    char *result_value;            /* allocated copy behind result.value, when not inline */
    char result_inline[STORE_RESULT_INLINE];
    char *error;                   /* behind result.error; allocated on failure only */
    /* dispatch (store.c) */
    struct store *store;
    store_done_fn done;            /* NULL: background or cancelled */
    void *arg;
    bool background;               /* submitted without done: log a failure */
    bool rides;                    /* nobody needs the answer soon (store_submit_riding) */
    bool finished;                 /* the backend has answered */
    bool script_body;              /* Redis: sent with the script's body (EVAL), not EVALSHA */
    bool waiting;                  /* on the store's deadline list (remote, unanswered) */
    double deadline;               /* clock_monotonic() past which it is answered with an error */
    struct store_request *waiting_previous, *waiting_next; /* the deadline list */
    struct store_request *next;    /* the ready list */
    char text[];                   /* key, NUL, value, NUL */
};

/* A backend: open on the first request, submit requests, close. */
struct store_backend {
    const char *name;
    bool remote;                   /* requests get a store_timeout deadline */
    /* open - the backend's state, or NULL after logging why (requests then fail) */
    void *(*open)(struct store *store, const struct store_address *address,
                  const struct porter_config *config, struct event_base *base,
                  struct thread_pool *pool);
    /* submit - start r; store_request_finish(r) follows, now or later, exactly once */
    void (*submit)(void *backend, struct store_request *r);
    /* timed_out - r passed its deadline (its done has run with an error); optional */
    void (*timed_out)(void *backend, struct store_request *r);
    /* close - finish every request it holds, free everything */
    void (*close)(void *backend);
    /* flush - send now what it holds back for company (riding requests); optional */
    void (*flush)(void *backend);
};
extern const struct store_backend store_lmdb_backend;
extern const struct store_backend store_redis_backend;

/* store_new - the worker's store (opens nothing yet); NULL for a setting that does not parse
 * (config.c refuses those before) */
struct store *store_new(const struct porter_config *config, struct event_base *base,
                        struct thread_pool *pool);
void store_free(struct store *store);

/* store_submit - start a request (key and value are copied); done NULL runs it in the
 * background. A key or value over the limits fails at once (through done). */
struct store_request *store_submit(struct store *store, enum store_operation operation,
                                   const char *key, const char *value, long long by, double ttl,
                                   store_done_fn done, void *arg);
/* store_submit_riding - store_submit for a request whose answer nobody needs soon: a remote
 * store may hold it back (Redis: up to REDIS_LINGER) to travel with the next request that
 * goes out, or until store_flush */
struct store_request *store_submit_riding(struct store *store, enum store_operation operation,
                                          const char *key, const char *value, long long by,
                                          double ttl, store_done_fn done, void *arg);
/* store_flush - send what the store holds back now (somebody started to wait); NULL is fine */
void store_flush(struct store *store);
/* store_request_cancel - done will not be called; NULL is fine */
void store_request_cancel(struct store_request *r);

/* For backends: the outcome is in r->result (status, value via store_request_set_value,
 * count, ttl); done runs on a later loop turn. store_request_fail sets an error first. */
void store_request_set_value(struct store_request *r, const char *value, size_t length);
void store_request_finish(struct store_request *r);
void store_request_fail(struct store_request *r, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* store_log_text - the store setting without its password, for backends' log lines */
const char *store_log_text(const struct store *store);

/* store_now_ms - the wall clock in milliseconds (shared by processes and gateways) */
uint64_t store_now_ms(void);

/* LMDB records (store_lmdb.c), pure: 8 bytes of expiry (milliseconds since the epoch, big
 * endian, 0: never) and the value. */
#define STORE_RECORD_HEADER 8
void store_record_encode(unsigned char *out, uint64_t expires_ms, const char *value,
                         size_t length);
/* store_record_decode - 0, or -1 for a record shorter than its header */
int store_record_decode(const unsigned char *data, size_t length, uint64_t *expires_ms,
                        const char **value, size_t *value_length);
/* store_counter_parse - a counter's text as a number; 0, or -1 when it is not one */
int store_counter_parse(const char *text, size_t length, long long *out);
/* store_ttl_seconds - what is left of an expiry at now, seconds; -1 for never (0) */
double store_ttl_seconds(uint64_t expires_ms, uint64_t now_ms);

/* store_redis_backoff - seconds before reconnection attempt N (0, 1, ...): 0.1 s doubling
 * to at most 30 s. Pure. */
double store_redis_backoff(unsigned attempt);

#endif
