/*
 * refusal_log.c - refused connections, summarised per cause and second (see refusal_log.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "memory.h"
#include "refusal_log.h"

/* One cause's counts: the current second's refusals after its first line. */
struct refusal_cause {
    const char *cause;      /* NULL: a free slot */
    unsigned long pending;  /* refusals not logged yet */
    long limit;
    char last_client[64];
    bool active;            /* a line was written within the last second */
};

struct refusal_log {
    struct event *timer;
    bool timer_armed;
    struct refusal_cause causes[REFUSAL_LOG_CAUSES];
};

/* refusal_log_limit - " limit=N", or "" without a limit */
static const char *refusal_log_limit(char *buffer, size_t size, long limit)
{
    buffer[0] = '\0';
    if (limit >= 0)
        snprintf(buffer, size, " limit=%ld", limit);
    return buffer;
}

/* refusal_log_arm - the next summary in a second */
static void refusal_log_arm(struct refusal_log *r)
{
    if (r->timer_armed)
        return;
    struct timeval tv = clock_timeval(1.0);
    evtimer_add(r->timer, &tv);
    r->timer_armed = true;
}

/* refusal_log_tick - a second passed: one line per cause that had refusals */
static void refusal_log_tick(evutil_socket_t fd, short what, void *arg)
{
    struct refusal_log *r = arg;
    r->timer_armed = false;
    bool again = false;
    for (size_t i = 0; i < REFUSAL_LOG_CAUSES; i++) {
        struct refusal_cause *c = &r->causes[i];
        if (c->cause == NULL || !c->active)
            continue;
        if (c->pending == 0) {
            c->active = false; /* quiet for a second: the next refusal is logged at once */
            continue;
        }
        char limit[32];
        log_message(PORTER_LOG_WARNING, NULL, "event=connection_refused reason=%s count=%lu "
                    "period=1s last_client=%s%s", c->cause, c->pending, c->last_client,
                    refusal_log_limit(limit, sizeof limit, c->limit));
        c->pending = 0;
        again = true;
    }
    if (again)
        refusal_log_arm(r);
}

struct refusal_log *refusal_log_new(struct event_base *base)
{
    struct refusal_log *r = xcalloc(1, sizeof *r);
    r->timer = evtimer_new(base, refusal_log_tick, r);
    if (r->timer == NULL)
        abort();
    return r;
}

void refusal_log_free(struct refusal_log *r)
{
    if (r == NULL)
        return;
    event_free(r->timer);
    free(r);
}

void refusal_log_note(struct refusal_log *r, const char *cause, const char *client, long limit)
{
    struct refusal_cause *c = NULL;
    for (size_t i = 0; i < REFUSAL_LOG_CAUSES && c == NULL; i++)
        if (r->causes[i].cause == NULL || strcmp(r->causes[i].cause, cause) == 0)
            c = &r->causes[i];
    if (c == NULL) {
        log_message(PORTER_LOG_ERR, NULL, "event=internal_error error=\"more than %d refusal "
                    "causes\" file=%s line=%d", REFUSAL_LOG_CAUSES, __FILE__, __LINE__);
        abort();
    }
    c->cause = cause;
    c->limit = limit;
    snprintf(c->last_client, sizeof c->last_client, "%s", client != NULL ? client : "-");
    if (c->active) {
        c->pending++;
        return;
    }
    char limit_text[32];
    log_message(PORTER_LOG_WARNING, NULL, "event=connection_refused client=%s reason=%s count=1%s",
                c->last_client, cause, refusal_log_limit(limit_text, sizeof limit_text, limit));
    c->active = true;
    refusal_log_arm(r);
}
