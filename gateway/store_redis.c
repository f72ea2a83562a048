/*
 * store_redis.c - the store's shared backend: one hiredis connection per worker, on the
 * worker's event loop (hiredis's libevent adapter), to the Redis server the store setting
 * names; every gateway that names the same server and database shares the keys.
 *
 * A get and an increment are one EVAL each (the value or count with its time to live, the
 * expiry set only when the counter is new: atomic on the server); a set is SET [PX], a delete
 * DEL. The connection is made on the first request. A connection that fails, is lost, or
 * leaves a request without an answer past store_timeout is logged and made again after a
 * backoff (0.1 s doubling to 30 s); meanwhile requests fail at once with PORTER_STORE_ERROR,
 * so that plugins decide by their on_store_error= instead of waiting.
 * Fatal: out of memory. The server's errors are results, never fatal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "store.h"

/* Requests waiting for the server at once; more fail at once (a stalled server must not make
 * a worker hoard memory). */
#define STORE_REDIS_PENDING_MAX 10000

/* KEYS[1]: the value and its time to live in milliseconds (-1: none), or nil. */
static const char store_redis_get_script[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if not v then return false end "
    "return {v, redis.call('PTTL', KEYS[1])}";
/* KEYS[1] += ARGV[1]; a key without expiry gets ARGV[2] milliseconds (0: none). */
static const char store_redis_increment_script[] =
    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "local t = redis.call('PTTL', KEYS[1]) "
    "if t < 0 and tonumber(ARGV[2]) > 0 then "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) t = tonumber(ARGV[2]) end "
    "return {v, t}";

struct store_redis {
    struct store *store;
    struct store_address address;
    struct event_base *base;
    redisAsyncContext *context;     /* NULL while disconnected */
    bool connected;                 /* the connect callback said yes */
    unsigned attempt;               /* failed connections in a row */
    struct event *retry;            /* the backoff timer */
    bool retry_pending;
    size_t pending;                 /* requests the server has not answered */
    bool closing;
};

static void redis_connect(struct store_redis *r);

/* redis_retry_fired - the backoff is over: connect again */
static void redis_retry_fired(evutil_socket_t fd, short what, void *arg)
{
    struct store_redis *r = arg;
    r->retry_pending = false;
    if (r->context == NULL)
        redis_connect(r);
}

/* redis_lost - the connection failed or ended: log, and connect again after the backoff */
static void redis_lost(struct store_redis *r, const char *event, const char *error)
{
    r->context = NULL;
    r->connected = false;
    if (r->closing)
        return;
    double wait = store_redis_backoff(r->attempt++);
    log_message(PORTER_LOG_WARNING, NULL, "event=%s store=%s error=\"%s\" attempt=%u "
                "retry_in=%.1fs", event, store_log_text(r->store), error, r->attempt, wait);
    struct timeval tv = clock_timeval(wait);
    evtimer_add(r->retry, &tv);
    r->retry_pending = true;
}

/* redis_on_connect - hiredis: the connection is up, or failed (the context is then freed) */
static void redis_on_connect(const redisAsyncContext *context, int status)
{
    struct store_redis *r = context->data;
    if (r == NULL || r->context != context)
        return;
    if (status != REDIS_OK) {
        redis_lost(r, "store_unreachable", context->errstr[0] ? context->errstr : "cannot connect");
        return;
    }
    r->connected = true;
    if (r->attempt > 0)
        log_message(PORTER_LOG_NOTICE, NULL, "event=store_connected store=%s after_attempts=%u",
                    store_log_text(r->store), r->attempt);
    r->attempt = 0;
}

/* redis_on_disconnect - hiredis: an established connection ended (the context is freed) */
static void redis_on_disconnect(const redisAsyncContext *context, int status)
{
    struct store_redis *r = context->data;
    if (r == NULL || r->context != context)
        return;
    redis_lost(r, "store_disconnected",
               status == REDIS_OK ? "closed" : context->errstr[0] ? context->errstr : "lost");
}

/* redis_setup_reply - the answer to AUTH or SELECT: a refusal is logged (the requests that
 * follow fail with the server's NOAUTH or similar) */
static void redis_setup_reply(redisAsyncContext *context, void *reply_pointer, void *privdata)
{
    redisReply *reply = reply_pointer;
    struct store_redis *r = context->data;
    if (r != NULL && reply != NULL && reply->type == REDIS_REPLY_ERROR)
        log_message(PORTER_LOG_ERR, NULL, "event=store_error store=%s operation=%s error=\"%s\"",
                    store_log_text(r->store), (const char *)privdata, reply->str);
}

static void redis_connect(struct store_redis *r)
{
    redisAsyncContext *context = r->address.kind == STORE_REDIS_UNIX
                                     ? redisAsyncConnectUnix(r->address.path)
                                     : redisAsyncConnect(r->address.host, r->address.port);
    if (context == NULL) {
        redis_lost(r, "store_unreachable", "out of memory in hiredis");
        return;
    }
    if (context->err) {
        char error[256];
        snprintf(error, sizeof error, "%s", context->errstr);
        redisAsyncFree(context);
        redis_lost(r, "store_unreachable", error);
        return;
    }
    context->data = r;
    r->context = context;
    r->connected = false;
    redisLibeventAttach(context, r->base);
    redisAsyncSetConnectCallback(context, redis_on_connect);
    redisAsyncSetDisconnectCallback(context, redis_on_disconnect);
    /* Commands given before the connection is up go out as soon as it is. */
    if (r->address.password[0] != '\0') {
        const char *argv[3] = {"AUTH", r->address.user, r->address.password};
        if (r->address.user[0] != '\0')
            redisAsyncCommandArgv(context, redis_setup_reply, "auth", 3, argv, NULL);
        else {
            argv[1] = r->address.password;
            redisAsyncCommandArgv(context, redis_setup_reply, "auth", 2, argv, NULL);
        }
    }
    if (r->address.database != 0) {
        char number[16];
        snprintf(number, sizeof number, "%d", r->address.database);
        const char *argv[2] = {"SELECT", number};
        redisAsyncCommandArgv(context, redis_setup_reply, "select", 2, argv, NULL);
    }
}

/* redis_reply_number - an integer reply (or digits in a string) */
static bool redis_reply_number(const redisReply *reply, long long *out)
{
    if (reply->type == REDIS_REPLY_INTEGER) {
        *out = reply->integer;
        return true;
    }
    return reply->type == REDIS_REPLY_STRING && store_counter_parse(reply->str, reply->len, out) == 0;
}

/* redis_ttl - PTTL milliseconds as store seconds (-1: no expiry) */
static double redis_ttl(long long milliseconds)
{
    return milliseconds < 0 ? -1 : (double)milliseconds / 1000.0;
}

/* redis_reply - hiredis: the server's answer to one request (NULL: the connection is gone) */
static void redis_reply(redisAsyncContext *context, void *reply_pointer, void *privdata)
{
    redisReply *reply = reply_pointer;
    struct store_request *q = privdata;
    struct store_redis *r = context->data;
    if (r != NULL && r->pending > 0)
        r->pending--;
    if (reply == NULL) {
        store_request_fail(q, "connection lost: %s", context->errstr[0] ? context->errstr : "closed");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        store_request_fail(q, "Redis: %.*s", (int)(reply->len < 200 ? reply->len : 200), reply->str);
        return;
    }
    long long number = 0, ttl = -1;
    switch (q->operation) {
    case STORE_GET:
        if (reply->type == REDIS_REPLY_NIL) {
            q->result.status = PORTER_STORE_NOT_FOUND;
            break;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            !redis_reply_number(reply->element[1], &ttl)) {
            store_request_fail(q, "unexpected answer to a get");
            return;
        }
        q->result.status = PORTER_STORE_OK;
        store_request_set_value(q, reply->element[0]->str, reply->element[0]->len);
        q->result.ttl = redis_ttl(ttl);
        break;
    case STORE_INCREMENT:
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            !redis_reply_number(reply->element[0], &number) ||
            !redis_reply_number(reply->element[1], &ttl)) {
            store_request_fail(q, "unexpected answer to an increment");
            return;
        }
        q->result.status = PORTER_STORE_OK;
        q->result.count = number;
        q->result.ttl = redis_ttl(ttl);
        break;
    case STORE_SET:
        q->result.status = PORTER_STORE_OK;
        q->result.ttl = q->ttl > 0 ? q->ttl : -1;
        break;
    case STORE_DELETE:
        q->result.status = PORTER_STORE_OK;
        q->result.count = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
        break;
    default:
        store_request_fail(q, "unknown operation");
        return;
    }
    store_request_finish(q);
}

static void redis_submit(void *backend, struct store_request *q)
{
    struct store_redis *r = backend;
    if (r->context == NULL && !r->retry_pending)
        redis_connect(r);
    if (r->context == NULL) {
        store_request_fail(q, "Redis unreachable (reconnecting; see store_unreachable in the log)");
        return;
    }
    if (r->pending >= STORE_REDIS_PENDING_MAX) {
        store_request_fail(q, "%d requests already wait for Redis", STORE_REDIS_PENDING_MAX);
        return;
    }
    char milliseconds[32], by[32];
    snprintf(milliseconds, sizeof milliseconds, "%llu",
             (unsigned long long)(q->ttl > 0 ? q->ttl * 1000.0 + 0.5 : 0));
    snprintf(by, sizeof by, "%lld", q->by);
    const char *argv[6];
    size_t lengths[6];
    int argc = 0;
#define ARG(text, length) (argv[argc] = (text), lengths[argc++] = (length))
    switch (q->operation) {
    case STORE_GET:
        ARG("EVAL", 4);
        ARG(store_redis_get_script, sizeof store_redis_get_script - 1);
        ARG("1", 1);
        ARG(q->key, q->key_length);
        break;
    case STORE_INCREMENT:
        ARG("EVAL", 4);
        ARG(store_redis_increment_script, sizeof store_redis_increment_script - 1);
        ARG("1", 1);
        ARG(q->key, q->key_length);
        ARG(by, strlen(by));
        ARG(milliseconds, strlen(milliseconds));
        break;
    case STORE_SET:
        ARG("SET", 3);
        ARG(q->key, q->key_length);
        ARG(q->value, q->value_length);
        if (q->ttl > 0) {
            ARG("PX", 2);
            ARG(milliseconds, strlen(milliseconds));
        }
        break;
    case STORE_DELETE:
        ARG("DEL", 3);
        ARG(q->key, q->key_length);
        break;
    default:
        store_request_fail(q, "unknown operation");
        return;
    }
#undef ARG
    if (redisAsyncCommandArgv(r->context, redis_reply, q, argc, argv, lengths) != REDIS_OK) {
        store_request_fail(q, "Redis connection is closing");
        return;
    }
    r->pending++;
}

/* redis_timed_out - a request got no answer in time: the server hangs or the network lost
 * the connection without telling us; start over with a new connection (the requests still
 * waiting fail now) */
static void redis_timed_out(void *backend, struct store_request *q)
{
    struct store_redis *r = backend;
    redisAsyncContext *context = r->context;
    if (context == NULL)
        return;
    r->context = NULL; /* its callbacks during the free below see a stale context */
    r->pending = 0;
    context->data = NULL;
    redisAsyncFree(context);
    redis_lost(r, "store_disconnected", "a request got no answer within store_timeout");
}

static void redis_close(void *backend)
{
    struct store_redis *r = backend;
    r->closing = true;
    if (r->context != NULL) {
        redisAsyncContext *context = r->context;
        r->context = NULL;
        context->data = NULL;
        redisAsyncFree(context); /* pending requests fail: their callbacks run now */
    }
    event_free(r->retry);
    memset(r->address.password, 0, sizeof r->address.password);
    free(r);
}

static void *redis_open(struct store *store, const struct store_address *address,
                        const struct porter_config *config, struct event_base *base,
                        struct thread_pool *pool)
{
    struct store_redis *r = xcalloc(1, sizeof *r);
    r->store = store;
    r->address = *address;
    r->base = base;
    r->retry = evtimer_new(base, redis_retry_fired, r);
    if (r->retry == NULL)
        abort();
    return r;
}

const struct store_backend store_redis_backend = {
    .name = "redis",
    .remote = true,
    .open = redis_open,
    .submit = redis_submit,
    .timed_out = redis_timed_out,
    .close = redis_close,
};
