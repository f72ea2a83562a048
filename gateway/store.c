/*
 * store.c - the store's dispatch: the store setting, the backend chosen from it (opened on the
 * first request), each request's deadline, and the delivery of outcomes on the loop.
 *
 * Outcomes never reach done inside store_submit: a finished request goes on the ready list and
 * one event per store delivers the list on the loop (the LMDB backend answers at once; a
 * plugin's hook must have returned PENDING first). libevent runs an event activated from a
 * callback in the same pass over the active events, so a Redis reply costs no extra loop turn.
 * A remote backend's request that passes store_timeout is answered with PORTER_STORE_ERROR;
 * the backend still finishes it later, and only then is it freed. Every remote request has the
 * same timeout, so the order of submission is the order of deadlines: the unanswered requests
 * wait on one list in that order, under one timer set for the oldest (no timer per request).
 * See store.h for the interface.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "store.h"

struct store {
    struct store_address address;
    char log_text[400];
    const struct store_backend *backend;
    void *state;                   /* the backend's, once opened */
    bool opened;                   /* open was tried */
    double timeout;
    const struct porter_config *config;
    struct event_base *base;
    struct thread_pool *pool;
    struct event *ready_event;
    struct store_request *ready_head, *ready_tail;
    bool closing;                  /* store_free: the backend's close fails what is out */
    unsigned long unconfirmed;     /* background requests written, never answered, at close */
    struct event *deadline_timer;  /* set for the oldest waiting request, or not at all */
    bool deadline_armed;
    struct store_request *waiting_head, *waiting_tail; /* remote, unanswered, oldest first */
};

static const char *const store_operation_names[STORE_OPERATION_COUNT] = {"get", "set",
                                                                          "increment", "delete"};
static const char *const store_status_names[PORTER_STORE_STATUS_COUNT] = {"ok", "not_found",
                                                                          "error"};

const char *store_operation_name(enum store_operation operation)
{
    return operation < STORE_OPERATION_COUNT ? store_operation_names[operation] : "?";
}

const char *store_status_name(int status)
{
    return status >= 0 && status < PORTER_STORE_STATUS_COUNT ? store_status_names[status] : "?";
}

uint64_t store_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

double store_ttl_seconds(uint64_t expires_ms, uint64_t now_ms)
{
    if (expires_ms == 0)
        return -1;
    return expires_ms > now_ms ? (double)(expires_ms - now_ms) / 1000.0 : 0;
}

double store_redis_backoff(unsigned attempt)
{
    double seconds = 0.1;
    for (unsigned i = 0; i < attempt && seconds < 30; i++)
        seconds *= 2;
    return seconds < 30 ? seconds : 30;
}

/* ---------------------------------------------------------------- the setting */

/* store_copy - text[0..length) into out; false when it does not fit */
static bool store_copy(char *out, size_t size, const char *text, size_t length)
{
    if (length >= size)
        return false;
    memcpy(out, text, length);
    out[length] = '\0';
    return true;
}

/* store_number - digits [text, end) as an int in [minimum, maximum]; -1 when not */
static int store_number(const char *text, const char *end, int minimum, int maximum)
{
    if (text == end || end - text > 9)
        return -1;
    int value = 0;
    for (const char *p = text; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (*p - '0');
    }
    return value >= minimum && value <= maximum ? value : -1;
}

/* store_credentials - "[USER]:PASSWORD@" at the start of *text, consumed; 0 or -1 */
static int store_credentials(const char **text, struct store_address *out)
{
    const char *at = strchr(*text, '@');
    const char *slash = strchr(*text, '/');
    if (at == NULL || (slash != NULL && slash < at && out->kind == STORE_REDIS_TCP))
        return 0;
    const char *colon = memchr(*text, ':', (size_t)(at - *text));
    if (colon == NULL)
        return -1;
    if (!store_copy(out->user, sizeof out->user, *text, (size_t)(colon - *text)) ||
        !store_copy(out->password, sizeof out->password, colon + 1, (size_t)(at - colon - 1)))
        return -1;
    *text = at + 1;
    return 0;
}

#define STORE_FAIL(...)                                                                       \
    do {                                                                                       \
        snprintf(error, error_size, __VA_ARGS__);                                             \
        return -1;                                                                             \
    } while (0)

int store_address_parse(const char *text, struct store_address *out, char *error,
                        size_t error_size)
{
    memset(out, 0, sizeof *out);
    if (text == NULL || strcmp(text, "lmdb") == 0) {
        out->kind = STORE_LMDB;
        return 0;
    }
    static const char tcp[] = "redis://", unix_scheme[] = "redis+unix://";
    if (strncmp(text, unix_scheme, sizeof unix_scheme - 1) == 0) {
        out->kind = STORE_REDIS_UNIX;
        const char *rest = text + sizeof unix_scheme - 1;
        if (store_credentials(&rest, out) != 0)
            STORE_FAIL("bad credentials in %s (want [USER]:PASSWORD@)", text);
        if (rest[0] != '/')
            STORE_FAIL("%s: want redis+unix:///PATH (an absolute socket path)", text);
        const char *query = strchr(rest, '?');
        size_t length = query != NULL ? (size_t)(query - rest) : strlen(rest);
        if (!store_copy(out->path, sizeof out->path, rest, length) || length < 2)
            STORE_FAIL("%s: the socket path is empty or longer than %zu bytes", text,
                       sizeof out->path - 1);
        if (query != NULL) {
            if (strncmp(query, "?db=", 4) != 0 ||
                (out->database = store_number(query + 4, query + strlen(query), 0, 1000000)) < 0)
                STORE_FAIL("%s: want ?db=NUMBER after the path", text);
        }
        return 0;
    }
    if (strncmp(text, tcp, sizeof tcp - 1) != 0)
        STORE_FAIL("%s is not lmdb, redis://HOST:PORT/DB or redis+unix:///PATH", text);
    out->kind = STORE_REDIS_TCP;
    out->port = 6379;
    const char *rest = text + sizeof tcp - 1;
    if (store_credentials(&rest, out) != 0)
        STORE_FAIL("bad credentials in %s (want [USER]:PASSWORD@)", text);
    const char *host_end;
    const char *after;
    if (rest[0] == '[') {
        host_end = strchr(rest, ']');
        if (host_end == NULL)
            STORE_FAIL("%s: unclosed [ in the host", text);
        if (!store_copy(out->host, sizeof out->host, rest + 1, (size_t)(host_end - rest - 1)))
            STORE_FAIL("%s: host too long", text);
        after = host_end + 1;
    } else {
        host_end = rest + strcspn(rest, ":/");
        if (!store_copy(out->host, sizeof out->host, rest, (size_t)(host_end - rest)))
            STORE_FAIL("%s: host too long", text);
        after = host_end;
    }
    if (out->host[0] == '\0')
        STORE_FAIL("%s: no host", text);
    for (const char *p = out->host; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == '@' || *p == '?' || *p == '#')
            STORE_FAIL("%s: bad character in the host", text);
    if (*after == ':') {
        const char *port_end = after + 1 + strcspn(after + 1, "/");
        if ((out->port = store_number(after + 1, port_end, 1, 65535)) < 0)
            STORE_FAIL("%s: the port is not a number from 1 to 65535", text);
        after = port_end;
    }
    if (*after == '/' && after[1] != '\0') {
        if ((out->database = store_number(after + 1, after + strlen(after), 0, 1000000)) < 0)
            STORE_FAIL("%s: the database after / is not a number", text);
    } else if (*after != '\0' && strcmp(after, "/") != 0) {
        STORE_FAIL("%s: unexpected text after the host", text);
    }
    return 0;
}

void store_address_text(const struct store_address *a, char *out, size_t size)
{
    const char *secret = a->password[0] != '\0' ? ":***@" : "";
    switch (a->kind) {
    case STORE_REDIS_TCP:
        snprintf(out, size, "redis://%s%s%s%s:%d/%d", secret, strchr(a->host, ':') ? "[" : "",
                 a->host, strchr(a->host, ':') ? "]" : "", a->port, a->database);
        break;
    case STORE_REDIS_UNIX:
        snprintf(out, size, "redis+unix://%s%s?db=%d", secret, a->path, a->database);
        break;
    default:
        snprintf(out, size, "lmdb");
        break;
    }
}

/* ---------------------------------------------------------------- requests */

static void store_request_free(struct store_request *r)
{
    free(r->result_value);
    free(r->error);
    free(r);
}

/* store_waiting_remove - off the deadline list (answered, or past its deadline) */
static void store_waiting_remove(struct store_request *r)
{
    struct store *store = r->store;
    if (!r->waiting)
        return;
    r->waiting = false;
    if (r->waiting_previous != NULL)
        r->waiting_previous->waiting_next = r->waiting_next;
    else
        store->waiting_head = r->waiting_next;
    if (r->waiting_next != NULL)
        r->waiting_next->waiting_previous = r->waiting_previous;
    else
        store->waiting_tail = r->waiting_previous;
    r->waiting_previous = r->waiting_next = NULL;
}

/* store_deadline_arm - the timer for the oldest waiting request, unless it is set already
 * (then for an earlier or the same deadline: it sets itself again when it fires early) */
static void store_deadline_arm(struct store *store, double now)
{
    if (store->deadline_armed || store->waiting_head == NULL)
        return;
    struct timeval tv = clock_timeval(store->waiting_head->deadline - now);
    evtimer_add(store->deadline_timer, &tv);
    store->deadline_armed = true;
}

/* store_deliver - one finished request: its done (unless cancelled or answered by the
 * deadline), a log line for a failed background request, then free */
static void store_deliver(struct store_request *r)
{
    if (r->result.status == PORTER_STORE_ERROR)
        r->result.error = r->error != NULL && r->error[0] != '\0' ? r->error : "unknown error";
    if (r->done != NULL) {
        store_done_fn done = r->done;
        r->done = NULL;
        done(&r->result, r->arg);
    } else if (r->background && r->result.status == PORTER_STORE_ERROR && r->store->closing) {
        r->store->unconfirmed++; /* most reached the server: one line for them all */
    } else if (r->background && r->result.status == PORTER_STORE_ERROR) {
        log_message(PORTER_LOG_WARNING, NULL, "event=store_error store=%s operation=%s "
                    "error=\"%s\" waiting=none", r->store->log_text,
                    store_operation_name(r->operation), r->result.error);
    }
    store_request_free(r);
}

/* store_ready - the ready event: deliver what is finished (the list may grow meanwhile) */
static void store_ready(evutil_socket_t fd, short what, void *arg)
{
    struct store *store = arg;
    struct store_request *list = store->ready_head;
    store->ready_head = store->ready_tail = NULL;
    while (list != NULL) {
        struct store_request *next = list->next;
        store_deliver(list);
        list = next;
    }
}

void store_request_set_value(struct store_request *r, const char *value, size_t length)
{
    free(r->result_value);
    r->result_value = NULL;
    char *copy = r->result_inline;
    if (length >= sizeof r->result_inline)
        copy = r->result_value = xmalloc(length + 1);
    memcpy(copy, value, length);
    copy[length] = '\0';
    r->result.value = copy;
    r->result.length = length;
}

void store_request_finish(struct store_request *r)
{
    struct store *store = r->store;
    if (r->finished) {
        log_message(PORTER_LOG_ERR, NULL, "event=internal_error error=\"store request finished "
                    "twice\" file=%s line=%d", __FILE__, __LINE__);
        abort();
    }
    r->finished = true;
    store_waiting_remove(r);
    r->next = NULL;
    if (store->ready_tail != NULL)
        store->ready_tail->next = r;
    else
        store->ready_head = r;
    store->ready_tail = r;
    event_active(store->ready_event, EV_READ, 0);
}

void store_request_fail(struct store_request *r, const char *format, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, format);
    vsnprintf(text, sizeof text, format, ap);
    va_end(ap);
    free(r->error);
    r->error = xstrdup(text);
    for (char *p = r->error; *p != '\0'; p++)
        if (*p == '"' || (unsigned char)*p < ' ')
            *p = *p == '"' ? '\'' : ' ';
    r->result.status = PORTER_STORE_ERROR;
    r->result.value = NULL;
    r->result.length = 0;
    store_request_finish(r);
}

const char *store_log_text(const struct store *store)
{
    return store->log_text;
}

/* store_expire - a remote request got no answer in time: answer it with an error now; the
 * backend still finishes it (then it is freed) */
static void store_expire(struct store *store, struct store_request *r)
{
    struct porter_store_result result = {.status = PORTER_STORE_ERROR, .ttl = -1};
    char error[128];
    snprintf(error, sizeof error, "no answer within store_timeout (%.3gs)", store->timeout);
    result.error = error;
    log_message(PORTER_LOG_WARNING, NULL, "event=store_timeout store=%s operation=%s "
                "timeout=%.3gs", store->log_text, store_operation_name(r->operation),
                store->timeout);
    if (r->done != NULL) {
        store_done_fn done = r->done;
        r->done = NULL;
        done(&result, r->arg);
    }
    r->background = false; /* logged now */
    if (store->backend->timed_out != NULL && store->state != NULL)
        store->backend->timed_out(store->state, r);
}

/* store_deadline - the timer: expire the requests past their deadline, oldest first (an
 * expiry may finish others, and a done may submit new ones: the list is read again each
 * time), then set the timer for the oldest left */
static void store_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct store *store = arg;
    store->deadline_armed = true; /* a done below that submits does not set it meanwhile */
    double now = clock_monotonic();
    struct store_request *r;
    /* A millisecond of slack: libevent may fire a hair before our clock says so. */
    while ((r = store->waiting_head) != NULL && r->deadline <= now + 0.001) {
        store_waiting_remove(r);
        store_expire(store, r);
    }
    store->deadline_armed = false;
    store_deadline_arm(store, clock_monotonic());
}

/* ---------------------------------------------------------------- the store */

struct store *store_new(const struct porter_config *config, struct event_base *base,
                        struct thread_pool *pool)
{
    struct store *store = xcalloc(1, sizeof *store);
    char error[256];
    if (store_address_parse(config->store, &store->address, error, sizeof error) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=store_error error=\"%s\"", error);
        free(store);
        return NULL;
    }
    store_address_text(&store->address, store->log_text, sizeof store->log_text);
    store->backend = store->address.kind == STORE_LMDB ? &store_lmdb_backend : &store_redis_backend;
    store->timeout = config->store_timeout;
    store->config = config;
    store->base = base;
    store->pool = pool;
    store->ready_event = event_new(base, -1, 0, store_ready, store);
    store->deadline_timer = evtimer_new(base, store_deadline, store);
    if (store->ready_event == NULL || store->deadline_timer == NULL)
        abort();
    return store;
}

void store_free(struct store *store)
{
    if (store == NULL)
        return;
    store->closing = true;
    if (store->state != NULL)
        store->backend->close(store->state);
    store_ready(-1, 0, store); /* what close finished */
    if (store->unconfirmed > 0)
        log_message(PORTER_LOG_INFO, NULL, "event=store_closed store=%s unconfirmed=%lu",
                    store->log_text, store->unconfirmed);
    event_free(store->ready_event);
    event_free(store->deadline_timer);
    memset(store->address.password, 0, sizeof store->address.password);
    free(store);
}

/* store_start - store_submit and store_submit_riding */
static struct store_request *store_start(struct store *store, enum store_operation operation,
                                         const char *key, const char *value, long long by,
                                         double ttl, store_done_fn done, void *arg, bool rides)
{
    size_t key_length = key != NULL ? strlen(key) : 0;
    size_t value_length = value != NULL ? strlen(value) : 0;
    struct store_request *r = xmalloc(sizeof *r + key_length + 1 +
                                      (value != NULL ? value_length + 1 : 0));
    memset(r, 0, sizeof *r);
    r->operation = operation;
    r->store = store;
    r->done = done;
    r->arg = arg;
    r->background = done == NULL;
    r->rides = rides;
    r->by = by;
    r->ttl = ttl > 0 ? ttl : 0;
    r->result.ttl = -1;
    r->key = r->text;
    r->key_length = key_length;
    memcpy(r->key, key != NULL ? key : "", key_length + 1);
    if (value != NULL) {
        r->value = r->key + key_length + 1;
        r->value_length = value_length;
        memcpy(r->value, value, value_length + 1);
    }
    if (key == NULL || r->key_length == 0 || r->key_length > STORE_KEY_MAX) {
        store_request_fail(r, "the key is empty or longer than %d bytes", STORE_KEY_MAX);
        return r;
    }
    if (operation == STORE_SET && (value == NULL || r->value_length > STORE_VALUE_MAX)) {
        store_request_fail(r, "the value is missing or longer than %d bytes", STORE_VALUE_MAX);
        return r;
    }
    if (!store->opened) {
        store->opened = true;
        store->state = store->backend->open(store, &store->address, store->config, store->base,
                                            store->pool);
    }
    if (store->state == NULL) {
        store_request_fail(r, "the %s store could not be opened (see the log at start)",
                           store->backend->name);
        return r;
    }
    if (store->backend->remote && store->timeout > 0) {
        double now = clock_monotonic();
        r->deadline = now + store->timeout;
        r->waiting = true;
        r->waiting_previous = store->waiting_tail;
        if (store->waiting_tail != NULL)
            store->waiting_tail->waiting_next = r;
        else
            store->waiting_head = r;
        store->waiting_tail = r;
        store_deadline_arm(store, now);
    }
    store->backend->submit(store->state, r);
    return r;
}

struct store_request *store_submit(struct store *store, enum store_operation operation,
                                   const char *key, const char *value, long long by, double ttl,
                                   store_done_fn done, void *arg)
{
    return store_start(store, operation, key, value, by, ttl, done, arg, false);
}

struct store_request *store_submit_riding(struct store *store, enum store_operation operation,
                                          const char *key, const char *value, long long by,
                                          double ttl, store_done_fn done, void *arg)
{
    return store_start(store, operation, key, value, by, ttl, done, arg, true);
}

void store_flush(struct store *store)
{
    if (store != NULL && store->state != NULL && store->backend->flush != NULL)
        store->backend->flush(store->state);
}

void store_request_cancel(struct store_request *r)
{
    if (r != NULL) {
        r->done = NULL;
        r->background = false;
    }
}
