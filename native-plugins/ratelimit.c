/*
 * ratelimit - limits per client IP address and per authenticated user, on counters in the
 * store (porter.conf store=), so that the workers of a daemon, and gateways sharing a Redis,
 * count together.
 *
 * Hooks: connect (connections=N/PERIOD and concurrent=N per client IP, in one round trip to
 * the store: a 421 greeting, then the connection is closed) and rcpt (recipients=N/PERIOD, and
 * messages=N/PERIOD at a transaction's first RCPT, in one round trip: 451 4.7.1), counted per
 * authenticated user when the client authenticated, else per client IP. A message counts at
 * its first RCPT, not at MAIL: a transaction that never names a recipient is no message, and
 * the refusal comes where Postfix's smtpd_delay_reject puts its own, at RCPT.
 * Each reply says which limit, and when the window ends. A limit left out is not checked.
 * Counters are fixed windows: the first count starts the window, the counter expires with it.
 * concurrent counts up at connect and down at disconnect (its counter expires after
 * concurrent_ttl, so a crashed gateway's connections are forgotten). allow= clients are never
 * limited. When the store cannot answer, on_store_error=accept lets the client on (logged);
 * tempfail refuses with 421/451 4.3.0.
 *
 * Neither the greeting nor a RCPT need wait for the store: each worker remembers, per subject
 * (a fixed table of RATELIMIT_SEEN_SLOTS, by hash), the counters of the store's last answers
 * and how many counts of its own are still on their way. When they show the subject far
 * from a hook's limits (its counts would leave each at most half full), the hook counts in
 * the background (porter_store_increments_background: the counts travel with the worker's
 * next write to the store, within 20 ms, so that a busy worker's counts share writes) and
 * goes on. Should the answer show a limit passed after all (other workers or gateways
 * counted more than half a limit meanwhile), its refusal comes at the client's next HELO,
 * EHLO, MAIL, RCPT, DATA or end of data once the answer is in: connect's 421, then close, or
 * the 451 4.7.1 of messages and recipients. Nothing waits for such an answer: a limit is
 * passed by at most what other gateways counted while it was on its way. A subject first
 * seen, or near a limit (a flood), waits as before: its 421 is the greeting, its 451 the
 * RCPT's.
 *
 * Memory: the settings and the table are the state (fini frees them); a connection's record
 * (porter_data) is freed by the disconnect hook, or as soon as it holds nothing but the
 * concurrent count: an idle session keeps a marker instead (ratelimit_only_concurrent).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <porter/plugin.h>

#include "plugin_clock_hash.h"

enum ratelimit_kind {
    RATELIMIT_CONNECTIONS = 0,
    RATELIMIT_CONCURRENT,
    RATELIMIT_MESSAGES,
    RATELIMIT_RECIPIENTS,
    RATELIMIT_KIND_COUNT
};

static const char *const ratelimit_names[RATELIMIT_KIND_COUNT] = {"connections", "concurrent",
                                                                   "messages", "recipients"};

/* One limit: at most count in period seconds (period 0: at once, for concurrent). */
struct ratelimit_limit {
    long long count;            /* 0: not checked */
    double period;
};

/* What this worker last heard of one subject's counters (a client IP, or "user NAME"). */
#define RATELIMIT_SEEN_SLOTS 512
struct ratelimit_seen {
    char subject[64];                           /* "": a free slot */
    long long counts[RATELIMIT_KIND_COUNT];     /* after the last answer; -1: not known */
    double window_end[RATELIMIT_KIND_COUNT];    /* when each counter expires (monotonic) */
    unsigned in_flight[RATELIMIT_KIND_COUNT];   /* this worker's counts not answered yet */
};

struct ratelimit {
    struct ratelimit_limit limits[RATELIMIT_KIND_COUNT];
    double concurrent_ttl;
    porter_cidr_list *allow;
    bool tempfail;              /* on_store_error=tempfail */
    struct ratelimit_seen *seen; /* RATELIMIT_SEEN_SLOTS, made at the first count */
};

/* The counts of one hook in flight (connect counts connections and concurrent together, in
 * one round trip), from the hook to the store's answer: one allocation, sized to its text. */
struct ratelimit_check {
    struct ratelimit *r;
    struct ratelimit_check *next;   /* the connection's counts in the background */
    size_t count;               /* limits counted */
    enum ratelimit_kind kinds[2];
    struct porter_store_count counts[2];
    const char *subject;        /* "192.0.2.1" or "user alice", in text */
    char text[];                /* the subject, then each counter's key */
};

/* A verdict, kept until it can be given (a background answer's, at the next command). */
struct ratelimit_verdict {
    int rc, code;
    const char *enhanced;
    char text[300];
};

/* Per connection (porter_data, made at the first count, freed at disconnect): whose
 * concurrent count to give back, the counts in the background and the first refusal of
 * their answers, and which transaction's message was counted. XCLIENT runs the disconnect
 * hook before it changes the client's address, so the address to give the count back for is
 * the session's. */
struct ratelimit_connection {
    bool concurrent;               /* counted up at connect: given back at disconnect */
    struct ratelimit_check *background; /* counts in the background, until their answers */
    struct ratelimit_verdict *refusal;  /* their first refusal, for the next command */
    char transaction[64];          /* porter_queue_id of the transaction counted as a message */
};

/* ratelimit_parse - "N/PERIOD" (PERIOD: seconds, or a number with s, m, h, d or w; "N/m" reads
 * as N/1m) into out; concurrent takes a plain N. 0, or -1 for anything else */
static int ratelimit_parse(const char *text, bool with_period, struct ratelimit_limit *out)
{
    char *end = NULL;
    long long count = strtoll(text, &end, 10);
    if (end == text || count < 1 || count > 1000000000LL)
        return -1;
    out->count = count;
    out->period = 0;
    if (!with_period)
        return *end == '\0' ? 0 : -1;
    if (*end != '/')
        return -1;
    const char *period = end + 1;
    double amount = 1;
    if (*period >= '0' && *period <= '9') {
        amount = strtod(period, &end);
        period = end;
    }
    static const struct {
        char unit;
        double seconds;
    } units[] = {{'\0', 1}, {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (period[0] == units[i].unit && (units[i].unit == '\0' || period[1] == '\0')) {
            out->period = amount * units[i].seconds;
            return out->period >= 1 && out->period <= 366 * 86400.0 ? 0 : -1;
        }
    }
    return -1;
}

/* ratelimit_period_text - a period as its administrator would write it ("1m", "90s") */
static void ratelimit_period_text(double seconds, char *out, size_t size)
{
    static const struct {
        const char *unit;
        double seconds;
    } units[] = {{"w", 604800}, {"d", 86400}, {"h", 3600}, {"m", 60}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        double amount = seconds / units[i].seconds;
        if (amount >= 1 && amount == (double)(long long)amount) {
            snprintf(out, size, "%lld%s", (long long)amount, units[i].unit);
            return;
        }
    }
    snprintf(out, size, "%.0fs", seconds);
}

/* ratelimit_subject - who a message or recipient counts for: the user when authenticated */
static void ratelimit_subject(porter_session *s, char *out, size_t size)
{
    const char *user = porter_auth_user(s);
    if (user != NULL)
        snprintf(out, size, "user %s", user);
    else
        snprintf(out, size, "%s", porter_client_ip(s));
}

/* ratelimit_exceeded - the refusal of a limit passed: 421 and close at connect, else 451 */
static void ratelimit_exceeded(porter_session *s, const struct ratelimit_check *c,
                               enum ratelimit_kind kind, const struct porter_store_count *counted,
                               struct ratelimit_verdict *v)
{
    const struct ratelimit_limit *limit = &c->r->limits[kind];
    porter_log(s, PORTER_LOG_NOTICE, "event=ratelimit limit=%s subject=\"%s\" count=%lld max=%lld",
               ratelimit_names[kind], c->subject, counted->count, limit->count);
    char period[32];
    ratelimit_period_text(limit->period, period, sizeof period);
    double wait = counted->ttl_left > 0 ? counted->ttl_left : limit->period;
    bool connect = kind == RATELIMIT_CONNECTIONS || kind == RATELIMIT_CONCURRENT;
    *v = (struct ratelimit_verdict){connect ? PORTER_DENYSOFT_DISCONNECT : PORTER_DENYSOFT,
                                    connect ? 421 : 451, connect ? "4.7.0" : "4.7.1", ""};
    if (kind == RATELIMIT_CONCURRENT)
        snprintf(v->text, sizeof v->text, "Too many concurrent connections from %s (at most "
                 "%lld); try again later", c->subject, limit->count);
    else
        snprintf(v->text, sizeof v->text, "Too many %s from %s (at most %lld per %s); try again "
                 "in %.0f seconds", ratelimit_names[kind], c->subject, limit->count, period,
                 wait + 0.5);
}

/* ratelimit_store_error - the store did not answer: on_store_error decides */
static void ratelimit_store_error(porter_session *s, const struct ratelimit_check *c,
                                  enum ratelimit_kind kind, const char *error,
                                  struct ratelimit_verdict *v)
{
    porter_log(s, PORTER_LOG_WARNING, "event=store_error limit=%s action=%s error=\"%s\"",
               ratelimit_names[kind], c->r->tempfail ? "tempfail" : "accept",
               error != NULL ? error : "unknown");
    bool connect = kind == RATELIMIT_CONNECTIONS || kind == RATELIMIT_CONCURRENT;
    if (!c->r->tempfail)
        *v = (struct ratelimit_verdict){PORTER_DECLINED, 0, NULL, ""};
    else
        *v = (struct ratelimit_verdict){connect ? PORTER_DENYSOFT_DISCONNECT : PORTER_DENYSOFT,
                                        connect ? 421 : 451, "4.3.0",
                                        "Temporary local problem, please try again later"};
}

/* ratelimit_decide - the counters' new values: the first limit passed (in the order
 * counted) refuses */
static void ratelimit_decide(porter_session *s, const struct ratelimit_check *c,
                             struct ratelimit_verdict *v)
{
    *v = (struct ratelimit_verdict){PORTER_DECLINED, 0, NULL, ""};
    for (size_t i = 0; i < c->count && v->rc == PORTER_DECLINED; i++) {
        const struct porter_store_count *counted = &c->counts[i];
        if (counted->status != PORTER_STORE_OK)
            ratelimit_store_error(s, c, c->kinds[i], counted->error, v);
        else if (counted->count > c->r->limits[c->kinds[i]].count)
            ratelimit_exceeded(s, c, c->kinds[i], counted, v);
    }
}

/* ratelimit_reply - give a verdict as the hook's */
static int ratelimit_reply(porter_session *s, const struct ratelimit_verdict *v)
{
    if (v->rc == PORTER_DECLINED)
        return PORTER_DECLINED;
    return porter_reply(s, v->rc, v->code, v->enhanced, "%s", v->text);
}

/* ratelimit_slot - the table's slot for a subject (NULL without a table) */
static struct ratelimit_seen *ratelimit_slot(const struct ratelimit *r, const char *subject)
{
    if (r->seen == NULL)
        return NULL;
    return &r->seen[plugin_fnv(PLUGIN_FNV_START, subject) % RATELIMIT_SEEN_SLOTS];
}

/* ratelimit_seen - the subject's entry, made (the table too) or taken over from another
 * subject, knowing nothing yet; NULL when the subject is too long or out of memory */
static struct ratelimit_seen *ratelimit_seen(struct ratelimit *r, const char *subject)
{
    if (r->seen == NULL)
        r->seen = calloc(RATELIMIT_SEEN_SLOTS, sizeof *r->seen);
    struct ratelimit_seen *e = ratelimit_slot(r, subject);
    if (e == NULL || strlen(subject) >= sizeof e->subject)
        return NULL;
    if (strcmp(e->subject, subject) != 0) {
        memset(e, 0, sizeof *e);
        snprintf(e->subject, sizeof e->subject, "%s", subject);
        for (int kind = 0; kind < RATELIMIT_KIND_COUNT; kind++)
            e->counts[kind] = -1;
    }
    return e;
}

/* ratelimit_far - whether c's counts leave each of its limits at most half full, by what
 * this worker knows of the subject: counters seen (0 once their window ended) and counts
 * still in flight */
static bool ratelimit_far(const struct ratelimit_check *c, const struct ratelimit_seen *e)
{
    double now = plugin_monotonic();
    for (size_t i = 0; i < c->count; i++) {
        enum ratelimit_kind kind = c->kinds[i];
        const struct ratelimit_limit *limit = &c->r->limits[kind];
        if (e->counts[kind] < 0)
            return false;
        long long seen = limit->period > 0 && now >= e->window_end[kind] ? 0 : e->counts[kind];
        if (2 * (seen + (long long)e->in_flight[kind] + 1) > limit->count)
            return false;
    }
    return true;
}

/* ratelimit_remember - c's counts are in (answered false: their answer will never come): one
 * fewer in flight, and the counters' new values */
static void ratelimit_remember(const struct ratelimit_check *c, bool answered)
{
    struct ratelimit_seen *e = ratelimit_slot(c->r, c->subject);
    if (e == NULL || strcmp(e->subject, c->subject) != 0)
        return; /* taken by another subject since */
    for (size_t i = 0; i < c->count; i++) {
        enum ratelimit_kind kind = c->kinds[i];
        const struct porter_store_count *counted = &c->counts[i];
        if (e->in_flight[kind] > 0)
            e->in_flight[kind]--;
        if (!answered)
            continue;
        e->counts[kind] = counted->status == PORTER_STORE_OK ? counted->count : -1;
        e->window_end[kind] = plugin_monotonic() + (counted->ttl_left >= 0
                                                     ? counted->ttl_left
                                                     : c->r->limits[kind].period);
    }
}

/* porter_data of a connection that holds nothing but its concurrent count: an idle session
 * keeps no record (a marker, never freed) */
static char ratelimit_only_concurrent;

/* ratelimit_record - the connection's record, or NULL when it has none */
static struct ratelimit_connection *ratelimit_record(porter_session *s)
{
    void *data = porter_data_get(s);
    return data == &ratelimit_only_concurrent ? NULL : data;
}

/* ratelimit_connection - the connection's record, made on first use (NULL: out of memory) */
static struct ratelimit_connection *ratelimit_connection(porter_session *s)
{
    struct ratelimit_connection *connection = ratelimit_record(s);
    if (connection != NULL)
        return connection;
    bool concurrent = porter_data_get(s) == &ratelimit_only_concurrent;
    if ((connection = calloc(1, sizeof *connection)) != NULL) {
        connection->concurrent = concurrent;
        porter_data_set(s, connection);
    }
    return connection;
}

/* ratelimit_settle - a record with nothing in flight, no refusal kept and no message counted
 * gives way to the marker (or to nothing) */
static void ratelimit_settle(porter_session *s)
{
    struct ratelimit_connection *connection = ratelimit_record(s);
    if (connection == NULL || connection->background != NULL || connection->refusal != NULL ||
        connection->transaction[0] != '\0')
        return;
    porter_data_set(s, connection->concurrent ? &ratelimit_only_concurrent : NULL);
    free(connection);
}

/* ratelimit_hold - a concurrent counter gone below one (after an expiry) starts again at one */
static void ratelimit_hold(porter_session *s, const struct ratelimit_check *c)
{
    for (size_t i = 0; i < c->count; i++)
        if (c->kinds[i] == RATELIMIT_CONCURRENT && c->counts[i].status == PORTER_STORE_OK &&
            c->counts[i].count < 1)
            porter_store_set(s, c->counts[i].key, "1", c->r->concurrent_ttl, NULL, NULL);
}

/* ratelimit_counted - the store's answer to a hook that waits for it */
static int ratelimit_counted(porter_session *s, void *arg, const struct porter_store_result *result)
{
    struct ratelimit_check *c = arg;
    ratelimit_remember(c, s != NULL);
    if (s == NULL) {
        free(c);
        return PORTER_DECLINED;
    }
    ratelimit_hold(s, c);
    struct ratelimit_verdict v;
    ratelimit_decide(s, c, &v);
    struct ratelimit_connection *connection = ratelimit_record(s);
    if (v.rc != PORTER_DECLINED && c->kinds[0] == RATELIMIT_MESSAGES && connection != NULL)
        connection->transaction[0] = '\0'; /* refused: the next RCPT counts the message again */
    free(c);
    ratelimit_settle(s);
    return ratelimit_reply(s, &v);
}

/* ratelimit_counted_later - the answer to counts in the background: a refusal is kept for the
 * next command */
static void ratelimit_counted_later(porter_session *s, void *arg,
                                    const struct porter_store_result *result)
{
    struct ratelimit_check *c = arg;
    struct ratelimit_connection *connection = ratelimit_record(s); /* a check is in it */
    struct ratelimit_check **link = &connection->background;
    while (*link != c)
        link = &(*link)->next;
    *link = c->next;
    ratelimit_remember(c, true);
    ratelimit_hold(s, c);
    struct ratelimit_verdict v;
    ratelimit_decide(s, c, &v);
    if (v.rc != PORTER_DECLINED && c->kinds[0] == RATELIMIT_MESSAGES)
        connection->transaction[0] = '\0'; /* as ratelimit_counted */
    free(c);
    if (v.rc != PORTER_DECLINED && connection->refusal == NULL &&
        (connection->refusal = malloc(sizeof v)) != NULL)
        *connection->refusal = v;
    ratelimit_settle(s);
}

/* ratelimit_check_new - a hook's counts, one for each of its limits that is on; NULL when
 * none is, or the client is allowed */
static struct ratelimit_check *ratelimit_check_new(porter_session *s, struct ratelimit *r,
                                                   const enum ratelimit_kind *kinds,
                                                   size_t kind_count)
{
    enum ratelimit_kind on[2];
    size_t count = 0;
    for (size_t i = 0; i < kind_count && count < 2; i++)
        if (r->limits[kinds[i]].count > 0)
            on[count++] = kinds[i];
    if (count == 0 || porter_cidr_match(r->allow, porter_client_ip(s)))
        return NULL;
    char subject[300];
    if (on[0] == RATELIMIT_MESSAGES || on[0] == RATELIMIT_RECIPIENTS)
        ratelimit_subject(s, subject, sizeof subject);
    else
        snprintf(subject, sizeof subject, "%s", porter_client_ip(s));
    size_t subject_size = strlen(subject) + 1, size = sizeof(struct ratelimit_check) + subject_size;
    for (size_t i = 0; i < count; i++)
        size += strlen(ratelimit_names[on[i]]) + 1 + subject_size;
    struct ratelimit_check *c = calloc(1, size);
    if (c == NULL)
        return NULL;
    c->r = r;
    c->count = count;
    memcpy(c->text, subject, subject_size);
    c->subject = c->text;
    char *key = c->text + subject_size;
    for (size_t i = 0; i < count; i++) {
        int written = sprintf(key, "%s:%s", ratelimit_names[on[i]], subject);
        c->kinds[i] = on[i];
        c->counts[i] = (struct porter_store_count){
            .key = key, .by = 1,
            .ttl = on[i] == RATELIMIT_CONCURRENT ? r->concurrent_ttl : r->limits[on[i]].period};
        key += written + 1;
    }
    return c;
}

/* ratelimit_count - count a hook's limits (those on; none for an allowed client): in the
 * background when this worker knows the subject far from them, else waiting for the store */
static int ratelimit_count(porter_session *s, struct ratelimit *r, const enum ratelimit_kind *kinds,
                           size_t kind_count)
{
    struct ratelimit_check *c = ratelimit_check_new(s, r, kinds, kind_count);
    if (c == NULL)
        return PORTER_DECLINED;
    bool connect = c->kinds[0] == RATELIMIT_CONNECTIONS || c->kinds[0] == RATELIMIT_CONCURRENT;
    struct ratelimit_connection *connection = ratelimit_connection(s);
    if (connection == NULL) {
        free(c);
        return porter_reply(s, connect ? PORTER_DENYSOFT_DISCONNECT : PORTER_DENYSOFT,
                            connect ? 421 : 451, "4.3.0", "Temporary local problem");
    }
    struct ratelimit_seen *e = ratelimit_seen(r, c->subject);
    bool background = e != NULL && ratelimit_far(c, e);
    for (size_t i = 0; i < c->count && e != NULL; i++)
        e->in_flight[c->kinds[i]]++;
    /* the +1 goes out now: the -1 at disconnect follows it, whatever the answer */
    bool concurrent = connect && r->limits[RATELIMIT_CONCURRENT].count > 0;
    connection->concurrent |= concurrent;
    if (!background)
        return porter_store_increments(s, c->counts, c->count, ratelimit_counted, c);
    c->next = connection->background;
    connection->background = c;
    if (porter_store_increments_background(s, c->counts, c->count, ratelimit_counted_later,
                                           c) != 0) {
        connection->background = c->next; /* not counted (logged) */
        connection->concurrent &= !concurrent;
        ratelimit_remember(c, false);
        free(c);
        ratelimit_settle(s);
    }
    return PORTER_DECLINED;
}

static int ratelimit_connect(porter_session *s, void *state)
{
    static const enum ratelimit_kind kinds[] = {RATELIMIT_CONNECTIONS, RATELIMIT_CONCURRENT};
    return ratelimit_count(s, state, kinds, 2);
}

/* ratelimit_verdict - a refusal of counts made in the background, given once (NULL: none) */
static int ratelimit_verdict(porter_session *s, struct ratelimit_connection *connection)
{
    if (connection == NULL || connection->refusal == NULL)
        return PORTER_DECLINED;
    int rc = ratelimit_reply(s, connection->refusal);
    free(connection->refusal);
    connection->refusal = NULL;
    return rc;
}

/* ratelimit_command - HELO, EHLO, MAIL, DATA and the end of data: the refusal of counts made
 * in the background, if their answer came (none waits for it) */
static int ratelimit_command(porter_session *s, void *state)
{
    return ratelimit_verdict(s, ratelimit_record(s));
}

/* ratelimit_rcpt - a refusal kept from the background; then recipients, and messages at the
 * first RCPT of a transaction (answers still out do not hold it up) */
static int ratelimit_rcpt(porter_session *s, void *state)
{
    struct ratelimit *r = state;
    int rc = ratelimit_verdict(s, ratelimit_record(s));
    if (rc != PORTER_DECLINED)
        return rc;
    static const enum ratelimit_kind both[] = {RATELIMIT_MESSAGES, RATELIMIT_RECIPIENTS};
    static const enum ratelimit_kind recipients[] = {RATELIMIT_RECIPIENTS};
    if (r->limits[RATELIMIT_MESSAGES].count > 0) {
        const char *transaction = porter_queue_id(s);
        struct ratelimit_connection *connection = ratelimit_connection(s);
        if (transaction != NULL && connection != NULL &&
            strcmp(connection->transaction, transaction) != 0) {
            snprintf(connection->transaction, sizeof connection->transaction, "%s", transaction);
            return ratelimit_count(s, r, both, 2);
        }
    }
    return ratelimit_count(s, r, recipients, 1);
}

/* ratelimit_disconnect - give the concurrent count back (in the background), also when
 * connect's answer never came */
static int ratelimit_disconnect(porter_session *s, void *state)
{
    bool concurrent = porter_data_get(s) == &ratelimit_only_concurrent;
    struct ratelimit_connection *connection = ratelimit_record(s);
    if (connection == NULL && !concurrent)
        return PORTER_DECLINED;
    while (connection != NULL && connection->background != NULL) { /* their callbacks were cancelled */
        struct ratelimit_check *c = connection->background;
        connection->background = c->next;
        ratelimit_remember(c, false);
        free(c);
    }
    if (concurrent || connection->concurrent) {
        char key[80];
        snprintf(key, sizeof key, "concurrent:%s", porter_client_ip(s));
        porter_store_increment(s, key, -1, ((const struct ratelimit *)state)->concurrent_ttl,
                               NULL, NULL);
    }
    porter_data_set(s, NULL);
    if (connection != NULL)
        free(connection->refusal);
    free(connection);
    return PORTER_DECLINED;
}

static void *ratelimit_init(porter_args *a)
{
    struct ratelimit *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    for (int kind = 0; kind < RATELIMIT_KIND_COUNT; kind++) {
        const char *value = porter_arg_string(a, ratelimit_names[kind], NULL);
        bool with_period = kind != RATELIMIT_CONCURRENT;
        if (value != NULL && ratelimit_parse(value, with_period, &r->limits[kind]) != 0)
            porter_arg_error(a, "%s: %s is not %s", ratelimit_names[kind], value,
                             with_period ? "COUNT/PERIOD (30/1m, 100/1h, 1000/1d)" : "a count");
    }
    r->concurrent_ttl = porter_arg_seconds(a, "concurrent_ttl", 3600);
    r->allow = porter_arg_cidr(a, "allow");
    r->tempfail = porter_arg_choice(a, "on_store_error", "accept|tempfail") == 1;
    if (r->concurrent_ttl <= 0)
        porter_arg_error(a, "concurrent_ttl must be longer than 0 seconds");
    return r;
}

static void ratelimit_fini(void *state)
{
    struct ratelimit *r = state;
    if (r == NULL)
        return;
    porter_cidr_free(r->allow);
    free(r->seen);
    free(r);
}

PORTER_PLUGIN(.name = "ratelimit",
              .description = "Rate limits per client IP address and per authenticated user, on "
                             "counters in the store (porter.conf store=), shared by the workers "
                             "and by gateways on one Redis. Connections over a limit get a 421 "
                             "greeting and are closed; messages and recipients over a limit get "
                             "451 4.7.1 at RCPT; each reply names the limit and when to try "
                             "again. A client this worker knows to be far from its limits (at "
                             "most half of each) is counted without waiting for the store, and "
                             "should other workers or gateways have passed a limit meanwhile, "
                             "gets the refusal at its next command once the answer is in. A "
                             "limit left out is not checked. Put it before rcpt_ok.",
              .arguments = PORTER_ARGUMENTS(
                  {"connections", NULL, "New connections per client IP: COUNT/PERIOD (30/1m)."},
                  {"concurrent", NULL, "Connections open at once per client IP."},
                  {"messages", NULL, "Messages per authenticated user, or per client IP: "
                                     "COUNT/PERIOD (100/1h). A message counts at its first "
                                     "RCPT, where its refusal comes too."},
                  {"recipients", NULL, "Recipients (RCPT commands) per authenticated user, or "
                                       "per client IP: COUNT/PERIOD (500/1h)."},
                  {"allow", NULL, "Clients that are never limited: a CIDR list or a file of "
                                  "them."},
                  {"concurrent_ttl", "1h", "How long a concurrent count is kept without a "
                                           "disconnect (a gateway that crashed)."},
                  {"on_store_error", "accept", "When the store cannot answer: accept (go on, "
                                               "logged) or tempfail (421/451 4.3.0)."}),
              .init = ratelimit_init, .fini = ratelimit_fini,
              .hooks[PORTER_HOOK_CONNECT] = ratelimit_connect,
              .hooks[PORTER_HOOK_HELO] = ratelimit_command,
              .hooks[PORTER_HOOK_EHLO] = ratelimit_command,
              .hooks[PORTER_HOOK_MAIL] = ratelimit_command,
              .hooks[PORTER_HOOK_RCPT] = ratelimit_rcpt,
              .hooks[PORTER_HOOK_DATA] = ratelimit_command,
              .hooks[PORTER_HOOK_DATA_POST] = ratelimit_command,
              .hooks[PORTER_HOOK_DISCONNECT] = ratelimit_disconnect);
