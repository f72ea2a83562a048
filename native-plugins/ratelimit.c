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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <porter/plugin.h>

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

struct ratelimit {
    struct ratelimit_limit limits[RATELIMIT_KIND_COUNT];
    double concurrent_ttl;
    porter_cidr_list *allow;
    bool tempfail;              /* on_store_error=tempfail */
};

/* The counts of one hook in flight (connect counts connections and concurrent together, in
 * one round trip), from the hook to the store's answer: one allocation, sized to its text. */
struct ratelimit_check {
    const struct ratelimit *r;
    size_t count;               /* limits counted */
    enum ratelimit_kind kinds[2];
    struct porter_store_count counts[2];
    const char *subject;        /* "192.0.2.1" or "user alice", in text */
    char text[];                /* the subject, then each counter's key */
};

/* Per connection (porter_data, allocated at the first count that needs it, freed at
 * disconnect): whose concurrent count to give back, and which transaction's message was
 * counted. XCLIENT runs the disconnect hook before it changes the client's address, so the
 * address to give the count back for is the session's. */
struct ratelimit_connection {
    bool concurrent;               /* counted up at connect */
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
static int ratelimit_exceeded(porter_session *s, const struct ratelimit_check *c,
                              enum ratelimit_kind kind, const struct porter_store_count *counted)
{
    const struct ratelimit_limit *limit = &c->r->limits[kind];
    porter_log(s, PORTER_LOG_NOTICE, "event=ratelimit limit=%s subject=\"%s\" count=%lld max=%lld",
               ratelimit_names[kind], c->subject, counted->count, limit->count);
    if (kind == RATELIMIT_CONCURRENT)
        return porter_reply(s, PORTER_DENYSOFT_DISCONNECT, 421, "4.7.0", "Too many concurrent "
                            "connections from %s (at most %lld); try again later", c->subject,
                            limit->count);
    char period[32];
    ratelimit_period_text(limit->period, period, sizeof period);
    double wait = counted->ttl_left > 0 ? counted->ttl_left : limit->period;
    if (kind == RATELIMIT_CONNECTIONS)
        return porter_reply(s, PORTER_DENYSOFT_DISCONNECT, 421, "4.7.0", "Too many connections "
                            "from %s (at most %lld per %s); try again in %.0f seconds",
                            c->subject, limit->count, period, wait + 0.5);
    return porter_reply(s, PORTER_DENYSOFT, 451, "4.7.1", "Too many %s from %s (at most %lld per "
                        "%s); try again in %.0f seconds", ratelimit_names[kind], c->subject,
                        limit->count, period, wait + 0.5);
}

/* ratelimit_store_error - the store did not answer: on_store_error decides */
static int ratelimit_store_error(porter_session *s, const struct ratelimit_check *c,
                                 enum ratelimit_kind kind, const char *error)
{
    porter_log(s, PORTER_LOG_WARNING, "event=store_error limit=%s action=%s error=\"%s\"",
               ratelimit_names[kind], c->r->tempfail ? "tempfail" : "accept",
               error != NULL ? error : "unknown");
    if (!c->r->tempfail)
        return PORTER_DECLINED;
    if (kind == RATELIMIT_CONNECTIONS || kind == RATELIMIT_CONCURRENT)
        return porter_reply(s, PORTER_DENYSOFT_DISCONNECT, 421, "4.3.0", "Temporary local "
                            "problem, please try again later");
    return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem, please try "
                        "again later");
}

/* ratelimit_connection - the connection's record, made on first use (NULL: out of memory) */
static struct ratelimit_connection *ratelimit_connection(porter_session *s)
{
    struct ratelimit_connection *connection = porter_data_get(s);
    if (connection == NULL && (connection = calloc(1, sizeof *connection)) != NULL)
        porter_data_set(s, connection);
    return connection;
}

/* ratelimit_hold - the concurrent count went up: give it back at disconnect, whatever the
 * verdict (below one after an expiry: start again at one) */
static void ratelimit_hold(porter_session *s, const struct ratelimit_check *c,
                           const struct porter_store_count *counted)
{
    struct ratelimit_connection *connection = ratelimit_connection(s);
    if (connection != NULL)
        connection->concurrent = true;
    if (counted->count < 1)
        porter_store_set(s, counted->key, "1", c->r->concurrent_ttl, NULL, NULL);
}

/* ratelimit_counted - the counters' new values: the first limit passed (in the order
 * counted) refuses */
static int ratelimit_counted(porter_session *s, void *arg, const struct porter_store_result *result)
{
    struct ratelimit_check *c = arg;
    if (s == NULL) {
        free(c);
        return PORTER_DECLINED;
    }
    for (size_t i = 0; i < c->count; i++)
        if (c->kinds[i] == RATELIMIT_CONCURRENT && c->counts[i].status == PORTER_STORE_OK)
            ratelimit_hold(s, c, &c->counts[i]);
    int rc = PORTER_DECLINED;
    for (size_t i = 0; i < c->count && rc == PORTER_DECLINED; i++) {
        const struct porter_store_count *counted = &c->counts[i];
        if (counted->status != PORTER_STORE_OK)
            rc = ratelimit_store_error(s, c, c->kinds[i], counted->error);
        else if (counted->count > c->r->limits[c->kinds[i]].count)
            rc = ratelimit_exceeded(s, c, c->kinds[i], counted);
    }
    struct ratelimit_connection *connection = porter_data_get(s);
    if (rc != PORTER_DECLINED && c->kinds[0] == RATELIMIT_MESSAGES && connection != NULL)
        connection->transaction[0] = '\0'; /* refused: the next RCPT counts the message again */
    free(c);
    return rc;
}

/* ratelimit_start - count one more for each of a hook's limits (those on) in one round trip,
 * unless the client is allowed; the store answers later */
static int ratelimit_start(porter_session *s, const struct ratelimit *r,
                           const enum ratelimit_kind *kinds, size_t kind_count)
{
    enum ratelimit_kind on[2];
    size_t count = 0;
    for (size_t i = 0; i < kind_count && count < 2; i++)
        if (r->limits[kinds[i]].count > 0)
            on[count++] = kinds[i];
    if (count == 0 || porter_cidr_match(r->allow, porter_client_ip(s)))
        return PORTER_DECLINED;
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
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
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
    return porter_store_increments(s, c->counts, c->count, ratelimit_counted, c);
}

static int ratelimit_connect(porter_session *s, void *state)
{
    static const enum ratelimit_kind kinds[] = {RATELIMIT_CONNECTIONS, RATELIMIT_CONCURRENT};
    return ratelimit_start(s, state, kinds, 2);
}

/* ratelimit_rcpt - recipients; and messages, at the first RCPT of a transaction */
static int ratelimit_rcpt(porter_session *s, void *state)
{
    const struct ratelimit *r = state;
    static const enum ratelimit_kind both[] = {RATELIMIT_MESSAGES, RATELIMIT_RECIPIENTS};
    static const enum ratelimit_kind recipients[] = {RATELIMIT_RECIPIENTS};
    if (r->limits[RATELIMIT_MESSAGES].count > 0) {
        const char *transaction = porter_queue_id(s);
        struct ratelimit_connection *connection = ratelimit_connection(s);
        if (transaction != NULL && connection != NULL &&
            strcmp(connection->transaction, transaction) != 0) {
            snprintf(connection->transaction, sizeof connection->transaction, "%s", transaction);
            return ratelimit_start(s, r, both, 2);
        }
    }
    return ratelimit_start(s, r, recipients, 1);
}

/* ratelimit_disconnect - give the concurrent count back (in the background) */
static int ratelimit_disconnect(porter_session *s, void *state)
{
    struct ratelimit_connection *connection = porter_data_get(s);
    if (connection == NULL)
        return PORTER_DECLINED;
    if (connection->concurrent) {
        char key[80];
        snprintf(key, sizeof key, "concurrent:%s", porter_client_ip(s));
        porter_store_increment(s, key, -1, ((const struct ratelimit *)state)->concurrent_ttl,
                               NULL, NULL);
    }
    porter_data_set(s, NULL);
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
    free(r);
}

PORTER_PLUGIN(.name = "ratelimit",
              .description = "Rate limits per client IP address and per authenticated user, on "
                             "counters in the store (porter.conf store=), shared by the workers "
                             "and by gateways on one Redis. Connections over a limit get a 421 "
                             "greeting and are closed; messages and recipients over a limit get 451 "
                             "4.7.1; each reply names the limit and when to try again. A limit "
                             "left out is not checked. Put it before rcpt_ok.",
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
              .hooks[PORTER_HOOK_RCPT] = ratelimit_rcpt,
              .hooks[PORTER_HOOK_DISCONNECT] = ratelimit_disconnect);
