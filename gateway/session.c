/*
 * session.c - the SMTP state machine of one connection (RFC 5321, 1870, 2920, 3030, 3461,
 * 6152, 6531, 2034/3463).
 *
 * The command set is one table: verb, hook, allowed states, check (pure validation that
 * answers the client itself on error), proceed (applies the hook chain's verdict). Input is
 * read by one loop that handles pipelined commands in order and never reads across a DATA
 * or BDAT boundary: message bytes go to the data reader, commands to the table. While a hook
 * chain runs the loop stops; the chain's end resumes it. Every limit is a setting; every
 * reply carries an enhanced status code except the greeting and the HELO/EHLO replies.
 *
 * TLS (RFC 3207, RFC 8314): STARTTLS answers 220, stops reading, discards whatever plaintext
 * the client pipelined after it (the CVE-2011-0411 class: it is never executed inside TLS),
 * forgets the EHLO, the transaction and any authentication, and once the 220 is written moves
 * the socket to a TLS bufferevent (tls.c). Input waits until the handshake is done and the
 * tls hook has run. On a submissions listener the handshake comes first, then the connect
 * hook and the greeting. AUTH lives in auth.c; submission listeners require it before MAIL.
 *
 * Interface: session.h. Fatal: out of memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth.h"
#include "auth_results.h"
#include "config.h"
#include "clock.h"
#include "log.h"
#include "memory.h"
#include "cidr.h"
#include "metrics.h"
#include "plugin_host.h"
#include "proxy_protocol.h"
#include "session.h"
#include "tls.h"
#include "worker.h"
#include "xclient.h"

#define SESSION_READ_HIGH_WATER (256 * 1024)
/* Replies the client has not read yet above this: no more commands are taken until it reads
 * (a client pipelining without reading replies cannot make the output grow without bound). */
#define SESSION_OUTPUT_HIGH_WATER (128 * 1024)
#define SESSION_CLOSE_GRACE 10 /* seconds to flush a final reply */

static const char *const state_names[SESSION_STATE_COUNT] = {
    "connect", "greeted", "ready", "mail", "rcpt", "data", "bdat", "closing",
};

const char *session_state_name(enum session_state state)
{
    return state < SESSION_STATE_COUNT ? state_names[state] : "invalid";
}

#define STATE_BIT(state) (1u << (state))
#define STATES_AFTER_GREETING                                                                   \
    (STATE_BIT(SESSION_STATE_GREETED) | STATE_BIT(SESSION_STATE_READY) |                        \
     STATE_BIT(SESSION_STATE_MAIL) | STATE_BIT(SESSION_STATE_RCPT))

struct session_command {
    enum smtp_verb verb;
    int hook; /* -1: no hook */
    unsigned states;
    int (*check)(struct porter_session *s, const char *argument);
    void (*proceed)(struct porter_session *s, int rc);
    bool last; /* must end a pipelining group (RFC 2920 3.1, RFC 3207, RFC 4954) */
};

static void session_process_input(struct porter_session *s);
static bool session_unauth_pipelining(struct porter_session *s, const char *after);
static void session_set_state(struct porter_session *s, enum session_state state);
static void session_arm_idle(struct porter_session *s);
static void session_total_fired_locked(struct porter_session *s);
static void session_idle_fired_locked(struct porter_session *s);
static void session_proceed_connect(struct porter_session *s, int rc);
static void session_read_ready(struct bufferevent *bev, void *arg);
static void session_write_done(struct bufferevent *bev, void *arg);
static void session_event(struct bufferevent *bev, short what, void *arg);
static void session_connected(struct porter_session *s);
static void session_proxy_input(struct porter_session *s);

/* ---------------------------------------------------------------- replies */

/* session_reply_counted - write a reply; a refusal that counts is one more towards max_errors;
 * a 421 names our host first (RFC 5321 section 4.2) unless its text already does */
static void session_reply_counted(struct porter_session *s, int code, const char *enhanced,
                                  const char *text, bool counts)
{
    if (s->closed || s->transport != NULL)
        return; /* another transport answers in its own protocol */
    char *named = NULL;
    size_t host_length = strlen(s->config->hostname);
    if (code == 421 && text != NULL && !(strncmp(text, s->config->hostname, host_length) == 0 &&
                                         (text[host_length] == ' ' || text[host_length] == '\0'))) {
        /* RFC 5321 4.2: "421 <domain> Service not available"; whoever wrote the text */
        named = xasprintf("%s %s", s->config->hostname, text);
        text = named;
    }
    reply_write(bufferevent_get_output(s->output), code, enhanced, text);
    if (counts)
        s->errors++;
    if (s->flags & SESSION_FLAG_TRACE) {
        char *escaped = hook_trace_escape(text); /* a multi-line reply stays one trace line */
        fprintf(stderr, "trace: reply=%d %s %s\n", code, enhanced ? enhanced : "", escaped);
        free(escaped);
    }
    free(named);
}

void session_reply(struct porter_session *s, int code, const char *enhanced, const char *text)
{
    session_reply_counted(s, code, enhanced, text, code >= 400 && code != 421);
}

/* session_reply_verdict - the reply of the chain's verdict (plugin's text or the default) */
static void session_reply_verdict(struct porter_session *s, enum porter_hook hook, int rc)
{
    int code;
    const char *enhanced, *text;
    reply_resolve(&s->run.reply, hook, rc, &code, &enhanced, &text);
    session_reply(s, code, hook == PORTER_HOOK_CONNECT || hook == PORTER_HOOK_HELO ||
                           hook == PORTER_HOOK_EHLO ? NULL : enhanced, text);
}

/* session_reply_accepted - the 2xx of an accepting verdict: the plugin's text with OK (its
 * code kept only when it is a 2xx), the hook's default otherwise */
static void session_reply_accepted(struct porter_session *s, enum porter_hook hook, int rc)
{
    int code, default_code;
    const char *enhanced, *text, *default_enhanced, *default_text;
    reply_default(hook, PORTER_OK, &default_code, &default_enhanced, &default_text);
    if (rc != PORTER_OK) {
        session_reply(s, default_code, default_enhanced, default_text);
        return;
    }
    reply_resolve(&s->run.reply, hook, PORTER_OK, &code, &enhanced, &text);
    if (code / 100 != 2) {
        code = default_code;
        enhanced = default_enhanced;
    }
    session_reply(s, code, enhanced, text);
}

/* session_verdict_is_refusal - DENY and friends */
static bool session_verdict_is_refusal(int rc)
{
    return rc == PORTER_DENY || rc == PORTER_DENYSOFT || rc == PORTER_DENY_DISCONNECT ||
           rc == PORTER_DENYSOFT_DISCONNECT;
}

/* session_apply_refusal - reply to a refusal and close when it says so; true if it refused */
static bool session_apply_refusal(struct porter_session *s, enum porter_hook hook, int rc)
{
    if (rc == PORTER_DONE) {
        session_reply_verdict(s, hook, rc);
        return true;
    }
    if (!session_verdict_is_refusal(rc))
        return false;
    session_reply_verdict(s, hook, rc);
    if (rc == PORTER_DENY_DISCONNECT || rc == PORTER_DENYSOFT_DISCONNECT)
        session_finish_closing(s, "plugin_disconnect");
    return true;
}

void session_log_verdict(struct porter_session *s, enum porter_hook hook, int rc)
{
    log_message(PORTER_LOG_DEBUG, s->id_string, "event=verdict hook=%s verdict=%s plugin=%s",
                porter_hook_name(hook), porter_rc_name(rc), s->run.decider ? s->run.decider : "-");
}

/* ---------------------------------------------------------------- closing */

/* session_transaction_free - end the transaction; its spool file goes back to the worker */
static void session_transaction_free(struct porter_session *s)
{
    struct transaction *t = s->transaction;
    s->transaction = NULL;
    if (t == NULL)
        return;
    if (s->blocking_jobs > 0) {
        /* A pool thread may still read this message (its hook timed out under it): the
         * message and its spool file stay until the jobs end (session_blocking_done). */
        t->parked_next = s->parked;
        s->parked = t;
        return;
    }
    worker_spool_give(s->worker, transaction_spool_take(t));
    transaction_free(t);
}

void session_blocking_done(struct porter_session *s)
{
    if (--s->blocking_jobs > 0)
        return;
    while (s->parked != NULL) {
        struct transaction *t = s->parked;
        s->parked = t->parked_next;
        worker_spool_give(s->worker, transaction_spool_take(t));
        transaction_free(t);
    }
}

/* session_free - release everything; only from session_release */
static void session_free(struct porter_session *s)
{
    if (s->idle_timer)
        event_free(s->idle_timer);
    if (s->session_timer)
        event_free(s->session_timer);
    hook_chain_cancel(s);
    session_transaction_free(s);
    data_reader_free(s->reader);
    if (s->path_valid)
        smtp_path_clear(&s->path);
    note_list_clear(&s->notes);
    note_list_clear(&s->log_facts);
    free(s->plugin_data);
    plugin_registry_release(s->plugins);
    free(s->command_argument);
    free(s->client_name);
    free(s->client_ptr);
    free(s->helo);
    free(s->auth_user);
    auth_exchange_free(s->auth);
    tls_facts_free(s->tls);
    free(s->final_log);
    free(s);
}

void session_release(struct porter_session *s)
{
    if (s->closed && !s->run.active && s->blocking_jobs == 0 && s->holds == 0)
        session_free(s);
}

void session_hold(struct porter_session *s)
{
    s->holds++;
}

void session_unhold(struct porter_session *s)
{
    s->holds--;
    session_release(s);
}

void session_close(struct porter_session *s, const char *reason)
{
    if (s->closed)
        return;
    s->closed = true;
    hook_chain_cancel(s);
    if (s->transaction != NULL)
        session_log_transaction(s, reason, 0, NULL, NULL, NULL);
    if (s->client_known) /* plugins never saw a connection refused before it (PROXY) */
        hook_chain_notify(s, PORTER_HOOK_DISCONNECT);
    struct timeval now, elapsed;
    gettimeofday(&now, NULL);
    timersub(&now, &s->connected_at, &elapsed);
    log_message(PORTER_LOG_INFO, s->id_string, "event=disconnect client=%s reason=%s "
                "messages=%u errors=%u duration=%.3fs", s->client_ip, reason, s->messages,
                s->errors, (double)elapsed.tv_sec + (double)elapsed.tv_usec / 1e6);
    if (s->transport != NULL)
        s->transport->closed(s);
    if (s->output != s->input && s->output != NULL)
        bufferevent_free(s->output);
    if (s->input != NULL)
        bufferevent_free(s->input);
    s->input = s->output = NULL;
    if (s->idle_timer)
        evtimer_del(s->idle_timer);
    if (s->session_timer)
        evtimer_del(s->session_timer);
    worker_session_closed(s->worker, s);
    session_release(s);
}

/* session_finish_closing - flush what is queued for the client, then close */
void session_finish_closing(struct porter_session *s, const char *reason)
{
    if (s->closed || s->state == SESSION_STATE_CLOSING)
        return;
    if (s->transport != NULL) {
        session_close(s, reason);
        return;
    }
    session_set_state(s, SESSION_STATE_CLOSING);
    free(s->final_log);
    s->final_log = xstrdup(reason);
    bufferevent_disable(s->input, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(s->output)) == 0) {
        session_close(s, reason);
        return;
    }
    struct timeval grace = {SESSION_CLOSE_GRACE, 0};
    evtimer_add(s->idle_timer, &grace);
}

/* ---------------------------------------------------------------- state and timers */

/* session_in_data - message bytes are being read (DATA, or the BDAT chunks and commands) */
static bool session_in_data(const struct porter_session *s)
{
    return s->state == SESSION_STATE_DATA || s->state == SESSION_STATE_BDAT;
}

/* session_rate_window_start - a new data_min_rate window begins now */
static void session_rate_window_start(struct porter_session *s)
{
    s->data_window_start = clock_monotonic();
    s->data_window_bytes = 0;
}

static void session_set_state(struct porter_session *s, enum session_state state)
{
    if (s->state != state)
        log_message(PORTER_LOG_DEBUG, s->id_string, "event=state from=%s to=%s",
                    session_state_name(s->state), session_state_name(state));
    bool entering_data = !session_in_data(s);
    s->state = state;
    if (entering_data && session_in_data(s))
        session_rate_window_start(s);
    metrics_view_state(s->view, (int)state);
}

/* session_idle_fired - the client said nothing for too long (or a final flush hung) */
static void session_idle_fired(evutil_socket_t fd, short what, void *arg)
{
    struct porter_session *s = arg;
    session_hold(s);
    session_idle_fired_locked(s);
    session_unhold(s);
}

static void session_idle_fired_locked(struct porter_session *s)
{
    if (s->state == SESSION_STATE_CLOSING) {
        session_close(s, s->final_log ? s->final_log : "flush_timeout");
        return;
    }
    if (s->proxy_wait) {
        /* the whole header had proxy_timeout, however it trickled in */
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=proxy_error client=%s "
                    "error=\"no complete PROXY header within %.1fs\" received=%zu", s->client_ip,
                    s->config->proxy_timeout, evbuffer_get_length(bufferevent_get_input(s->input)));
        session_close(s, "proxy_timeout");
        return;
    }
    if (s->flags & (SESSION_FLAG_TLS_PENDING | SESSION_FLAG_TLS_HANDSHAKE)) {
        /* Nothing can be said: the 220 is not read, or the handshake did not finish. */
        log_message(PORTER_LOG_INFO, s->id_string, "event=tls_timeout client=%s stage=%s",
                    s->client_ip, s->flags & SESSION_FLAG_TLS_PENDING ? "starttls_reply"
                                                                      : "handshake");
        session_close(s, "tls_handshake_timeout");
        return;
    }
    if (s->run.active) {
        /* We are the slow one; the plugin deadline handles that. The rate is measured anew. */
        session_rate_window_start(s);
        session_arm_idle(s);
        return;
    }
    const char *reason = "timeout";
    double now = clock_monotonic();
    if (session_in_data(s) && s->config->data_rate_window > 0 &&
        now >= s->data_window_start + s->config->data_rate_window - 0.001) {
        double wanted = (double)s->config->data_min_rate * s->config->data_rate_window;
        if ((double)s->data_window_bytes >= wanted) {
            session_rate_window_start(s); /* fast enough: measure the next window */
            session_arm_idle(s);
            return;
        }
        reason = "data_too_slow";
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=data_too_slow client=%s bytes=%llu "
                    "window=%.3gs min_rate=%llu", s->client_ip, s->data_window_bytes,
                    s->config->data_rate_window, s->config->data_min_rate);
    } else if (!session_in_data(s) && s->line_started > 0 && s->config->command_deadline > 0 &&
               now >= s->line_started + s->config->command_deadline - 0.001) {
        reason = "command_deadline";
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=command_deadline client=%s "
                    "deadline=%.3gs partial=%zu", s->client_ip, s->config->command_deadline,
                    evbuffer_get_length(bufferevent_get_input(s->input)));
    }
    char text[300];
    snprintf(text, sizeof text, "%s Error: timeout exceeded", s->config->hostname);
    session_reply(s, 421, "4.4.2", text);
    session_finish_closing(s, reason);
}

/* session_total_fired - the whole session took too long */
static void session_total_fired(evutil_socket_t fd, short what, void *arg)
{
    struct porter_session *s = arg;
    session_hold(s);
    session_total_fired_locked(s);
    session_unhold(s);
}

static void session_total_fired_locked(struct porter_session *s)
{
    if (s->state == SESSION_STATE_CLOSING)
        return;
    hook_chain_cancel(s);
    char text[300];
    snprintf(text, sizeof text, "%s Error: session time limit exceeded", s->config->hostname);
    session_reply(s, 421, "4.4.2", text);
    session_finish_closing(s, "session_timeout");
    /* A cancelled chain will never call back: make sure the close completes. */
    if (!s->closed && evbuffer_get_length(bufferevent_get_output(s->output)) == 0)
        session_close(s, "session_timeout");
}

static void session_arm_idle(struct porter_session *s)
{
    if (s->closed || s->state == SESSION_STATE_CLOSING || s->proxy_wait)
        return;
    bool stressed = worker_stressed(s->worker);
    double seconds = stressed ? s->config->stress_command_timeout : s->config->command_timeout;
    if (s->state == SESSION_STATE_GREETED && s->helo[0] == '\0' && s->errors == 0)
        seconds = stressed ? s->config->stress_greeting_timeout : s->config->greeting_timeout;
    if (s->state == SESSION_STATE_DATA || s->state == SESSION_STATE_BDAT)
        seconds = s->config->data_timeout;
    if (s->flags & (SESSION_FLAG_TLS_PENDING | SESSION_FLAG_TLS_HANDSHAKE)) {
        seconds = s->config->greeting_timeout; /* a handshake is as short as a greeting */
    } else if (!s->run.active) {
        /* The deadlines a trickle cannot extend: the end of the data rate window, or the
         * command line's deadline. */
        double deadline = 0;
        if (session_in_data(s) && s->config->data_rate_window > 0)
            deadline = s->data_window_start + s->config->data_rate_window;
        else if (!session_in_data(s) && s->line_started > 0 && s->config->command_deadline > 0)
            deadline = s->line_started + s->config->command_deadline;
        if (deadline > 0 && deadline - clock_monotonic() < seconds)
            seconds = deadline - clock_monotonic();
    }
    struct timeval tv = clock_timeval(seconds);
    evtimer_add(s->idle_timer, &tv);
}

void session_timers_changed(struct porter_session *s)
{
    if (!s->closed && !s->run.active && s->state != SESSION_STATE_CLOSING)
        session_arm_idle(s);
}

/* ---------------------------------------------------------------- transactions */

/* session_reset_transaction - end the transaction (RSET, HELO, end of message); end names why
 * for its log line (NULL: logged already) */
void session_reset_transaction(struct porter_session *s, const char *end)
{
    if (s->transaction != NULL && end != NULL)
        session_log_transaction(s, end, 0, NULL, NULL, NULL);
    if (s->transaction != NULL)
        hook_chain_notify(s, PORTER_HOOK_RESET_TRANSACTION);
    session_transaction_free(s);
    s->transaction = NULL;
    data_reader_free(s->reader);
    s->reader = NULL;
    s->smtputf8 = false;
    s->bdat_remaining = 0;
    s->bdat_last = false;
    s->bdat_chunk = false;
    s->flags &= ~(unsigned)SESSION_FLAG_BDAT_FAILED;
    if (s->state != SESSION_STATE_CONNECT && s->state != SESSION_STATE_GREETED &&
        s->state != SESSION_STATE_CLOSING)
        session_set_state(s, SESSION_STATE_READY);
}

/* session_log_refusals - "<ADDRESS>:CODE:DECIDER,..." of the RCPTs the transaction refused */
static void session_log_refusals(const struct transaction *t, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < t->refusal_count && i < TRANSACTION_REFUSALS_KEPT && used < size; i++) {
        const struct recipient_refusal *r = &t->refusals[i];
        int n = snprintf(out + used, size - used, "%s<%s>:%d:%s", i ? "," : "", r->address,
                         r->code, r->decider);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* session_log_transaction - the one log line per transaction, however it ends: end is "data"
 * (a message was answered: code, enhanced, text and decider give the reply), "mail" (MAIL
 * was refused: the reply), or why it ended without a message ("rset", "helo", "quit", a
 * disconnect reason: code 0, no reply). Every value that could hold a blank or a quote goes
 * through log_value, so each line parses as key=value words. */
void session_log_transaction(struct porter_session *s, const char *end, int code,
                             const char *enhanced, const char *text, const char *decider)
{
    struct transaction *t = s->transaction;
    int decider_index = decider != NULL && s->run.plugin != NULL &&
                                strcmp(s->run.plugin->name, decider) == 0
                            ? (int)s->run.plugin->index
                            : -1;
    metrics_transaction(code, decider_index, strcmp(end, "data") == 0, t->data_size);
    char recipients[1024], refused[1024];
    size_t used = 0;
    recipients[0] = '\0';
    for (size_t i = 0; i < t->recipient_count && used < sizeof recipients; i++) {
        int n = snprintf(recipients + used, sizeof recipients - used, "%s<%s>", i ? "," : "",
                         t->recipients[i].address);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    session_log_refusals(t, refused, sizeof refused);
    unsigned long long size = t->data_size;
    if (size == 0 && s->reader != NULL)
        size = data_reader_size(s->reader); /* the data so far, when it ends half way */
    char helo_value[600], from_value[600], from[600], to_value[1100], refused_value[1100];
    snprintf(from, sizeof from, "<%s>", t->mail_from);
    char refusals[1200] = "";
    if (t->refusal_count > 0)
        snprintf(refusals, sizeof refusals, " refused=%s nrefused=%zu",
                 log_value(refused_value, sizeof refused_value, refused), t->refusal_count);
    char reply[1200] = "";
    if (code != 0) {
        char whole[1000], reply_value[1100];
        snprintf(whole, sizeof whole, "%d %s %s", code, enhanced ? enhanced : "", text ? text : "");
        /* always quoted: the reply has blanks */
        snprintf(reply, sizeof reply, " reply=%s plugin=%s",
                 log_value(reply_value, sizeof reply_value, whole), decider ? decider : "-");
    }
    /* TLS and AUTH facts: the identity passed auth_identity_valid (no quotes, no controls). */
    char secure[400] = "";
    if (s->tls != NULL || s->auth_user != NULL)
        snprintf(secure, sizeof secure, "%s%s%s%s%s%s", s->tls ? " tls=" : "",
                 s->tls && s->tls->version ? s->tls->version : "",
                 s->tls ? " cipher=" : "", s->tls && s->tls->cipher ? s->tls->cipher : "",
                 s->auth_user ? " auth=" : "", s->auth_user ? s->auth_user : "");
    char facts[1024] = ""; /* porter_log_fact: keys are checked words, values quoted */
    for (size_t i = 0, length = 0; i < s->log_facts.count && length < sizeof facts; i++) {
        char value[300];
        int n = snprintf(facts + length, sizeof facts - length, " %s=%s",
                         s->log_facts.items[i].key,
                         log_value(value, sizeof value, s->log_facts.items[i].value));
        if (n < 0 || (size_t)n >= sizeof facts - length) {
            facts[length] = '\0'; /* a fact that does not fit is left out whole */
            break;
        }
        length += (size_t)n;
    }
    char quarantine_value[300], discard_value[300];
    log_message(PORTER_LOG_INFO, s->id_string,
                "event=transaction client=%s helo=%s queue_id=%s from=%s to=%s nrcpt=%zu%s "
                "size=%llu end=%s%s%s%s%s%s%s%s",
                s->client_ip, log_value(helo_value, sizeof helo_value, s->helo), t->queue_id,
                log_value(from_value, sizeof from_value, from),
                log_value(to_value, sizeof to_value, recipients), t->recipient_count, refusals,
                size, end, reply,
                t->quarantine_reason ? " quarantined=" : "",
                t->quarantine_reason ? log_value(quarantine_value, sizeof quarantine_value,
                                                 t->quarantine_reason) : "",
                t->discard_reason ? " discarded=" : "",
                t->discard_reason ? log_value(discard_value, sizeof discard_value,
                                              t->discard_reason) : "",
                secure, facts);
}

/* session_end_message - final reply for a message is given: log, count, reset */
static void session_end_message(struct porter_session *s, enum porter_hook hook, int rc)
{
    int code;
    const char *enhanced, *text;
    char queued[256];
    if (rc == PORTER_OK && s->run.reply.text == NULL) {
        snprintf(queued, sizeof queued, "Ok: queued as %s", s->transaction->queue_id);
        reply_resolve(&s->run.reply, hook, rc, &code, &enhanced, &text);
        code = 250;
        enhanced = "2.0.0";
        text = queued;
    } else {
        reply_resolve(&s->run.reply, hook, rc, &code, &enhanced, &text);
    }
    if (rc == PORTER_OK && code / 100 != 2)
        code = 250;
    session_reply(s, code, enhanced, text);
    session_log_transaction(s, "data", code, enhanced, text, s->run.decider);
    s->messages++;
    if (code / 100 == 2)
        s->junk = 0;
    session_reset_transaction(s, NULL);
    if (rc == PORTER_DENY_DISCONNECT || rc == PORTER_DENYSOFT_DISCONNECT)
        session_finish_closing(s, "plugin_disconnect");
}

static void session_proceed_queue(struct porter_session *s, int rc)
{
    if (rc == PORTER_DECLINED) {
        log_message(PORTER_LOG_WARNING, s->id_string, "event=no_queue queue_id=%s "
                    "error=\"no queue plugin accepted the message\"", s->transaction->queue_id);
    }
    session_end_message(s, PORTER_HOOK_QUEUE, rc);
    session_input_resume(s);
}

static void session_proceed_data_post(struct porter_session *s, int rc)
{
    if ((rc == PORTER_OK || rc == PORTER_DECLINED) && s->transaction->discard_reason != NULL) {
        /* porter_discard: 250 to the client, no queue chain, nothing delivered */
        char text[256];
        snprintf(text, sizeof text, "Ok: discarded as %s", s->transaction->queue_id);
        reply_set(&s->run.reply, 250, "2.0.0", text);
        session_end_message(s, PORTER_HOOK_DATA_POST, PORTER_OK);
        session_input_resume(s);
        return;
    }
    if (rc == PORTER_OK || rc == PORTER_DECLINED) {
        auth_results_add(s);
        hook_chain_run(s, PORTER_HOOK_QUEUE, session_proceed_queue);
        return;
    }
    session_end_message(s, PORTER_HOOK_DATA_POST, rc);
    session_input_resume(s);
}

/* session_comment_text - text for a header comment: printable ASCII, no parentheses */
static char *session_comment_text(const char *text)
{
    char *copy = xstrndup(text, strnlen(text, 255));
    for (char *p = copy; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '\\')
            *p = '?';
    }
    return copy;
}

/* session_received_header - the Received header Porter prepends (RFC 5321 4.4), with
 * Postfix's TLS and authentication comments */
static void session_add_received(struct porter_session *s)
{
    struct transaction *t = s->transaction;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    const char *protocol = (s->flags & SESSION_FLAG_EHLO) ? "ESMTP" : "SMTP";
    char with[32];
    snprintf(with, sizeof with, "%s%s%s%s", s->smtputf8 ? "UTF8" : "", s->smtputf8 ? protocol + 1 : protocol,
             (s->flags & SESSION_FLAG_TLS) ? "S" : "", s->auth_user ? "A" : "");
    char *forpart = t->recipient_count == 1 ? xasprintf("\r\n\tfor <%s>", t->recipients[0].address)
                                            : xstrdup("");
    char *tls = s->tls != NULL ? tls_received_comment(s->tls) : xstrdup("");
    char *user = s->auth_user != NULL && s->config->received_header_auth
                     ? session_comment_text(s->auth_user) : NULL;
    char *authenticated = user != NULL ? xasprintf("\r\n\t(Authenticated sender: %s)", user)
                                       : xstrdup("");
    char *value = xasprintf(" from %s (%s [%s])%s%s\r\n\tby %s (Porter) with %s id %s%s;\r\n\t%s",
                            s->helo[0] ? s->helo : "unknown", s->client_name, s->client_ip,
                            tls, authenticated, s->config->hostname, with, t->queue_id, forpart,
                            date);
    headers_insert(&t->headers, 0, "Received", value);
    transaction_headers_changed(t);
    free(tls);
    free(user);
    free(authenticated);
    free(forpart);
    free(value);
}

/* session_message_complete - the reader has the whole message: check it, and move its
 * header list to the transaction (the body stays in the spool file) */
enum data_error session_message_complete(struct porter_session *s)
{
    struct transaction *t = s->transaction;
    enum data_error error = data_reader_finish(s->reader);
    t->data_size = data_reader_size(s->reader);
    if (error == DATA_OK && (s->flags & SESSION_FLAG_BDAT_FAILED))
        error = DATA_ERROR_TOO_BIG;
    if (error == DATA_OK && t->data_size > s->config->max_message_size)
        error = DATA_ERROR_TOO_BIG;
    if (error != DATA_OK)
        return error;
    const struct header_list *parsed = data_reader_headers(s->reader);
    for (size_t i = 0; i < parsed->count; i++)
        headers_add(&t->headers, parsed->items[i].name, parsed->items[i].value);
    t->headers_parsed = true;
    t->body_offset = data_reader_body_offset(s->reader);
    t->body_length = (off_t)t->data_size - t->body_offset;
    if (t->body_length < 0)
        t->body_length = 0;
    return DATA_OK;
}

/* session_end_of_data - the message is complete (DATA terminator or BDAT LAST) */
static void session_end_of_data(struct porter_session *s)
{
    session_set_state(s, SESSION_STATE_READY);
    enum data_error error = session_message_complete(s);
    if (error != DATA_OK) {
        int code;
        const char *enhanced, *text;
        data_error_reply(error, &code, &enhanced, &text);
        session_reply(s, code, enhanced, text);
        session_log_transaction(s, "data", code, enhanced, text, "core");
        session_reset_transaction(s, NULL);
        return;
    }
    if (s->config->received_header)
        session_add_received(s);
    auth_results_strip(s); /* forged Authentication-Results never reach a plugin */
    hook_chain_run(s, PORTER_HOOK_DATA_POST, session_proceed_data_post);
}

/* ---------------------------------------------------------------- EHLO / HELO */

static int session_check_helo(struct porter_session *s, const char *argument)
{
    if (!smtp_domain_valid(argument, true)) {
        session_reply(s, 501, "5.5.4", s->command->verb == SMTP_VERB_EHLO
                                           ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
        return -1;
    }
    return 0;
}

/* session_tls_offered - STARTTLS is possible: a certificate, a socket, and no TLS yet */
static bool session_tls_offered(const struct porter_session *s)
{
    return s->config->tls != NULL && s->input == s->output && !(s->flags & SESSION_FLAG_TLS);
}

/* session_ehlo_reply - the extensions we advertise (STARTTLS and AUTH when they are usable) */
static void session_ehlo_reply(struct porter_session *s)
{
    char text[1024];
    snprintf(text, sizeof text,
             "%s\nPIPELINING\nSIZE %llu\n%s%s8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\nCHUNKING\nDSN%s",
             s->config->hostname, s->config->max_message_size,
             session_tls_offered(s) ? "STARTTLS\n" : "", auth_offered(s) ? AUTH_EHLO_KEYWORD "\n" : "",
             xclient_offered(s) ? "\n" XCLIENT_EHLO_KEYWORD : "");
    session_reply(s, 250, NULL, text);
}

static void session_proceed_helo(struct porter_session *s, int rc)
{
    enum porter_hook hook = s->command->verb == SMTP_VERB_EHLO ? PORTER_HOOK_EHLO : PORTER_HOOK_HELO;
    if (!session_apply_refusal(s, hook, rc)) {
        session_reset_transaction(s, s->command->verb == SMTP_VERB_EHLO ? "ehlo" : "helo");
        free(s->helo);
        s->helo = xstrdup(s->command_argument);
        if (hook == PORTER_HOOK_EHLO) {
            s->flags |= SESSION_FLAG_EHLO;
            session_ehlo_reply(s);
        } else {
            s->flags &= ~(unsigned)SESSION_FLAG_EHLO;
            char text[300];
            snprintf(text, sizeof text, "%s", s->config->hostname);
            session_reply(s, 250, NULL, text);
        }
        session_set_state(s, SESSION_STATE_READY);
    }
    session_input_resume(s);
}

/* ---------------------------------------------------------------- STARTTLS */

/* session_output_backlog - the client left too many replies unread (SESSION_OUTPUT_HIGH_WATER) */
static bool session_output_backlog(const struct porter_session *s)
{
    return evbuffer_get_length(bufferevent_get_output(s->output)) > SESSION_OUTPUT_HIGH_WATER;
}

/* session_input_paused - no command is read: TLS is being set up, a failed AUTH waits, or the
 * client does not read its replies (session_write_done resumes once they are written) */
static bool session_input_paused(const struct porter_session *s)
{
    return (s->flags & (SESSION_FLAG_TLS_PENDING | SESSION_FLAG_TLS_HANDSHAKE)) != 0 ||
           auth_paused(s) || session_output_backlog(s);
}

/* session_tls_purge - drop plaintext read but not handled: it must never run inside TLS */
static void session_tls_purge(struct porter_session *s)
{
    struct evbuffer *input = bufferevent_get_input(s->input);
    size_t pending = evbuffer_get_length(input);
    s->flags &= ~(unsigned)SESSION_FLAG_DISCARD_LINE;
    if (pending == 0)
        return;
    log_message(PORTER_LOG_NOTICE, s->id_string, "event=starttls_pipelining client=%s "
                "discarded=%zu error=\"plaintext sent after STARTTLS is discarded\"",
                s->client_ip, pending);
    evbuffer_drain(input, pending);
}

/* session_tls_start - move the socket from the plaintext bufferevent to a TLS one and start
 * the handshake; false when that failed (the session is closed then) */
static bool session_tls_start(struct porter_session *s)
{
    s->flags &= ~(unsigned)SESSION_FLAG_TLS_PENDING;
    session_tls_purge(s);
    int fd = s->config->tls != NULL ? (int)bufferevent_getfd(s->input) : -1;
    /* A duplicate: the plaintext bufferevent closes the original when libevent is done. */
    int copy = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
    if (copy < 0) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=tls_error client=%s error=\"%s\"",
                    s->client_ip, fd < 0 ? "no TLS configuration or socket" : strerror(errno));
        session_close(s, "tls_unavailable");
        return false;
    }
    struct bufferevent *tls = tls_accept(s->config->tls, s->base, copy, s->id_string);
    if (tls == NULL) {
        session_close(s, "tls_unavailable");
        return false;
    }
    bufferevent_free(s->input);
    s->input = s->output = tls;
    s->flags |= SESSION_FLAG_TLS_HANDSHAKE;
    bufferevent_setcb(tls, session_read_ready, session_write_done, session_event, s);
    bufferevent_setwatermark(tls, EV_READ, 0, SESSION_READ_HIGH_WATER);
    bufferevent_enable(tls, EV_READ | EV_WRITE);
    session_arm_idle(s);
    return true;
}

/* session_proceed_tls - the tls hook's verdict on a new TLS connection */
static void session_proceed_tls(struct porter_session *s, int rc)
{
    if (session_verdict_is_refusal(rc)) {
        /* No command waits for an answer: every refusal closes the connection. */
        int code;
        const char *enhanced, *text;
        int closing = rc == PORTER_DENY || rc == PORTER_DENY_DISCONNECT
                          ? PORTER_DENY_DISCONNECT : PORTER_DENYSOFT_DISCONNECT;
        reply_resolve(&s->run.reply, PORTER_HOOK_TLS, closing, &code, &enhanced, &text);
        session_reply(s, code, enhanced, text);
        session_finish_closing(s, "tls_refused");
        return;
    }
    if (s->state == SESSION_STATE_CONNECT) {
        /* Implicit TLS: now the connection really begins. */
        hook_chain_run(s, PORTER_HOOK_CONNECT, session_proceed_connect);
        return;
    }
    session_input_resume(s);
}

/* session_tls_established - the handshake is done: facts, log line, the tls hook */
static void session_tls_established(struct porter_session *s)
{
    s->flags &= ~(unsigned)SESSION_FLAG_TLS_HANDSHAKE;
    s->flags |= SESSION_FLAG_TLS;
    metrics_add(&metrics_here->tls_handshakes, 1);
    tls_facts_free(s->tls);
    s->tls = tls_facts_collect(s->config->tls, s->input);
    const struct tls_facts *f = s->tls;
    if (f->relay)
        s->flags |= SESSION_FLAG_RELAY;
    log_message(PORTER_LOG_INFO, s->id_string, "event=tls client=%s version=%s cipher=%s bits=%s "
                "sni=%s resumed=%s client_cert=%s%s%s%s%s%s%s%s", s->client_ip,
                f->version ? f->version : "-", f->cipher ? f->cipher : "-",
                f->bits ? f->bits : "-", f->sni ? f->sni : "-", f->resumed ? f->resumed : "-",
                f->fingerprint ? "yes" : f->requested ? "none" : "not_requested",
                f->fingerprint ? " verified=" : "", f->fingerprint ? f->verified : "",
                f->fingerprint ? " subject_cn=\"" : "", f->subject_cn ? f->subject_cn : "",
                f->fingerprint ? "\" fingerprint=" : "", f->fingerprint ? f->fingerprint : "",
                f->relay ? " relay=yes" : "");
    hook_chain_run(s, PORTER_HOOK_TLS, session_proceed_tls);
}

static int session_check_not_implemented(struct porter_session *s, const char *argument);

static int session_check_starttls(struct porter_session *s, const char *argument)
{
    if (argument[0] != '\0') {
        session_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
        return -1;
    }
    if (s->flags & SESSION_FLAG_TLS) {
        session_reply(s, 503, "5.5.1", "Error: TLS already active");
        return -1;
    }
    if (s->config->tls == NULL)
        return session_check_not_implemented(s, argument); /* no certificate: as Postfix */
    if (!session_tls_offered(s)) {
        session_reply(s, 454, "4.7.0", "TLS not available due to local problem");
        return -1;
    }
    if (s->transaction != NULL) {
        session_reply(s, 503, "5.5.1", "Error: MAIL transaction in progress");
        return -1;
    }
    return 0;
}

/* session_proceed_starttls - 220, then TLS once it is written (session_write_done) */
static void session_proceed_starttls(struct porter_session *s, int rc)
{
    session_reply(s, 220, "2.0.0", "Ready to start TLS");
    s->flags |= SESSION_FLAG_TLS_PENDING;
    bufferevent_disable(s->input, EV_READ);
    session_tls_purge(s);
    /* RFC 3207 section 4.2: forget everything the client said before TLS. */
    session_reset_transaction(s, "starttls");
    free(s->helo);
    s->helo = xstrdup("");
    s->flags &= ~(unsigned)SESSION_FLAG_EHLO;
    auth_forget(s);
    session_set_state(s, SESSION_STATE_GREETED);
}

/* ---------------------------------------------------------------- MAIL */

/* session_path_parse - MAIL/RCPT address and parameters into s->path; -1 after replying */
static int session_path_parse(struct porter_session *s, const char *argument,
                              enum smtp_path_kind kind)
{
    if (s->path_valid) {
        smtp_path_clear(&s->path);
        s->path_valid = false;
    }
    struct smtp_parse_limits limits = {
        .max_local_part = 64, .max_domain = 255, .max_path = 256,
        /* MAIL: the parser honours the command's own SMTPUTF8 parameter */
        .allow_utf8 = kind == SMTP_PATH_FORWARD ? s->smtputf8 : false,
    };
    struct smtp_parse_error error = {0};
    if (smtp_parse_path(argument, strlen(argument), kind, &limits, &s->path, &error) != 0) {
        session_reply(s, error.code, error.enhanced, error.text);
        return -1;
    }
    s->path_valid = true;
    return 0;
}

/* session_check_mail_params - SIZE, BODY, SMTPUTF8, RET, ENVID, AUTH; -1 after replying */
static int session_check_mail_params(struct porter_session *s)
{
    for (size_t i = 0; i < s->path.param_count; i++) {
        const char *keyword = s->path.params[i].keyword;
        const char *value = s->path.params[i].value;
        if (strcmp(keyword, "SIZE") == 0) {
            char *end;
            errno = 0;
            unsigned long long size = value ? strtoull(value, &end, 10) : 0;
            if (value == NULL || *value == '\0' || *end != '\0' || errno != 0 || value[0] == '-') {
                session_reply(s, 501, "5.5.4", "Bad SIZE parameter");
                return -1;
            }
            if (size > s->config->max_message_size) {
                session_reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
                return -1;
            }
        } else if (strcmp(keyword, "BODY") == 0) {
            if (value == NULL || (strcasecmp(value, "7BIT") != 0 && strcasecmp(value, "8BITMIME") != 0)) {
                session_reply(s, 501, "5.5.4", "Unsupported BODY parameter");
                return -1;
            }
        } else if (strcmp(keyword, "SMTPUTF8") == 0) {
            if (value != NULL) {
                session_reply(s, 501, "5.5.4", "SMTPUTF8 takes no value");
                return -1;
            }
            s->smtputf8 = true;
        } else if (strcmp(keyword, "RET") == 0) {
            if (value == NULL || (strcasecmp(value, "FULL") != 0 && strcasecmp(value, "HDRS") != 0)) {
                session_reply(s, 501, "5.5.4", "Bad RET parameter");
                return -1;
            }
        } else if (strcmp(keyword, "ENVID") == 0) {
            char decoded[128];
            if (value == NULL || strlen(value) > 100 ||
                smtp_xtext_decode(value, decoded, sizeof decoded) < 0) {
                session_reply(s, 501, "5.5.4", "Bad ENVID parameter");
                return -1;
            }
        } else if (strcmp(keyword, "AUTH") == 0) {
            /* RFC 4954 section 5: "<>" or an xtext mailbox; kept only from an authenticated
             * client (session_check_mail stores "<>" for everybody else). */
            char decoded[AUTH_IDENTITY_MAX * 2 + 2];
            if (value == NULL || (strcmp(value, "<>") != 0 &&
                                  smtp_xtext_decode(value, decoded, sizeof decoded) <= 0)) {
                session_reply(s, 501, "5.5.4", "Bad AUTH parameter");
                return -1;
            }
        } else {
            session_reply(s, 555, "5.5.4", "Unsupported option");
            return -1;
        }
    }
    if (s->path.utf8 && !s->smtputf8) {
        session_reply(s, 553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter");
        return -1;
    }
    return 0;
}

/* session_is_submission - a listener for users' own mail: AUTH comes before MAIL */
static bool session_is_submission(const struct porter_session *s)
{
    return strcmp(s->role, "submission") == 0 || strcmp(s->role, "submissions") == 0;
}

static int session_check_mail(struct porter_session *s, const char *argument)
{
    if (session_is_submission(s) && s->auth_user == NULL) {
        if (!(s->flags & SESSION_FLAG_TLS) && s->config->submission_requires_tls &&
            s->config->tls != NULL)
            session_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
        else
            session_reply(s, 530, "5.7.0", "Authentication required");
        return -1;
    }
    if (s->messages >= (unsigned)s->config->max_messages_per_session) {
        session_reply(s, 452, "4.5.3", "Too many messages in this session, try again later");
        return -1;
    }
    s->smtputf8 = false;
    s->recipients_over_limit = 0;
    if (session_path_parse(s, argument, SMTP_PATH_REVERSE) != 0)
        return -1;
    if (session_check_mail_params(s) != 0)
        return -1;
    char *queue_id = queue_id_new();
    s->transaction = transaction_new(queue_id);
    free(queue_id);
    free(s->transaction->mail_from);
    s->transaction->mail_from = xstrdup(s->path.address);
    for (size_t i = 0; i < s->path.param_count; i++) {
        bool untrusted = strcmp(s->path.params[i].keyword, "AUTH") == 0 && s->auth_user == NULL;
        param_list_add(&s->transaction->mail_params, s->path.params[i].keyword,
                       untrusted ? "<>" : s->path.params[i].value);
    }
    return 0;
}

static void session_proceed_mail(struct porter_session *s, int rc)
{
    if (session_verdict_is_refusal(rc) || rc == PORTER_DONE) {
        int code;
        const char *enhanced, *text;
        reply_resolve(&s->run.reply, PORTER_HOOK_MAIL, rc, &code, &enhanced, &text);
        session_log_transaction(s, "mail", code, enhanced, text, s->run.decider);
    }
    if (session_apply_refusal(s, PORTER_HOOK_MAIL, rc)) {
        session_transaction_free(s);
        s->transaction = NULL;
        s->smtputf8 = false;
    } else {
        session_reply_accepted(s, PORTER_HOOK_MAIL, rc);
        session_set_state(s, SESSION_STATE_MAIL);
    }
    session_input_resume(s);
}

/* ---------------------------------------------------------------- RCPT */

/* session_refusal_unparsed - remember a RCPT refused before its address was parsed: the text
 * between '<' and '>' of the argument (or the argument), at most 256 bytes */
static void session_refusal_unparsed(struct porter_session *s, const char *argument, int code,
                                     const char *decider)
{
    const char *open = strchr(argument, '<');
    const char *start = open != NULL ? open + 1 : argument;
    const char *close = strchr(start, '>');
    size_t length = close != NULL ? (size_t)(close - start) : strlen(start);
    char *address = xstrndup(start, length > 256 ? 256 : length);
    transaction_add_refusal(s->transaction, address, code, decider);
    free(address);
}

static int session_check_rcpt(struct porter_session *s, const char *argument)
{
    if (s->transaction->recipient_count >= (size_t)s->config->max_recipients) {
        /* As Postfix: the client is told to send the rest later, which is not its error until
         * it goes on past max_recipients_overshoot; the accepted recipients still get the mail. */
        bool counts = ++s->recipients_over_limit > (unsigned)s->config->max_recipients_overshoot;
        session_refusal_unparsed(s, argument, 452, "core");
        session_reply_counted(s, 452, "4.5.3", "Error: too many recipients", counts);
        return -1;
    }
    if (session_path_parse(s, argument, SMTP_PATH_FORWARD) != 0)
        return -1;
    for (size_t i = 0; i < s->path.param_count; i++) {
        const char *keyword = s->path.params[i].keyword;
        const char *value = s->path.params[i].value;
        if (strcmp(keyword, "NOTIFY") == 0) {
            bool ok = value != NULL && *value != '\0';
            bool never = false, other = false;
            char *copy = xstrdup(value ? value : "");
            char *saveptr = NULL;
            for (char *word = strtok_r(copy, ",", &saveptr); word && ok;
                 word = strtok_r(NULL, ",", &saveptr)) {
                if (strcasecmp(word, "NEVER") == 0)
                    never = true;
                else if (strcasecmp(word, "SUCCESS") == 0 || strcasecmp(word, "FAILURE") == 0 ||
                         strcasecmp(word, "DELAY") == 0)
                    other = true;
                else
                    ok = false;
            }
            free(copy);
            if (!ok || (never && other)) {
                session_reply(s, 501, "5.5.4", "Bad NOTIFY parameter");
                return -1;
            }
        } else if (strcmp(keyword, "ORCPT") == 0) {
            char decoded[600];
            const char *semicolon = value ? strchr(value, ';') : NULL;
            if (semicolon == NULL || semicolon == value || strlen(value) > 500 ||
                smtp_xtext_decode(semicolon + 1, decoded, sizeof decoded) < 0) {
                session_reply(s, 501, "5.5.4", "Bad ORCPT parameter");
                return -1;
            }
        } else {
            session_reply(s, 555, "5.5.4", "Unsupported option");
            return -1;
        }
    }
    return 0;
}

static void session_proceed_rcpt(struct porter_session *s, int rc)
{
    if (session_verdict_is_refusal(rc) || rc == PORTER_DONE) {
        int code;
        const char *enhanced, *text;
        reply_resolve(&s->run.reply, PORTER_HOOK_RCPT, rc, &code, &enhanced, &text);
        transaction_add_refusal(s->transaction, s->path.address, code, s->run.decider);
    }
    if (rc == PORTER_DECLINED) {
        /* Nobody said yes: never an open relay. */
        transaction_add_refusal(s->transaction, s->path.address, 450, "-");
        session_reply(s, 450, "4.7.1", "No plugin decided whether relaying is allowed");
    } else if (!session_apply_refusal(s, PORTER_HOOK_RCPT, rc)) {
        struct param_list params = {0};
        for (size_t i = 0; i < s->path.param_count; i++)
            param_list_add(&params, s->path.params[i].keyword, s->path.params[i].value);
        transaction_add_recipient(s->transaction, s->path.address, &params);
        param_list_clear(&params);
        session_reply_accepted(s, PORTER_HOOK_RCPT, rc);
        session_set_state(s, SESSION_STATE_RCPT);
    }
    session_input_resume(s);
}

/* ---------------------------------------------------------------- DATA and BDAT */

/* session_open_message - spool file and data reader for a new message; -1 (logged) */
int session_open_message(struct porter_session *s)
{
    if (transaction_spool_open(s->transaction, s->config->spool_dir,
                               worker_spool_take(s->worker)) != 0) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=spool_error dir=%s error=\"%s\"",
                    s->config->spool_dir, strerror(errno));
        return -1;
    }
    struct data_limits limits = {
        .max_message_size = s->config->max_message_size,
        .max_line_length = (size_t)s->config->max_data_line,
        .max_header_size = (size_t)s->config->max_header_size,
        .max_header_count = (size_t)s->config->max_header_count,
        .bare_policy = s->config->bare_lf == 0 ? DATA_BARE_REJECT : DATA_BARE_NORMALIZE,
    };
    s->reader = data_reader_new(&limits, s->transaction->spool_fd);
    return 0;
}

static int session_check_data(struct porter_session *s, const char *argument)
{
    if (argument[0] != '\0') {
        session_reply(s, 501, "5.5.4", "Syntax: DATA");
        return -1;
    }
    return 0;
}

static void session_proceed_data(struct porter_session *s, int rc)
{
    if (!session_apply_refusal(s, PORTER_HOOK_DATA, rc)) {
        if (session_unauth_pipelining(s, "DATA")) {
            /* message content sent before the 354 (the data hook ran meanwhile) */
        } else if (session_open_message(s) == 0) {
            session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
            session_set_state(s, SESSION_STATE_DATA);
        } else {
            session_reply(s, 451, "4.3.0", "Local error in processing, try again later");
        }
    }
    session_input_resume(s);
}

/* session_bdat_begin - consume the chunk that follows whatever we answer */
static int session_check_bdat(struct porter_session *s, const char *argument)
{
    unsigned long long size;
    bool last;
    if (smtp_parse_bdat(argument, strlen(argument), &size, &last) != 0) {
        /* The chunk's length is unknown, so its bytes cannot be skipped: resync is impossible. */
        session_reply(s, 501, "5.5.4", "Syntax: BDAT count [LAST]");
        session_finish_closing(s, "bdat_syntax");
        return -1;
    }
    s->bdat_remaining = size;
    s->bdat_last = last;
    s->bdat_chunk = true;
    const char *problem = NULL;
    if (s->state == SESSION_STATE_GREETED)
        problem = "Error: send HELO/EHLO first";
    else if (s->state == SESSION_STATE_READY)
        problem = "Error: need MAIL command";
    else if (s->state == SESSION_STATE_MAIL)
        problem = "Error: need RCPT command";
    if (problem != NULL) {
        /* Read and drop the chunk, then refuse it. */
        s->flags |= SESSION_FLAG_BDAT_FAILED;
        free(s->command_argument);
        s->command_argument = xstrdup(problem);
        session_set_state(s, SESSION_STATE_BDAT);
        return -1;
    }
    if (s->state == SESSION_STATE_BDAT)
        return 1; /* a further chunk: no hook */
    return 0;
}

static void session_proceed_bdat(struct porter_session *s, int rc)
{
    if (session_verdict_is_refusal(rc) || rc == PORTER_DONE) {
        int code;
        const char *enhanced, *text;
        reply_resolve(&s->run.reply, PORTER_HOOK_DATA, rc, &code, &enhanced, &text);
        free(s->command_argument);
        s->command_argument = xasprintf("%d %s %s", code, enhanced, text);
        s->flags |= SESSION_FLAG_BDAT_FAILED;
    } else if (session_open_message(s) != 0) {
        free(s->command_argument);
        s->command_argument = xstrdup("451 4.3.0 Local error in processing, try again later");
        s->flags |= SESSION_FLAG_BDAT_FAILED;
    }
    session_set_state(s, SESSION_STATE_BDAT);
    session_input_resume(s);
}

/* session_bdat_chunk_end - all bytes of one chunk are in */
static void session_bdat_chunk_end(struct porter_session *s)
{
    if (s->flags & SESSION_FLAG_BDAT_FAILED) {
        const char *stored = s->command_argument ? s->command_argument : "";
        int code = 0;
        char enhanced[16] = "";
        int offset = 0;
        const char *text;
        if (sscanf(stored, "%d %15s %n", &code, enhanced, &offset) < 2 || code < 400) {
            code = 503;
            snprintf(enhanced, sizeof enhanced, "5.5.1");
            text = stored[0] ? stored : "Bad sequence of commands";
        } else {
            text = stored + offset;
        }
        session_reply(s, code, enhanced, text);
        if (s->bdat_last || s->transaction == NULL || s->reader == NULL) {
            if (s->transaction != NULL) {
                session_log_transaction(s, "data", code, enhanced, text, "-");
                session_reset_transaction(s, NULL);
            } else {
                s->flags &= ~(unsigned)SESSION_FLAG_BDAT_FAILED;
                session_set_state(s, s->helo[0] ? SESSION_STATE_READY : SESSION_STATE_GREETED);
            }
        }
        return;
    }
    if (s->bdat_last) {
        session_end_of_data(s);
        return;
    }
    if (data_reader_size(s->reader) > s->config->max_message_size) {
        /* Refuse now; the client may still send chunks, which we read and drop. */
        session_reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
        free(s->command_argument);
        s->command_argument = xstrdup("552 5.3.4 Message size exceeds fixed maximum message size");
        s->flags |= SESSION_FLAG_BDAT_FAILED;
        return;
    }
    char text[96];
    snprintf(text, sizeof text, "Ok: %llu octets received", data_reader_size(s->reader));
    session_reply(s, 250, "2.0.0", text);
}

/* ---------------------------------------------------------------- small commands */

static int session_check_no_argument(struct porter_session *s, const char *argument)
{
    if (argument[0] != '\0') {
        session_reply(s, 501, "5.5.4", "Syntax: this command takes no argument");
        return -1;
    }
    return 0;
}

static int session_check_vrfy(struct porter_session *s, const char *argument)
{
    if (argument[0] == '\0') {
        session_reply(s, 501, "5.5.4", "Syntax: VRFY address");
        return -1;
    }
    return 0;
}

static void session_proceed_rset(struct porter_session *s, int rc)
{
    session_reset_transaction(s, "rset");
    session_reply(s, 250, "2.0.0", "Ok");
    session_input_resume(s);
}

static void session_proceed_noop(struct porter_session *s, int rc)
{
    if (!session_apply_refusal(s, PORTER_HOOK_NOOP, rc))
        session_reply_accepted(s, PORTER_HOOK_NOOP, rc);
    session_input_resume(s);
}

static void session_proceed_vrfy(struct porter_session *s, int rc)
{
    if (rc == PORTER_OK)
        session_reply_verdict(s, PORTER_HOOK_VRFY, rc);
    else if (!session_apply_refusal(s, PORTER_HOOK_VRFY, rc))
        session_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
    session_input_resume(s);
}

static void session_proceed_help(struct porter_session *s, int rc)
{
    if (!session_apply_refusal(s, PORTER_HOOK_HELP, rc))
        session_reply(s, 214, "2.0.0", "Porter SMTP gateway: commands HELO EHLO MAIL RCPT DATA "
                      "BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
    session_input_resume(s);
}

static void session_proceed_quit(struct porter_session *s, int rc)
{
    if (rc == PORTER_DONE && s->run.reply.code != 0) {
        session_reply_verdict(s, PORTER_HOOK_QUIT, rc);
    } else {
        char text[300];
        snprintf(text, sizeof text, "%s closing connection", s->config->hostname);
        session_reply(s, 221, "2.0.0", text);
    }
    session_finish_closing(s, "quit");
    session_input_resume(s);
}

static void session_proceed_unrecognized(struct porter_session *s, int rc)
{
    if (rc == PORTER_OK || rc == PORTER_DONE) {
        session_reply_verdict(s, PORTER_HOOK_UNRECOGNIZED_COMMAND, rc);
    } else if (!session_apply_refusal(s, PORTER_HOOK_UNRECOGNIZED_COMMAND, rc)) {
        s->unrecognized++;
        session_reply(s, 500, "5.5.2", "Error: command not recognized");
    }
    session_input_resume(s);
}

/* session_check_not_implemented - EXPN, and STARTTLS without a certificate: the real SMTP reply
 * 502 5.5.1 (RFC 5321 section 4.2.4), as Postfix gives it */
static int session_check_not_implemented(struct porter_session *s, const char *argument)
{
    session_reply(s, 502, "5.5.1", "Error: command not implemented");
    return -1;
}

#define STATES_TRANSACTION (STATE_BIT(SESSION_STATE_READY) | STATE_BIT(SESSION_STATE_MAIL) | \
                            STATE_BIT(SESSION_STATE_RCPT))

static const struct session_command session_commands[] = {
    {SMTP_VERB_HELO, PORTER_HOOK_HELO, STATES_AFTER_GREETING, session_check_helo, session_proceed_helo,
     .last = true},
    {SMTP_VERB_EHLO, PORTER_HOOK_EHLO, STATES_AFTER_GREETING, session_check_helo, session_proceed_helo,
     .last = true},
    {SMTP_VERB_MAIL, PORTER_HOOK_MAIL, STATE_BIT(SESSION_STATE_READY), session_check_mail,
     session_proceed_mail, .last = false},
    {SMTP_VERB_RCPT, PORTER_HOOK_RCPT, STATE_BIT(SESSION_STATE_MAIL) | STATE_BIT(SESSION_STATE_RCPT),
     session_check_rcpt, session_proceed_rcpt, .last = false},
    {SMTP_VERB_DATA, PORTER_HOOK_DATA, STATE_BIT(SESSION_STATE_RCPT), session_check_data, session_proceed_data,
     .last = true},
    {SMTP_VERB_BDAT, PORTER_HOOK_DATA, STATES_AFTER_GREETING | STATE_BIT(SESSION_STATE_BDAT),
     session_check_bdat, session_proceed_bdat, .last = false},
    {SMTP_VERB_RSET, -1, STATES_AFTER_GREETING | STATE_BIT(SESSION_STATE_BDAT),
     session_check_no_argument, session_proceed_rset, .last = false},
    {SMTP_VERB_NOOP, PORTER_HOOK_NOOP, STATES_AFTER_GREETING | STATE_BIT(SESSION_STATE_BDAT), NULL,
     session_proceed_noop, .last = true},
    /* QUIT ends a group too, but what follows it is never read */
    {SMTP_VERB_QUIT, PORTER_HOOK_QUIT, STATES_AFTER_GREETING | STATE_BIT(SESSION_STATE_BDAT), NULL,
     session_proceed_quit, .last = false},
    {SMTP_VERB_VRFY, PORTER_HOOK_VRFY, STATES_AFTER_GREETING, session_check_vrfy, session_proceed_vrfy,
     .last = true},
    {SMTP_VERB_HELP, PORTER_HOOK_HELP, STATES_AFTER_GREETING, NULL, session_proceed_help, .last = false},
    {SMTP_VERB_EXPN, -1, STATES_AFTER_GREETING, session_check_not_implemented, NULL, .last = true},
    {SMTP_VERB_STARTTLS, -1, STATES_AFTER_GREETING, session_check_starttls,
     session_proceed_starttls, .last = true},
    {SMTP_VERB_AUTH, PORTER_HOOK_AUTH, STATES_AFTER_GREETING, auth_check, auth_proceed, .last = true},
    {SMTP_VERB_XCLIENT, -1, STATES_AFTER_GREETING, xclient_check, xclient_proceed, .last = true},
    {SMTP_VERB_UNKNOWN, PORTER_HOOK_UNRECOGNIZED_COMMAND, STATES_AFTER_GREETING, NULL,
     session_proceed_unrecognized, .last = false},
};

/* session_input_waiting - bytes the client sent that we have not handled: buffered, or still
 * in the socket (plaintext only: under TLS the socket holds records, not commands); the first
 * of them go to head (NUL-terminated) */
static size_t session_input_waiting(const struct porter_session *s, char *head, size_t size)
{
    struct evbuffer *input = bufferevent_get_input(s->input);
    size_t waiting = evbuffer_get_length(input);
    ev_ssize_t copied = waiting > 0 ? evbuffer_copyout(input, head, size - 1) : 0;
    int queued = 0;
    int fd = (int)bufferevent_getfd(s->input);
    if (waiting == 0 && !(s->flags & (SESSION_FLAG_TLS | SESSION_FLAG_TLS_HANDSHAKE)) &&
        ioctl(fd, FIONREAD, &queued) == 0 && queued > 0) {
        waiting = (size_t)queued;
        copied = recv(fd, head, size - 1, MSG_PEEK | MSG_DONTWAIT);
    }
    head[copied > 0 ? (size_t)copied : 0] = '\0';
    return waiting;
}

/* session_unauth_pipelining - reject_unauth_pipelining: input arrived where RFC 2920 allows
 * none (after, for, a command that ends a group, or a command sent without EHLO, or
 * "greeting"); 554 5.5.0, one log line, close. true if it closed. */
static bool session_unauth_pipelining(struct porter_session *s, const char *after)
{
    if (!s->config->reject_unauth_pipelining || !(s->flags & SESSION_FLAG_PIPELINING_CHECKED))
        return false;
    char head[8];
    size_t waiting = session_input_waiting(s, head, sizeof head);
    if (waiting == 0)
        return false;
    /* A lone QUIT asks nothing of the state (openssl s_client -starttls smtp fed by a pipe
     * sends EHLO and QUIT together): let it through, except as message content. */
    if (waiting == 6 && strcasecmp(head, "QUIT\r\n") == 0 && strcmp(after, "DATA") != 0)
        return false;
    log_message(PORTER_LOG_NOTICE, s->id_string, "event=unauth_pipelining client=%s "
                "rule=reject_unauth_pipelining after=%s ehlo=%s pending=%zu", s->client_ip, after,
                (s->flags & SESSION_FLAG_EHLO) ? "yes" : "no", waiting);
    session_reply(s, 554, "5.5.0", "Error: SMTP protocol synchronization");
    session_finish_closing(s, "unauth_pipelining");
    return true;
}

/* session_sequence_error - the 503 text for a command in the wrong state */
static void session_sequence_error(struct porter_session *s, enum smtp_verb verb)
{
    const char *text = "Error: bad sequence of commands";
    int code = 503;
    if (s->state == SESSION_STATE_GREETED && verb != SMTP_VERB_DATA)
        text = "Error: send HELO/EHLO first";
    else if (verb == SMTP_VERB_MAIL && (s->state == SESSION_STATE_MAIL || s->state == SESSION_STATE_RCPT))
        text = "Error: nested MAIL command";
    else if (verb == SMTP_VERB_RCPT || (verb == SMTP_VERB_DATA && s->state == SESSION_STATE_READY))
        text = "Error: need MAIL command";
    else if (verb == SMTP_VERB_DATA && s->state == SESSION_STATE_MAIL) {
        code = 554;
        text = "Error: no valid recipients";
    } else if (verb == SMTP_VERB_DATA && s->state == SESSION_STATE_BDAT)
        text = "Error: DATA cannot be mixed with BDAT";
    else if (s->state == SESSION_STATE_BDAT)
        text = "Error: only BDAT is allowed after BDAT without LAST";
    session_reply(s, code, "5.5.1", text);
}

/* session_dispatch - one command line (CRLF removed) */
static void session_dispatch(struct porter_session *s, const char *line, size_t length)
{
    struct smtp_command command;
    if (smtp_parse_command(line, length, &command) != 0) {
        session_reply(s, 500, "5.5.2", "Error: bad syntax");
        return;
    }
    const struct session_command *row = NULL;
    for (size_t i = 0; i < sizeof session_commands / sizeof session_commands[0]; i++)
        if (session_commands[i].verb == command.verb)
            row = &session_commands[i];
    /* RFC 2920: nothing may follow a command that ends a group before its reply, and a client
     * that did not see PIPELINING in an EHLO reply may not pipeline at all. */
    if ((row->last || !(s->flags & SESSION_FLAG_EHLO)) && command.verb != SMTP_VERB_QUIT &&
        session_unauth_pipelining(s, smtp_verb_name(command.verb)))
        return;
    bool junk = command.verb == SMTP_VERB_NOOP || command.verb == SMTP_VERB_RSET ||
                command.verb == SMTP_VERB_VRFY || command.verb == SMTP_VERB_HELP;
    if (junk && ++s->junk > (unsigned)s->config->max_junk_commands)
        s->errors++; /* a client that only keeps the connection busy runs into max_errors */
    if (!(row->states & STATE_BIT(s->state))) {
        session_sequence_error(s, command.verb);
        return;
    }
    s->command = row;
    free(s->command_argument);
    s->command_argument = command.verb == SMTP_VERB_UNKNOWN
                              ? xstrndup(line, length)
                              : xstrndup(command.argument, command.argument_length);
    if (log_enabled(PORTER_LOG_DEBUG))
        log_message(PORTER_LOG_DEBUG, s->id_string, "event=command verb=%s state=%s",
                    smtp_verb_name(command.verb), session_state_name(s->state));
    /* check: -1 it replied (refused), 1 accepted with nothing more to do, 0 run the hook */
    int checked = row->check != NULL ? row->check(s, s->command_argument) : 0;
    if (checked != 0 || row->proceed == NULL)
        return;
    if (row->hook < 0) {
        row->proceed(s, PORTER_DECLINED);
        return;
    }
    hook_chain_run(s, (enum porter_hook)row->hook, row->proceed);
}

/* ---------------------------------------------------------------- input */

/* session_feed_data - hand buffered bytes to the DATA reader; true when the message ended */
static bool session_feed_data(struct porter_session *s, struct evbuffer *input)
{
    while (evbuffer_get_length(input) > 0) {
        struct evbuffer_iovec vec;
        if (evbuffer_peek(input, -1, NULL, &vec, 1) < 1)
            break;
        bool done = false;
        size_t used = data_reader_feed_dot(s->reader, vec.iov_base, vec.iov_len, &done);
        evbuffer_drain(input, used);
        s->data_window_bytes += used;
        if (done)
            return true;
    }
    return false;
}

/* session_feed_chunk - BDAT bytes; true when the chunk is complete */
static bool session_feed_chunk(struct porter_session *s, struct evbuffer *input)
{
    while (s->bdat_remaining > 0 && evbuffer_get_length(input) > 0) {
        struct evbuffer_iovec vec;
        if (evbuffer_peek(input, -1, NULL, &vec, 1) < 1)
            break;
        size_t take = vec.iov_len;
        if ((unsigned long long)take > s->bdat_remaining)
            take = (size_t)s->bdat_remaining;
        if (s->reader != NULL && !(s->flags & SESSION_FLAG_BDAT_FAILED))
            data_reader_feed_chunk(s->reader, vec.iov_base, take);
        evbuffer_drain(input, take);
        s->data_window_bytes += take;
        s->bdat_remaining -= take;
    }
    return s->bdat_remaining == 0;
}

/* session_line_limit - max_command_line, or RFC 4954's 12288 for AUTH lines and answers;
 * asked only when a line is longer than max_command_line */
static size_t session_line_limit(const struct porter_session *s, struct evbuffer *input)
{
    size_t limit = (size_t)s->config->max_command_line;
    if (limit >= AUTH_LINE_MAX)
        return limit;
    char head[5];
    if (auth_wants_line(s) ||
        (evbuffer_copyout(input, head, sizeof head) == (ev_ssize_t)sizeof head &&
         strncasecmp(head, "AUTH ", sizeof head) == 0))
        return AUTH_LINE_MAX;
    return limit;
}

/* session_take_line - one command line out of input; 1 got one, 0 need more, -1 replied */
static int session_take_line(struct porter_session *s, struct evbuffer *input, char **line,
                             size_t *length)
{
    size_t eol_length = 0;
    struct evbuffer_ptr eol = evbuffer_search_eol(input, NULL, &eol_length, EVBUFFER_EOL_LF);
    size_t limit = (size_t)s->config->max_command_line;
    size_t seen = eol.pos < 0 ? evbuffer_get_length(input) : (size_t)eol.pos;
    if (seen > limit && !(s->flags & SESSION_FLAG_DISCARD_LINE))
        limit = session_line_limit(s, input);
    if (eol.pos < 0) {
        if (evbuffer_get_length(input) > limit) {
            evbuffer_drain(input, evbuffer_get_length(input));
            s->flags |= SESSION_FLAG_DISCARD_LINE;
        }
        if (s->line_started == 0 && (evbuffer_get_length(input) > 0 ||
                                     (s->flags & SESSION_FLAG_DISCARD_LINE)))
            s->line_started = clock_monotonic(); /* command_deadline runs from here */
        return 0;
    }
    size_t total = (size_t)eol.pos + eol_length;
    s->line_started = 0;
    if (s->state == SESSION_STATE_BDAT)
        s->data_window_bytes += total;
    if ((s->flags & SESSION_FLAG_DISCARD_LINE) || (size_t)eol.pos > limit) {
        evbuffer_drain(input, total);
        s->flags &= ~(unsigned)SESSION_FLAG_DISCARD_LINE;
        session_reply(s, 500, "5.5.2", "Error: line too long");
        return -1;
    }
    char *bytes = (char *)evbuffer_pullup(input, (ev_ssize_t)total);
    size_t content = (size_t)eol.pos;
    bool crlf = content > 0 && bytes[content - 1] == '\r';
    if (crlf)
        content--;
    if (!crlf && s->config->bare_lf == 0) {
        evbuffer_drain(input, total);
        session_reply(s, 500, "5.5.2", "Error: bare <LF> received");
        return -1;
    }
    *line = xstrndup(bytes, content);
    *length = content;
    evbuffer_drain(input, total);
    if (memchr(*line, '\r', content) != NULL || memchr(*line, '\0', content) != NULL) {
        explicit_bzero(*line, content);
        free(*line);
        *line = NULL;
        session_reply(s, 500, "5.5.2", "Error: bare <CR> or NUL in command");
        return -1;
    }
    return 1;
}

/* session_check_limits - too many errors or unknown commands: 421 and close; false then */
static bool session_check_limits(struct porter_session *s)
{
    if (s->errors >= (unsigned)s->config->max_errors ||
        s->unrecognized >= (unsigned)s->config->max_unrecognized) {
        char text[300];
        snprintf(text, sizeof text, "%s Error: too many errors", s->config->hostname);
        session_reply(s, 421, "4.7.0", text);
        session_finish_closing(s, "too_many_errors");
        return false;
    }
    return true;
}

/* session_process_input - handle everything buffered, in order, until we must wait */
static void session_process_input(struct porter_session *s)
{
    if (s->in_input)
        return;
    s->in_input = true;
    session_hold(s);
    while (!s->closed && !s->run.active && s->state != SESSION_STATE_CLOSING &&
           s->state != SESSION_STATE_CONNECT && !session_input_paused(s)) {
        struct evbuffer *input = bufferevent_get_input(s->input);
        if (s->state == SESSION_STATE_DATA) {
            if (!session_feed_data(s, input))
                break;
            session_end_of_data(s);
            continue;
        }
        if (s->state == SESSION_STATE_BDAT && s->bdat_chunk) {
            if (!session_feed_chunk(s, input))
                break;
            s->bdat_chunk = false;
            session_bdat_chunk_end(s);
            continue;
        }
        if ((s->flags & SESSION_FLAG_DRAINING) && s->transaction == NULL) {
            char text[300];
            snprintf(text, sizeof text, "%s Service shutting down, closing connection",
                     s->config->hostname);
            session_reply(s, 421, "4.3.2", text);
            session_finish_closing(s, "shutdown");
            break;
        }
        char *line = NULL;
        size_t length = 0;
        bool answer = auth_wants_line(s);
        int got = session_take_line(s, input, &line, &length);
        if (got == 0)
            break;
        if (answer) {
            /* The line answers AUTH's 334: it is not a command (and may be a password). */
            if (got > 0)
                auth_line(s, line, length);
            else
                auth_cancel(s);
            free(line);
            continue;
        }
        /* Like Postfix: past the error limits the next command gets 421 instead of service. */
        if (got > 0 && session_check_limits(s))
            session_dispatch(s, line, length);
        if (got > 0 && length >= 4 && strncasecmp(line, "AUTH", 4) == 0)
            explicit_bzero(line, length); /* an initial response may carry a password */
        free(line);
    }
    if (s->input_eof && !s->closed && !s->run.active && s->state != SESSION_STATE_CLOSING)
        session_close(s, s->state == SESSION_STATE_DATA || s->state == SESSION_STATE_BDAT
                             ? "lost_connection_in_data" : "client_disconnected");
    s->in_input = false;
    if (!s->closed && !s->run.active)
        session_arm_idle(s);
    session_unhold(s);
}

void session_input_resume(struct porter_session *s)
{
    /* a partial line's deadline counts from now: waiting for the chain was not the client's */
    s->line_started = 0;
    if (!s->in_input && !s->closed)
        session_process_input(s);
}

/* ---------------------------------------------------------------- bufferevent callbacks */

static void session_read_ready(struct bufferevent *bev, void *arg)
{
    struct porter_session *s = arg;
    if (s->proxy_wait) {
        session_hold(s);
        session_proxy_input(s);
        session_unhold(s);
        return;
    }
    session_arm_idle(s);
    session_process_input(s);
}

static void session_write_done(struct bufferevent *bev, void *arg)
{
    struct porter_session *s = arg;
    if (s->state == SESSION_STATE_CLOSING && !s->closed) {
        session_close(s, s->final_log ? s->final_log : "closed");
        return;
    }
    if ((s->flags & SESSION_FLAG_TLS_PENDING) && !s->closed) {
        /* STARTTLS's 220 is on its way: the handshake starts now. */
        session_hold(s);
        session_tls_start(s);
        session_unhold(s);
        return;
    }
    /* every reply was written: commands held back by an output backlog go on */
    if (!s->closed && !s->in_input && !s->run.active &&
        evbuffer_get_length(bufferevent_get_input(s->input)) > 0)
        session_process_input(s);
}

static void session_event(struct bufferevent *bev, short what, void *arg)
{
    struct porter_session *s = arg;
    if (s->closed)
        return;
    if ((what & BEV_EVENT_CONNECTED) && (s->flags & SESSION_FLAG_TLS_HANDSHAKE)) {
        session_hold(s);
        session_tls_established(s);
        session_unhold(s);
        return;
    }
    if ((what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) && (s->flags & SESSION_FLAG_TLS_HANDSHAKE)) {
        char reason[512];
        tls_error_describe(bev, reason, sizeof reason);
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=tls_handshake_failed client=%s "
                    "error=\"%s\"", s->client_ip, reason);
        metrics_add(&metrics_here->tls_failures, 1);
        session_close(s, "tls_handshake_failed");
        return;
    }
    if ((what & BEV_EVENT_ERROR) && (s->flags & SESSION_FLAG_TLS)) {
        char reason[512];
        tls_error_describe(bev, reason, sizeof reason);
        log_message(PORTER_LOG_INFO, s->id_string, "event=tls_error client=%s error=\"%s\"",
                    s->client_ip, reason);
    }
    if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && s->proxy_wait) {
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=proxy_error client=%s "
                    "error=\"connection closed before a complete PROXY header\" received=%zu",
                    s->client_ip, evbuffer_get_length(bufferevent_get_input(s->input)));
        session_close(s, "proxy_incomplete");
        return;
    }
    if ((what & BEV_EVENT_EOF) && bev == s->input && !s->closed) {
        /* Handle what the client sent before it closed (a piped script ends like this);
         * session_process_input closes once nothing is left to do. */
        s->input_eof = true;
        session_process_input(s);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT | BEV_EVENT_EOF))
        session_close(s, what & BEV_EVENT_EOF ? "client_disconnected" : "connection_error");
}

/* ---------------------------------------------------------------- start */

static void session_proceed_connect(struct porter_session *s, int rc)
{
    if (rc == PORTER_DENY || rc == PORTER_DENY_DISCONNECT) {
        session_reply_verdict(s, PORTER_HOOK_CONNECT, rc);
        session_finish_closing(s, "connect_refused");
        return;
    }
    if (rc == PORTER_DENYSOFT || rc == PORTER_DENYSOFT_DISCONNECT) {
        session_reply_verdict(s, PORTER_HOOK_CONNECT, rc == PORTER_DENYSOFT
                                                          ? PORTER_DENYSOFT_DISCONNECT : rc);
        session_finish_closing(s, "connect_refused");
        return;
    }
    if (!(s->flags & SESSION_FLAG_EARLY_TALK_JUDGED) && session_unauth_pipelining(s, "greeting"))
        return; /* talked before the greeting, and no plugin judged that */
    if (rc == PORTER_DONE && s->run.reply.code != 0) {
        session_reply_verdict(s, PORTER_HOOK_CONNECT, rc);
    } else {
        char text[300];
        snprintf(text, sizeof text, "%s ESMTP Porter", s->config->hostname);
        session_reply(s, 220, NULL, text);
    }
    session_set_state(s, SESSION_STATE_GREETED);
    session_input_resume(s);
}

void session_forget_client(struct porter_session *s)
{
    /* As at a real disconnect: the old client's background lookups and late answers end
     * before the disconnect hook frees what they would write to. */
    hook_chain_cancel(s);
    hook_chain_notify(s, PORTER_HOOK_DISCONNECT);
    session_reset_transaction(s, "xclient");
    note_list_clear(&s->notes);
    note_list_clear(&s->log_facts);
    free(s->helo);
    s->helo = xstrdup("");
    s->flags &= ~(unsigned)(SESSION_FLAG_EHLO | SESSION_FLAG_RELAY);
    auth_forget(s);
    free(s->client_name);
    s->client_name = xstrdup("unknown");
    free(s->client_ptr);
    s->client_ptr = xstrdup("unknown");
}

void session_set_ehlo(struct porter_session *s, bool ehlo)
{
    if (ehlo)
        s->flags |= SESSION_FLAG_EHLO;
    else
        s->flags &= ~(unsigned)SESSION_FLAG_EHLO;
}

void session_connect_again(struct porter_session *s)
{
    session_set_state(s, SESSION_STATE_CONNECT);
    log_message(PORTER_LOG_INFO, s->id_string, "event=connect client=%s port=%d local=%s:%d "
                "role=%s xclient=yes", s->client_ip, s->client_port, s->local_ip, s->local_port,
                s->role);
    hook_chain_run(s, PORTER_HOOK_CONNECT, session_proceed_connect);
}

/* session_new - the parts common to every transport */
struct porter_session *session_new(struct worker *worker)
{
    struct porter_session *s = xcalloc(1, sizeof *s);
    s->worker = worker;
    s->id = worker_next_session_id(worker);
    snprintf(s->id_string, sizeof s->id_string, "%llX", (unsigned long long)s->id);
    s->base = worker_event_base(worker);
    s->state = SESSION_STATE_CONNECT;
    s->helo = xstrdup("");
    s->client_name = xstrdup("unknown");
    s->client_ptr = xstrdup("unknown");
    s->role = "smtp";
    s->view = -1;
    s->listener = UINT_MAX; /* not counted per listener until worker_accept says which */
    gettimeofday(&s->connected_at, NULL);
    s->idle_timer = evtimer_new(s->base, session_idle_fired, s);
    s->session_timer = evtimer_new(s->base, session_total_fired, s);
    if (s->idle_timer == NULL || s->session_timer == NULL)
        abort();
    return s;
}

/* session_begin - timers, callbacks and the connect hook */
static void session_begin(struct porter_session *s)
{
    double total = s->config->session_timeout;
    struct timeval tv = clock_timeval(total);
    evtimer_add(s->session_timer, &tv);
    bufferevent_setcb(s->input, session_read_ready, NULL, session_event, s);
    if (s->output != s->input)
        bufferevent_setcb(s->output, NULL, session_write_done, session_event, s);
    else
        bufferevent_setcb(s->input, session_read_ready, session_write_done, session_event, s);
    bufferevent_setwatermark(s->input, EV_READ, 0, SESSION_READ_HIGH_WATER);
    bufferevent_enable(s->input, EV_READ);
    bufferevent_enable(s->output, EV_WRITE);
    if (s->proxy_wait) {
        /* the load balancer's header first (session_proxy_input), within proxy_timeout */
        struct timeval wait = clock_timeval(s->config->proxy_timeout);
        evtimer_add(s->idle_timer, &wait);
        return;
    }
    session_connected(s);
}

/* session_connected - the client is known: log it, decide on XCLIENT, and start (the TLS
 * handshake of implicit TLS, else the connect hook) */
static void session_connected(struct porter_session *s)
{
    s->client_known = true;
    s->xclient_allowed = cidr_match(s->config->xclient_clients_list, s->client_ip);
    log_message(PORTER_LOG_INFO, s->id_string, "event=connect client=%s port=%d local=%s:%d role=%s%s%s",
                s->client_ip, s->client_port, s->local_ip, s->local_port, s->role,
                s->proxy_ip[0] ? " proxy=" : "", s->proxy_ip);
    session_arm_idle(s);
    if (strcmp(s->role, "submissions") == 0 && s->input == s->output && s->tls == NULL) {
        /* Implicit TLS (RFC 8314): the handshake first; session_tls_established goes on. */
        session_tls_start(s);
        return;
    }
    hook_chain_run(s, PORTER_HOOK_CONNECT, session_proceed_connect);
}

/* session_proxy_apply - what the balancer's header says about the client */
static void session_proxy_apply(struct porter_session *s, const struct proxy_header *h)
{
    snprintf(s->proxy_ip, sizeof s->proxy_ip, "%s", s->client_ip);
    if (!h->local) {
        session_address_string((const struct sockaddr *)&h->source, s->client_ip,
                               sizeof s->client_ip, &s->client_port);
        session_address_string((const struct sockaddr *)&h->destination, s->local_ip,
                               sizeof s->local_ip, &s->local_port);
    }
    if (h->tls) {
        tls_facts_free(s->tls);
        s->tls = tls_facts_proxied(h->tls_version, h->tls_cipher, h->sni, h->tls_cn,
                                   h->client_certificate, h->certificate_verified);
        s->flags |= SESSION_FLAG_TLS; /* no STARTTLS on top of the balancer's TLS */
    }
    log_message(PORTER_LOG_INFO, s->id_string, "event=proxy client=%s port=%d proxy=%s "
                "version=%d command=%s tls=%s%s%s%s%s", s->client_ip, s->client_port,
                s->proxy_ip, h->version, h->local ? "local" : "proxy",
                h->tls ? (h->tls_version[0] ? h->tls_version : "yes") : "no",
                h->sni[0] ? " sni=" : "", h->sni, h->tls_cipher[0] ? " cipher=" : "",
                h->tls_cipher);
}

/* session_proxy_input - bytes arrived while waiting for the PROXY header */
static void session_proxy_input(struct porter_session *s)
{
    struct evbuffer *input = bufferevent_get_input(s->input);
    size_t length = evbuffer_get_length(input);
    if (length > PROXY_HEADER_MAX)
        length = PROXY_HEADER_MAX;
    const unsigned char *bytes = evbuffer_pullup(input, (ev_ssize_t)length);
    struct proxy_header header;
    const char *error = NULL;
    enum proxy_parse_result result = proxy_header_parse(bytes, length, &header, &error);
    if (result == PROXY_PARSE_INCOMPLETE)
        return; /* the timer set at the start bounds the wait */
    if (result == PROXY_PARSE_ERROR) {
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=proxy_error client=%s error=\"%s\"",
                    s->client_ip, error);
        session_close(s, "proxy_error");
        return;
    }
    evbuffer_drain(input, header.length); /* what follows is the client's */
    s->proxy_wait = false;
    evtimer_del(s->idle_timer);
    session_proxy_apply(s, &header);
    /* The balancer's own connection: v2 LOCAL, v1 UNKNOWN, or a header naming the balancer
     * itself (HAProxy's v1 health checks do that). */
    bool balancer_itself = header.local || strcmp(s->client_ip, s->proxy_ip) == 0;
    if (balancer_itself && worker_in_drain_grace(s->worker)) {
        /* its health check: we are going away, so fail it */
        log_message(PORTER_LOG_INFO, s->id_string, "event=connection_refused client=%s "
                    "reason=drain_grace", s->client_ip);
        session_reply(s, 421, "4.3.2", "Service shutting down, closing connection");
        session_finish_closing(s, "drain_grace");
        return;
    }
    if (!worker_admit(s->worker, s)) {
        session_reply(s, 421, "4.7.0", "Too many connections from your address, try again later");
        session_finish_closing(s, "max_connections_per_ip");
        return;
    }
    session_connected(s);
}

/* session_address_string - numeric host and port of a socket address */
void session_address_string(const struct sockaddr *sa, char *host, size_t size, int *port)
{
    host[0] = '\0';
    *port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)size);
        *port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)size);
        *port = ntohs(in6->sin6_port);
        if (strncmp(host, "::ffff:", 7) == 0 && strchr(host + 7, '.') != NULL)
            memmove(host, host + 7, strlen(host + 7) + 1);
    } else {
        snprintf(host, size, "127.0.0.1");
    }
}

struct porter_session *session_start(struct worker *worker, int fd, const struct sockaddr *peer,
                                     socklen_t peer_length, const char *role)
{
    struct porter_session *s = session_new(worker);
    s->role = role;
    session_address_string(peer, s->client_ip, sizeof s->client_ip, &s->client_port);
    struct sockaddr_storage local;
    socklen_t local_length = sizeof local;
    if (getsockname(fd, (struct sockaddr *)&local, &local_length) == 0)
        session_address_string((struct sockaddr *)&local, s->local_ip, sizeof s->local_ip,
                               &s->local_port);
    s->input = s->output = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->input == NULL)
        abort();
    s->flags |= SESSION_FLAG_PIPELINING_CHECKED;
    return s;
}

struct porter_session *session_start_stdio(struct worker *worker, const char *client_ip,
                                           bool trace)
{
    struct porter_session *s = session_new(worker);
    snprintf(s->client_ip, sizeof s->client_ip, "%s", client_ip ? client_ip : "127.0.0.1");
    snprintf(s->local_ip, sizeof s->local_ip, "127.0.0.1");
    struct sockaddr_storage peer;
    socklen_t peer_length = sizeof peer;
    if (client_ip == NULL && getpeername(0, (struct sockaddr *)&peer, &peer_length) == 0)
        session_address_string((struct sockaddr *)&peer, s->client_ip, sizeof s->client_ip,
                               &s->client_port);
    if (trace)
        s->flags |= SESSION_FLAG_TRACE;
    /* inetd or systemd Accept=yes: a client; a pipe (printf ... | porter stdio) is a script */
    struct stat input_stat;
    if (fstat(0, &input_stat) == 0 && S_ISSOCK(input_stat.st_mode))
        s->flags |= SESSION_FLAG_PIPELINING_CHECKED;
    evutil_make_socket_nonblocking(0);
    evutil_make_socket_nonblocking(1);
    s->input = bufferevent_socket_new(s->base, 0, 0);
    s->output = bufferevent_socket_new(s->base, 1, 0);
    if (s->input == NULL || s->output == NULL)
        abort();
    return s;
}

/* session_bind - the worker's config and plugins */
void session_bind(struct porter_session *s, const struct porter_config *config,
                  struct plugin_registry *plugins)
{
    s->config = config;
    s->plugins = plugins;
    plugin_registry_retain(plugins);
    s->plugin_data = xcalloc(plugins->count + 1, sizeof *s->plugin_data);
}

/* session_attach - the worker's config and plugins, then go */
void session_attach(struct porter_session *s, const struct porter_config *config,
                    struct plugin_registry *plugins)
{
    session_bind(s, config, plugins);
    session_begin(s);
}

void session_drain(struct porter_session *s)
{
    if (s->closed || s->state == SESSION_STATE_CLOSING)
        return;
    if (s->transport != NULL) {
        s->flags |= SESSION_FLAG_DRAINING;
        s->transport->drain(s);
        return;
    }
    if (s->proxy_wait || (s->flags & (SESSION_FLAG_TLS_PENDING | SESSION_FLAG_TLS_HANDSHAKE))) {
        session_close(s, "shutdown");
        return;
    }
    s->flags |= SESSION_FLAG_DRAINING;
    if (!s->run.active && s->transaction == NULL && s->state != SESSION_STATE_CONNECT) {
        char text[300];
        snprintf(text, sizeof text, "%s Service shutting down, closing connection",
                 s->config->hostname);
        session_reply(s, 421, "4.3.2", text);
        session_finish_closing(s, "shutdown");
    }
}
