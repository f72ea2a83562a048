/*
 * policy_listener.c - Porter's plugin chain as a Postfix SMTPD access policy service
 * (SMTPD_POLICY_README): name=value requests, one "action=..." answer each, many per
 * connection, on the worker's event loop.
 *
 * Requests with one instance= attribute (one SMTP session of one smtpd process) share a Porter
 * session (transport "policy", no SMTP socket): its facts come from the attributes
 * (client_address, client_name, reverse_client_name, helo_name, sasl_username, encryption_*,
 * queue_id, sender, recipient), and its notes, per-plugin data and transaction live across the
 * requests. A request runs the hook its protocol_state names: CONNECT -> connect, EHLO/HELO ->
 * ehlo or helo (protocol_name SMTP), MAIL -> mail, RCPT -> rcpt, DATA -> data. The policy
 * protocol carries no message, so END-OF-MESSAGE runs no content hook: it ends the
 * transaction (reset_transaction, its log line) and answers DUNNO; data_post plugins belong on
 * the milter listener. Verdicts: DECLINED -> DUNNO, OK -> OK, DENY/DENYSOFT (and their
 * _DISCONNECT forms) -> "action=CODE X.Y.Z text" with the plugin's code and text, porter_discard
 * -> DISCARD, porter_quarantine -> HOLD. Put check_policy_service after
 * reject_unauth_destination: an OK there skips Postfix's remaining checks.
 *
 * Bounds: policy_parse.h (line, attribute count, request size); an idle connection is closed
 * after policy_listener_timeout; a malformed request closes the connection (Postfix then
 * applies default_action of its policy client, 451 by default).
 *
 * Interface: policy_listener.h. Fatal: out of memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "plugin_host.h"
#include "policy_listener.h"
#include "policy_parse.h"
#include "session.h"
#include "session_facts.h"
#include "worker.h"

struct policy_connection {
    struct worker *worker;
    const struct porter_config *config;
    struct plugin_registry *plugins;
    struct bufferevent *bev;
    struct porter_session *session; /* the current instance's session */
    char *instance;
    struct policy_request request;
    enum policy_state state;          /* of the request whose chain runs */
    struct event *idle_timer;
    bool busy, in_input, dead, draining, replacing;
    bool session_used;                /* the session has had a request */
    /* The hooks this request runs: the stages Postfix did not ask about first (connect, helo,
     * mail: spf decides at MAIL, a connect plugin at CONNECT), then the one it names. */
    enum porter_hook hooks[4];
    size_t hook_count, hook_index;
    bool connect_done, helo_done;     /* per session */
    bool mail_done;                   /* per transaction */
};

static const struct session_transport policy_transport;
static void policy_input(struct policy_connection *c);
static void policy_close(struct policy_connection *c, const char *reason);
static void policy_next(struct policy_connection *c);

/* ---------------------------------------------------------------- answers */

static void policy_answer(struct policy_connection *c, char *answer)
{
    if (!c->dead)
        bufferevent_write(c->bev, answer, strlen(answer));
    free(answer);
}

/* policy_done - one hook's verdict: the next hook of the request, or the answer */
static void policy_done(struct porter_session *s, int rc)
{
    struct policy_connection *c = s->transport_data;
    if (c == NULL)
        return;
    enum porter_hook hook = c->hooks[c->hook_index++];
    int code;
    const char *enhanced, *text;
    reply_resolve(&s->run.reply, hook, rc, &code, &enhanced, &text);
    bool refused = rc == PORTER_DENY || rc == PORTER_DENYSOFT || rc == PORTER_DENY_DISCONNECT ||
                   rc == PORTER_DENYSOFT_DISCONNECT || (rc == PORTER_DONE && code >= 400);
    struct transaction *t = s->transaction;
    if (!refused && c->hook_index < c->hook_count) {
        policy_next(c); /* the next stage */
        return;
    }
    c->busy = false;
    char *answer;
    if (refused) {
        answer = policy_answer_format(NULL, code, enhanced, text);
        log_message(PORTER_LOG_INFO, s->id_string, "event=policy_refused state=%s hook=%s "
                    "verdict=%s plugin=%s reply=\"%d %s\"", policy_state_name(c->state),
                    porter_hook_name(hook), porter_rc_name(rc),
                    s->run.decider ? s->run.decider : "-", code, enhanced ? enhanced : "");
        if (hook == PORTER_HOOK_MAIL)
            session_reset_transaction(s, "mail_refused");
    } else {
        if (hook == PORTER_HOOK_RCPT && t != NULL && s->path_valid) {
            struct param_list none = {0};
            transaction_add_recipient(t, s->path.address, &none);
            s->state = SESSION_STATE_RCPT;
        }
        if (t != NULL && t->discard_reason != NULL)
            answer = policy_answer_format("DISCARD", 0, NULL, t->discard_reason);
        else if (t != NULL && t->quarantine_reason != NULL)
            answer = policy_answer_format("HOLD", 0, NULL, t->quarantine_reason);
        else
            answer = policy_answer_format(rc == PORTER_OK ? "OK" : "DUNNO", 0, NULL, NULL);
    }
    log_message(PORTER_LOG_DEBUG, s->id_string, "event=policy_answer state=%s answer=\"%.*s\"",
                policy_state_name(c->state), (int)strcspn(answer, "\n"), answer);
    policy_answer(c, answer);
    policy_request_clear(&c->request);
    if (!c->in_input && !c->dead)
        policy_input(c);
}

/* ---------------------------------------------------------------- sessions */

static void policy_session_begin(struct policy_connection *c, const char *instance)
{
    c->session = session_facts_begin(c->worker, c->config, c->plugins, "policy",
                                     &policy_transport, c);
    c->connect_done = c->helo_done = c->mail_done = false;
    free(c->instance);
    c->instance = xstrndup(instance, strnlen(instance, 128));
}

/* policy_facts - what the request says about the client */
static void policy_facts(struct policy_connection *c, bool first)
{
    struct porter_session *s = c->session;
    const struct policy_request *r = &c->request;
    const char *address = policy_request_get(r, "client_address");
    if (address != NULL && address[0] != '\0' && strcmp(address, "unknown") != 0)
        snprintf(s->client_ip, sizeof s->client_ip, "%s", address);
    const char *port = policy_request_get(r, "client_port");
    if (port != NULL)
        s->client_port = atoi(port);
    const char *name = policy_request_get(r, "client_name");
    if (name != NULL && name[0] != '\0' && strcmp(name, "unknown") != 0)
        session_facts_name(&s->client_name, name);
    const char *ptr = policy_request_get(r, "reverse_client_name");
    if (ptr != NULL && ptr[0] != '\0')
        session_facts_name(&s->client_ptr, ptr);
    const char *helo = policy_request_get(r, "helo_name");
    if (helo != NULL && helo[0] != '\0')
        session_facts_name(&s->helo, helo);
    const char *protocol = policy_request_get(r, "protocol_name");
    if (protocol != NULL && strcasecmp(protocol, "SMTP") == 0)
        s->flags &= ~(unsigned)SESSION_FLAG_EHLO;
    else
        s->flags |= SESSION_FLAG_EHLO;
    session_facts_auth(s, policy_request_get(r, "sasl_username"));
    session_facts_tls(s, policy_request_get(r, "encryption_protocol"),
                      policy_request_get(r, "encryption_cipher"),
                      policy_request_get(r, "encryption_keysize"),
                      policy_request_get(r, "ccert_subject"), policy_request_get(r, "ccert_issuer"));
    if (first)
        log_message(PORTER_LOG_INFO, s->id_string, "event=connect client=%s port=%d name=%s "
                    "role=policy", s->client_ip, s->client_port, s->client_name);
}

/* policy_transaction - the transaction with the request's sender */
static struct transaction *policy_transaction(struct policy_connection *c)
{
    struct porter_session *s = c->session;
    bool created = s->transaction == NULL;
    struct transaction *t =
        session_facts_transaction(s, policy_request_get(&c->request, "queue_id"));
    const char *sender = policy_request_get(&c->request, "sender");
    if (created && sender != NULL) {
        free(t->mail_from);
        t->mail_from = xstrndup(sender, strnlen(sender, 512));
    }
    return t;
}

/* policy_path - sender or recipient as the hook's argument */
static void policy_path(struct policy_connection *c, const char *attribute,
                        enum smtp_path_kind kind)
{
    const char *address = policy_request_get(&c->request, attribute);
    char *line = xasprintf("%s<%.*s>", kind == SMTP_PATH_REVERSE ? "FROM:" : "TO:",
                           (int)strnlen(address ? address : "", 512), address ? address : "");
    session_facts_path(c->session, line, kind);
    free(line);
}

/* policy_next - run the request's next hook, its address in place for MAIL and RCPT */
static void policy_next(struct policy_connection *c)
{
    enum porter_hook hook = c->hooks[c->hook_index];
    if (hook == PORTER_HOOK_MAIL)
        policy_path(c, "sender", SMTP_PATH_REVERSE);
    else if (hook == PORTER_HOOK_RCPT)
        policy_path(c, "recipient", SMTP_PATH_FORWARD);
    hook_chain_run(c->session, hook, policy_done);
}

/* policy_hook - queue one hook for this request */
static void policy_hook(struct policy_connection *c, enum porter_hook hook)
{
    c->hooks[c->hook_count++] = hook;
}

/* policy_run - the request's hooks (earlier stages first); false when there is none */
static bool policy_run(struct policy_connection *c)
{
    struct porter_session *s = c->session;
    c->hook_count = c->hook_index = 0;
    if (c->state == POLICY_STATE_OTHER)
        return false;
    if (c->state == POLICY_STATE_END_OF_MESSAGE) {
        if (s->transaction != NULL)
            session_reset_transaction(s, "end_of_message");
        c->mail_done = false;
        return false;
    }
    enum porter_hook helo = (s->flags & SESSION_FLAG_EHLO) ? PORTER_HOOK_EHLO : PORTER_HOOK_HELO;
    if (!c->connect_done) {
        c->connect_done = true;
        if (c->state != POLICY_STATE_CONNECT)
            policy_hook(c, PORTER_HOOK_CONNECT);
    }
    if (!c->helo_done && (c->state == POLICY_STATE_EHLO || s->helo[0] != '\0')) {
        c->helo_done = true;
        s->state = SESSION_STATE_READY;
        if (c->state != POLICY_STATE_EHLO)
            policy_hook(c, helo);
    }
    switch (c->state) {
    case POLICY_STATE_CONNECT:
        policy_hook(c, PORTER_HOOK_CONNECT);
        break;
    case POLICY_STATE_EHLO:
        policy_hook(c, helo);
        break;
    case POLICY_STATE_MAIL:
        if (s->transaction != NULL)
            session_reset_transaction(s, "mail");
        policy_transaction(c);
        c->mail_done = true;
        policy_hook(c, PORTER_HOOK_MAIL);
        break;
    case POLICY_STATE_RCPT:
    case POLICY_STATE_DATA:
        policy_transaction(c);
        if (!c->mail_done) {
            /* MAIL was not asked about: its hook runs now, with the request's sender */
            c->mail_done = true;
            policy_hook(c, PORTER_HOOK_MAIL);
        }
        if (c->state == POLICY_STATE_RCPT) {
            policy_hook(c, PORTER_HOOK_RCPT);
        } else {
            policy_hook(c, PORTER_HOOK_DATA);
        }
        break;
    default:
        return false;
    }
    c->busy = true;
    policy_next(c);
    return true;
}

/* policy_request_done - a whole request is in: the session, the facts, the hook */
static void policy_request_done(struct policy_connection *c)
{
    const char *instance = policy_request_get(&c->request, "instance");
    if (instance == NULL)
        instance = "";
    bool first = c->session == NULL || !c->session_used || strcmp(c->instance, instance) != 0;
    if (c->session != NULL && !c->session_used) {
        free(c->instance); /* the session made at accept takes the first instance */
        c->instance = xstrndup(instance, strnlen(instance, 128));
    } else if (first) {
        if (c->session != NULL) {
            c->replacing = true;
            session_close(c->session, "policy_instance_end");
            c->replacing = false;
        }
        policy_session_begin(c, instance);
    }
    c->session_used = true;
    policy_facts(c, first);
    c->state = policy_state_parse(policy_request_get(&c->request, "protocol_state"));
    struct porter_session *s = c->session;
    session_hold(s);
    if (!policy_run(c))
        policy_answer(c, policy_answer_format("DUNNO", 0, NULL, NULL));
    session_unhold(s);
}

/* ---------------------------------------------------------------- input */

static void policy_input(struct policy_connection *c)
{
    c->in_input = true;
    while (!c->dead && !c->busy) {
        struct evbuffer *input = bufferevent_get_input(c->bev);
        size_t eol_length = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(input, NULL, &eol_length, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
            if (evbuffer_get_length(input) > POLICY_LINE_MAX + 1) {
                log_message(PORTER_LOG_WARNING, c->session ? c->session->id_string : NULL,
                            "event=policy_error error=\"line too long\"");
                policy_close(c, "policy_protocol_error");
            }
            break;
        }
        size_t length = (size_t)eol.pos;
        const char *line = (const char *)evbuffer_pullup(input, (ev_ssize_t)(length + eol_length));
        const char *error = NULL;
        int got = policy_request_line(&c->request, line, length, &error);
        evbuffer_drain(input, length + eol_length);
        if (got < 0) {
            log_message(PORTER_LOG_WARNING, c->session ? c->session->id_string : NULL,
                        "event=policy_error error=\"%s\"", error);
            policy_close(c, "policy_protocol_error");
            break;
        }
        if (got == 1) {
            policy_request_done(c);
            if (!c->busy) /* else policy_done clears it: the hooks still read it */
                policy_request_clear(&c->request);
            if (c->draining && !c->busy)
                policy_close(c, "shutdown");
        }
    }
    c->in_input = false;
    if (c->dead)
        free(c);
}

static void policy_close(struct policy_connection *c, const char *reason)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->session != NULL)
        session_close(c->session, reason);
    policy_request_clear(&c->request);
    free(c->instance);
    c->instance = NULL;
    event_free(c->idle_timer);
    bufferevent_free(c->bev);
    if (!c->in_input)
        free(c);
}

static void policy_read_ready(struct bufferevent *bev, void *arg)
{
    struct policy_connection *c = arg;
    struct timeval tv = clock_timeval(c->config->policy_listener_timeout);
    evtimer_add(c->idle_timer, &tv);
    if (!c->in_input)
        policy_input(c);
}

static void policy_event(struct bufferevent *bev, short what, void *arg)
{
    struct policy_connection *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        policy_close(c, what & BEV_EVENT_EOF ? "mta_disconnected" : "connection_error");
}

static void policy_idle_fired(evutil_socket_t fd, short what, void *arg)
{
    struct policy_connection *c = arg;
    if (c->busy) {
        struct timeval tv = clock_timeval(c->config->policy_listener_timeout);
        evtimer_add(c->idle_timer, &tv);
        return;
    }
    log_message(PORTER_LOG_INFO, c->session ? c->session->id_string : NULL,
                "event=policy_timeout error=\"no request for %.0f seconds\"",
                c->config->policy_listener_timeout);
    policy_close(c, "policy_timeout");
}

/* The session's side of the transport. */
static void policy_transport_drain(struct porter_session *s)
{
    struct policy_connection *c = s->transport_data;
    if (c == NULL)
        return;
    c->draining = true;
    if (!c->busy && !c->in_input)
        policy_close(c, "shutdown");
}

static void policy_transport_closed(struct porter_session *s)
{
    struct policy_connection *c = s->transport_data;
    s->transport_data = NULL;
    if (c == NULL)
        return;
    c->session = NULL;
    c->busy = false;
    if (!c->replacing && !c->dead)
        policy_close(c, "session_closed");
}

static const struct session_transport policy_transport = {
    .drain = policy_transport_drain,
    .closed = policy_transport_closed,
};

void policy_listener_accept(struct worker *worker, const struct porter_config *config,
                            struct plugin_registry *plugins, int fd)
{
    struct policy_connection *c = xcalloc(1, sizeof *c);
    c->worker = worker;
    c->config = config;
    c->plugins = plugins;
    struct event_base *base = worker_event_base(worker);
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->idle_timer = evtimer_new(base, policy_idle_fired, c);
    if (c->bev == NULL || c->idle_timer == NULL)
        abort();
    /* a session from the start, so that the worker counts and drains the connection */
    policy_session_begin(c, "");
    bufferevent_setcb(c->bev, policy_read_ready, NULL, policy_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, POLICY_REQUEST_MAX + POLICY_LINE_MAX);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct timeval tv = clock_timeval(config->policy_listener_timeout);
    evtimer_add(c->idle_timer, &tv);
}
