/*
 * queue_smtp - relay accepted mail to the downstream MTA now, and answer the client with the
 * downstream's answer (Postfix's "before-queue proxy" in Porter's chain).
 *
 * mode=relay (default), hook queue: take a connection (pooled; one retry on a fresh one when
 * the server turns out to have closed a reused connection; none after a timeout), pass the client's identity (XFORWARD or XCLIENT when
 * offered, else the X-Porter-Client header), MAIL and every RCPT (pipelined with XFORWARD and any RSET), and,
 * only when the downstream accepted every recipient, the message (dot-stuffed on the fly).
 * The client gets 250 only after the downstream's 250. A downstream 4xx/5xx comes back with
 * its code and text, prefixed "downstream:"; a recipient the downstream refuses refuses the
 * whole message (no DATA is sent, so nothing is delivered twice when the client retries);
 * no answer (down, timeout, dropped connection) is 451 4.4.1.
 *
 * mode=proxy adds hooks mail and rcpt: the downstream transaction opens at MAIL and each RCPT
 * is forwarded live, so the client sees the downstream's verdict per recipient (a refusal is
 * passed on; an acceptance is DECLINED, so the rest of the chain, e.g. rcpt_ok, still decides
 * relaying: put this line before rcpt_ok and after the plugins that may refuse). At queue the
 * downstream's recipients are compared with the transaction's; when a later plugin refused,
 * added or removed one, the downstream transaction is reset and replayed before DATA.
 *
 * LMTP (protocol=lmtp): one reply per recipient after DATA. All 2xx: 250. None: the worst
 * (451 when any is temporary, else 5xx). Mixed: when any failure is temporary, 451 (the
 * client retries; recipients that already have it may get a second copy: at-least-once);
 * when every failure is permanent, 550 naming who got it and who did not (nothing is lost).
 *
 * Quarantined messages are never relayed: quarantine=next (default) declines them, so a later
 * queue plugin takes them (queue_spool holds them in its hold queue, queue_maildir in its
 * quarantine folder; with none, the client gets 451); quarantine=defer answers 451 4.7.1.
 *
 * Timing: the whole relay of one hook must end before the hook's deadline (hook_timeout= or
 * plugin_timeout in porter.conf); the plugin stops half a second earlier, drops the downstream
 * connection (before the final dot the downstream discards the message) and answers 451.
 * The single duplicate window: the downstream said 250 after the dot but its answer did not
 * reach us in time (or the client left after we answered); see docs/queue.md.
 *
 * Arguments: host=HOST:PORT|[IPV6]:PORT|unix:/PATH (required), protocol=smtp|lmtp,
 *   mode=relay|proxy, tls=none|may|encrypt|verify (default may), tls_ca_file=FILE,
 *   tls_server_name=NAME, auth_user=USER, auth_password_file=FILE (first line),
 *   identity=auto|xforward|xclient|none, helo=NAME (default: porter.conf hostname or the
 *   session's), pool=N idle connections kept per worker (default 16), connections=N at most
 *   per worker (default 256; more wait in line), idle_timeout=SECONDS (30),
 *   connect_timeout=SECONDS (10), command_timeout=SECONDS (30), data_timeout=SECONDS (60),
 *   quarantine=next|defer.
 *
 * Memory: the plugin state owns the pool and the TLS context; per-session state (porter_data)
 * owns the downstream connection while a transaction is open and is freed at disconnect.
 * Fatal: out of memory. The downstream is never trusted: anything odd is 451.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include <porter/plugin.h>

#include "memory.h"
#include "smtp_client.h"

#define RELAY_TEXT_MAX 1024

enum relay_mode { RELAY_MODE_RELAY = 0, RELAY_MODE_PROXY, RELAY_MODE_COUNT };
enum relay_quarantine { RELAY_QUARANTINE_NEXT = 0, RELAY_QUARANTINE_DEFER };

/* What the operation in flight is for. */
enum relay_step {
    RELAY_STEP_NONE = 0,
    RELAY_STEP_MAIL,       /* proxy: MAIL */
    RELAY_STEP_RCPT,       /* proxy: one RCPT (MAIL first when no transaction is open) */
    RELAY_STEP_QUEUE,      /* the message: (RSET,) MAIL and RCPTs if needed, DATA */
    RELAY_STEP_COUNT
};

struct relay {
    struct smtp_client_settings settings;
    char *address, *helo, *tls_server_name, *auth_user, *auth_password;
    SSL_CTX *tls_context;
    int mode;
    int quarantine;
    size_t pool_idle, pool_total;
    double idle_timeout;
    double budget;                 /* seconds a hook may wait for us */
    struct smtp_pool *pool;        /* made on first use, with the worker's event base */
    struct event_base *base;
};

/* One client session's relay state (porter_data). */
struct relay_session {
    struct relay *relay;
    porter_handle handle;
    bool busy;                     /* a hook is PENDING on us */
    int step;
    struct smtp_pool_waiter *waiter;
    struct smtp_client *client;    /* our downstream connection, while we hold one */
    struct event *deadline;
    /* the envelope being sent (copies) */
    char *mail_from, *mail_params;
    char **recipients, **recipient_params;
    size_t recipient_count;
    char *identity_strings[6];
    struct smtp_client_identity_info identity;
    bool have_identity;
    /* the message (borrowed while the queue hook waits) */
    struct smtp_client_message message;
    unsigned long long size;
    char queue_id[80];
    bool resetting;                /* queue: RSET before a replay */
    bool reused;                   /* the connection in hand served an earlier transaction */
    bool retried;                  /* this wait already retried on a fresh connection */
    /* proxy: the downstream transaction */
    bool downstream_open;
    char **forwarded;              /* recipients the downstream accepted */
    size_t forwarded_count;
};

/* ---------------------------------------------------------------- small helpers */

static void strings_free(char **list, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(list[i]);
    free(list);
}

/* relay_envelope_clear - forget the envelope copies */
static void relay_envelope_clear(struct relay_session *rs)
{
    free(rs->mail_from);
    free(rs->mail_params);
    rs->mail_from = rs->mail_params = NULL;
    strings_free(rs->recipients, rs->recipient_count);
    strings_free(rs->recipient_params, rs->recipient_count);
    rs->recipients = rs->recipient_params = NULL;
    rs->recipient_count = 0;
    for (size_t i = 0; i < 6; i++) {
        free(rs->identity_strings[i]);
        rs->identity_strings[i] = NULL;
    }
    rs->have_identity = false;
}

static void relay_forwarded_clear(struct relay_session *rs)
{
    strings_free(rs->forwarded, rs->forwarded_count);
    rs->forwarded = NULL;
    rs->forwarded_count = 0;
    rs->downstream_open = false;
}

/* relay_release - give the downstream connection back to the pool (an open transaction is
 * reset when the connection is reused; a connection in the middle of an operation is closed,
 * which aborts whatever the downstream had not accepted yet) */
static void relay_release(struct relay_session *rs)
{
    if (rs->waiter != NULL) {
        smtp_pool_cancel(rs->relay->pool, rs->waiter);
        rs->waiter = NULL;
    }
    if (rs->client != NULL) {
        smtp_pool_put(rs->relay->pool, rs->client);
        rs->client = NULL;
    }
    relay_forwarded_clear(rs);
}

/* relay_abort - a hook that waited on us is no longer waiting (timeout, reset, disconnect) */
static void relay_abort(struct relay_session *rs)
{
    if (!rs->busy)
        return;
    rs->busy = false;
    evtimer_del(rs->deadline);
    relay_release(rs);
    rs->step = RELAY_STEP_NONE;
    memset(&rs->message, 0, sizeof rs->message);
    rs->message.fd = -1;
}

/* relay_answer - end the wait with a verdict */
static void relay_answer(struct relay_session *rs, int rc, int code, const char *enhanced,
                         const char *format, ...) __attribute__((format(printf, 5, 6)));
static void relay_answer(struct relay_session *rs, int rc, int code, const char *enhanced,
                         const char *format, ...)
{
    char text[RELAY_TEXT_MAX];
    va_list ap;
    va_start(ap, format);
    vsnprintf(text, sizeof text, format, ap);
    va_end(ap);
    rs->busy = false;
    rs->step = RELAY_STEP_NONE;
    evtimer_del(rs->deadline);
    memset(&rs->message, 0, sizeof rs->message);
    rs->message.fd = -1;
    porter_resume(rs->handle, rc, code, enhanced, "%s", text);
}

/* relay_downstream_verdict - a downstream refusal as our verdict (class 4/5; 0 = no answer) */
static void relay_refuse(struct relay_session *rs, const struct smtp_reply *reply, const char *what)
{
    char enhanced[16];
    if (reply->code == 0) {
        relay_answer(rs, PORTER_DENYSOFT, 451, "4.4.1", "downstream unavailable: %s",
                     reply->text);
        return;
    }
    int class = reply->code / 100;
    if (class != 4 && class != 5) {
        relay_answer(rs, PORTER_DENYSOFT, 451, "4.4.0", "downstream: unexpected reply %d to %s",
                     reply->code, what);
        return;
    }
    snprintf(enhanced, sizeof enhanced, "%s", reply->enhanced[0] ? reply->enhanced
                                                                 : class == 4 ? "4.0.0" : "5.0.0");
    relay_answer(rs, class == 4 ? PORTER_DENYSOFT : PORTER_DENY, reply->code, enhanced,
                 "downstream: %s", reply->text);
}

/* relay_pool_free - the worker stops (porter_at_loop_end): close the pooled connections */
static void relay_pool_free(void *arg)
{
    struct relay *r = arg;
    smtp_pool_free(r->pool);
    r->pool = NULL;
}

/* relay_session_get - this session's state, made on first use */
static struct relay_session *relay_session_get(porter_session *s, struct relay *r)
{
    struct relay_session *rs = porter_data_get(s);
    if (rs != NULL)
        return rs;
    if (r->pool == NULL) {
        r->base = porter_event_base(s);
        if (r->settings.helo_name == NULL || r->settings.helo_name[0] == '\0') {
            free(r->helo);
            r->helo = xstrdup(porter_hostname(s));
            r->settings.helo_name = r->helo;
        }
        r->pool = smtp_pool_new(r->base, &r->settings, r->pool_idle, r->pool_total,
                                r->idle_timeout);
        if (porter_at_loop_end(s, relay_pool_free, r) != 0)
            porter_log(s, PORTER_LOG_WARNING, "event=relay_pool_unowned error=\"no loop to "
                       "close the pool at exit\"");
    }
    rs = xcalloc(1, sizeof *rs);
    rs->relay = r;
    rs->message.fd = -1;
    porter_data_set(s, rs);
    return rs;
}

/* relay_copy_identity - the client's identity for XCLIENT/XFORWARD */
static void relay_copy_identity(struct relay_session *rs, porter_session *s)
{
    const char *name = porter_client_name(s);
    const char *values[6] = {
        porter_client_ip(s),
        name && strcmp(name, "unknown") != 0 ? name : NULL,
        porter_helo(s),
        porter_said_ehlo(s) ? "ESMTP" : "SMTP",
        porter_auth_user(s),
        porter_queue_id(s),
    };
    for (size_t i = 0; i < 6; i++)
        rs->identity_strings[i] = values[i] && *values[i] ? xstrdup(values[i]) : NULL;
    rs->identity.address = rs->identity_strings[0];
    rs->identity.port = porter_client_port(s);
    rs->identity.name = rs->identity_strings[1];
    rs->identity.helo = rs->identity_strings[2];
    rs->identity.protocol = rs->identity_strings[3];
    rs->identity.login = rs->identity_strings[4];
    rs->identity.queue_id = rs->identity_strings[5];
    rs->have_identity = true;
}

/* relay_param_words - "KEY=VALUE" words of the listed keywords from a lookup function */
static char *relay_rcpt_params(porter_session *s, size_t index, bool at_rcpt_hook)
{
    static const char *const keys[] = {"NOTIFY", "ORCPT"};
    char out[1024];
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < 2; k++) {
        const char *value = at_rcpt_hook ? porter_hook_param(s, keys[k])
                                         : porter_rcpt_param(s, index, keys[k]);
        if (value == NULL)
            continue;
        int n = snprintf(out + used, sizeof out - used, "%s%s=%s", used ? " " : "", keys[k], value);
        if (n > 0 && (size_t)n < sizeof out - used)
            used += (size_t)n;
    }
    return xstrdup(out);
}

static char *relay_mail_params(porter_session *s)
{
    static const char *const keys[] = {"BODY", "SMTPUTF8", "RET", "ENVID"};
    char out[1024];
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < 4; k++) {
        const char *value = porter_mail_param(s, keys[k]);
        if (value == NULL)
            continue;
        int n = *value ? snprintf(out + used, sizeof out - used, "%s%s=%s", used ? " " : "",
                                  keys[k], value)
                       : snprintf(out + used, sizeof out - used, "%s%s", used ? " " : "", keys[k]);
        if (n > 0 && (size_t)n < sizeof out - used)
            used += (size_t)n;
    }
    return xstrdup(out);
}

/* relay_copy_envelope - sender, parameters and (all or one) recipients of the transaction */
static void relay_copy_envelope(struct relay_session *rs, porter_session *s, bool all_recipients,
                                const char *one, char *one_params)
{
    relay_envelope_clear(rs);
    rs->mail_from = xstrdup(porter_mail_from(s) ? porter_mail_from(s) : "");
    rs->mail_params = relay_mail_params(s);
    if (all_recipients) {
        size_t count = porter_rcpt_count(s);
        rs->recipients = xcalloc(count + 1, sizeof *rs->recipients);
        rs->recipient_params = xcalloc(count + 1, sizeof *rs->recipient_params);
        for (size_t i = 0; i < count; i++) {
            rs->recipients[i] = xstrdup(porter_rcpt(s, i));
            rs->recipient_params[i] = relay_rcpt_params(s, i, false);
        }
        rs->recipient_count = count;
        free(one_params);
    } else if (one != NULL) {
        rs->recipients = xcalloc(2, sizeof *rs->recipients);
        rs->recipient_params = xcalloc(2, sizeof *rs->recipient_params);
        rs->recipients[0] = xstrdup(one);
        rs->recipient_params[0] = one_params;
        rs->recipient_count = 1;
    } else {
        free(one_params);
    }
    relay_copy_identity(rs, s);
    snprintf(rs->queue_id, sizeof rs->queue_id, "%s", porter_queue_id(s) ? porter_queue_id(s) : "");
}

/* ---------------------------------------------------------------- the operations */

static void relay_run(struct relay_session *rs);
static bool relay_retry(struct relay_session *rs, const struct smtp_reply *reply);

static void relay_deadline_fired(evutil_socket_t fd, short what, void *arg)
{
    struct relay_session *rs = arg;
    if (!rs->busy)
        return;
    relay_release(rs); /* closes the connection: before the dot the downstream drops the mail */
    relay_answer(rs, PORTER_DENYSOFT, 451, "4.4.1", "downstream did not answer in time");
}

/* relay_wait - the hook goes PENDING on us: handle, deadline, and the first step */
static int relay_wait(struct relay_session *rs, porter_session *s, int step)
{
    rs->handle = porter_suspend(s);
    rs->busy = true;
    rs->retried = false;
    rs->step = step;
    if (rs->deadline == NULL)
        rs->deadline = evtimer_new(rs->relay->base, relay_deadline_fired, rs);
    double seconds = rs->relay->budget;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_add(rs->deadline, &tv);
    relay_run(rs);
    return PORTER_PENDING;
}

/* relay_list_has - whether address is in list (case-insensitive) */
static bool relay_list_has(char *const *list, size_t count, const char *address)
{
    for (size_t i = 0; i < count; i++)
        if (strcasecmp(list[i], address) == 0)
            return true;
    return false;
}

static void relay_forwarded_add(struct relay_session *rs, const char *address)
{
    rs->forwarded = xrealloc(rs->forwarded, (rs->forwarded_count + 1) * sizeof *rs->forwarded);
    rs->forwarded[rs->forwarded_count++] = xstrdup(address);
}

static void relay_data_done(struct smtp_client *c, void *arg, const struct smtp_reply *reply);

/* relay_send_data - every recipient accepted: the message */
static void relay_send_data(struct relay_session *rs)
{
    smtp_client_data(rs->client, &rs->message, relay_data_done, rs);
}

/* relay_summary - "a, b" of recipients whose final reply is (not) 2xx */
static void relay_summary(const struct smtp_client_recipient *list, size_t count, bool delivered,
                          char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count && used + 1 < size; i++) {
        if (list[i].rcpt.code / 100 != 2)
            continue;
        bool ok = list[i].final.code / 100 == 2;
        if (ok != delivered)
            continue;
        int n;
        if (delivered)
            n = snprintf(out + used, size - used, "%s<%s>", used ? ", " : "", list[i].address);
        else
            n = snprintf(out + used, size - used, "%s<%s> %d %s", used ? "; " : "",
                         list[i].address, list[i].final.code, list[i].final.text);
        if (n < 0)
            break;
        used += (size_t)n < size - used ? (size_t)n : size - used - 1;
    }
}

static void relay_data_done(struct smtp_client *c, void *arg, const struct smtp_reply *reply)
{
    struct relay_session *rs = arg;
    size_t count = 0;
    const struct smtp_client_recipient *list = smtp_client_recipients(c, &count);
    size_t accepted = 0, ok = 0, temporary = 0;
    for (size_t i = 0; i < count; i++) {
        if (list[i].rcpt.code / 100 != 2)
            continue;
        accepted++;
        int class = list[i].final.code / 100;
        ok += class == 2;
        temporary += class != 2 && class != 5;
    }
    /* no final reply at all: DATA itself was refused, or the connection failed */
    bool any_final = false;
    for (size_t i = 0; i < count; i++)
        any_final |= list[i].rcpt.code / 100 == 2 && list[i].final.code != 0;
    if (!any_final) {
        struct smtp_reply copy = *reply;
        copy.text = xstrdup(reply->text);
        relay_release(rs);
        relay_refuse(rs, &copy, "DATA");
        free(copy.text);
        return;
    }
    relay_forwarded_clear(rs);
    if (accepted > 0 && ok == accepted) {
        char text[SMTP_CLIENT_REPLY_LINE_MAX];
        smtp_reply_format(reply, text, sizeof text);
        smtp_pool_put(rs->relay->pool, rs->client);
        rs->client = NULL;
        relay_answer(rs, PORTER_OK, 250, "2.0.0", "Ok: queued as %s (downstream: %s)",
                     rs->queue_id, text);
        return;
    }
    if (ok == 0) {
        /* nothing delivered: the first failure is the answer (a temporary one if any) */
        const struct smtp_reply *worst = reply;
        for (size_t i = 0; i < count && temporary > 0; i++)
            if (list[i].rcpt.code / 100 == 2 && list[i].final.code / 100 != 5) {
                worst = &list[i].final;
                break;
            }
        struct smtp_reply copy = *worst;
        copy.text = xstrdup(worst->text);
        relay_release(rs);
        relay_refuse(rs, &copy, "the message");
        free(copy.text);
        return;
    }
    /* LMTP, mixed */
    char delivered[RELAY_TEXT_MAX / 2], failed[RELAY_TEXT_MAX / 2];
    relay_summary(list, count, true, delivered, sizeof delivered);
    relay_summary(list, count, false, failed, sizeof failed);
    relay_release(rs);
    if (temporary > 0)
        relay_answer(rs, PORTER_DENYSOFT, 451, "4.4.0",
                     "downstream: delivered to %s; temporary failure for %s", delivered, failed);
    else
        relay_answer(rs, PORTER_DENY, 550, "5.0.0",
                     "downstream: delivered to %s; failed for %s", delivered, failed);
}

/* relay_began - MAIL and RCPT replies of a queue-time envelope */
static void relay_began(struct smtp_client *c, void *arg, const struct smtp_reply *reply)
{
    struct relay_session *rs = arg;
    if (relay_retry(rs, reply))
        return;
    if (reply->code / 100 != 2) {
        relay_release(rs);
        relay_refuse(rs, reply, "MAIL");
        return;
    }
    size_t count = 0;
    const struct smtp_client_recipient *list = smtp_client_recipients(c, &count);
    const struct smtp_client_recipient *refused = NULL;
    for (size_t i = 0; i < count; i++) {
        if (list[i].rcpt.code / 100 == 2)
            continue;
        if (refused == NULL || (refused->rcpt.code / 100 != 5 && list[i].rcpt.code / 100 == 5) ||
            list[i].rcpt.code == 0)
            refused = &list[i];
    }
    if (refused != NULL) {
        /* all or nothing: a client that got 250 for every RCPT must not lose one silently */
        struct smtp_reply copy = refused->rcpt;
        char *text = strstr(refused->rcpt.text, refused->address) != NULL
                         ? xstrdup(refused->rcpt.text)
                         : xasprintf("<%s>: %s", refused->address, refused->rcpt.text);
        copy.text = text;
        relay_release(rs);
        relay_refuse(rs, &copy, "RCPT");
        free(text);
        return;
    }
    relay_send_data(rs);
}

/* relay_reset_done - RSET before a replay */
static void relay_reset_done(struct smtp_client *c, void *arg, const struct smtp_reply *reply)
{
    struct relay_session *rs = arg;
    if (reply->code / 100 != 2) {
        relay_release(rs);
        relay_refuse(rs, reply, "RSET");
        return;
    }
    relay_forwarded_clear(rs);
    rs->resetting = false;
    relay_run(rs);
}

/* relay_mail_done - proxy: the downstream's MAIL reply */
static void relay_mail_done(struct smtp_client *c, void *arg, const struct smtp_reply *reply)
{
    struct relay_session *rs = arg;
    if (relay_retry(rs, reply))
        return;
    if (reply->code / 100 != 2) {
        relay_release(rs);
        relay_refuse(rs, reply, "MAIL");
        return;
    }
    rs->downstream_open = true;
    relay_answer(rs, PORTER_DECLINED, 0, NULL, "downstream accepted the sender");
}

/* relay_rcpt_done - proxy: the downstream's RCPT reply */
static void relay_rcpt_done(struct smtp_client *c, void *arg, const struct smtp_reply *reply)
{
    struct relay_session *rs = arg;
    size_t count = 0;
    const struct smtp_client_recipient *list = smtp_client_recipients(c, &count);
    bool opened_here = !rs->downstream_open;
    if (opened_here && relay_retry(rs, reply))
        return;
    if (opened_here) {
        /* MAIL went out with this RCPT */
        if (reply->code / 100 != 2) {
            relay_release(rs);
            relay_refuse(rs, reply, "MAIL");
            return;
        }
        rs->downstream_open = true;
        reply = count > 0 ? &list[count - 1].rcpt : reply;
    }
    if (reply->code / 100 == 2 && count > 0) {
        relay_forwarded_add(rs, list[count - 1].address);
        relay_answer(rs, PORTER_DECLINED, 0, NULL, "downstream accepted the recipient");
        return;
    }
    if (reply->code == 0)
        relay_release(rs);
    relay_refuse(rs, reply, "RCPT");
}

/* relay_connected - the pool has a connection for us (or says why not) */
static void relay_connected(struct smtp_pool *pool, struct smtp_client *c, void *arg,
                            const struct smtp_reply *reply)
{
    struct relay_session *rs = arg;
    rs->waiter = NULL;
    if (c == NULL) {
        relay_refuse(rs, reply, "the connection");
        return;
    }
    rs->client = c;
    rs->reused = smtp_client_reused(c);
    relay_forwarded_clear(rs);
    relay_run(rs);
}

/* relay_retry - a reused connection the server had closed (it was idle) died before the
 * downstream took anything: once, go on with a fresh connection instead of failing; never
 * after a timeout (a hung server would hold the session for a second timeout) */
static bool relay_retry(struct relay_session *rs, const struct smtp_reply *reply)
{
    if (reply->code != 0 || !rs->reused || rs->retried || rs->client == NULL ||
        !smtp_client_closed_by_server(rs->client))
        return false;
    rs->retried = true;
    relay_release(rs);
    relay_run(rs);
    return true;
}

/* relay_run - the next step of the operation in flight, with a connection in hand */
static void relay_run(struct relay_session *rs)
{
    if (rs->client == NULL || (!smtp_client_usable(rs->client))) {
        if (rs->client != NULL) {
            smtp_pool_put(rs->relay->pool, rs->client);
            rs->client = NULL;
            relay_forwarded_clear(rs);
        }
        rs->waiter = smtp_pool_get(rs->relay->pool, relay_connected, rs);
        return;
    }
    struct smtp_client_envelope envelope = {
        .mail_from = rs->mail_from,
        .mail_params = rs->mail_params,
        .recipients = (const char *const *)rs->recipients,
        .recipient_params = (const char *const *)rs->recipient_params,
        .recipient_count = rs->recipient_count,
        .identity = rs->have_identity ? &rs->identity : NULL,
        .size = rs->size,
    };
    switch (rs->step) {
    case RELAY_STEP_MAIL:
        envelope.recipient_count = 0;
        smtp_client_begin(rs->client, &envelope, relay_mail_done, rs);
        break;
    case RELAY_STEP_RCPT:
        if (rs->downstream_open && smtp_client_in_transaction(rs->client))
            smtp_client_recipient(rs->client, rs->recipients[0], rs->recipient_params[0],
                                  relay_rcpt_done, rs);
        else {
            rs->downstream_open = false;
            smtp_client_begin(rs->client, &envelope, relay_rcpt_done, rs);
        }
        break;
    case RELAY_STEP_QUEUE: {
        bool same = rs->downstream_open && smtp_client_in_transaction(rs->client) &&
                    rs->forwarded_count == rs->recipient_count;
        for (size_t i = 0; same && i < rs->recipient_count; i++)
            same = relay_list_has(rs->forwarded, rs->forwarded_count, rs->recipients[i]);
        if (same) {
            relay_send_data(rs);
        } else if (smtp_client_in_transaction(rs->client)) {
            rs->resetting = true;
            smtp_client_reset(rs->client, relay_reset_done, rs);
        } else {
            smtp_client_begin(rs->client, &envelope, relay_began, rs);
        }
        break;
    }
    default:
        relay_answer(rs, PORTER_DENYSOFT, 451, "4.3.0", "internal error in queue_smtp");
        break;
    }
}

/* ---------------------------------------------------------------- hooks */

static int relay_mail(porter_session *s, void *state)
{
    struct relay *r = state;
    if (r->mode != RELAY_MODE_PROXY)
        return PORTER_DECLINED;
    struct relay_session *rs = relay_session_get(s, r);
    relay_abort(rs);
    if (rs->client != NULL || rs->downstream_open)
        relay_release(rs); /* a transaction from before: the next begin resets it */
    relay_copy_envelope(rs, s, false, NULL, NULL);
    return relay_wait(rs, s, RELAY_STEP_MAIL);
}

static int relay_rcpt(porter_session *s, void *state)
{
    struct relay *r = state;
    if (r->mode != RELAY_MODE_PROXY)
        return PORTER_DECLINED;
    struct relay_session *rs = relay_session_get(s, r);
    if (rs->busy) {
        relay_abort(rs); /* a wait the core gave up on: its connection state is unknown */
    }
    const char *address = porter_hook_argument(s);
    if (rs->mail_from == NULL || !rs->downstream_open)
        relay_copy_envelope(rs, s, false, address, relay_rcpt_params(s, 0, true));
    else {
        strings_free(rs->recipients, rs->recipient_count);
        strings_free(rs->recipient_params, rs->recipient_count);
        rs->recipients = xcalloc(2, sizeof *rs->recipients);
        rs->recipient_params = xcalloc(2, sizeof *rs->recipient_params);
        rs->recipients[0] = xstrdup(address);
        rs->recipient_params[0] = relay_rcpt_params(s, 0, true);
        rs->recipient_count = 1;
    }
    return relay_wait(rs, s, RELAY_STEP_RCPT);
}

static int relay_queue(porter_session *s, void *state)
{
    struct relay *r = state;
    if (porter_quarantined(s) != NULL) {
        struct relay_session *rs = porter_data_get(s);
        if (rs != NULL) {
            relay_abort(rs);
            relay_release(rs);
        }
        if (r->quarantine == RELAY_QUARANTINE_DEFER)
            return porter_reply(s, PORTER_DENYSOFT, 451, "4.7.1",
                                "Message quarantined; not relayed");
        porter_log(s, PORTER_LOG_INFO, "event=quarantined_not_relayed reason=\"%s\"",
                   porter_quarantined(s));
        return PORTER_DECLINED;
    }
    struct relay_session *rs = relay_session_get(s, r);
    relay_abort(rs);
    struct porter_message m;
    if (porter_message(s, &m) != 0)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Local error in relaying, try again later");
    char **forwarded = rs->forwarded;
    size_t forwarded_count = rs->forwarded_count;
    bool open = rs->downstream_open;
    rs->forwarded = NULL;
    rs->forwarded_count = 0;
    relay_copy_envelope(rs, s, true, NULL, NULL);
    rs->forwarded = forwarded;
    rs->forwarded_count = forwarded_count;
    rs->downstream_open = open;
    memset(&rs->message, 0, sizeof rs->message);
    rs->message.parts[0] = m.headers;
    rs->message.part_lengths[0] = m.headers_length;
    rs->message.parts[1] = "\r\n";
    rs->message.part_lengths[1] = 2;
    rs->message.fd = m.body_fd;
    rs->message.offset = m.body_offset;
    rs->message.length = m.body_length;
    rs->size = (unsigned long long)m.headers_length + 2 + (unsigned long long)m.body_length;
    return relay_wait(rs, s, RELAY_STEP_QUEUE);
}

static int relay_reset_transaction(porter_session *s, void *state)
{
    struct relay_session *rs = porter_data_get(s);
    if (rs == NULL)
        return PORTER_DECLINED;
    relay_abort(rs);
    relay_release(rs); /* the connection goes back; the next begin on it resets it */
    relay_envelope_clear(rs);
    return PORTER_DECLINED;
}

static int relay_disconnect(porter_session *s, void *state)
{
    struct relay_session *rs = porter_data_get(s);
    if (rs == NULL)
        return PORTER_DECLINED;
    relay_abort(rs);
    relay_release(rs);
    relay_envelope_clear(rs);
    if (rs->deadline != NULL)
        event_free(rs->deadline);
    free(rs);
    porter_data_set(s, NULL);
    return PORTER_DECLINED;
}

/* ---------------------------------------------------------------- init */

/* relay_read_password - the first line of path; NULL with errno */
static char *relay_read_password(const char *path)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return NULL;
    char line[1024];
    char *result = NULL;
    if (fgets(line, sizeof line, file) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        result = xstrdup(line);
    }
    explicit_bzero(line, sizeof line);
    fclose(file);
    if (result == NULL)
        errno = EINVAL;
    return result;
}

static void *relay_init(porter_args *a)
{
    struct relay *r = xcalloc(1, sizeof *r);
    const char *host = porter_arg_string(a, "host", NULL);
    if (host == NULL || !smtp_client_address_valid(host))
        porter_arg_error(a, "host= must be HOST:PORT, [IPV6]:PORT or unix:/PATH");
    r->address = xstrdup(host ? host : "");
    r->settings.address = r->address;
    r->settings.lmtp = porter_arg_choice(a, "protocol", "smtp|lmtp") == 1;
    r->mode = porter_arg_choice(a, "mode", "relay|proxy");
    r->settings.tls = porter_arg_choice(a, "tls", "may|none|encrypt|verify");
    static const int tls_values[] = {SMTP_CLIENT_TLS_MAY, SMTP_CLIENT_TLS_NONE,
                                     SMTP_CLIENT_TLS_ENCRYPT, SMTP_CLIENT_TLS_VERIFY};
    r->settings.tls = tls_values[r->settings.tls >= 0 && r->settings.tls < 4 ? r->settings.tls : 0];
    const char *ca_file = porter_arg_path(a, "tls_ca_file", NULL);
    const char *server_name = porter_arg_string(a, "tls_server_name", NULL);
    r->tls_server_name = server_name ? xstrdup(server_name) : NULL;
    r->settings.tls_server_name = r->tls_server_name;
    if (r->settings.tls != SMTP_CLIENT_TLS_NONE) {
        const char *error = NULL;
        r->tls_context = smtp_client_tls_context(ca_file, &error);
        if (r->tls_context == NULL)
            porter_arg_error(a, "tls: %s", error);
        r->settings.tls_context = r->tls_context;
    }
    const char *user = porter_arg_string(a, "auth_user", NULL);
    const char *password_file = porter_arg_path(a, "auth_password_file", NULL);
    if (user != NULL) {
        if (password_file == NULL)
            porter_arg_error(a, "auth_user= needs auth_password_file=");
        else if ((r->auth_password = relay_read_password(password_file)) == NULL)
            porter_arg_error(a, "auth_password_file: cannot read %s: %s", password_file,
                             strerror(errno));
        r->auth_user = xstrdup(user);
        r->settings.auth_user = r->auth_user;
        r->settings.auth_password = r->auth_password;
    }
    static const int identity_values[] = {SMTP_CLIENT_IDENTITY_AUTO, SMTP_CLIENT_IDENTITY_XFORWARD,
                                          SMTP_CLIENT_IDENTITY_XCLIENT, SMTP_CLIENT_IDENTITY_NONE};
    int identity = porter_arg_choice(a, "identity", "auto|xforward|xclient|none");
    r->settings.identity = identity_values[identity >= 0 && identity < 4 ? identity : 0];
    const char *helo = porter_arg_string(a, "helo", porter_setting(a, "hostname"));
    r->helo = helo ? xstrdup(helo) : NULL;
    r->settings.helo_name = r->helo;
    r->pool_idle = (size_t)porter_arg_integer(a, "pool", 16, 0, 10000);
    r->pool_total = (size_t)porter_arg_integer(a, "connections", 256, 1, 100000);
    r->idle_timeout = porter_arg_seconds(a, "idle_timeout", 30);
    r->settings.connect_timeout = porter_arg_seconds(a, "connect_timeout", 10);
    r->settings.greeting_timeout = porter_arg_seconds(a, "command_timeout", 30);
    r->settings.command_timeout = r->settings.greeting_timeout;
    r->settings.data_timeout = porter_arg_seconds(a, "data_timeout", 60);
    r->settings.data_done_timeout = r->settings.data_timeout;
    r->quarantine = porter_arg_choice(a, "quarantine", "next|defer") == 1 ? RELAY_QUARANTINE_DEFER
                                                                            : RELAY_QUARANTINE_NEXT;
    /* our deadline: half a second before the core's deadline for this plugin */
    const char *plugin_timeout = porter_setting(a, "plugin_timeout");
    double fallback = plugin_timeout ? strtod(plugin_timeout, NULL) : 30;
    double hook_timeout = porter_arg_seconds(a, "hook_timeout", fallback);
    r->budget = hook_timeout > 1 ? hook_timeout - 0.5 : hook_timeout * 0.8;
    return r;
}

static void relay_fini(void *state)
{
    struct relay *r = state;
    if (r == NULL)
        return;
    /* r->pool is NULL here: relay_pool_free closed it when the worker's loop ended (fini
     * comes after the loop is freed, too late to touch its events), and the master has none */
    if (r->tls_context != NULL)
        SSL_CTX_free(r->tls_context);
    free(r->address);
    free(r->helo);
    free(r->tls_server_name);
    free(r->auth_user);
    if (r->auth_password != NULL) {
        explicit_bzero(r->auth_password, strlen(r->auth_password));
        free(r->auth_password);
    }
    free(r);
}

PORTER_PLUGIN(.name = "queue_smtp",
              .description = "Relays accepted mail to the downstream MTA while the client waits. "
                             "The client gets the downstream's answer (a before-queue proxy): 250 "
                             "only after the downstream's 250, its 4xx or 5xx passed on with "
                             "\"downstream:\" in front, 451 4.4.1 when it cannot be reached. "
                             "Connections are pooled per worker; the client's identity goes along "
                             "with XFORWARD or XCLIENT, or the X-Porter-Client header when the "
                             "downstream offers neither (Exim). Quarantined messages are never relayed. "
                             "The whole relay must end within the hook's deadline (hook_timeout= "
                             "or plugin_timeout); see docs/queue.md.",
              .arguments = PORTER_ARGUMENTS(
                  {"host", NULL,
                   "Required. The downstream: HOST:PORT, [IPV6]:PORT or unix:/PATH."},
                  {"protocol", "smtp", "smtp, or lmtp (one reply per recipient after the data)."},
                  {"mode", "relay",
                   "relay: one downstream transaction at queue; proxy: also at mail and rcpt, so "
                   "that the client sees the downstream's verdict per recipient (put the line "
                   "before rcpt_ok)."},
                  {"tls", "may",
                   "STARTTLS to the downstream: may, none, encrypt (required) or verify "
                   "(required, certificate checked)."},
                  {"tls_ca_file", NULL,
                   "CA certificates (PEM) that tls=verify checks against (default: the system's)."},
                  {"tls_server_name", NULL,
                   "The name tls=verify expects in the certificate and sends as SNI (default: the "
                   "host of host=)."},
                  {"auth_user", NULL,
                   "AUTH PLAIN at the downstream as this user; needs auth_password_file=."},
                  {"auth_password_file", NULL,
                   "A file whose first line is auth_user's password."},
                  {"identity", "auto",
                   "How the client's identity is passed on: auto (XFORWARD when offered, else "
                   "XCLIENT when offered, else the X-Porter-Client header), xforward, xclient or "
                   "none."},
                  {"helo", NULL, "The name said in EHLO (default: hostname in porter.conf)."},
                  {"pool", "16",
                   "Idle downstream connections kept per worker for the next message."},
                  {"connections", "256",
                   "Downstream connections per worker at most; more messages wait in line."},
                  {"idle_timeout", "30", "Seconds a pooled connection may stay idle."},
                  {"connect_timeout", "10", "Seconds to connect."},
                  {"command_timeout", "30",
                   "Seconds for the greeting and for each reply to a command."},
                  {"data_timeout", "60",
                   "Seconds for sending the message and for the reply to its end."},
                  {"quarantine", "next",
                   "Quarantined messages: next declines them, so that a later queue plugin takes "
                   "them (queue_spool's hold queue, queue_maildir's quarantine); defer answers "
                   "451 4.7.1."}),
              .init = relay_init, .fini = relay_fini,
              .hooks[PORTER_HOOK_MAIL] = relay_mail, .hooks[PORTER_HOOK_RCPT] = relay_rcpt,
              .hooks[PORTER_HOOK_QUEUE] = relay_queue,
              .hooks[PORTER_HOOK_RESET_TRANSACTION] = relay_reset_transaction,
              .hooks[PORTER_HOOK_DISCONNECT] = relay_disconnect);
