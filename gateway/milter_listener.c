/*
 * milter_listener.c - Porter's plugin chain as a milter: the filter side of the Sendmail milter
 * protocol (version 6) on the worker's event loop.
 *
 * One connection from the MTA carries one SMTP connection after another (SMFIC_QUIT_NC starts
 * the next); each is a Porter session (session.h) whose transport is this file: it has no SMTP
 * socket, session_reply says nothing, and the verdicts of the hook chains become milter
 * replies. Commands map to hooks: CONNECT -> connect, HELO -> ehlo (helo when the MTA's {r}
 * macro says SMTP), MAIL -> mail, RCPT -> rcpt, DATA -> data, end of message -> data_post;
 * ABORT -> reset_transaction, QUIT -> disconnect. The queue hook never runs: the MTA queues.
 * Macros fill the facts the SMTP path learns itself (client name, TLS, AUTH user, queue id).
 * Headers and body are written through the same data reader into a spool file, so the
 * transaction is the one the SMTP path builds; at the end of the message the difference
 * between what the MTA sent and what the plugins left becomes modification replies (headers,
 * body, envelope, quarantine), Authentication-Results included.
 *
 * Negotiation asks only for the events the chain uses (milter_filter.c). While a chain waits
 * (a PENDING hook), SMFIR_PROGRESS goes out every milter_progress_interval so the
 * MTA's timeout does not fire. Frames are checked by milter_codec.c; a malformed frame, a
 * frame over 64 KiB or an MTA silent for milter_listener_timeout closes the connection.
 *
 * Interface: milter_listener.h. Fatal: out of memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth_results.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "milter_filter.h"
#include "milter_listener.h"
#include "session_facts.h"
#include "plugin_host.h"
#include "session.h"
#include "worker.h"

#define MILTER_READ_HIGH_WATER (MILTER_MAX_FRAME + MILTER_LENGTH_BYTES + 4096)

struct milter_connection {
    struct worker *worker;
    const struct porter_config *config;
    struct plugin_registry *plugins;
    struct bufferevent *bev;
    struct porter_session *session;   /* the current SMTP connection; NULL between them */
    struct event *idle_timer;
    struct event *progress_timer;
    struct milter_filter_needs needs;
    uint32_t version, actions, protocol; /* as negotiated */
    bool negotiated;
    struct milter_macros macros;
    bool busy;                        /* a hook chain runs; frames wait */
    bool in_input;                    /* milter_connection_input is on the stack */
    bool dead;                        /* closed; freed when the stack unwinds */
    bool draining;                    /* the worker stops: close between messages */
    bool quitting;                    /* QUIT_NC: the session ends, the connection stays */
    bool header_block_ended;          /* the empty line after the headers is written */
    /* the message as the MTA gave it, for the edits at the end of the message */
    struct header_list original_headers;
    char *original_from;
    struct param_list original_from_params;
    char **original_rcpts;
    size_t original_rcpt_count;
    int original_spool_fd;
    off_t original_body_offset, original_body_length;
};

static const struct session_transport milter_transport;
static void milter_connection_input(struct milter_connection *c);
static void milter_connection_close(struct milter_connection *c, const char *reason);

/* ---------------------------------------------------------------- output */

static void milter_send(struct milter_connection *c, struct milter_buffer *frames)
{
    if (!c->dead && frames->length > 0)
        bufferevent_write(c->bev, frames->data, frames->length);
    milter_buffer_free(frames);
}

/* milter_send_simple - one reply without data */
static void milter_send_simple(struct milter_connection *c, enum milter_reply_type type)
{
    struct milter_buffer b = {0};
    milter_encode_reply(&b, type);
    milter_send(c, &b);
}

/* milter_continue - CONTINUE, unless the command's reply was negotiated away */
static void milter_continue(struct milter_connection *c, enum milter_command_type command)
{
    if (milter_command_awaits_reply(command, c->protocol))
        milter_send_simple(c, MILTER_REPLY_CONTINUE);
}

/* milter_reply_text - "550-5.7.1 line\r\n550 5.7.1 last" with '%' doubled (the MTA treats it
 * as a format string); caller frees */
static char *milter_reply_text(int code, const char *enhanced, const char *text)
{
    size_t size = strlen(text) * 2 + 64 * (1 + strlen(text) / 8);
    char *out = xcalloc(1, size), *w = out;
    const char *line = text;
    do {
        size_t length = strcspn(line, "\n");
        bool last = line[length] == '\0';
        w += sprintf(w, "%d%c%s%s", code, last ? ' ' : '-', enhanced ? enhanced : "",
                     enhanced && enhanced[0] ? " " : "");
        for (size_t i = 0; i < length; i++) {
            char ch = line[i];
            if (ch == '\r')
                continue;
            if ((unsigned char)ch < 0x20 && ch != '\t')
                ch = ' ';
            if (ch == '%')
                *w++ = '%';
            *w++ = ch;
        }
        if (!last) {
            *w++ = '\r';
            *w++ = '\n';
        }
        line += length + (last ? 0 : 1);
        if (last)
            break;
    } while (*line != '\0');
    *w = '\0';
    return out;
}

/* milter_send_refusal - the chain's refusal as SMFIR_REPLYCODE (TEMPFAIL/REJECT when the
 * text cannot be sent); also the log line of a refused stage */
static void milter_send_refusal(struct milter_connection *c, enum porter_hook hook, int rc)
{
    struct porter_session *s = c->session;
    int code;
    const char *enhanced, *text;
    reply_resolve(&s->run.reply, hook, rc, &code, &enhanced, &text);
    if (rc == PORTER_DONE && code / 100 == 2) {
        milter_send_simple(c, MILTER_REPLY_CONTINUE);
        return;
    }
    char *reply = milter_reply_text(code, enhanced, text);
    struct milter_buffer b = {0};
    if (milter_encode_replycode(&b, reply) != 0)
        milter_encode_reply(&b, code / 100 == 4 ? MILTER_REPLY_TEMPFAIL : MILTER_REPLY_REJECT);
    log_message(PORTER_LOG_INFO, s->id_string, "event=milter_refused hook=%s verdict=%s "
                "plugin=%s reply=\"%d %s\"", porter_hook_name(hook), porter_rc_name(rc),
                s->run.decider ? s->run.decider : "-", code, enhanced ? enhanced : "");
    free(reply);
    milter_send(c, &b);
}

static bool milter_is_refusal(int rc)
{
    return rc == PORTER_DENY || rc == PORTER_DENYSOFT || rc == PORTER_DENY_DISCONNECT ||
           rc == PORTER_DENYSOFT_DISCONNECT || rc == PORTER_DONE;
}

/* ---------------------------------------------------------------- timers */

static void milter_idle_fired(evutil_socket_t fd, short what, void *arg)
{
    struct milter_connection *c = arg;
    if (c->busy) {
        struct timeval tv = clock_timeval(c->config->milter_listener_timeout);
        evtimer_add(c->idle_timer, &tv);
        return;
    }
    log_message(PORTER_LOG_INFO, c->session ? c->session->id_string : NULL,
                "event=milter_timeout error=\"the MTA sent nothing for %.0f seconds\"",
                c->config->milter_listener_timeout);
    milter_connection_close(c, "milter_timeout");
}

/* milter_progress_fired - a hook still waits: tell the MTA we are alive */
static void milter_progress_fired(evutil_socket_t fd, short what, void *arg)
{
    struct milter_connection *c = arg;
    if (!c->busy || c->dead)
        return;
    milter_send_simple(c, MILTER_REPLY_PROGRESS);
    struct timeval tv = clock_timeval(c->config->milter_progress_interval);
    evtimer_add(c->progress_timer, &tv);
}

/* ---------------------------------------------------------------- sessions */

/* milter_session_begin - a new Porter session for the next SMTP connection */
static void milter_session_begin(struct milter_connection *c)
{
    c->session = session_facts_begin(c->worker, c->config, c->plugins, "milter",
                                     &milter_transport, c);
}

/* milter_run - run hook's chain; done continues with the verdict */
static void milter_run(struct milter_connection *c, enum porter_hook hook,
                       void (*done)(struct porter_session *s, int rc))
{
    c->busy = true;
    struct timeval tv = clock_timeval(c->config->milter_progress_interval);
    evtimer_add(c->progress_timer, &tv);
    hook_chain_run(c->session, hook, done);
}

/* milter_resume - a chain ended: back to the frames */
static struct milter_connection *milter_chain_done(struct porter_session *s)
{
    struct milter_connection *c = s->transport_data;
    if (c == NULL)
        return NULL;
    c->busy = false;
    evtimer_del(c->progress_timer);
    return c;
}

static void milter_resume(struct milter_connection *c)
{
    if (!c->in_input && !c->dead)
        milter_connection_input(c);
}

/* ---------------------------------------------------------------- facts from macros */

/* milter_tls_from_macros - TLS facts as the MTA saw them ({tls_version}, {cipher}, ...) */
static void milter_tls_from_macros(struct milter_connection *c)
{
    const struct milter_macros *m = &c->macros;
    session_facts_tls(c->session, milter_macros_get(m, "tls_version"), milter_macros_get(m, "cipher"),
                      milter_macros_get(m, "cipher_bits"), milter_macros_get(m, "cert_subject"),
                      milter_macros_get(m, "cert_issuer"));
}

/* milter_path - MAIL/RCPT argv into s->path, as the SMTP path parses it */
static bool milter_path(struct porter_session *s, const struct milter_string_list *argv,
                        enum smtp_path_kind kind)
{
    size_t length = argv->length + 8;
    char *line = xcalloc(1, length);
    size_t used = (size_t)snprintf(line, length, "%s", kind == SMTP_PATH_REVERSE ? "FROM:" : "TO:");
    size_t prefix = used;
    for (const char *a = milter_string_list_next(argv, NULL); a != NULL;
         a = milter_string_list_next(argv, a))
        used += (size_t)snprintf(line + used, length - used, "%s%s", used > prefix ? " " : "", a);
    bool parsed = session_facts_path(s, line, kind);
    free(line);
    return parsed;
}

/* milter_transaction - the transaction, created when the MTA skipped MAIL */
static struct transaction *milter_transaction(struct milter_connection *c)
{
    return session_facts_transaction(c->session, milter_macros_get(&c->macros, "i"));
}

/* milter_message_reset - forget the per-message snapshot */
static void milter_message_reset(struct milter_connection *c)
{
    headers_clear(&c->original_headers);
    free(c->original_from);
    c->original_from = NULL;
    param_list_clear(&c->original_from_params);
    for (size_t i = 0; i < c->original_rcpt_count; i++)
        free(c->original_rcpts[i]);
    free(c->original_rcpts);
    c->original_rcpts = NULL;
    c->original_rcpt_count = 0;
    c->header_block_ended = false;
}

/* milter_transaction_end - end the transaction; end names why for its log line ("abort",
 * "quit", ...; NULL when the message's line was written) */
static void milter_transaction_end(struct milter_connection *c, const char *end)
{
    if (c->session != NULL)
        session_reset_transaction(c->session, end);
    milter_message_reset(c);
}

/* ---------------------------------------------------------------- stages */

static void milter_done_connect(struct porter_session *s, int rc)
{
    struct milter_connection *c = milter_chain_done(s);
    if (c == NULL)
        return;
    if (milter_is_refusal(rc))
        milter_send_refusal(c, PORTER_HOOK_CONNECT, rc);
    else
        milter_continue(c, MILTER_COMMAND_CONNECT);
    milter_resume(c);
}

static void milter_on_connect(struct milter_connection *c, const struct milter_command *command)
{
    struct porter_session *s = c->session;
    const char *host = command->connect.hostname;
    if (host[0] != '\0' && host[0] != '[' && strcasecmp(host, "unknown") != 0)
        session_facts_name(&s->client_name, host);
    session_facts_name(&s->client_ptr, milter_macros_get(&c->macros, "client_ptr"));
    if (command->connect.address != NULL &&
        (command->connect.family == MILTER_SMFIA_INET || command->connect.family == MILTER_SMFIA_INET6)) {
        const char *address = command->connect.address;
        if (strncasecmp(address, "IPv6:", 5) == 0)
            address += 5;
        snprintf(s->client_ip, sizeof s->client_ip, "%s", address);
        s->client_port = command->connect.port;
    }
    const char *local = milter_macros_get(&c->macros, "daemon_addr");
    if (local != NULL)
        snprintf(s->local_ip, sizeof s->local_ip, "%s", local);
    const char *local_port = milter_macros_get(&c->macros, "daemon_port");
    if (local_port != NULL)
        s->local_port = atoi(local_port);
    log_message(PORTER_LOG_INFO, s->id_string, "event=connect client=%s port=%d name=%s "
                "role=milter", s->client_ip, s->client_port, s->client_name);
    if (c->needs.answer[MILTER_FILTER_CONNECT]) {
        milter_run(c, PORTER_HOOK_CONNECT, milter_done_connect);
        return;
    }
    milter_continue(c, MILTER_COMMAND_CONNECT);
}

static void milter_done_helo(struct porter_session *s, int rc)
{
    struct milter_connection *c = milter_chain_done(s);
    if (c == NULL)
        return;
    if (milter_is_refusal(rc))
        milter_send_refusal(c, (s->flags & SESSION_FLAG_EHLO) ? PORTER_HOOK_EHLO : PORTER_HOOK_HELO,
                            rc);
    else
        milter_continue(c, MILTER_COMMAND_HELO);
    milter_resume(c);
}

static void milter_on_helo(struct milter_connection *c, const struct milter_command *command)
{
    struct porter_session *s = c->session;
    session_facts_name(&s->helo, command->helo);
    const char *protocol = milter_macros_get(&c->macros, "r");
    if (protocol != NULL && strcasecmp(protocol, "SMTP") == 0)
        s->flags &= ~(unsigned)SESSION_FLAG_EHLO;
    else
        s->flags |= SESSION_FLAG_EHLO;
    milter_tls_from_macros(c);
    s->state = SESSION_STATE_READY;
    if (c->needs.answer[MILTER_FILTER_HELO]) {
        milter_run(c, (s->flags & SESSION_FLAG_EHLO) ? PORTER_HOOK_EHLO : PORTER_HOOK_HELO,
                   milter_done_helo);
        return;
    }
    milter_continue(c, MILTER_COMMAND_HELO);
}

static void milter_done_mail(struct porter_session *s, int rc)
{
    struct milter_connection *c = milter_chain_done(s);
    if (c == NULL)
        return;
    if (milter_is_refusal(rc)) {
        milter_send_refusal(c, PORTER_HOOK_MAIL, rc);
        milter_transaction_end(c, "mail_refused");
    } else {
        milter_continue(c, MILTER_COMMAND_MAIL);
    }
    milter_resume(c);
}

static void milter_on_mail(struct milter_connection *c, const struct milter_command *command)
{
    struct porter_session *s = c->session;
    milter_transaction_end(c, "abort"); /* a MAIL without ABORT after a refused one */
    milter_tls_from_macros(c);
    session_facts_auth(s, milter_macros_get(&c->macros, "auth_authen"));
    struct transaction *t = milter_transaction(c);
    const char *first = milter_string_list_next(&command->argv, NULL);
    free(t->mail_from);
    if (milter_path(s, &command->argv, SMTP_PATH_REVERSE)) {
        t->mail_from = xstrdup(s->path.address);
        for (size_t i = 0; i < s->path.param_count; i++)
            param_list_add(&t->mail_params, s->path.params[i].keyword, s->path.params[i].value);
    } else {
        t->mail_from = session_facts_bare_address(first != NULL ? first : "");
    }
    c->original_from = xstrdup(t->mail_from);
    for (size_t i = 0; i < t->mail_params.count; i++)
        param_list_add(&c->original_from_params, t->mail_params.items[i].keyword,
                       t->mail_params.items[i].value);
    if (c->needs.answer[MILTER_FILTER_MAIL]) {
        milter_run(c, PORTER_HOOK_MAIL, milter_done_mail);
        return;
    }
    milter_continue(c, MILTER_COMMAND_MAIL);
}

/* milter_keep_recipient - the recipient the MTA accepted, in the transaction and snapshot */
static void milter_keep_recipient(struct milter_connection *c, const char *address,
                                  const struct param_list *params)
{
    transaction_add_recipient(milter_transaction(c), address, params);
    c->original_rcpts = xrealloc(c->original_rcpts,
                                 (c->original_rcpt_count + 1) * sizeof *c->original_rcpts);
    c->original_rcpts[c->original_rcpt_count++] = xstrdup(address);
    c->session->state = SESSION_STATE_RCPT;
}

/* milter_path_recipient - the parsed recipient and its parameters */
static void milter_path_recipient(struct milter_connection *c)
{
    struct porter_session *s = c->session;
    struct param_list params = {0};
    for (size_t i = 0; i < s->path.param_count; i++)
        param_list_add(&params, s->path.params[i].keyword, s->path.params[i].value);
    milter_keep_recipient(c, s->path.address, &params);
    param_list_clear(&params);
}

static void milter_done_rcpt(struct porter_session *s, int rc)
{
    struct milter_connection *c = milter_chain_done(s);
    if (c == NULL)
        return;
    if (milter_is_refusal(rc)) {
        milter_send_refusal(c, PORTER_HOOK_RCPT, rc);
    } else {
        milter_path_recipient(c);
        milter_continue(c, MILTER_COMMAND_RCPT);
    }
    milter_resume(c);
}

static void milter_on_rcpt(struct milter_connection *c, const struct milter_command *command)
{
    milter_transaction(c);
    if (!milter_path(c->session, &command->argv, SMTP_PATH_FORWARD)) {
        /* The MTA accepted it; we cannot judge it, so it passes as the MTA wrote it. */
        const char *first = milter_string_list_next(&command->argv, NULL);
        char *address = session_facts_bare_address(first != NULL ? first : "");
        struct param_list none = {0};
        milter_keep_recipient(c, address, &none);
        free(address);
        milter_continue(c, MILTER_COMMAND_RCPT);
        return;
    }
    if (c->needs.answer[MILTER_FILTER_RCPT]) {
        milter_run(c, PORTER_HOOK_RCPT, milter_done_rcpt);
        return;
    }
    milter_path_recipient(c);
    milter_continue(c, MILTER_COMMAND_RCPT);
}

static void milter_done_data(struct porter_session *s, int rc)
{
    struct milter_connection *c = milter_chain_done(s);
    if (c == NULL)
        return;
    if (milter_is_refusal(rc))
        milter_send_refusal(c, PORTER_HOOK_DATA, rc);
    else
        milter_continue(c, MILTER_COMMAND_DATA);
    milter_resume(c);
}

static void milter_on_data(struct milter_connection *c)
{
    milter_transaction(c);
    if (c->needs.answer[MILTER_FILTER_DATA]) {
        milter_run(c, PORTER_HOOK_DATA, milter_done_data);
        return;
    }
    milter_continue(c, MILTER_COMMAND_DATA);
}

/* milter_message_open - the spool file and reader, on the first header or body byte; false
 * when the spool failed (logged) */
static bool milter_message_open(struct milter_connection *c)
{
    struct porter_session *s = c->session;
    milter_transaction(c);
    if (s->reader != NULL)
        return true;
    if (session_open_message(s) != 0)
        return false;
    s->state = SESSION_STATE_DATA;
    return true;
}

/* milter_feed_crlf - bytes to the reader, each bare LF written as CRLF (MTAs send folded
 * header values with LF only) */
static void milter_feed_crlf(struct porter_session *s, const char *bytes, size_t length)
{
    size_t start = 0;
    for (size_t i = 0; i < length; i++) {
        if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r')) {
            data_reader_feed_chunk(s->reader, bytes + start, i - start);
            data_reader_feed_chunk(s->reader, "\r\n", 2);
            start = i + 1;
        }
    }
    data_reader_feed_chunk(s->reader, bytes + start, length - start);
}

static void milter_on_header(struct milter_connection *c, const struct milter_command *command)
{
    if (milter_message_open(c) && !c->header_block_ended) {
        struct porter_session *s = c->session;
        data_reader_feed_chunk(s->reader, command->header.name, strlen(command->header.name));
        data_reader_feed_chunk(s->reader, ":", 1);
        if (!(c->protocol & MILTER_SMFIP_HDR_LEADSPC))
            data_reader_feed_chunk(s->reader, " ", 1);
        milter_feed_crlf(s, command->header.value, strlen(command->header.value));
        data_reader_feed_chunk(s->reader, "\r\n", 2);
    }
    milter_continue(c, MILTER_COMMAND_HEADER);
}

/* milter_end_headers - the empty line between headers and body, once */
static void milter_end_headers(struct milter_connection *c)
{
    if (c->header_block_ended || !milter_message_open(c))
        return;
    data_reader_feed_chunk(c->session->reader, "\r\n", 2);
    c->header_block_ended = true;
}

static void milter_on_body(struct milter_connection *c, const struct milter_command *command)
{
    milter_end_headers(c);
    if (c->session->reader != NULL && command->body.length > 0)
        data_reader_feed_chunk(c->session->reader, (const char *)command->body.data,
                               command->body.length);
}

/* milter_envelope_edits - CHGFROM, DELRCPT, ADDRCPT(_PAR) for what the plugins changed */
static void milter_envelope_edits(struct milter_connection *c, struct milter_buffer *out)
{
    struct transaction *t = c->session->transaction;
    bool from_changed = c->original_from != NULL && strcmp(c->original_from, t->mail_from) != 0;
    for (size_t i = 0; !from_changed && c->original_from != NULL && i < t->mail_params.count; i++) {
        const char *before = param_list_get(&c->original_from_params, t->mail_params.items[i].keyword);
        const char *after = t->mail_params.items[i].value ? t->mail_params.items[i].value : "";
        from_changed = before == NULL || strcmp(before, after) != 0;
    }
    if (c->original_from != NULL && t->mail_params.count != c->original_from_params.count)
        from_changed = true;
    if (from_changed && (c->actions & MILTER_SMFIF_CHGFROM)) {
        char *address = xasprintf("<%s>", t->mail_from);
        char *args = NULL;
        for (size_t i = 0; i < t->mail_params.count; i++) {
            const struct transaction_param *p = &t->mail_params.items[i];
            if (strcasecmp(p->keyword, "SIZE") == 0)
                continue; /* the MTA knows the size; Postfix refuses SIZE in CHGFROM */
            char *joined = xasprintf("%s%s%s%s%s", args ? args : "", args ? " " : "", p->keyword,
                                     p->value ? "=" : "", p->value ? p->value : "");
            free(args);
            args = joined;
        }
        milter_encode_envelope_edit(out, MILTER_REPLY_CHGFROM, address, args);
        free(address);
        free(args);
    }
    for (size_t i = 0; i < c->original_rcpt_count; i++) {
        bool kept = false;
        for (size_t j = 0; j < t->recipient_count && !kept; j++)
            kept = strcasecmp(t->recipients[j].address, c->original_rcpts[i]) == 0;
        if (!kept && (c->actions & MILTER_SMFIF_DELRCPT)) {
            char *address = xasprintf("<%s>", c->original_rcpts[i]);
            milter_encode_envelope_edit(out, MILTER_REPLY_DELRCPT, address, NULL);
            free(address);
        }
    }
    for (size_t j = 0; j < t->recipient_count; j++) {
        bool known = false;
        for (size_t i = 0; i < c->original_rcpt_count && !known; i++)
            known = strcasecmp(t->recipients[j].address, c->original_rcpts[i]) == 0;
        if (known)
            continue;
        const struct param_list *params = &t->recipients[j].params;
        char *address = xasprintf("<%s>", t->recipients[j].address);
        char *args = NULL;
        for (size_t i = 0; i < params->count; i++) {
            char *joined = xasprintf("%s%s%s%s%s", args ? args : "", args ? " " : "",
                                     params->items[i].keyword, params->items[i].value ? "=" : "",
                                     params->items[i].value ? params->items[i].value : "");
            free(args);
            args = joined;
        }
        if (args != NULL && (c->actions & MILTER_SMFIF_ADDRCPT_PAR))
            milter_encode_envelope_edit(out, MILTER_REPLY_ADDRCPT_PAR, address, args);
        else if (c->actions & MILTER_SMFIF_ADDRCPT)
            milter_encode_envelope_edit(out, MILTER_REPLY_ADDRCPT, address, NULL);
        free(address);
        free(args);
    }
}

/* milter_body_edit - REPLBODY chunks when a plugin replaced the body; -1 when the spool
 * cannot be read */
static int milter_body_edit(struct milter_connection *c, struct milter_buffer *out)
{
    struct transaction *t = c->session->transaction;
    if (t->spool_fd == c->original_spool_fd && t->body_offset == c->original_body_offset &&
        t->body_length == c->original_body_length)
        return 0;
    if (!(c->actions & MILTER_SMFIF_CHGBODY))
        return 0;
    char *chunk = xmalloc(MILTER_BODY_CHUNK_MAX);
    off_t done = 0;
    int rc = 0;
    while (done < t->body_length) {
        size_t want = (size_t)(t->body_length - done) < MILTER_BODY_CHUNK_MAX
                          ? (size_t)(t->body_length - done) : MILTER_BODY_CHUNK_MAX;
        ssize_t n = pread(t->spool_fd, chunk, want, t->body_offset + done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = -1;
            break;
        }
        milter_encode_replbody(out, chunk, (size_t)n);
        done += n;
    }
    if (t->body_length == 0)
        milter_encode_replbody(out, "", 0);
    free(chunk);
    return rc;
}

/* milter_message_verdict_log - the one transaction line, as the SMTP path writes it */
static void milter_message_log(struct milter_connection *c, int code, const char *enhanced,
                               const char *text)
{
    struct porter_session *s = c->session;
    session_log_transaction(s, "data", code, enhanced, text, s->run.decider);
    s->messages++;
}

static void milter_done_eom(struct porter_session *s, int rc)
{
    struct milter_connection *c = milter_chain_done(s);
    if (c == NULL)
        return;
    struct transaction *t = s->transaction;
    if (milter_is_refusal(rc) && !(rc == PORTER_DONE && s->run.reply.code / 100 == 2)) {
        int code;
        const char *enhanced, *text;
        reply_resolve(&s->run.reply, PORTER_HOOK_DATA_POST, rc, &code, &enhanced, &text);
        milter_send_refusal(c, PORTER_HOOK_DATA_POST, rc);
        milter_message_log(c, code, enhanced, text);
    } else if (t->discard_reason != NULL) {
        milter_send_simple(c, MILTER_REPLY_DISCARD);
        milter_message_log(c, 250, "2.0.0", "discarded");
    } else {
        struct milter_buffer out = {0};
        auth_results_add(s);
        int frames = (c->actions & (MILTER_SMFIF_ADDHDRS | MILTER_SMFIF_CHGHDRS)) ==
                             (MILTER_SMFIF_ADDHDRS | MILTER_SMFIF_CHGHDRS)
                         ? milter_filter_header_edits(&out, &c->original_headers, &t->headers,
                                                      (c->protocol & MILTER_SMFIP_HDR_LEADSPC) != 0)
                         : 0;
        milter_envelope_edits(c, &out);
        if (frames < 0 || milter_body_edit(c, &out) != 0) {
            log_message(PORTER_LOG_ERR, s->id_string, "event=milter_edit_error queue_id=%s "
                        "error=\"an edit could not be sent\"", t->queue_id);
            milter_buffer_free(&out);
            milter_encode_replycode(&out, "451 4.3.0 Local error in processing, try again later");
            milter_send(c, &out);
            milter_message_log(c, 451, "4.3.0", "edit failed");
            milter_transaction_end(c, NULL);
            milter_resume(c);
            return;
        }
        if (t->quarantine_reason != NULL && (c->actions & MILTER_SMFIF_QUARANTINE))
            milter_encode_quarantine(&out, t->quarantine_reason);
        milter_encode_reply(&out, MILTER_REPLY_CONTINUE);
        log_message(PORTER_LOG_DEBUG, s->id_string, "event=milter_edits queue_id=%s bytes=%zu "
                    "header_frames=%d", t->queue_id, out.length, frames);
        milter_send(c, &out);
        milter_message_log(c, 250, "2.0.0", "accepted");
    }
    milter_transaction_end(c, NULL);
    if (c->draining)
        milter_connection_close(c, "shutdown");
    else
        milter_resume(c);
}

static void milter_on_eom(struct milter_connection *c, const struct milter_command *command)
{
    struct porter_session *s = c->session;
    if (!c->needs.receive[MILTER_FILTER_CONTENT] && s->reader == NULL) {
        /* Nothing reads the message: only envelope edits the earlier hooks made. */
        struct milter_buffer out = {0};
        if (s->transaction != NULL)
            milter_envelope_edits(c, &out);
        milter_encode_reply(&out, MILTER_REPLY_CONTINUE);
        milter_send(c, &out);
        if (s->transaction != NULL)
            milter_message_log(c, 250, "2.0.0", "accepted");
        milter_transaction_end(c, NULL);
        return;
    }
    milter_on_body(c, command);
    milter_end_headers(c);
    if (s->reader == NULL) {
        milter_send_simple(c, MILTER_REPLY_TEMPFAIL); /* the spool failed (logged) */
        milter_transaction_end(c, "spool_error");
        return;
    }
    enum data_error error = session_message_complete(s);
    s->state = SESSION_STATE_READY;
    if (error != DATA_OK) {
        int code;
        const char *enhanced, *text;
        data_error_reply(error, &code, &enhanced, &text);
        char *reply = milter_reply_text(code, enhanced, text);
        struct milter_buffer b = {0};
        if (milter_encode_replycode(&b, reply) != 0)
            milter_encode_reply(&b, MILTER_REPLY_TEMPFAIL);
        free(reply);
        milter_send(c, &b);
        session_log_transaction(s, "data", code, enhanced, text, "core");
        milter_transaction_end(c, NULL);
        return;
    }
    struct transaction *t = s->transaction;
    for (size_t i = 0; i < t->headers.count; i++)
        headers_add(&c->original_headers, t->headers.items[i].name, t->headers.items[i].value);
    c->original_spool_fd = t->spool_fd;
    c->original_body_offset = t->body_offset;
    c->original_body_length = t->body_length;
    auth_results_strip(s); /* forged Authentication-Results never reach a plugin */
    milter_run(c, PORTER_HOOK_DATA_POST, milter_done_eom);
}

/* ---------------------------------------------------------------- negotiation */

static int milter_on_optneg(struct milter_connection *c, const struct milter_command *command)
{
    bool used[PORTER_HOOK_COUNT];
    for (size_t h = 0; h < PORTER_HOOK_COUNT; h++)
        used[h] = c->plugins->by_hook_count[h] > 0;
    milter_filter_needs_from_hooks(used, PORTER_HOOK_COUNT, &c->needs);
    const char *error = NULL;
    if (milter_filter_negotiate(&c->needs, command->optneg.version, command->optneg.actions,
                                command->optneg.protocol, &c->version, &c->actions,
                                &c->protocol, &error) != 0) {
        log_message(PORTER_LOG_WARNING, c->session->id_string, "event=milter_error error=\"%s\"",
                    error);
        return -1;
    }
    c->negotiated = true;
    char actions[256], protocol[512];
    milter_actions_format(c->actions, actions, sizeof actions);
    milter_protocol_format(c->protocol, protocol, sizeof protocol);
    log_message(PORTER_LOG_DEBUG, c->session->id_string, "event=milter_negotiated version=%u "
                "actions=%s protocol=%s", (unsigned)c->version, actions, protocol);
    struct milter_buffer b = {0};
    milter_encode_optneg(&b, c->version, c->actions, c->protocol);
    milter_send(c, &b);
    return 0;
}

/* ---------------------------------------------------------------- input */

/* milter_dispatch - one decoded command; -1 closes the connection */
static int milter_dispatch(struct milter_connection *c, const struct milter_command *command)
{
    if (command->type != MILTER_COMMAND_OPTNEG && !c->negotiated) {
        log_message(PORTER_LOG_WARNING, c->session->id_string, "event=milter_error "
                    "error=\"%s before negotiation\"", milter_command_type_name(command->type));
        return -1;
    }
    switch (command->type) {
    case MILTER_COMMAND_OPTNEG:
        return milter_on_optneg(c, command);
    case MILTER_COMMAND_MACRO:
        if (milter_macros_set(&c->macros, &command->macro.pairs) > 0)
            log_message(PORTER_LOG_NOTICE, c->session->id_string, "event=milter_macros_dropped "
                        "limit=%d", MILTER_MACROS_MAX);
        return 0;
    case MILTER_COMMAND_CONNECT:
        milter_on_connect(c, command);
        return 0;
    case MILTER_COMMAND_HELO:
        milter_on_helo(c, command);
        return 0;
    case MILTER_COMMAND_MAIL:
        milter_on_mail(c, command);
        return 0;
    case MILTER_COMMAND_RCPT:
        milter_on_rcpt(c, command);
        return 0;
    case MILTER_COMMAND_DATA:
        milter_on_data(c);
        return 0;
    case MILTER_COMMAND_HEADER:
        milter_on_header(c, command);
        return 0;
    case MILTER_COMMAND_EOH:
        milter_end_headers(c);
        milter_continue(c, MILTER_COMMAND_EOH);
        return 0;
    case MILTER_COMMAND_BODY:
        milter_on_body(c, command);
        milter_continue(c, MILTER_COMMAND_BODY);
        return 0;
    case MILTER_COMMAND_BODYEOB:
        milter_on_eom(c, command);
        return 0;
    case MILTER_COMMAND_ABORT:
        milter_transaction_end(c, "abort");
        if (c->draining)
            milter_connection_close(c, "shutdown");
        return 0;
    case MILTER_COMMAND_UNKNOWN:
        milter_continue(c, MILTER_COMMAND_UNKNOWN);
        return 0;
    case MILTER_COMMAND_QUIT:
        milter_connection_close(c, "quit");
        return 0;
    case MILTER_COMMAND_QUIT_NC:
        /* The next SMTP connection follows on this socket: a new session. */
        c->quitting = true;
        milter_transaction_end(c, "quit");
        session_close(c->session, "quit");
        c->quitting = false;
        milter_macros_clear(&c->macros);
        if (c->draining) {
            milter_connection_close(c, "shutdown");
            return 0;
        }
        milter_session_begin(c);
        return 0;
    default:
        return -1;
    }
}

/* milter_connection_input - handle every complete frame, in order, until a chain waits */
static void milter_connection_input(struct milter_connection *c)
{
    c->in_input = true;
    while (!c->dead && !c->busy && c->session != NULL) {
        struct evbuffer *input = bufferevent_get_input(c->bev);
        size_t available = evbuffer_get_length(input);
        if (available < MILTER_LENGTH_BYTES)
            break;
        size_t want = available < MILTER_MAX_FRAME + MILTER_LENGTH_BYTES
                          ? available : MILTER_MAX_FRAME + MILTER_LENGTH_BYTES;
        const unsigned char *bytes = evbuffer_pullup(input, (ev_ssize_t)want);
        struct milter_frame frame;
        size_t consumed = 0;
        int got = milter_frame_next(bytes, want, MILTER_MAX_FRAME, &frame, &consumed);
        if (got == 0)
            break;
        struct milter_command command;
        const char *error = frame.error;
        if (got > 0 && frame.command == MILTER_SMFIC_MACRO && frame.length > 0 &&
            milter_command_type_of(frame.data[0]) >= 0 &&
            milter_command_decode(&frame, &command, &error) != 0) {
            /* Macros for a command libmilter keeps none for (Postfix sends them for
             * SMFIC_UNKNOWN and others): nothing of ours reads them. */
            log_message(PORTER_LOG_DEBUG, c->session->id_string, "event=milter_macros_ignored "
                        "stage=%s", milter_command_name(frame.data[0]));
            evbuffer_drain(input, consumed);
            continue;
        }
        if (got < 0 || milter_command_decode(&frame, &command, &error) != 0) {
            log_message(PORTER_LOG_WARNING, c->session->id_string, "event=milter_error "
                        "command=%s error=\"%s\"", got < 0 ? "-" : milter_command_name(frame.command),
                        error ? error : "malformed frame");
            milter_connection_close(c, "milter_protocol_error");
            break;
        }
        session_hold(c->session);
        struct porter_session *held = c->session;
        int rc = milter_dispatch(c, &command);
        session_unhold(held);
        if (!c->dead)
            evbuffer_drain(input, consumed);
        if (rc != 0)
            milter_connection_close(c, "milter_protocol_error");
    }
    c->in_input = false;
    if (c->dead)
        free(c);
}

/* ---------------------------------------------------------------- connection */

static void milter_connection_close(struct milter_connection *c, const char *reason)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->session != NULL)
        session_close(c->session, reason);
    milter_message_reset(c);
    milter_macros_clear(&c->macros);
    event_free(c->idle_timer);
    event_free(c->progress_timer);
    bufferevent_free(c->bev);
    c->bev = NULL;
    if (!c->in_input)
        free(c);
}

static void milter_read_ready(struct bufferevent *bev, void *arg)
{
    struct milter_connection *c = arg;
    struct timeval tv = clock_timeval(c->config->milter_listener_timeout);
    evtimer_add(c->idle_timer, &tv);
    if (!c->in_input)
        milter_connection_input(c);
}

static void milter_event(struct bufferevent *bev, short what, void *arg)
{
    struct milter_connection *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        milter_connection_close(c, what & BEV_EVENT_EOF ? "mta_disconnected" : "connection_error");
}

/* The session's side of the transport. */
static void milter_transport_drain(struct porter_session *s)
{
    struct milter_connection *c = s->transport_data;
    if (c == NULL)
        return;
    c->draining = true;
    if (!c->busy && s->transaction == NULL && !c->in_input)
        milter_connection_close(c, "shutdown");
}

static void milter_transport_closed(struct porter_session *s)
{
    struct milter_connection *c = s->transport_data;
    s->transport_data = NULL;
    if (c == NULL)
        return;
    c->session = NULL;
    c->busy = false;
    if (!c->quitting && !c->dead)
        milter_connection_close(c, "session_closed");
}

static const struct session_transport milter_transport = {
    .drain = milter_transport_drain,
    .closed = milter_transport_closed,
};

void milter_listener_accept(struct worker *worker, const struct porter_config *config,
                            struct plugin_registry *plugins, int fd)
{
    struct milter_connection *c = xcalloc(1, sizeof *c);
    c->worker = worker;
    c->config = config;
    c->plugins = plugins;
    c->original_spool_fd = -1;
    headers_init(&c->original_headers);
    struct event_base *base = worker_event_base(worker);
    c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->idle_timer = evtimer_new(base, milter_idle_fired, c);
    c->progress_timer = evtimer_new(base, milter_progress_fired, c);
    if (c->bev == NULL || c->idle_timer == NULL || c->progress_timer == NULL)
        abort();
    milter_session_begin(c);
    bufferevent_setcb(c->bev, milter_read_ready, NULL, milter_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, MILTER_READ_HIGH_WATER);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct timeval tv = clock_timeval(config->milter_listener_timeout);
    evtimer_add(c->idle_timer, &tv);
}
