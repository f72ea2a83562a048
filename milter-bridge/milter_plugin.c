/*
 * milter_plugin.c - the native plugin "milter": one Sendmail milter as one line of
 * conf/plugins, so milters and native plugins interleave in one ordered chain.
 *
 *   milter name=clamav socket=unix:/run/clamav/clamav-milter.ctl default_action=tempfail
 *          hooks=connect,helo,mail,rcpt,data,data_post connect_timeout=10 command_timeout=30
 *          content_timeout=300
 *
 * Interface: the plugin descriptor at the end. Hooks: connect, helo/ehlo, mail, rcpt, data,
 * data_post (header block, end of headers, body in chunks of at most 65535 bytes, end of
 * message, then the milter's edits), unrecognized_command (SMFIC_UNKNOWN), reset_transaction
 * (SMFIC_ABORT), disconnect (SMFIC_QUIT, free).
 *
 * Arguments:
 *   socket=unix:/PATH | inet:PORT@HOST | inet:HOST:PORT | inet6:[ADDR]:PORT   (required)
 *   name=NAME                 for logs (default: the socket)
 *   default_action=tempfail|accept|reject|quarantine|shutdown   when the milter fails
 *   hooks=LIST                the stages at which the milter has a say (default: connect, helo,
 *                             mail, rcpt, data, data_post, unknown). helo, data, data_post and
 *                             unknown commands are sent only when listed. CONNECT, MAIL and RCPT
 *                             are also sent when a later listed stage needs them (libmilter
 *                             takes no message without them); a refusal there is held and
 *                             given at the next listed stage (a recipient refusal is ignored).
 *                             Macros of every stage are sent regardless, as Postfix sends them
 *                             for events a milter asked not to get (with the next command
 *                             that is sent, see milter_send).
 *   connect_timeout=, command_timeout=, content_timeout=   (defaults 30s, 30s, 300s)
 *   max_replaced_body=BYTES   largest SMFIR_REPLBODY body kept (default 64m)
 *   max_edits=N               most modifications one message may get (default 10000)
 *   reuse_connections=N       keep up to N negotiated connections in this worker for the next
 *                             SMTP session (default 0: none). A session's connection is kept
 *                             when the milter's last command was an end of message answered
 *                             continue (libmilter takes SMFIC_QUIT_NC nowhere else): Porter
 *                             sends SMFIC_QUIT_NC, and the next session sends SMFIC_CONNECT on
 *                             it without negotiating again.
 *   reuse_idle_timeout=SECONDS   a kept connection unused this long is closed (default 60s)
 *
 * Behaviour: one milter connection per SMTP session and plugin line (porter_data_get/set),
 * opened at the first hook on the worker's event loop and negotiated with everything Postfix
 * offers, or taken from this worker's kept connections (reuse_connections=; a kept connection
 * that the milter closed or wrote to, or that idled out, is dropped, never used). Macros of a
 * stage whose command is not sent go out with the next command that is (milter_send). Each hook brings the milter up to the current stage: stages it missed because an
 * earlier plugin decided (OK skips the rest of a chain) are sent first - CONNECT, HELO, MAIL,
 * and before DATA every accepted recipient it has not seen; a refusal of such a catch-up
 * command refuses the current command. Replies map to verdicts: continue -> DECLINED;
 * accept -> DECLINED and the milter is skipped for the message (for the connection at
 * connect and helo); reject -> 550 5.7.1; tempfail -> 451 4.7.1; replycode -> the milter's
 * reply ('%%' undoubled; 421 also closes); discard -> porter_discard (the core answers the
 * message 250, runs no queue plugin and logs discarded=milter:NAME; this milter's later
 * hooks of the transaction decline, and at data_post it answers OK so that no later plugin
 * checks a message that goes nowhere); shutdown and conn_fail -> 421 and close.
 * End-of-message edits are kept in order and applied only when the final verdict lets the
 * message through.
 *
 * Deadlines: each time the client starts its timer (connect, every command sent, every
 * SMFIR_PROGRESS, modification reply and write the milter took), the waiting hook's core
 * deadline is pushed to that timeout plus MILTER_DEADLINE_MARGIN (porter_wait_extend), so the
 * milter's own connect_timeout, command_timeout and content_timeout decide, and
 * default_action applies, however long a data_post conversation with a milter that keeps
 * answering takes; hook_timeout= and plugin_timeout do not cut it short.
 *
 * Chain order: put milter lines before rcpt_ok (a plugin that answers OK ends a chain; a
 * milter after rcpt_ok gets the accepted recipients only just before DATA). A discard works
 * wherever the line is, also after the queue plugin.
 *
 * SMFIP_RCPT_REJ is offered and honoured as far as the chain allows: the milter sees every
 * recipient that reaches its line, also those a later plugin then refuses; a recipient an
 * earlier plugin refused never reaches it (no notification names the refused command).
 *
 * Failure: a milter that cannot be reached, times out, closes, or sends anything invalid is
 * closed, logged with its name and the reason, and gets default_action for the rest of the
 * transaction (at the stages listed in hooks=). The next transaction of the same session
 * reconnects (Postfix instead gives up on the milter for the whole session).
 *
 * Memory: the plugin owns its per-session state and frees it in the disconnect hook; kept
 * connections belong to the instance and are closed by porter_at_loop_end when the worker
 * stops; edits,
 * headers and the replaced body are freed when the transaction ends. Fatal: out of memory.
 * The plugin never blocks the loop except for reading the message body from the local spool
 * file, in chunks of at most 64 KiB.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <porter/plugin.h>

#include "memory.h"
#include "milter_client.h"
#include "milter_codec.h"

#define MILTER_NOTE_DISCARD "milter_discard" /* transaction note: who discarded the message */
#define MILTER_MACROS_MAX 64                 /* macros sent per stage */
#define MILTER_REPLY_TEXT_MAX 8192           /* a milter's reply text, all lines */
#define MILTER_STEPS_MAX 12                  /* steps per hook (recipients aside) */
#define MILTER_DEADLINE_MARGIN 2.0           /* core deadline = the client's timer + this */
#define MILTER_DEFERRED_MAX (16 * 1024)      /* deferred macros above this are sent at once */

/* The stages a hooks= list may name. */
enum milter_stage {
    MILTER_STAGE_CONNECT = 0,
    MILTER_STAGE_HELO,
    MILTER_STAGE_MAIL,
    MILTER_STAGE_RCPT,
    MILTER_STAGE_DATA,
    MILTER_STAGE_DATA_POST,
    MILTER_STAGE_UNKNOWN,
    MILTER_STAGE_COUNT
};

static const char *const milter_stage_names[MILTER_STAGE_COUNT] = {
    "connect", "helo", "mail", "rcpt", "data", "data_post", "unknown",
};

/* milter_stage_name - for logs */
static const char *milter_stage_name(enum milter_stage stage)
{
    return (unsigned) stage < MILTER_STAGE_COUNT ? milter_stage_names[stage] : "invalid";
}

/* What a failed milter costs the message. */
enum milter_default {
    MILTER_DEFAULT_TEMPFAIL = 0,
    MILTER_DEFAULT_ACCEPT,
    MILTER_DEFAULT_REJECT,
    MILTER_DEFAULT_QUARANTINE,
    MILTER_DEFAULT_SHUTDOWN,
    MILTER_DEFAULT_COUNT
};

static const char *const milter_default_names[MILTER_DEFAULT_COUNT] = {
    "tempfail", "accept", "reject", "quarantine", "shutdown",
};

/* milter_default_name - for logs */
static const char *milter_default_name(enum milter_default action)
{
    return (unsigned) action < MILTER_DEFAULT_COUNT ? milter_default_names[action] : "invalid";
}

/* One step of the conversation a hook runs. */
enum milter_step_kind {
    MILTER_STEP_OPEN = 0, /* connect and negotiate */
    MILTER_STEP_CONNECT,
    MILTER_STEP_HELO,
    MILTER_STEP_MAIL,
    MILTER_STEP_RCPT,     /* the recipient of the rcpt hook */
    MILTER_STEP_CATCH_UP, /* transaction recipients the milter has not seen */
    MILTER_STEP_DATA,
    MILTER_STEP_HEADERS,
    MILTER_STEP_EOH,
    MILTER_STEP_BODY,
    MILTER_STEP_EOM,
    MILTER_STEP_UNKNOWN,
    MILTER_STEP_COUNT
};

static const char *const milter_step_names[MILTER_STEP_COUNT] = {
    "open", "connect", "helo", "mail", "rcpt", "rcpt_catch_up", "data", "header", "eoh",
    "body", "eom", "unknown",
};

/* milter_step_name - for logs */
static const char *milter_step_name(enum milter_step_kind step)
{
    return (unsigned) step < MILTER_STEP_COUNT ? milter_step_names[step] : "invalid";
}

struct milter_parked;

/* One conf/plugins line. */
struct milter_instance {
    char *name;
    struct socket_address address;
    double connect_timeout, command_timeout, content_timeout;
    enum milter_default default_action;
    bool listed[MILTER_STAGE_COUNT];
    size_t max_replaced_body;
    size_t max_edits;
    /* reuse_connections=: this process's idle negotiated connections, newest last */
    size_t reuse_max;
    double reuse_idle_timeout;
    struct milter_parked **parked;
    size_t parked_count;
    bool loop_end_registered;
};

/* A connection kept between SMTP sessions (milter_client_park). */
struct milter_parked {
    struct milter_instance *m;
    struct milter_client *client;
};

/* A verdict with its reply; text may hold several '\n'-separated lines. */
struct milter_verdict {
    int rc;
    int code;
    char enhanced[16];
    char text[MILTER_REPLY_TEXT_MAX];
};

/* One end-of-message modification, kept until the final verdict. */
struct milter_edit {
    enum milter_reply_type type;
    uint32_t index;
    char *first;  /* header name, or address */
    char *second; /* header value, or ESMTP arguments (may be NULL) */
};

/* One header as sent to the milter. */
struct milter_header {
    char *name;
    char *value;
};

/* The plugin's state for one SMTP session. */
struct milter_conn {
    struct milter_instance *m;
    porter_session *s;
    struct milter_client *client;
    porter_handle handle;
    bool pending;          /* our hook returned PENDING and was not answered yet */
    bool in_hook;          /* the steps run inside the hook call */
    bool finished;         /* the steps ended; verdict holds the answer */
    enum milter_stage stage;
    struct milter_verdict verdict;

    /* the connection */
    struct milter_buffer deferred; /* macros of stages whose command the milter does not get,
                                      sent with the next frame that goes (milter_send) */
    bool reusable;            /* the milter's last command was end of message, answered
                                 continue: it takes SMFIC_QUIT_NC now (reuse_connections=) */
    bool accepted_connection; /* ACCEPT at connect or helo */
    bool failed;              /* failed; default_action until the next MAIL */
    struct milter_verdict failure; /* the default_action verdict */
    bool connect_sent, helo_sent;
    bool held_connection;     /* the same for a refusal of the whole connection */
    struct milter_verdict verdict_held_connection;

    /* the transaction */
    bool mail_sent, data_sent;
    bool message_open;        /* transaction commands sent, end of message not answered */
    bool accepted_message;    /* ACCEPT for this message */
    bool held;                /* the milter refused the transaction where that could not be
                                 the verdict: later listed hooks of it get verdict_held */
    struct milter_verdict verdict_held;
    char **recipients_sent;
    size_t recipients_sent_count;

    /* the steps of the running hook */
    enum milter_step_kind steps[MILTER_STEPS_MAX];
    size_t step_count, step_index;
    bool step_started;        /* the current step sent its command and waits */
    size_t catch_up_index;    /* next transaction recipient to consider */
    char *catch_up_address;   /* the catch-up recipient whose reply is awaited */

    /* data_post */
    struct porter_message message;
    struct milter_header *headers;
    size_t header_count, header_index;
    off_t body_sent;
    bool body_skip;
    struct milter_edit *edits;
    size_t edit_count;
    struct milter_buffer replaced_body;
    bool body_replaced;
};

static void milter_run(struct milter_conn *c);

/* ---------------------------------------------------------------- small helpers */

/* milter_verdict_set - fill a verdict (text is a printf format) */
static void milter_verdict_set(struct milter_verdict *v, int rc, int code, const char *enhanced,
                               const char *format, ...) __attribute__((format(printf, 5, 6)));
static void milter_verdict_set(struct milter_verdict *v, int rc, int code, const char *enhanced,
                               const char *format, ...)
{
    v->rc = rc;
    v->code = code;
    snprintf(v->enhanced, sizeof v->enhanced, "%s", enhanced ? enhanced : "");
    va_list ap;
    va_start(ap, format);
    vsnprintf(v->text, sizeof v->text, format, ap);
    va_end(ap);
}

/* milter_strip_brackets - "<a@b>" -> "a@b" (a copy); "<>" -> "" */
static char *milter_strip_brackets(const char *address)
{
    size_t length = strlen(address);
    if (length >= 2 && address[0] == '<' && address[length - 1] == '>')
        return xstrndup(address + 1, length - 2);
    return xstrdup(address);
}

/* milter_domain - the part after the last '@', or NULL */
static const char *milter_domain(const char *address)
{
    const char *at = address ? strrchr(address, '@') : NULL;
    return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

/*
 * milter_command_sent - does the stage's command go to the milter? Yes when the milter
 * wants it and the stage is listed in hooks=, and also for an unlisted CONNECT, MAIL or RCPT
 * that a later listed stage needs: libmilter only takes a command in a state its earlier
 * commands led to, and ignores (never answers) one that skips a state it has a callback for.
 * The verdict of such a structural command only counts at listed stages (milter_on_reply).
 */
static bool milter_command_sent(const struct milter_conn *c, enum milter_stage stage,
                                  enum milter_command_type command)
{
    const struct milter_negotiated *n = milter_client_negotiated(c->client);
    if (!milter_command_wanted(command, n->version, n->protocol))
        return false;
    const bool *listed = c->m->listed;
    if (listed[stage])
        return true;
    bool content = listed[MILTER_STAGE_DATA] || listed[MILTER_STAGE_DATA_POST];
    switch (stage) {
    case MILTER_STAGE_CONNECT:
        for (int i = MILTER_STAGE_HELO; i < MILTER_STAGE_COUNT; i++)
            if (listed[i])
                return true;
        return false;
    case MILTER_STAGE_MAIL:
        return listed[MILTER_STAGE_RCPT] || content;
    case MILTER_STAGE_RCPT:
        return content;
    default:
        return false;
    }
}

/* milter_awaits - will the milter answer this command? */
static bool milter_awaits(const struct milter_conn *c, enum milter_command_type command)
{
    return milter_command_awaits_reply(command, milter_client_negotiated(c->client)->protocol);
}

/* ---------------------------------------------------------------- macros */

/* The default macro lists per stage: Postfix's, plus the client and daemon facts. */
static const char *const milter_default_macros[MILTER_MACRO_STAGE_COUNT] = {
    [MILTER_SMFIM_CONNECT] = "j {daemon_name} {daemon_addr} v _ {client_addr} {client_port} "
                             "{client_name} {client_ptr} {daemon_port}",
    [MILTER_SMFIM_HELO] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    [MILTER_SMFIM_ENVFROM] = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
                             "{mail_mailer}",
    [MILTER_SMFIM_ENVRCPT] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    [MILTER_SMFIM_DATA] = "i",
    [MILTER_SMFIM_EOM] = "i",
    [MILTER_SMFIM_EOH] = "i",
};

/* The value of one macro; out is scratch space. NULL when it has no value now. */
static const char *milter_macro_value(struct milter_conn *c, const char *name, const char *rcpt,
                                      char *out, size_t size)
{
    porter_session *s = c->s;
    static const struct {
        const char *macro;
        const char *key;
    } tls[] = {
        {"tls_version", "version"}, {"cipher", "cipher"}, {"cipher_bits", "bits"},
        {"cert_subject", "subject"}, {"cert_issuer", "issuer"},
    };
    for (size_t i = 0; i < sizeof tls / sizeof tls[0]; i++)
        if (strcmp(name, tls[i].macro) == 0)
            return porter_tls_info(s, tls[i].key);
    if (strcmp(name, "j") == 0)
        return porter_hostname(s);
    if (strcmp(name, "daemon_name") == 0)
        return "porter";
    if (strcmp(name, "v") == 0)
        return "Porter";
    if (strcmp(name, "daemon_addr") == 0)
        return porter_local_ip(s);
    if (strcmp(name, "daemon_port") == 0) {
        snprintf(out, size, "%d", porter_local_port(s));
        return out;
    }
    if (strcmp(name, "_") == 0) {
        snprintf(out, size, "%s [%s]", porter_client_name(s), porter_client_ip(s));
        return out;
    }
    if (strcmp(name, "client_addr") == 0)
        return porter_client_ip(s);
    if (strcmp(name, "client_port") == 0) {
        snprintf(out, size, "%d", porter_client_port(s));
        return out;
    }
    if (strcmp(name, "client_name") == 0)
        return porter_client_name(s);
    if (strcmp(name, "client_ptr") == 0)
        return porter_client_ptr(s);
    if (strcmp(name, "i") == 0)
        return porter_queue_id(s);
    const char *user = porter_auth_user(s);
    if (strcmp(name, "auth_authen") == 0)
        return user;
    if (strcmp(name, "auth_author") == 0) {
        const char *author = user != NULL ? porter_mail_param(s, "AUTH") : NULL;
        return author != NULL && strcmp(author, "<>") != 0 && author[0] != '\0' ? author : NULL;
    }
    if (strcmp(name, "mail_addr") == 0)
        return porter_mail_from(s);
    if (strcmp(name, "mail_host") == 0)
        return milter_domain(porter_mail_from(s));
    if (strcmp(name, "mail_mailer") == 0)
        return porter_mail_from(s) != NULL ? "smtp" : NULL;
    if (strcmp(name, "rcpt_addr") == 0)
        return rcpt;
    if (strcmp(name, "rcpt_host") == 0)
        return milter_domain(rcpt);
    if (strcmp(name, "rcpt_mailer") == 0)
        return rcpt != NULL ? "smtp" : NULL;
    return NULL; /* auth_type and anything unknown: not defined here */
}

/*
 * milter_macros_encode - append the SMFIC_MACRO frame of a stage (the milter's own list when
 * it sent one, else the default list); nothing when no macro has a value. rcpt is the
 * recipient for {rcpt_*}.
 */
static void milter_macros_encode(struct milter_conn *c, struct milter_buffer *out,
                                 enum milter_macro_stage stage, const char *rcpt)
{
    const struct milter_negotiated *n = milter_client_negotiated(c->client);
    const char *list = n->macro_lists[stage] ? n->macro_lists[stage]
                                             : milter_default_macros[stage];
    char *copy = xstrdup(list);
    const char *names[MILTER_MACROS_MAX], *values[MILTER_MACROS_MAX];
    char scratch[MILTER_MACROS_MAX][320]; /* "_" holds a host name and an address */
    size_t count = 0;
    char *saveptr = NULL;
    for (char *word = strtok_r(copy, " \t,", &saveptr); word && count < MILTER_MACROS_MAX;
         word = strtok_r(NULL, " \t,", &saveptr)) {
        char bare[128];
        size_t length = strlen(word);
        if (length >= 2 && word[0] == '{' && word[length - 1] == '}')
            snprintf(bare, sizeof bare, "%.*s", (int) (length - 2), word + 1);
        else
            snprintf(bare, sizeof bare, "%s", word);
        const char *value = milter_macro_value(c, bare, rcpt, scratch[count], sizeof scratch[0]);
        if (value == NULL)
            continue;
        names[count] = word;
        values[count] = value;
        count++;
    }
    if (count > 0 && milter_encode_macro(out, milter_macro_stage_command(stage), names, values,
                                         count) != 0)
        porter_log(c->s, PORTER_LOG_WARNING, "event=milter_macros_dropped milter=%s stage=%s "
                   "error=\"macros too large for one frame\"", c->m->name,
                   milter_macro_stage_name(stage));
    free(copy);
}

/* ---------------------------------------------------------------- verdicts and failure */

/* milter_verdict_at_connect - a refusal at connect: 554 (reject) or 421 and close
 * (tempfail), as sendmail answers */
static void milter_verdict_at_connect(struct milter_verdict *v)
{
    if (v->rc == PORTER_DENY && v->code == 550)
        v->code = 554;
    if (v->rc == PORTER_DENYSOFT) {
        v->rc = PORTER_DENYSOFT_DISCONNECT;
        v->code = 421;
        snprintf(v->enhanced, sizeof v->enhanced, "4.7.0");
    }
}

/* milter_finish - the steps ended with verdict v: answer the hook now or resume it */
static void milter_finish(struct milter_conn *c, const struct milter_verdict *v)
{
    c->finished = true;
    if (v != &c->verdict)
        c->verdict = *v;
    if (c->stage == MILTER_STAGE_CONNECT)
        milter_verdict_at_connect(&c->verdict);
    if (c->in_hook)
        return;
    c->pending = false;
    int rc = c->verdict.rc;
    int result = rc == PORTER_DECLINED
                     ? porter_resume(c->handle, rc, 0, NULL, "%s", "")
                     : porter_resume(c->handle, rc, c->verdict.code,
                                     c->verdict.enhanced[0] ? c->verdict.enhanced : NULL, "%s",
                                     c->verdict.text);
    if (result != 0) {
        porter_log(c->s, PORTER_LOG_WARNING, "event=milter_late_answer milter=%s stage=%s "
                   "error=\"the hook stopped waiting (plugin deadline); closing the milter\"",
                   c->m->name, milter_stage_name(c->stage));
        milter_client_close(c->client, false);
        c->client = NULL;
        c->failed = true;
        c->failure.rc = PORTER_DECLINED;
    }
}

/* milter_default_verdict - the verdict default_action gives at a listed stage */
static void milter_default_verdict(struct milter_conn *c, struct milter_verdict *v)
{
    switch (c->m->default_action) {
    case MILTER_DEFAULT_TEMPFAIL:
        milter_verdict_set(v, PORTER_DENYSOFT, 451, "4.7.1", "Service unavailable - try again later");
        break;
    case MILTER_DEFAULT_REJECT:
        milter_verdict_set(v, PORTER_DENY, 550, "5.7.1", "Command rejected");
        break;
    case MILTER_DEFAULT_SHUTDOWN:
        milter_verdict_set(v, PORTER_DENYSOFT_DISCONNECT, 421, "4.7.0",
                           "Server closing connection");
        break;
    case MILTER_DEFAULT_ACCEPT:
    case MILTER_DEFAULT_QUARANTINE:
    case MILTER_DEFAULT_COUNT:
        milter_verdict_set(v, PORTER_DECLINED, 0, NULL, "%s", "");
        break;
    }
}

/* milter_apply_failed - the verdict of a hook while the milter is failed */
static void milter_apply_failed(struct milter_conn *c, struct milter_verdict *v)
{
    if (c->m->default_action == MILTER_DEFAULT_QUARANTINE && porter_queue_id(c->s) != NULL &&
        porter_quarantined(c->s) == NULL) {
        char reason[256];
        snprintf(reason, sizeof reason, "milter %s failed", c->m->name);
        porter_quarantine(c->s, reason);
    }
    if (c->m->listed[c->stage])
        *v = c->failure;
    else
        milter_verdict_set(v, PORTER_DECLINED, 0, NULL, "%s", "");
}

/*
 * milter_fail - the milter failed: log, close it, remember default_action for the rest of
 * the transaction, and answer the waiting hook (if one waits) with it
 */
static void milter_fail(struct milter_conn *c, const char *reason)
{
    enum milter_step_kind step = c->step_index < c->step_count ? c->steps[c->step_index]
                                                               : MILTER_STEP_OPEN;
    bool answering = (c->in_hook || c->pending) && !c->finished;
    porter_log(c->s, PORTER_LOG_WARNING, "event=milter_failed milter=%s hook=%s step=%s "
               "reason=\"%s\" action=%s%s", c->m->name, milter_stage_name(c->stage),
               answering ? milter_step_name(step) : "idle", reason,
               milter_default_name(c->m->default_action),
               c->m->listed[c->stage] || !answering ? "" : " applied=later");
    milter_client_close(c->client, false);
    c->client = NULL;
    milter_buffer_free(&c->deferred);
    c->failed = true;
    c->message_open = false;
    milter_default_verdict(c, &c->failure);
    if (!answering)
        return;
    struct milter_verdict v;
    milter_apply_failed(c, &v);
    milter_finish(c, &v);
}

/* milter_reply_verdict - a decision reply as a verdict; false for continue-like replies */
static bool milter_reply_verdict(struct milter_conn *c, const struct milter_reply *reply,
                                 struct milter_verdict *v)
{
    switch (reply->type) {
    case MILTER_REPLY_REJECT:
        milter_verdict_set(v, PORTER_DENY, 550, "5.7.1", c->stage == MILTER_STAGE_DATA_POST
                                                              ? "Message content rejected"
                                                              : "Command rejected");
        return true;
    case MILTER_REPLY_TEMPFAIL:
        milter_verdict_set(v, PORTER_DENYSOFT, 451, "4.7.1",
                           "Service unavailable - try again later");
        return true;
    case MILTER_REPLY_SHUTDOWN:
    case MILTER_REPLY_CONN_FAIL:
        milter_verdict_set(v, PORTER_DENYSOFT_DISCONNECT, 421, "4.7.0",
                           "Server closing connection");
        return true;
    case MILTER_REPLY_REPLYCODE: {
        const struct milter_replycode *r = &reply->replycode;
        size_t used = 0;
        v->text[0] = '\0';
        for (size_t i = 0; i < r->line_count && used < sizeof v->text; i++) {
            char line[MILTER_REPLY_LINE_MAX + 1];
            if (milter_percent_unescape(r->lines[i].text, r->lines[i].text_length, line,
                                        sizeof line) != 0)
                line[0] = '\0';
            int n = snprintf(v->text + used, sizeof v->text - used, "%s%s", i ? "\n" : "", line);
            if (n < 0)
                break;
            used += (size_t) n;
        }
        v->code = r->code;
        v->enhanced[0] = '\0';
        if (r->lines[0].enhanced != NULL && r->lines[0].enhanced_length < sizeof v->enhanced)
            snprintf(v->enhanced, sizeof v->enhanced, "%.*s", (int) r->lines[0].enhanced_length,
                     r->lines[0].enhanced);
        if (r->code == 421)
            v->rc = PORTER_DENYSOFT_DISCONNECT;
        else
            v->rc = r->code >= 500 ? PORTER_DENY : PORTER_DENYSOFT;
        return true;
    }
    default:
        return false;
    }
}

/* ---------------------------------------------------------------- sending */

/*
 * milter_send - frames to the milter, after the macros deferred so far: macros of a stage
 * whose command is not sent wait for the next frame that is, so that a milter that wants few
 * commands is woken once per command, not once per SMTP stage. It cannot tell: libmilter
 * files macros by stage and they still come before the next command, in order. False after
 * a failure (already handled).
 */
static bool milter_send(struct milter_conn *c, const struct milter_buffer *frames,
                        enum milter_command_type command, bool awaits)
{
    c->reusable = false;
    struct milter_buffer joined = {0};
    if (c->deferred.length > 0) {
        joined = c->deferred;
        c->deferred = (struct milter_buffer){0};
        milter_buffer_append(&joined, frames);
        frames = &joined;
    }
    int rc = milter_client_send(c->client, frames, command, awaits);
    milter_buffer_free(&joined);
    if (rc != 0) {
        milter_fail(c, milter_client_reason(c->client)[0] ? milter_client_reason(c->client)
                                                          : "the milter connection is not usable");
        return false;
    }
    return true;
}

/* milter_encode_envelope - MAIL or RCPT with its address and ESMTP arguments */
static int milter_encode_envelope(struct milter_buffer *out, bool mail, const char *address,
                                  const char *const params[], size_t param_count)
{
    const char *argv[16];
    char *bracketed = xasprintf("<%s>", address);
    size_t count = 0;
    argv[count++] = bracketed;
    for (size_t i = 0; i < param_count && count < 16; i++)
        argv[count++] = params[i];
    int rc = mail ? milter_encode_mail(out, argv, count) : milter_encode_rcpt(out, argv, count);
    free(bracketed);
    return rc;
}

/* The ESMTP parameters the core accepts, which are the ones a milter can see. */
static const char *const milter_mail_keywords[] = {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID",
                                                  "AUTH"};
static const char *const milter_rcpt_keywords[] = {"NOTIFY", "ORCPT"};

/* milter_params_collect - "KEY=VALUE" strings from a lookup; caller frees each */
static size_t milter_params_collect(porter_session *s, bool mail, bool from_hook, size_t rcpt_index,
                                    char *out[], size_t max)
{
    const char *const *keywords = mail ? milter_mail_keywords : milter_rcpt_keywords;
    size_t keyword_count = mail ? sizeof milter_mail_keywords / sizeof milter_mail_keywords[0]
                                : sizeof milter_rcpt_keywords / sizeof milter_rcpt_keywords[0];
    size_t count = 0;
    for (size_t i = 0; i < keyword_count && count < max; i++) {
        const char *value;
        if (from_hook)
            value = porter_hook_param(s, keywords[i]);
        else if (mail)
            value = porter_mail_param(s, keywords[i]);
        else
            value = porter_rcpt_param(s, rcpt_index, keywords[i]);
        if (value == NULL)
            continue;
        out[count++] = value[0] ? xasprintf("%s=%s", keywords[i], value) : xstrdup(keywords[i]);
    }
    return count;
}

/* milter_recipient_seen - did the milter get this recipient in this transaction? */
static bool milter_recipient_seen(const struct milter_conn *c, const char *address)
{
    for (size_t i = 0; i < c->recipients_sent_count; i++)
        if (strcasecmp(c->recipients_sent[i], address) == 0)
            return true;
    return false;
}

static void milter_recipient_remember(struct milter_conn *c, const char *address)
{
    c->recipients_sent = xrealloc(c->recipients_sent,
                                  (c->recipients_sent_count + 1) * sizeof *c->recipients_sent);
    c->recipients_sent[c->recipients_sent_count++] = xstrdup(address);
}

/*
 * milter_send_stage - the macros of a stage, then its command (command_frame) when the stage
 * is listed in hooks= and the milter wants the command. Returns 1 when a reply is awaited, 0
 * when the step is complete, -1 after a failure (already handled).
 */
static int milter_send_stage(struct milter_conn *c, enum milter_stage stage,
                             int macro_stage, enum milter_command_type command,
                             const struct milter_buffer *command_frame, const char *rcpt)
{
    struct milter_buffer frames = {0};
    if (macro_stage >= 0)
        milter_macros_encode(c, &frames, (enum milter_macro_stage) macro_stage, rcpt);
    bool send_command = command_frame != NULL && command_frame->length > 0 &&
                        milter_command_sent(c, stage, command);
    bool awaits = send_command && milter_awaits(c, command);
    if (!send_command) {
        milter_buffer_append(&c->deferred, &frames);
        milter_buffer_free(&frames);
        if (c->deferred.length <= MILTER_DEFERRED_MAX)
            return 0;
        /* a session whose commands the milter never gets: do not hoard its macros */
        struct milter_buffer none = {0};
        return milter_send(c, &none, MILTER_COMMAND_MACRO, false) ? 0 : -1;
    }
    milter_buffer_append(&frames, command_frame);
    bool ok = milter_send(c, &frames, command, awaits);
    milter_buffer_free(&frames);
    if (!ok)
        return -1;
    return awaits ? 1 : 0;
}

/* milter_encode_failed - an encoder refused a frame (too large): the milter cannot get it */
static int milter_encode_failed(struct milter_conn *c, const char *what)
{
    char reason[200];
    snprintf(reason, sizeof reason, "%s does not fit in one milter frame", what);
    milter_fail(c, reason);
    return -1;
}

/* ---------------------------------------------------------------- steps */

static void milter_on_ready(void *arg);
static void milter_on_reply(void *arg, const struct milter_reply *reply);
static void milter_on_drained(void *arg);
static void milter_on_failed(void *arg, const char *reason);
static void milter_on_deadline(void *arg, double seconds);

static const struct milter_client_callbacks milter_callbacks = {
    .ready = milter_on_ready,
    .reply = milter_on_reply,
    .drained = milter_on_drained,
    .failed = milter_on_failed,
    .deadline = milter_on_deadline,
};

/* milter_transaction_clear - forget everything about the current message */
static void milter_transaction_clear(struct milter_conn *c)
{
    c->mail_sent = false;
    c->data_sent = false;
    c->message_open = false;
    c->accepted_message = false;
    c->held = false;
    for (size_t i = 0; i < c->recipients_sent_count; i++)
        free(c->recipients_sent[i]);
    free(c->recipients_sent);
    c->recipients_sent = NULL;
    c->recipients_sent_count = 0;
    for (size_t i = 0; i < c->header_count; i++) {
        free(c->headers[i].name);
        free(c->headers[i].value);
    }
    free(c->headers);
    c->headers = NULL;
    c->header_count = c->header_index = 0;
    for (size_t i = 0; i < c->edit_count; i++) {
        free(c->edits[i].first);
        free(c->edits[i].second);
    }
    free(c->edits);
    c->edits = NULL;
    c->edit_count = 0;
    milter_buffer_free(&c->replaced_body);
    c->body_replaced = false;
    c->body_sent = 0;
    c->body_skip = false;
    free(c->catch_up_address);
    c->catch_up_address = NULL;
    memset(&c->message, 0, sizeof c->message);
}

/* milter_transaction_end - the transaction is over: SMFIC_ABORT if the milter is in it */
static void milter_transaction_end(struct milter_conn *c)
{
    if (c->client != NULL && c->message_open &&
        milter_client_state(c->client) == MILTER_CLIENT_READY && !milter_client_waiting(c->client)) {
        struct milter_buffer frame = {0};
        milter_encode_abort(&frame);
        milter_buffer_append(&c->deferred, &frame); /* after the deferred macros */
        c->reusable = false;
        if (milter_client_send(c->client, &c->deferred, MILTER_COMMAND_ABORT, false) != 0)
            porter_log(c->s, PORTER_LOG_WARNING, "event=milter_abort_failed milter=%s "
                       "reason=\"%s\"", c->m->name, milter_client_reason(c->client));
        milter_buffer_free(&c->deferred);
        milter_buffer_free(&frame);
    }
    milter_transaction_clear(c);
}

/* milter_headers_load - split the current header block into name/value pairs as a milter
 * sees them: line breaks as LF, leading blanks of the value removed unless HDR_LEADSPC */
static int milter_headers_load(struct milter_conn *c)
{
    if (porter_message(c->s, &c->message) != 0)
        return -1;
    bool leading_space = (milter_client_negotiated(c->client)->protocol &
                          MILTER_SMFIP_HDR_LEADSPC) != 0;
    const char *p = c->message.headers, *end = p + c->message.headers_length;
    while (p < end) {
        const char *line_end = p;
        /* the header runs to a CRLF that is not followed by SP or HTAB */
        for (;;) {
            const char *crlf = memchr(line_end, '\n', (size_t) (end - line_end));
            if (crlf == NULL) {
                line_end = end;
                break;
            }
            line_end = crlf + 1;
            if (line_end >= end || (*line_end != ' ' && *line_end != '\t'))
                break;
        }
        const char *colon = memchr(p, ':', (size_t) (line_end - p));
        if (colon != NULL) {
            const char *value = colon + 1;
            const char *value_end = line_end;
            if (value_end > value && value_end[-1] == '\n')
                value_end--;
            if (value_end > value && value_end[-1] == '\r')
                value_end--;
            if (!leading_space)
                while (value < value_end && (*value == ' ' || *value == '\t'))
                    value++;
            char *copy = xmalloc((size_t) (value_end - value) + 1);
            size_t used = 0;
            for (const char *q = value; q < value_end; q++)
                if (!(*q == '\r' && q + 1 < value_end && q[1] == '\n'))
                    copy[used++] = *q;
            copy[used] = '\0';
            c->headers = xrealloc(c->headers, (c->header_count + 1) * sizeof *c->headers);
            c->headers[c->header_count].name = xstrndup(p, (size_t) (colon - p));
            c->headers[c->header_count].value = copy;
            c->header_count++;
        }
        p = line_end;
    }
    return 0;
}

/* ---------------------------------------------------------------- connection reuse */

/* milter_parked_remove - take p out of its instance's list (p stays allocated) */
static void milter_parked_remove(struct milter_parked *p)
{
    struct milter_instance *m = p->m;
    for (size_t i = 0; i < m->parked_count; i++) {
        if (m->parked[i] != p)
            continue;
        memmove(m->parked + i, m->parked + i + 1, (m->parked_count - i - 1) * sizeof *m->parked);
        m->parked_count--;
        return;
    }
}

/* milter_parked_failed - a parked connection closed, spoke or idled out: drop it */
static void milter_parked_failed(void *arg, const char *reason)
{
    struct milter_parked *p = arg;
    (void) reason;
    milter_parked_remove(p);
    milter_client_close(p->client, false);
    free(p);
}

static const struct milter_client_callbacks milter_parked_callbacks = {
    .failed = milter_parked_failed,
};

/* milter_parked_clear - the worker stops (porter_at_loop_end): close every parked connection */
static void milter_parked_clear(void *arg)
{
    struct milter_instance *m = arg;
    while (m->parked_count > 0) {
        struct milter_parked *p = m->parked[--m->parked_count];
        milter_client_close(p->client, false);
        free(p);
    }
    free(m->parked);
    m->parked = NULL;
    m->loop_end_registered = false;
}

/* milter_park - keep the session's connection for the next session when the milter can take
 * SMFIC_QUIT_NC now and there is room; true when kept (c->client is no longer ours) */
static bool milter_park(struct milter_conn *c)
{
    struct milter_instance *m = c->m;
    if (c->client == NULL || !c->reusable || m->parked_count >= m->reuse_max ||
        milter_client_waiting(c->client))
        return false;
    if (!m->loop_end_registered) {
        if (porter_at_loop_end(c->s, milter_parked_clear, m) != 0)
            return false;
        m->loop_end_registered = true;
    }
    struct milter_parked *p = xcalloc(1, sizeof *p);
    p->m = m;
    p->client = c->client;
    c->client = NULL;
    if (milter_client_park(p->client, m->reuse_idle_timeout, &milter_parked_callbacks, p) != 0) {
        free(p); /* the client was closed */
        return true;
    }
    if (m->parked == NULL)
        m->parked = xcalloc(m->reuse_max, sizeof *m->parked);
    m->parked[m->parked_count++] = p;
    return true;
}

/* milter_unpark - the newest usable parked connection for this session, or NULL */
static struct milter_client *milter_unpark(struct milter_conn *c)
{
    struct milter_instance *m = c->m;
    while (m->parked_count > 0) {
        struct milter_parked *p = m->parked[--m->parked_count];
        struct milter_client *client = p->client;
        free(p);
        if (milter_client_unpark(client, &milter_callbacks, c) == 0)
            return client;
    }
    return NULL;
}

/* milter_step_open - a fresh connection, or a parked one: everything the old one knew about
 * the session is gone */
static int milter_step_open(struct milter_conn *c)
{
    if (c->client != NULL)
        return 0;
    struct milter_client_settings settings = {
        .name = c->m->name,
        .address = &c->m->address,
        .connect_timeout = c->m->connect_timeout,
        .command_timeout = c->m->command_timeout,
        .content_timeout = c->m->content_timeout,
    };
    c->connect_sent = c->helo_sent = false;
    c->mail_sent = c->data_sent = c->message_open = false;
    for (size_t i = 0; i < c->recipients_sent_count; i++)
        free(c->recipients_sent[i]);
    c->recipients_sent_count = 0;
    c->reusable = false;
    milter_buffer_free(&c->deferred);
    c->client = milter_unpark(c);
    if (c->client != NULL) {
        porter_log(c->s, PORTER_LOG_DEBUG, "event=milter_reused milter=%s", c->m->name);
        return 0;
    }
    c->client = milter_client_new(porter_event_base(c->s), &settings, &milter_callbacks, c);
    if (milter_client_open(c->client) != 0) {
        char reason[SOCKET_ADDRESS_TEXT_MAX + 100];
        snprintf(reason, sizeof reason, "%s", milter_client_reason(c->client));
        milter_fail(c, reason);
        return -1;
    }
    return 1;
}

/* milter_step_connect - SMFIC_CONNECT with the client's name, family, port and address */
static int milter_step_connect(struct milter_conn *c)
{
    if (c->connect_sent)
        return 0;
    c->connect_sent = true;
    porter_session *s = c->s;
    const char *ip = porter_client_ip(s);
    const char *name = porter_client_name(s);
    char bracketed[80];
    if (name == NULL || name[0] == '\0' || strcmp(name, "unknown") == 0) {
        snprintf(bracketed, sizeof bracketed, "[%s]", ip ? ip : "");
        name = bracketed;
    }
    int family = ip == NULL || ip[0] == '\0' ? MILTER_SMFIA_UNKNOWN
                 : strchr(ip, ':') != NULL   ? MILTER_SMFIA_INET6
                                             : MILTER_SMFIA_INET;
    int port = porter_client_port(s);
    struct milter_buffer frame = {0};
    if (milter_encode_connect(&frame, name, family, (uint16_t) (port > 0 && port < 65536 ? port : 0),
                              family == MILTER_SMFIA_UNKNOWN ? NULL : ip) != 0)
        return milter_encode_failed(c, "the client's name");
    int rc = milter_send_stage(c, MILTER_STAGE_CONNECT, MILTER_SMFIM_CONNECT,
                               MILTER_COMMAND_CONNECT, &frame, NULL);
    milter_buffer_free(&frame);
    return rc;
}

/* milter_step_helo - SMFIC_HELO: the new name at the helo hook, else the session's name */
static int milter_step_helo(struct milter_conn *c)
{
    bool current = c->stage == MILTER_STAGE_HELO;
    if (c->step_started)
        return 0;
    const char *name = current ? porter_hook_argument(c->s) : porter_helo(c->s);
    if (!current && (c->helo_sent || name == NULL || name[0] == '\0'))
        return 0;
    c->step_started = true;
    c->helo_sent = true;
    struct milter_buffer frame = {0};
    if (milter_encode_helo(&frame, name ? name : "") != 0)
        return milter_encode_failed(c, "the HELO name");
    int rc = milter_send_stage(c, MILTER_STAGE_HELO, MILTER_SMFIM_HELO, MILTER_COMMAND_HELO,
                               &frame, NULL);
    milter_buffer_free(&frame);
    return rc;
}

/* milter_step_envelope - MAIL (from the hook or the transaction) or the hook's RCPT */
static int milter_step_envelope(struct milter_conn *c, bool mail)
{
    if (c->step_started || (mail && c->mail_sent))
        return 0;
    c->step_started = true;
    porter_session *s = c->s;
    bool from_hook = mail ? c->stage == MILTER_STAGE_MAIL : true;
    const char *address = from_hook ? porter_hook_argument(s) : porter_mail_from(s);
    if (address == NULL)
        return 0; /* no transaction (cannot happen at these hooks) */
    char *params[8];
    size_t count = milter_params_collect(s, mail, from_hook, 0, params, 8);
    struct milter_buffer frame = {0};
    int encoded = milter_encode_envelope(&frame, mail, address, (const char *const *) params,
                                         count);
    for (size_t i = 0; i < count; i++)
        free(params[i]);
    if (encoded != 0)
        return milter_encode_failed(c, mail ? "the MAIL command" : "the RCPT command");
    if (mail)
        c->mail_sent = true;
    else
        milter_recipient_remember(c, address);
    c->message_open = true;
    int rc = mail ? milter_send_stage(c, MILTER_STAGE_MAIL, MILTER_SMFIM_ENVFROM,
                                      MILTER_COMMAND_MAIL, &frame, NULL)
                  : milter_send_stage(c, MILTER_STAGE_RCPT, MILTER_SMFIM_ENVRCPT,
                                      MILTER_COMMAND_RCPT, &frame, address);
    milter_buffer_free(&frame);
    return rc;
}

/* milter_step_catch_up - transaction recipients the milter did not see, one at a time */
static int milter_step_catch_up(struct milter_conn *c)
{
    porter_session *s = c->s;
    if (c->data_sent)
        return 0; /* past DATA: later recipients are edits, not RCPT commands */
    while (c->catch_up_index < porter_rcpt_count(s)) {
        size_t index = c->catch_up_index++;
        const char *address = porter_rcpt(s, index);
        if (address == NULL || milter_recipient_seen(c, address))
            continue;
        char *params[8];
        size_t count = milter_params_collect(s, false, false, index, params, 8);
        struct milter_buffer frame = {0};
        int encoded = milter_encode_envelope(&frame, false, address,
                                             (const char *const *) params, count);
        for (size_t i = 0; i < count; i++)
            free(params[i]);
        if (encoded != 0)
            return milter_encode_failed(c, "a recipient");
        milter_recipient_remember(c, address);
        c->message_open = true;
        free(c->catch_up_address);
        c->catch_up_address = xstrdup(address);
        int rc = milter_send_stage(c, MILTER_STAGE_RCPT, MILTER_SMFIM_ENVRCPT,
                                   MILTER_COMMAND_RCPT, &frame, address);
        milter_buffer_free(&frame);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* milter_step_data - SMFIC_DATA with its macros */
static int milter_step_data(struct milter_conn *c)
{
    if (c->step_started || c->data_sent)
        return 0;
    c->step_started = true;
    c->data_sent = true;
    c->message_open = true;
    struct milter_buffer frame = {0};
    milter_encode_data(&frame);
    int rc = milter_send_stage(c, MILTER_STAGE_DATA, MILTER_SMFIM_DATA, MILTER_COMMAND_DATA,
                               &frame, NULL);
    milter_buffer_free(&frame);
    return rc;
}

/* milter_step_headers - one SMFIC_HEADER per header; all at once under SMFIP_NR_HDR */
static int milter_step_headers(struct milter_conn *c)
{
    if (!c->step_started) {
        c->step_started = true;
        c->header_index = 0;
        if (milter_headers_load(c) != 0) {
            milter_fail(c, "the message is not available (porter_message failed)");
            return -1;
        }
    }
    if (!milter_command_sent(c, MILTER_STAGE_DATA_POST, MILTER_COMMAND_HEADER))
        return 0;
    bool awaits = milter_awaits(c, MILTER_COMMAND_HEADER);
    struct milter_buffer frames = {0};
    while (c->header_index < c->header_count) {
        const struct milter_header *h = &c->headers[c->header_index++];
        if (milter_encode_header(&frames, h->name, h->value) != 0) {
            milter_buffer_free(&frames);
            return milter_encode_failed(c, "a header");
        }
        if (awaits)
            break;
    }
    bool ok = frames.length == 0 || milter_send(c, &frames, MILTER_COMMAND_HEADER, awaits);
    bool sent = frames.length > 0;
    milter_buffer_free(&frames);
    if (!ok)
        return -1;
    return awaits && sent ? 1 : 0;
}

/* milter_step_eoh - the SMFIC_EOH macros and command */
static int milter_step_eoh(struct milter_conn *c)
{
    if (c->step_started)
        return 0;
    c->step_started = true;
    struct milter_buffer frame = {0};
    milter_encode_eoh(&frame);
    int rc = milter_send_stage(c, MILTER_STAGE_DATA_POST, MILTER_SMFIM_EOH, MILTER_COMMAND_EOH,
                               &frame, NULL);
    milter_buffer_free(&frame);
    return rc;
}

/*
 * milter_step_body - the body from the spool file in chunks of at most 65535 bytes: one
 * chunk per reply, or streamed under SMFIP_NR_BODY while the output is below
 * MILTER_CLIENT_OUTPUT_HIGH (then drained() continues it).
 */
static int milter_step_body(struct milter_conn *c)
{
    if (c->body_skip || !milter_command_sent(c, MILTER_STAGE_DATA_POST, MILTER_COMMAND_BODY))
        return 0;
    bool awaits = milter_awaits(c, MILTER_COMMAND_BODY);
    static unsigned char chunk[MILTER_BODY_CHUNK_MAX];
    while (c->body_sent < c->message.body_length) {
        if (!awaits && milter_client_output_pending(c->client) > MILTER_CLIENT_OUTPUT_HIGH)
            return 1; /* drained() resumes */
        off_t left = c->message.body_length - c->body_sent;
        size_t want = left < (off_t) sizeof chunk ? (size_t) left : sizeof chunk;
        ssize_t got;
        do {
            got = pread(c->message.body_fd, chunk, want, c->message.body_offset + c->body_sent);
        } while (got < 0 && errno == EINTR);
        if (got <= 0) {
            char reason[200];
            snprintf(reason, sizeof reason, "cannot read the message body: %s",
                     got < 0 ? strerror(errno) : "unexpected end of file");
            milter_fail(c, reason);
            return -1;
        }
        c->body_sent += got;
        struct milter_buffer frame = {0};
        milter_encode_body(&frame, chunk, (size_t) got);
        bool ok = milter_send(c, &frame, MILTER_COMMAND_BODY, awaits);
        milter_buffer_free(&frame);
        if (!ok)
            return -1;
        if (awaits)
            return 1;
    }
    return 0;
}

/* milter_step_eom - the SMFIC_BODYEOB macros and command; the final verdict follows */
static int milter_step_eom(struct milter_conn *c)
{
    if (c->step_started)
        return 0;
    c->step_started = true;
    struct milter_buffer frame = {0};
    milter_encode_eob(&frame);
    int rc = milter_send_stage(c, MILTER_STAGE_DATA_POST, MILTER_SMFIM_EOM,
                               MILTER_COMMAND_BODYEOB, &frame, NULL);
    milter_buffer_free(&frame);
    if (rc == 0)
        c->message_open = true; /* only macros went: the milter still has the message open */
    return rc;
}

/* milter_step_unknown - SMFIC_UNKNOWN with the whole command line */
static int milter_step_unknown(struct milter_conn *c)
{
    if (c->step_started)
        return 0;
    c->step_started = true;
    struct milter_buffer frame = {0};
    if (milter_encode_unknown(&frame, porter_hook_argument(c->s)) != 0)
        return milter_encode_failed(c, "the unknown command");
    int rc = milter_send_stage(c, MILTER_STAGE_UNKNOWN, -1, MILTER_COMMAND_UNKNOWN, &frame, NULL);
    milter_buffer_free(&frame);
    return rc;
}

/* milter_step_run - start or continue the current step: 1 waiting, 0 complete, -1 failed */
static int milter_step_run(struct milter_conn *c)
{
    switch (c->steps[c->step_index]) {
    case MILTER_STEP_OPEN:
        return milter_step_open(c);
    case MILTER_STEP_CONNECT:
        return milter_step_connect(c);
    case MILTER_STEP_HELO:
        return milter_step_helo(c);
    case MILTER_STEP_MAIL:
        return milter_step_envelope(c, true);
    case MILTER_STEP_RCPT:
        return milter_step_envelope(c, false);
    case MILTER_STEP_CATCH_UP:
        return milter_step_catch_up(c);
    case MILTER_STEP_DATA:
        return milter_step_data(c);
    case MILTER_STEP_HEADERS:
        return milter_step_headers(c);
    case MILTER_STEP_EOH:
        return milter_step_eoh(c);
    case MILTER_STEP_BODY:
        return milter_step_body(c);
    case MILTER_STEP_EOM:
        return milter_step_eom(c);
    case MILTER_STEP_UNKNOWN:
        return milter_step_unknown(c);
    case MILTER_STEP_COUNT:
        break;
    }
    return 0;
}

/* milter_run - run steps until one waits, the hook has its verdict, or all are done */
static void milter_run(struct milter_conn *c)
{
    while (!c->finished && c->step_index < c->step_count) {
        int rc = milter_step_run(c);
        if (rc != 0)
            return; /* waiting, or failed (and finished) */
        c->step_index++;
        c->step_started = false;
    }
    if (!c->finished) {
        struct milter_verdict v;
        milter_verdict_set(&v, PORTER_DECLINED, 0, NULL, "%s", "");
        milter_finish(c, &v);
    }
}

/* ---------------------------------------------------------------- end-of-message edits */

/* milter_edit_keep - store one modification until the final verdict; false if too many */
static bool milter_edit_keep(struct milter_conn *c, const struct milter_reply *reply)
{
    if (reply->type == MILTER_REPLY_REPLBODY) {
        if (c->replaced_body.length + reply->body.length > c->m->max_replaced_body) {
            milter_fail(c, "replacement body larger than max_replaced_body");
            return false;
        }
        struct milter_buffer chunk = {(unsigned char *) reply->body.data, reply->body.length,
                                      reply->body.length};
        milter_buffer_append(&c->replaced_body, &chunk);
        c->body_replaced = true;
        return true;
    }
    if (c->edit_count >= c->m->max_edits) {
        milter_fail(c, "more modifications than max_edits");
        return false;
    }
    struct milter_edit edit = {.type = reply->type};
    switch (reply->type) {
    case MILTER_REPLY_ADDHEADER:
    case MILTER_REPLY_INSHEADER:
    case MILTER_REPLY_CHGHEADER:
        edit.index = reply->header.index;
        edit.first = xstrdup(reply->header.name);
        edit.second = xstrdup(reply->header.value);
        break;
    case MILTER_REPLY_ADDRCPT:
    case MILTER_REPLY_ADDRCPT_PAR:
    case MILTER_REPLY_DELRCPT:
    case MILTER_REPLY_CHGFROM:
        edit.first = milter_strip_brackets(reply->envelope.address);
        edit.second = reply->envelope.args ? xstrdup(reply->envelope.args) : NULL;
        break;
    case MILTER_REPLY_QUARANTINE:
        edit.first = xstrdup(reply->quarantine_reason);
        break;
    default:
        return true;
    }
    c->edits = xrealloc(c->edits, (c->edit_count + 1) * sizeof *c->edits);
    c->edits[c->edit_count++] = edit;
    return true;
}

/* milter_body_normalize - line ends as CRLF (a bare LF gets its CR), ending in CRLF */
static char *milter_body_normalize(const struct milter_buffer *body, size_t *length)
{
    size_t extra = 2;
    for (size_t i = 0; i < body->length; i++)
        if (body->data[i] == '\n' && (i == 0 || body->data[i - 1] != '\r'))
            extra++;
    char *out = xmalloc(body->length + extra + 1);
    size_t used = 0;
    for (size_t i = 0; i < body->length; i++) {
        if (body->data[i] == '\n' && (i == 0 || body->data[i - 1] != '\r'))
            out[used++] = '\r';
        out[used++] = (char) body->data[i];
    }
    if (used > 0 && out[used - 1] != '\n') {
        out[used++] = '\r';
        out[used++] = '\n';
    }
    out[used] = '\0';
    *length = used;
    return out;
}

/* milter_edits_apply - apply the kept modifications in order; false on a local error */
static bool milter_edits_apply(struct milter_conn *c, struct milter_verdict *v)
{
    porter_session *s = c->s;
    const char *name = c->m->name;
    for (size_t i = 0; i < c->edit_count; i++) {
        const struct milter_edit *e = &c->edits[i];
        int rc = 0;
        switch (e->type) {
        case MILTER_REPLY_ADDHEADER:
            rc = porter_header_add(s, e->first, e->second);
            break;
        case MILTER_REPLY_INSHEADER:
            rc = porter_header_insert(s, e->index, e->first, e->second);
            break;
        case MILTER_REPLY_CHGHEADER: {
            size_t index = e->index > 0 ? e->index - 1 : 0;
            if (e->second[0] == '\0') {
                if (porter_header_change(s, e->first, index, NULL) != 0)
                    porter_log(s, PORTER_LOG_INFO, "event=milter_edit milter=%s edit=delete_header "
                               "header=%s index=%u result=absent", name, e->first,
                               (unsigned) e->index);
            } else if (porter_header_change(s, e->first, index, e->second) != 0) {
                rc = porter_header_add(s, e->first, e->second); /* libmilter: add it */
            }
            break;
        }
        case MILTER_REPLY_ADDRCPT:
        case MILTER_REPLY_ADDRCPT_PAR:
            rc = porter_rcpt_add(s, e->first, e->second);
            break;
        case MILTER_REPLY_DELRCPT:
            if (porter_rcpt_remove(s, e->first) != 0)
                porter_log(s, PORTER_LOG_WARNING, "event=milter_edit milter=%s edit=delete_rcpt "
                           "rcpt=<%s> result=absent", name, e->first);
            break;
        case MILTER_REPLY_CHGFROM:
            rc = porter_mail_from_set(s, e->first, e->second);
            break;
        case MILTER_REPLY_QUARANTINE:
            porter_quarantine(s, e->first);
            porter_log(s, PORTER_LOG_NOTICE, "event=milter_quarantine milter=%s reason=\"%s\"",
                       name, e->first);
            break;
        default:
            break;
        }
        if (rc != 0)
            porter_log(s, PORTER_LOG_WARNING, "event=milter_edit milter=%s edit=%s error=\"the "
                       "core refused it (bad name, address or ESMTP arguments)\"", name,
                       milter_reply_type_name(e->type));
    }
    if (c->body_replaced) {
        size_t length = 0;
        char *body = milter_body_normalize(&c->replaced_body, &length);
        int rc = porter_body_replace(s, body, length);
        free(body);
        if (rc != 0) {
            porter_log(s, PORTER_LOG_ERR, "event=milter_edit milter=%s edit=replace_body "
                       "error=\"cannot write the new body: %s\"", name, strerror(errno));
            milter_verdict_set(v, PORTER_DENYSOFT, 451, "4.3.0",
                               "Local error in processing, try again later");
            return false;
        }
    }
    if (c->edit_count > 0 || c->body_replaced)
        porter_log(s, PORTER_LOG_INFO, "event=milter_edits milter=%s edits=%zu body_replaced=%s",
                   name, c->edit_count, c->body_replaced ? "yes" : "no");
    return true;
}

/* ---------------------------------------------------------------- client callbacks */

static void milter_on_ready(void *arg)
{
    struct milter_conn *c = arg;
    if (!c->pending || c->step_index >= c->step_count ||
        c->steps[c->step_index] != MILTER_STEP_OPEN)
        return;
    const struct milter_negotiated *n = milter_client_negotiated(c->client);
    char actions[256], protocol[512];
    milter_actions_format(n->actions, actions, sizeof actions);
    milter_protocol_format(n->protocol, protocol, sizeof protocol);
    porter_log(c->s, PORTER_LOG_DEBUG, "event=milter_negotiated milter=%s version=%u "
               "actions=%s protocol=%s", c->m->name, (unsigned) n->version, actions, protocol);
    c->step_index++;
    c->step_started = false;
    milter_run(c);
}

static void milter_on_drained(void *arg)
{
    struct milter_conn *c = arg;
    if (c->pending && c->step_index < c->step_count &&
        c->steps[c->step_index] == MILTER_STEP_BODY && !milter_client_waiting(c->client))
        milter_run(c);
}

static void milter_on_failed(void *arg, const char *reason)
{
    struct milter_conn *c = arg;
    milter_fail(c, reason);
}

/* milter_on_deadline - the client restarted its timer: the core waits a little longer, so
 * that the milter's timeout, not the hook deadline, ends a wait */
static void milter_on_deadline(void *arg, double seconds)
{
    struct milter_conn *c = arg;
    if ((c->pending || c->in_hook) && !c->finished)
        porter_wait_extend(c->handle, seconds + MILTER_DEADLINE_MARGIN);
}

/* milter_connection_level - is the step before any transaction (connect, helo)? */
static bool milter_connection_level(enum milter_step_kind step)
{
    return step == MILTER_STEP_CONNECT || step == MILTER_STEP_HELO;
}

/* milter_step_stage - the hooks= stage a step's command belongs to */
static enum milter_stage milter_step_stage(enum milter_step_kind step)
{
    switch (step) {
    case MILTER_STEP_OPEN:
    case MILTER_STEP_CONNECT:
        return MILTER_STAGE_CONNECT;
    case MILTER_STEP_HELO:
        return MILTER_STAGE_HELO;
    case MILTER_STEP_MAIL:
        return MILTER_STAGE_MAIL;
    case MILTER_STEP_RCPT:
    case MILTER_STEP_CATCH_UP:
        return MILTER_STAGE_RCPT;
    case MILTER_STEP_DATA:
        return MILTER_STAGE_DATA;
    case MILTER_STEP_UNKNOWN:
        return MILTER_STAGE_UNKNOWN;
    default:
        return MILTER_STAGE_DATA_POST;
    }
}

/*
 * milter_decision - a refusal (reject, tempfail, replycode, shutdown) of the current step.
 * It is the hook's verdict when the hook is listed in hooks=. A refusal of a recipient at an
 * unlisted rcpt stage is ignored (the milter was not asked about recipients); any other
 * refusal ends the milter's part in the transaction (or, for connect and helo, in the
 * connection) and is held: every later listed hook of that scope gets it.
 */
static void milter_decision(struct milter_conn *c, enum milter_step_kind step,
                            const struct milter_verdict *v)
{
    enum milter_stage step_stage = milter_step_stage(step);
    bool listed = c->m->listed[c->stage];
    struct milter_verdict declined;
    milter_verdict_set(&declined, PORTER_DECLINED, 0, NULL, "%s", "");
    if (step_stage == MILTER_STAGE_RCPT && !c->m->listed[MILTER_STAGE_RCPT] &&
        v->rc != PORTER_DENYSOFT_DISCONNECT) {
        porter_log(c->s, PORTER_LOG_INFO, "event=milter_ignored milter=%s step=%s reply=\"%d %s\" "
                   "reason=\"rcpt is not in hooks=\"", c->m->name, milter_step_name(step), v->code,
                   v->text);
        milter_run(c);
        return;
    }
    bool whole_connection = step_stage == MILTER_STAGE_CONNECT || step_stage == MILTER_STAGE_HELO;
    bool later_hooks = step_stage != c->stage || !listed;
    if (later_hooks && whole_connection) {
        c->held_connection = true;
        c->verdict_held_connection = *v;
    } else if (later_hooks && c->stage != MILTER_STAGE_UNKNOWN && porter_queue_id(c->s) != NULL &&
               step_stage >= MILTER_STAGE_MAIL) {
        c->held = true;
        c->verdict_held = *v;
    }
    if (later_hooks)
        porter_log(c->s, PORTER_LOG_INFO, "event=milter_refusal milter=%s hook=%s step=%s "
                   "reply=\"%d %s\" applies=%s", c->m->name, milter_stage_name(c->stage),
                   milter_step_name(step), v->code, v->text,
                   listed ? "now_and_later" : "at_listed_hooks");
    if (whole_connection && later_hooks) {
        milter_client_close(c->client, false);
        c->client = NULL;
    }
    milter_finish(c, listed ? v : &declined);
}

static void milter_on_reply(void *arg, const struct milter_reply *reply)
{
    struct milter_conn *c = arg;
    if (!c->pending || c->step_index >= c->step_count) {
        milter_fail(c, "a reply arrived while no hook waits for one");
        return;
    }
    enum milter_step_kind step = c->steps[c->step_index];
    porter_session *s = c->s;
    struct milter_verdict v;
    if (milter_reply_is_modification(reply->type)) {
        milter_edit_keep(c, reply);
        return;
    }
    switch (reply->type) {
    case MILTER_REPLY_CONTINUE:
        if (step == MILTER_STEP_EOM) {
            c->message_open = false;
            c->reusable = true;
            if (!milter_edits_apply(c, &v)) {
                milter_finish(c, &v);
                return;
            }
        }
        milter_run(c); /* the step goes on (more headers, chunks, recipients) or ends */
        return;
    case MILTER_REPLY_SKIP:
        c->body_skip = true;
        milter_run(c);
        return;
    case MILTER_REPLY_ACCEPT:
        if (milter_connection_level(step)) {
            porter_log(s, PORTER_LOG_INFO, "event=milter_accept milter=%s scope=connection",
                       c->m->name);
            c->accepted_connection = true;
            milter_client_close(c->client, false);
            c->client = NULL;
        } else {
            porter_log(s, PORTER_LOG_INFO, "event=milter_accept milter=%s scope=message",
                       c->m->name);
            c->accepted_message = true;
            if (step == MILTER_STEP_EOM) {
                c->message_open = false;
                if (!milter_edits_apply(c, &v)) {
                    milter_finish(c, &v);
                    return;
                }
            }
        }
        milter_verdict_set(&v, PORTER_DECLINED, 0, NULL, "%s", "");
        milter_finish(c, &v);
        return;
    case MILTER_REPLY_DISCARD: {
        char reason[SOCKET_ADDRESS_TEXT_MAX + 16];
        snprintf(reason, sizeof reason, "milter:%s", c->m->name);
        bool dropped = porter_discard(s, reason) == 0;
        porter_log(s, dropped ? PORTER_LOG_NOTICE : PORTER_LOG_WARNING, "event=milter_discard "
                   "milter=%s queue_id=%s step=%s%s", c->m->name,
                   porter_queue_id(s) ? porter_queue_id(s) : "-", milter_step_name(step),
                   dropped ? "" : " error=\"no transaction to discard; ignored\"");
        if (dropped)
            porter_note_set(s, PORTER_TRANSACTION, MILTER_NOTE_DISCARD, c->m->name);
        if (step == MILTER_STEP_EOM)
            c->message_open = false;
        milter_verdict_set(&v, dropped && c->stage == MILTER_STAGE_DATA_POST ? PORTER_OK
                                                                             : PORTER_DECLINED,
                           0, NULL, "%s", "");
        milter_finish(c, &v);
        return;
    }
    default:
        break;
    }
    if (!milter_reply_verdict(c, reply, &v)) {
        milter_fail(c, "unexpected reply");
        return;
    }
    if (step == MILTER_STEP_EOM)
        c->message_open = false;
    milter_decision(c, step, &v);
}

/* ---------------------------------------------------------------- hooks */

/* milter_conn_get - this session's state for this milter line (made on first use) */
static struct milter_conn *milter_conn_get(porter_session *s, struct milter_instance *m)
{
    struct milter_conn *c = porter_data_get(s);
    if (c == NULL) {
        c = xcalloc(1, sizeof *c);
        c->m = m;
        porter_data_set(s, c);
    }
    c->s = s;
    return c;
}

/* milter_abandoned - the core stopped waiting for our last hook (its deadline passed):
 * the milter is in an unknown state, so it is closed and the stage counts as failed */
static void milter_abandoned(struct milter_conn *c)
{
    if (!c->pending)
        return;
    c->pending = false;
    porter_log(c->s, PORTER_LOG_WARNING, "event=milter_failed milter=%s hook=%s "
               "reason=\"the core stopped waiting for the hook before the milter answered\" "
               "action=%s", c->m->name, milter_stage_name(c->stage),
               milter_default_name(c->m->default_action));
    milter_client_close(c->client, false);
    c->client = NULL;
    milter_buffer_free(&c->deferred);
    c->failed = true;
    c->message_open = false;
    milter_default_verdict(c, &c->failure);
}

/* milter_answer_now - the hook's verdict, given synchronously */
static int milter_answer_now(porter_session *s, enum milter_stage stage,
                             const struct milter_verdict *given)
{
    struct milter_verdict copy = *given, *v = &copy;
    if (stage == MILTER_STAGE_CONNECT)
        milter_verdict_at_connect(v);
    if (v->rc == PORTER_DECLINED)
        return PORTER_DECLINED;
    return porter_reply(s, v->rc, v->code, v->enhanced[0] ? v->enhanced : NULL, "%s", v->text);
}

/* milter_plan - the steps that bring the milter up to stage */
static void milter_plan(struct milter_conn *c, enum milter_stage stage)
{
    size_t n = 0;
    if (c->client == NULL)
        c->steps[n++] = MILTER_STEP_OPEN;
    c->steps[n++] = MILTER_STEP_CONNECT;
    if (stage != MILTER_STAGE_CONNECT)
        c->steps[n++] = MILTER_STEP_HELO;
    switch (stage) {
    case MILTER_STAGE_MAIL:
        c->steps[n++] = MILTER_STEP_MAIL;
        break;
    case MILTER_STAGE_RCPT:
        c->steps[n++] = MILTER_STEP_MAIL;
        c->steps[n++] = MILTER_STEP_RCPT;
        break;
    case MILTER_STAGE_DATA:
        c->steps[n++] = MILTER_STEP_MAIL;
        c->steps[n++] = MILTER_STEP_CATCH_UP;
        c->steps[n++] = MILTER_STEP_DATA;
        break;
    case MILTER_STAGE_DATA_POST:
        /* each of these is a no-op when the data hook already got that far */
        c->steps[n++] = MILTER_STEP_MAIL;
        c->steps[n++] = MILTER_STEP_CATCH_UP;
        c->steps[n++] = MILTER_STEP_DATA;
        c->steps[n++] = MILTER_STEP_HEADERS;
        c->steps[n++] = MILTER_STEP_EOH;
        c->steps[n++] = MILTER_STEP_BODY;
        c->steps[n++] = MILTER_STEP_EOM;
        break;
    case MILTER_STAGE_UNKNOWN:
        c->steps[n++] = MILTER_STEP_UNKNOWN;
        break;
    default:
        break;
    }
    c->step_count = n;
    c->step_index = 0;
    c->step_started = false;
    c->catch_up_index = 0;
}

/* milter_hook - every command hook: skip, answer from state, or talk to the milter */
static int milter_hook(porter_session *s, void *state, enum milter_stage stage)
{
    struct milter_conn *c = milter_conn_get(s, state);
    milter_abandoned(c);
    c->stage = stage;
    c->finished = false;
    if (stage == MILTER_STAGE_MAIL) {
        /* a new transaction: end the old one at the milter (a refused MAIL leaves no
         * reset_transaction behind) and give a failed milter another chance */
        milter_transaction_end(c);
        c->failed = false;
    }
    if (c->accepted_connection)
        return PORTER_DECLINED;
    bool in_transaction = stage >= MILTER_STAGE_MAIL && stage <= MILTER_STAGE_DATA_POST;
    if (in_transaction && porter_note_get(s, PORTER_TRANSACTION, MILTER_NOTE_DISCARD) != NULL)
        return stage == MILTER_STAGE_DATA_POST ? PORTER_OK : PORTER_DECLINED; /* discarded */
    if (in_transaction && c->accepted_message)
        return PORTER_DECLINED;
    if (c->held_connection || (in_transaction && c->held)) {
        if (!c->m->listed[stage])
            return PORTER_DECLINED;
        return milter_answer_now(s, stage, c->held_connection ? &c->verdict_held_connection
                                                       : &c->verdict_held);
    }
    if (c->failed) {
        struct milter_verdict v;
        milter_apply_failed(c, &v);
        return milter_answer_now(s, stage, &v);
    }
    milter_plan(c, stage);
    c->handle = porter_suspend(s);
    c->in_hook = true;
    milter_run(c);
    c->in_hook = false;
    if (c->finished)
        return milter_answer_now(s, stage, &c->verdict);
    c->pending = true;
    return PORTER_PENDING;
}

static int milter_connect_hook(porter_session *s, void *state)
{
    return milter_hook(s, state, MILTER_STAGE_CONNECT);
}

static int milter_helo_hook(porter_session *s, void *state)
{
    return milter_hook(s, state, MILTER_STAGE_HELO);
}

static int milter_mail_hook(porter_session *s, void *state)
{
    return milter_hook(s, state, MILTER_STAGE_MAIL);
}

static int milter_rcpt_hook(porter_session *s, void *state)
{
    return milter_hook(s, state, MILTER_STAGE_RCPT);
}

static int milter_data_hook(porter_session *s, void *state)
{
    return milter_hook(s, state, MILTER_STAGE_DATA);
}

static int milter_data_post_hook(porter_session *s, void *state)
{
    return milter_hook(s, state, MILTER_STAGE_DATA_POST);
}

static int milter_unknown_hook(porter_session *s, void *state)
{
    return milter_hook(s, state, MILTER_STAGE_UNKNOWN);
}

/* milter_reset_hook - the transaction ended (RSET, HELO, end of message): SMFIC_ABORT */
static int milter_reset_hook(porter_session *s, void *state)
{
    struct milter_conn *c = porter_data_get(s);
    if (c == NULL)
        return PORTER_DECLINED;
    c->s = s;
    milter_abandoned(c);
    milter_transaction_end(c);
    return PORTER_DECLINED;
}

/* milter_disconnect_hook - SMFIC_ABORT if needed, SMFIC_QUIT, and free everything */
static int milter_disconnect_hook(porter_session *s, void *state)
{
    struct milter_conn *c = porter_data_get(s);
    if (c == NULL)
        return PORTER_DECLINED;
    c->s = s;
    bool waiting = c->client != NULL && milter_client_waiting(c->client);
    if (!milter_park(c))
        milter_client_close(c->client, c->message_open && !waiting);
    c->client = NULL;
    c->message_open = false;
    milter_buffer_free(&c->deferred);
    milter_transaction_clear(c);
    free(c->recipients_sent);
    free(c);
    porter_data_set(s, NULL);
    return PORTER_DECLINED;
}

/* ---------------------------------------------------------------- configuration */

/* milter_hooks_parse - hooks=connect,helo,... into listed[]; false on an unknown name */
static bool milter_hooks_parse(const char *text, bool listed[MILTER_STAGE_COUNT], char *bad,
                               size_t bad_size)
{
    char *copy = xstrdup(text);
    char *saveptr = NULL;
    bool ok = true;
    for (char *word = strtok_r(copy, ", ", &saveptr); word; word = strtok_r(NULL, ", ", &saveptr)) {
        int stage = -1;
        if (strcmp(word, "ehlo") == 0)
            stage = MILTER_STAGE_HELO;
        else if (strcmp(word, "unrecognized_command") == 0)
            stage = MILTER_STAGE_UNKNOWN;
        for (int i = 0; i < MILTER_STAGE_COUNT && stage < 0; i++)
            if (strcmp(word, milter_stage_names[i]) == 0)
                stage = i;
        if (stage < 0) {
            snprintf(bad, bad_size, "%s", word);
            ok = false;
            break;
        }
        listed[stage] = true;
    }
    free(copy);
    return ok;
}

static void *milter_init(porter_args *a)
{
    struct milter_instance *m = xcalloc(1, sizeof *m);
    const char *socket = porter_arg_string(a, "socket", NULL);
    char error[SOCKET_ADDRESS_TEXT_MAX + 100];
    if (socket == NULL)
        porter_arg_error(a, "socket= is required (unix:/PATH, inet:PORT@HOST, inet:HOST:PORT "
                         "or inet6:[ADDRESS]:PORT)");
    else if (socket_address_parse(socket, &m->address, error, sizeof error) != 0)
        porter_arg_error(a, "socket: %s", error);
    m->name = xstrdup(porter_arg_string(a, "name", socket ? socket : "milter"));
    m->default_action = (enum milter_default) porter_arg_choice(
        a, "default_action", "tempfail|accept|reject|quarantine|shutdown");
    m->connect_timeout = porter_arg_seconds(a, "connect_timeout", 30);
    m->command_timeout = porter_arg_seconds(a, "command_timeout", 30);
    m->content_timeout = porter_arg_seconds(a, "content_timeout", 300);
    m->max_replaced_body = (size_t) porter_arg_integer(a, "max_replaced_body", 64L * 1024 * 1024,
                                                       0, 1024L * 1024 * 1024);
    m->max_edits = (size_t) porter_arg_integer(a, "max_edits", 10000, 0, 1000000);
    m->reuse_max = (size_t) porter_arg_integer(a, "reuse_connections", 0, 0, 100000);
    m->reuse_idle_timeout = porter_arg_seconds(a, "reuse_idle_timeout", 60);
    const char *hooks = porter_arg_string(a, "hooks",
                                          "connect,helo,mail,rcpt,data,data_post,unknown");
    char bad[64];
    if (!milter_hooks_parse(hooks, m->listed, bad, sizeof bad))
        porter_arg_error(a, "hooks: unknown stage '%s' (known: connect, helo, mail, rcpt, "
                         "data, data_post, unknown)", bad);
    return m;
}

static void milter_fini(void *state)
{
    struct milter_instance *m = state;
    if (m == NULL)
        return;
    free(m->name);
    free(m);
}

PORTER_PLUGIN(.name = "milter",
              .description = "One Sendmail milter as a line of the chain. The milter "
                             "(clamav-milter, opendkim, spamass-milter, ...) is asked at the "
                             "stages listed in hooks=. Its replies become verdicts (reject: 550 "
                             "5.7.1, tempfail: 451 4.7.1, its own reply code, discard, accept) "
                             "and its end-of-message edits apply when the message goes through. A "
                             "milter that cannot be reached, times out or misbehaves gets "
                             "default_action. Its own timeouts bound each wait: no hook_timeout= "
                             "is needed. Put milter lines before rcpt_ok.",
              .arguments = PORTER_ARGUMENTS(
                  {"socket", NULL,
                   "Required. Where the milter listens: unix:/PATH, inet:PORT@HOST, "
                   "inet:HOST:PORT or inet6:[ADDRESS]:PORT."},
                  {"name", NULL,
                   "Its name in logs and in discarded=milter:NAME (default: the socket)."},
                  {"default_action", "tempfail",
                   "What the listed stages get when the milter fails: tempfail (451 4.7.1), "
                   "accept, reject (550 5.7.1), quarantine or shutdown (421, then close)."},
                  {"hooks", "connect,helo,mail,rcpt,data,data_post,unknown",
                   "The stages at which the milter has a say. CONNECT, MAIL and RCPT are still "
                   "sent when a later listed stage needs them; a refusal there waits for the next "
                   "listed stage."},
                  {"connect_timeout", "30", "Seconds to connect and negotiate."},
                  {"command_timeout", "30", "Seconds for the reply to each command."},
                  {"content_timeout", "300",
                   "Seconds for the reply at the end of the message (each SMFIR_PROGRESS restarts "
                   "it)."},
                  {"max_replaced_body", "64m",
                   "The largest body replacement (SMFIR_REPLBODY) taken; a larger one is a milter "
                   "failure."},
                  {"max_edits", "10000", "Most modifications one message may get."},
                  {"reuse_connections", "0",
                   "Negotiated connections kept per worker for the next SMTP session "
                   "(SMFIC_QUIT_NC; libmilter milters take it); 0: one connection per session, as "
                   "Postfix does."},
                  {"reuse_idle_timeout", "60",
                   "Seconds after which an unused kept connection is closed."}),
              .init = milter_init, .fini = milter_fini,
              .hooks[PORTER_HOOK_CONNECT] = milter_connect_hook,
              .hooks[PORTER_HOOK_HELO] = milter_helo_hook,
              .hooks[PORTER_HOOK_EHLO] = milter_helo_hook,
              .hooks[PORTER_HOOK_MAIL] = milter_mail_hook,
              .hooks[PORTER_HOOK_RCPT] = milter_rcpt_hook,
              .hooks[PORTER_HOOK_DATA] = milter_data_hook,
              .hooks[PORTER_HOOK_DATA_POST] = milter_data_post_hook,
              .hooks[PORTER_HOOK_UNRECOGNIZED_COMMAND] = milter_unknown_hook,
              .hooks[PORTER_HOOK_RESET_TRANSACTION] = milter_reset_hook,
              .hooks[PORTER_HOOK_DISCONNECT] = milter_disconnect_hook);
