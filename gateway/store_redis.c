/*
 * store_redis.c - the store's shared backend: one hiredis connection per worker, on the
 * worker's event loop (hiredis's libevent adapter), to the Redis server the store setting
 * names; every gateway that names the same server and database shares the keys.
 *
 * A get and an increment are one script each (the value or count with its time to live, the
 * expiry set only when the counter is new: atomic on the server), sent by its SHA1 (EVALSHA;
 * EVAL when the server has forgotten it); a set is SET [PX], a delete DEL. Increments nobody
 * waits for (background and riding ones) are held until the connection writes, and go as
 * one call of a script that counts up to REDIS_BATCH_KEYS counters, whoever made them: one
 * command for many, on either side (counters are single keys, so this needs one server, not
 * a Redis Cluster, as the store setting names). The connection is made on the first request;
 * the requests of one loop pass go out in one write (see "the connection's events" below).
 * A connection that fails, is lost, or leaves a request without an answer past store_timeout
 * is logged and made again after a backoff (0.1 s doubling to 30 s); meanwhile requests fail
 * at once with PORTER_STORE_ERROR, so that plugins decide by their on_store_error= instead of
 * waiting.
 * Fatal: out of memory. The server's errors are results, never fatal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "store.h"

/* Requests waiting for the server at once; more fail at once (a stalled server must not make
 * a worker hoard memory). */
#define STORE_REDIS_PENDING_MAX 10000
/* Counters one call of the batch script counts at most. */
#define REDIS_BATCH_KEYS 64

/* The scripts, sent by their SHA1 (EVALSHA): the server keeps scripts it has seen (SCRIPT
 * LOAD on every connection) until it restarts or is told SCRIPT FLUSH; a request that meets
 * NOSCRIPT is sent again with the script's body (EVAL, which the server keeps again). */
struct redis_script {
    const char *body;
    size_t length;
    char sha1[41];                  /* hex, filled once (redis_scripts_hash) */
};
enum { REDIS_SCRIPT_GET = 0, REDIS_SCRIPT_INCREMENT, REDIS_SCRIPT_INCREMENTS, REDIS_SCRIPT_COUNT };
#define REDIS_SCRIPT(text) {text, sizeof text - 1, ""}
static struct redis_script redis_scripts[REDIS_SCRIPT_COUNT] = {
    /* KEYS[1]: the value and its time to live in milliseconds (-1: none), or nil. */
    [REDIS_SCRIPT_GET] = REDIS_SCRIPT("local v = redis.call('GET', KEYS[1]) "
                                      "if not v then return false end "
                                      "return {v, redis.call('PTTL', KEYS[1])}"),
    /* KEYS[1] += ARGV[1]; a key without expiry gets ARGV[2] milliseconds (0: none). */
    [REDIS_SCRIPT_INCREMENT] = REDIS_SCRIPT("local v = redis.call('INCRBY', KEYS[1], ARGV[1]) "
                                            "local t = redis.call('PTTL', KEYS[1]) "
                                            "if t < 0 and tonumber(ARGV[2]) > 0 then "
                                            "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
                                            "t = tonumber(ARGV[2]) end "
                                            "return {v, t}"),
    /* The same for each KEYS[i], by ARGV[2i-1] with ARGV[2i] milliseconds: {v1, t1, v2, ...};
     * a key that cannot count (not a number) answers its error, the others count all the same. */
    [REDIS_SCRIPT_INCREMENTS] = REDIS_SCRIPT("local out = {} "
                                             "for i, key in ipairs(KEYS) do "
                                             "local ttl = tonumber(ARGV[2 * i]) "
                                             "local v = redis.pcall('INCRBY', key, "
                                             "ARGV[2 * i - 1]) "
                                             "local t = -1 "
                                             "if type(v) ~= 'table' then "
                                             "t = redis.call('PTTL', key) "
                                             "if t < 0 and ttl > 0 then "
                                             "redis.call('PEXPIRE', key, ttl) t = ttl end end "
                                             "out[2 * i - 1] = v out[2 * i] = t end "
                                             "return out"),
};

/* redis_scripts_hash - each script's SHA1 in hex, as Redis names it (once per process) */
static void redis_scripts_hash(void)
{
    for (int i = 0; i < REDIS_SCRIPT_COUNT; i++) {
        struct redis_script *script = &redis_scripts[i];
        if (script->sha1[0] != '\0')
            continue;
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        if (EVP_Digest(script->body, script->length, digest, &length, EVP_sha1(), NULL) != 1 ||
            length != 20)
            abort();
        for (unsigned j = 0; j < length; j++)
            snprintf(script->sha1 + 2 * j, 3, "%02x", digest[j]);
    }
}

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
    /* increments nobody waits for, not handed to hiredis yet (redis_batch_send) */
    struct store_request **batch;
    size_t batch_count, batch_size;
};

/* One call of the batch script: its requests, in KEYS order. */
struct redis_batch {
    size_t count;
    struct store_request *requests[];
};

static void redis_connect(struct store_redis *r);
static bool redis_send(struct store_redis *r, struct store_request *q);
static void redis_batch_send(struct store_redis *r);

/* ---------------------------------------------------------------- the connection's events */

/*
 * hiredis's own libevent adapter (hiredis/adapters/libevent.h) re-adds a one-shot read event
 * after every reply and waits for the socket to be writable before every command: four
 * epoll_ctl calls and one more loop turn per request, most of a request's cost on a
 * loopback Redis. These events do the same job with fewer system calls: the read event stays
 * added (persistent); a command on an established connection is written at the end of the
 * current loop pass (the flush event, activated without a system call, so that the commands
 * of one pass go out in one write); only a write that could not finish, or a connection still
 * being made, waits for writability. A command nobody waits for (a background request: a
 * counter given back at disconnect), or whose answer nobody needs soon (a riding request:
 * counts made at connect), is held up to REDIS_LINGER for a command somebody waits for, and
 * goes out in its write: one wakeup less on each side per such command. Closing, and
 * store_flush (a hook began to wait), write what is held.
 */
#define REDIS_LINGER 0.02
struct redis_events {
    redisAsyncContext *context;
    struct event *read;             /* persistent, added while hiredis reads */
    struct event *write;            /* persistent, added while a write waits for the socket */
    struct event *flush;            /* no descriptor: activated to write this loop pass */
    struct event *linger;           /* a timer: background commands held back are written */
    bool reading, writing, flushing, lingering;
    bool background_command;        /* the command being added is a background one */
    bool batching;                  /* the held increments go to hiredis: no write to plan */
    bool in_write;                  /* inside redisAsyncHandleWrite (from write or flush) */
    bool freed;                     /* hiredis let go of us inside redisAsyncHandleWrite */
};

static void redis_events_free(struct redis_events *e)
{
    event_free(e->read);
    event_free(e->write);
    event_free(e->flush);
    event_free(e->linger);
    free(e);
}

static void redis_events_read(evutil_socket_t fd, short what, void *arg)
{
    struct redis_events *e = arg;
    redisAsyncHandleRead(e->context); /* may free e (the cleanup below) */
}

/* redis_events_write - the socket is writable, or the flush event runs: write what hiredis
 * holds (hiredis asks for writability again through add_write when it could not finish) */
static void redis_events_write(evutil_socket_t fd, short what, void *arg)
{
    struct redis_events *e = arg;
    e->flushing = false;
    if (e->lingering) {
        event_del(e->linger);
        e->lingering = false;
    }
    struct store_redis *r = e->context->data;
    if (r != NULL && r->batch_count > 0 && (e->context->c.flags & REDIS_CONNECTED)) {
        e->batching = true;
        redis_batch_send(r); /* the held increments go out in this write */
        e->batching = false;
    }
    e->in_write = true;
    redisAsyncHandleWrite(e->context);
    if (e->freed)
        redis_events_free(e);
    else
        e->in_write = false;
}

static void redis_events_add_read(void *arg)
{
    struct redis_events *e = arg;
    if (!e->reading && event_add(e->read, NULL) == 0)
        e->reading = true;
}

static void redis_events_del_read(void *arg)
{
    struct redis_events *e = arg;
    if (e->reading && event_del(e->read) == 0)
        e->reading = false;
}

/* redis_events_write_this_pass - what hiredis holds is written at the end of this loop pass
 * (the flush event, activated without a system call) */
static void redis_events_write_this_pass(struct redis_events *e)
{
    if (!e->flushing) {
        e->flushing = true;
        event_active(e->flush, EV_WRITE, 0);
    }
}

/* redis_events_add_write - hiredis has bytes to write: a new command on an established
 * connection is written this loop pass; otherwise wait for writability (a write that could
 * not finish, a connection being made) */
static void redis_events_add_write(void *arg)
{
    struct redis_events *e = arg;
    if (e->batching)
        return; /* the write that drains the batch follows at once */
    if (!e->in_write && (e->context->c.flags & REDIS_CONNECTED) && !e->writing) {
        if (e->background_command && !e->flushing) {
            if (!e->lingering) {
                struct timeval tv = clock_timeval(REDIS_LINGER);
                evtimer_add(e->linger, &tv);
                e->lingering = true;
            }
            return;
        }
        redis_events_write_this_pass(e);
        return;
    }
    if (!e->writing && event_add(e->write, NULL) == 0)
        e->writing = true;
}

static void redis_events_del_write(void *arg)
{
    struct redis_events *e = arg;
    if (e->writing && event_del(e->write) == 0)
        e->writing = false;
}

/* redis_events_hold - an increment was held back for the batch: write it when the connection
 * next writes, REDIS_LINGER at the latest */
static void redis_events_hold(struct redis_events *e)
{
    e->background_command = true;
    redis_events_add_write(e);
    e->background_command = false;
}

/* redis_events_cleanup - hiredis frees the context: free the events (after the write
 * callback we may be inside has returned) */
static void redis_events_cleanup(void *arg)
{
    struct redis_events *e = arg;
    event_del(e->read);
    event_del(e->write);
    event_del(e->flush);
    event_del(e->linger);
    if (e->in_write)
        e->freed = true;
    else
        redis_events_free(e);
}

/* redis_events_flush - write what is held back this loop pass */
static void redis_events_flush(struct redis_events *e)
{
    if (e->lingering && !e->in_write)
        redis_events_write_this_pass(e);
}

/* redis_events_attach - put a new (connecting) context on the loop */
static void redis_events_attach(redisAsyncContext *context, struct event_base *base)
{
    struct redis_events *e = xcalloc(1, sizeof *e);
    e->context = context;
    e->read = event_new(base, context->c.fd, EV_READ | EV_PERSIST, redis_events_read, e);
    e->write = event_new(base, context->c.fd, EV_WRITE | EV_PERSIST, redis_events_write, e);
    e->flush = event_new(base, -1, 0, redis_events_write, e);
    e->linger = evtimer_new(base, redis_events_write, e);
    if (e->read == NULL || e->write == NULL || e->flush == NULL || e->linger == NULL)
        abort();
    context->ev.data = e;
    context->ev.addRead = redis_events_add_read;
    context->ev.delRead = redis_events_del_read;
    context->ev.addWrite = redis_events_add_write;
    context->ev.delWrite = redis_events_del_write;
    context->ev.cleanup = redis_events_cleanup;
    redis_events_add_read(e);
    redis_events_add_write(e); /* the connection's completion shows as writability */
}


/* redis_retry_fired - the backoff is over: connect again */
static void redis_retry_fired(evutil_socket_t fd, short what, void *arg)
{
    struct store_redis *r = arg;
    r->retry_pending = false;
    if (r->context == NULL)
        redis_connect(r);
}

/* redis_unsent_fail - requests counted as pending that will not go out: fail each */
static void redis_unsent_fail(struct store_redis *r, struct store_request *const *requests,
                              size_t count, const char *error)
{
    for (size_t i = 0; i < count; i++) {
        if (r->pending > 0)
            r->pending--;
        store_request_fail(requests[i], "%s", error);
    }
}

/* redis_batch_fail - the held increments will not go out (the connection is gone) */
static void redis_batch_fail(struct store_redis *r, const char *error)
{
    size_t count = r->batch_count;
    r->batch_count = 0;
    redis_unsent_fail(r, r->batch, count, error);
}

/* redis_lost - the connection failed or ended: log, and connect again after the backoff */
static void redis_lost(struct store_redis *r, const char *event, const char *error)
{
    r->context = NULL;
    r->connected = false;
    redis_batch_fail(r, "connection lost before the request went out");
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

/* redis_setup_reply - the answer to AUTH, SELECT or SCRIPT LOAD: a refusal is logged (the
 * requests that follow fail with the server's NOAUTH or similar; without SCRIPT LOAD they
 * meet NOSCRIPT and are sent again with the script's body) */
static void redis_setup_reply(redisAsyncContext *context, void *reply_pointer, void *privdata)
{
    redisReply *reply = reply_pointer;
    struct store_redis *r = context->data;
    if (r == NULL || reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    char error[300];
    log_value(error, sizeof error, reply->str);
    bool script = strcmp(privdata, "script_load") == 0; /* not fatal: requests go by EVAL */
    log_message(script ? PORTER_LOG_WARNING : PORTER_LOG_ERR, NULL, "event=store_error store=%s "
                "operation=%s error=%s%s", store_log_text(r->store), (const char *)privdata, error,
                script ? " action=eval" : "");
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
    redis_events_attach(context, r->base);
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
    for (int i = 0; i < REDIS_SCRIPT_COUNT; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", redis_scripts[i].body};
        size_t lengths[3] = {6, 4, redis_scripts[i].length};
        redisAsyncCommandArgv(context, redis_setup_reply, "script_load", 3, argv, lengths);
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

/* redis_error_fail - fail q with the server's error reply (its first 200 bytes) */
static void redis_error_fail(struct store_request *q, const redisReply *error)
{
    store_request_fail(q, "Redis: %.*s", (int)(error->len < 200 ? error->len : 200), error->str);
}

/* redis_counted - an increment's answer: the count and its time to live (finishes q) */
static void redis_counted(struct store_request *q, const redisReply *count, const redisReply *ttl)
{
    long long number = 0, milliseconds = -1;
    if (count->type == REDIS_REPLY_ERROR) { /* this key's own error, in a batch */
        redis_error_fail(q, count);
        return;
    }
    if (!redis_reply_number(count, &number) || !redis_reply_number(ttl, &milliseconds)) {
        store_request_fail(q, "unexpected answer to an increment");
        return;
    }
    q->result.status = PORTER_STORE_OK;
    q->result.count = number;
    q->result.ttl = redis_ttl(milliseconds);
    store_request_finish(q);
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
    if (reply->type == REDIS_REPLY_ERROR && !q->script_body && r != NULL &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* The server forgot the script (restarted, SCRIPT FLUSH): once more with its body. */
        q->script_body = true;
        if (!redis_send(r, q))
            store_request_fail(q, "Redis connection is closing");
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        redis_error_fail(q, reply);
        return;
    }
    long long ttl = -1;
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
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
            store_request_fail(q, "unexpected answer to an increment");
            return;
        }
        redis_counted(q, reply->element[0], reply->element[1]);
        return;
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

/* redis_milliseconds - q's time to live as the decimal milliseconds Redis takes (0: none) */
static void redis_milliseconds(const struct store_request *q, char *out, size_t size)
{
    snprintf(out, size, "%llu", (unsigned long long)(q->ttl > 0 ? q->ttl * 1000.0 + 0.5 : 0));
}

/* redis_send - one request to the server: EVALSHA (EVAL once the server said NOSCRIPT), SET
 * or DEL; false when hiredis refuses it (the connection is going away) */
static bool redis_send(struct store_redis *r, struct store_request *q)
{
    char milliseconds[32], by[32];
    redis_milliseconds(q, milliseconds, sizeof milliseconds);
    snprintf(by, sizeof by, "%lld", q->by);
    const char *argv[6];
    size_t lengths[6];
    int argc = 0;
#define ARG(text, length) (argv[argc] = (text), lengths[argc++] = (length))
    if (q->operation == STORE_GET || q->operation == STORE_INCREMENT) {
        const struct redis_script *script =
            &redis_scripts[q->operation == STORE_GET ? REDIS_SCRIPT_GET : REDIS_SCRIPT_INCREMENT];
        if (q->script_body) {
            ARG("EVAL", 4);
            ARG(script->body, script->length);
        } else {
            ARG("EVALSHA", 7);
            ARG(script->sha1, 40);
        }
        ARG("1", 1);
        ARG(q->key, q->key_length);
        if (q->operation == STORE_INCREMENT) {
            ARG(by, strlen(by));
            ARG(milliseconds, strlen(milliseconds));
        }
    } else if (q->operation == STORE_SET) {
        ARG("SET", 3);
        ARG(q->key, q->key_length);
        ARG(q->value, q->value_length);
        if (q->ttl > 0) {
            ARG("PX", 2);
            ARG(milliseconds, strlen(milliseconds));
        }
    } else {
        ARG("DEL", 3);
        ARG(q->key, q->key_length);
    }
#undef ARG
    struct redis_events *e = r->context->ev.data;
    e->background_command = q->done == NULL || q->rides;
    int rc = redisAsyncCommandArgv(r->context, redis_reply, q, argc, argv, lengths);
    e->background_command = false;
    if (rc != REDIS_OK)
        return false;
    r->pending++;
    return true;
}

/* redis_batch_reply - hiredis: the answer to one call of the batch script (NULL: the
 * connection is gone); a server that forgot the script gets each increment again alone */
static void redis_batch_reply(redisAsyncContext *context, void *reply_pointer, void *privdata)
{
    redisReply *reply = reply_pointer;
    struct redis_batch *b = privdata;
    struct store_redis *r = context->data;
    if (r != NULL)
        r->pending = r->pending > b->count ? r->pending - b->count : 0;
    bool whole = reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
                 reply->elements == 2 * b->count;
    bool forgotten = reply != NULL && reply->type == REDIS_REPLY_ERROR && r != NULL &&
                     strncmp(reply->str, "NOSCRIPT", 8) == 0;
    if (forgotten) { /* teach it the batch script again, for the batches to come */
        const struct redis_script *script = &redis_scripts[REDIS_SCRIPT_INCREMENTS];
        const char *argv[3] = {"SCRIPT", "LOAD", script->body};
        size_t lengths[3] = {6, 4, script->length};
        redisAsyncCommandArgv(context, redis_setup_reply, "script_load", 3, argv, lengths);
    }
    for (size_t i = 0; i < b->count; i++) {
        struct store_request *q = b->requests[i];
        if (whole)
            redis_counted(q, reply->element[2 * i], reply->element[2 * i + 1]);
        else if (forgotten) {
            q->script_body = true;
            q->rides = false; /* alone, with the script's body (which the server keeps again) */
            if (!redis_send(r, q))
                store_request_fail(q, "Redis connection is closing");
        } else if (reply == NULL)
            store_request_fail(q, "connection lost: %s",
                               context->errstr[0] ? context->errstr : "closed");
        else if (reply->type == REDIS_REPLY_ERROR)
            redis_error_fail(q, reply);
        else
            store_request_fail(q, "unexpected answer to increments");
    }
    free(b);
}

/* redis_batch_send - the held increments to hiredis, REDIS_BATCH_KEYS to a call of the batch
 * script (each request's key, then its by and milliseconds); they go out in this write */
static void redis_batch_send(struct store_redis *r)
{
    const struct redis_script *script = &redis_scripts[REDIS_SCRIPT_INCREMENTS];
    size_t done = 0;
    while (done < r->batch_count) {
        size_t count = r->batch_count - done < REDIS_BATCH_KEYS ? r->batch_count - done
                                                                : REDIS_BATCH_KEYS;
        struct redis_batch *b = xmalloc(sizeof *b + count * sizeof b->requests[0]);
        b->count = count;
        size_t argc = 3 + 3 * count;
        const char **argv = xmalloc(argc * sizeof *argv);
        size_t *lengths = xmalloc(argc * sizeof *lengths);
        char (*numbers)[2][24] = xmalloc(count * sizeof *numbers);
        char key_count[24];
        snprintf(key_count, sizeof key_count, "%zu", count);
        argv[0] = "EVALSHA", lengths[0] = 7;
        argv[1] = script->sha1, lengths[1] = 40;
        argv[2] = key_count, lengths[2] = strlen(key_count);
        for (size_t i = 0; i < count; i++) {
            struct store_request *q = r->batch[done + i];
            b->requests[i] = q;
            argv[3 + i] = q->key, lengths[3 + i] = q->key_length;
            snprintf(numbers[i][0], sizeof numbers[i][0], "%lld", q->by);
            redis_milliseconds(q, numbers[i][1], sizeof numbers[i][1]);
            argv[3 + count + 2 * i] = numbers[i][0];
            lengths[3 + count + 2 * i] = strlen(numbers[i][0]);
            argv[4 + count + 2 * i] = numbers[i][1];
            lengths[4 + count + 2 * i] = strlen(numbers[i][1]);
        }
        int rc = redisAsyncCommandArgv(r->context, redis_batch_reply, b, (int)argc, argv, lengths);
        free(argv);
        free(lengths);
        free(numbers);
        done += count;
        if (rc != REDIS_OK) {
            redis_unsent_fail(r, b->requests, count, "Redis connection is closing");
            free(b);
        }
    }
    r->batch_count = 0;
}

/* redis_batch_hold - an increment nobody waits for waits for the connection's next write */
static void redis_batch_hold(struct store_redis *r, struct store_request *q)
{
    if (r->batch_count == r->batch_size) {
        r->batch_size = r->batch_size ? 2 * r->batch_size : 64;
        r->batch = xrealloc(r->batch, r->batch_size * sizeof *r->batch);
    }
    r->batch[r->batch_count++] = q;
    r->pending++;
    redis_events_hold(r->context->ev.data);
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
    if (q->operation >= STORE_OPERATION_COUNT) {
        store_request_fail(q, "unknown operation");
        return;
    }
    if (q->operation == STORE_INCREMENT && (q->done == NULL || q->rides) && r->connected) {
        redis_batch_hold(r, q);
        return;
    }
    if (r->batch_count > 0 && r->connected)
        redis_batch_send(r); /* what was held goes first, in the same write */
    if (!redis_send(r, q))
        store_request_fail(q, "Redis connection is closing");
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
    context->data = NULL;
    redisAsyncFree(context);
    redis_lost(r, "store_disconnected", "a request got no answer within store_timeout");
    r->pending = 0;
}

static void redis_close(void *backend)
{
    struct store_redis *r = backend;
    r->closing = true;
    struct redis_events *e = r->context != NULL ? r->context->ev.data : NULL;
    if (e != NULL && (e->lingering || r->batch_count > 0))
        redis_events_write(-1, 0, e); /* background commands held back: out before we go */
    redis_batch_fail(r, "the store is closing"); /* those that could not go */
    if (r->context != NULL) {
        redisAsyncContext *context = r->context;
        r->context = NULL;
        context->data = NULL;
        redisAsyncFree(context); /* pending requests fail: their callbacks run now */
    }
    event_free(r->retry);
    memset(r->address.password, 0, sizeof r->address.password);
    free(r->batch);
    free(r);
}

static void *redis_open(struct store *store, const struct store_address *address,
                        const struct porter_config *config, struct event_base *base,
                        struct thread_pool *pool)
{
    struct store_redis *r = xcalloc(1, sizeof *r);
    redis_scripts_hash();
    r->store = store;
    r->address = *address;
    r->base = base;
    r->retry = evtimer_new(base, redis_retry_fired, r);
    if (r->retry == NULL)
        abort();
    return r;
}

/* redis_flush - store_flush: what is held back goes out this loop pass */
static void redis_flush(void *backend)
{
    struct store_redis *r = backend;
    if (r->context != NULL && r->context->ev.data != NULL)
        redis_events_flush(r->context->ev.data);
}

const struct store_backend store_redis_backend = {
    .name = "redis",
    .remote = true,
    .open = redis_open,
    .submit = redis_submit,
    .timed_out = redis_timed_out,
    .close = redis_close,
    .flush = redis_flush,
};
