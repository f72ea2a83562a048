/*
 * plugin_api.c - the table of calls every plugin gets (struct porter_api in porter/plugin.h).
 *
 * Each entry reads or changes the session, its transaction or the plugin's arguments on the
 * plugin's behalf. Pointers returned are owned by the core (see plugin.h for how long they
 * live). Calls that make no sense at the current stage return NULL, 0 or -1 and never crash.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "auth.h"
#include "cidr.h"
#include "config.h"
#include "date_parse.h"
#include "dns.h"
#include "list_file.h"
#include "log.h"
#include "metrics.h"
#include "memory.h"
#include "plugin_args.h"
#include "plugin_host.h"
#include "run_command.h"
#include "session.h"
#include "smtp_parse.h"
#include "store.h"
#include "tls.h"
#include "worker.h"

#define API_TEXT_MAX 8192
#define API_LOG_FACT_KEY_MAX 32 /* porter_log_fact: the longest key */
#define API_LOG_FACTS_MAX 16    /* ... and how many one connection keeps */

/* api_reply - attach a reply to the verdict being given */
static int api_reply(porter_session *s, int rc, int code, const char *enhanced,
                     const char *format, va_list ap)
{
    char text[API_TEXT_MAX];
    vsnprintf(text, sizeof text, format ? format : "", ap);
    reply_set(&s->run.reply, code, enhanced, format ? text : NULL);
    return rc;
}

static void api_log(porter_session *s, int level, const char *format, va_list ap)
{
    const char *plugin = s && s->run.plugin ? s->run.plugin->name : NULL;
    if (level <= PORTER_LOG_ERR && s != NULL && s->run.plugin != NULL)
        metrics_plugin_error((int)s->run.plugin->index); /* porter status: the plugin is failing */
    log_vmessage(level, s ? s->id_string : NULL, plugin, format, ap);
}

static const char *api_session_id(porter_session *s) { return s->id_string; }
static const char *api_hostname(porter_session *s) { return s->config->hostname; }
static const char *api_client_ip(porter_session *s) { return s->client_ip; }
static int api_client_port(porter_session *s) { return s->client_port; }
static const char *api_client_name(porter_session *s) { return s->client_name; }
static const char *api_local_ip(porter_session *s) { return s->local_ip; }
static int api_local_port(porter_session *s) { return s->local_port; }
static const char *api_helo(porter_session *s) { return s->helo; }
static bool api_said_ehlo(porter_session *s) { return (s->flags & SESSION_FLAG_EHLO) != 0; }
static bool api_relay_client(porter_session *s) { return (s->flags & SESSION_FLAG_RELAY) != 0; }
static const char *api_auth_user(porter_session *s) { return s->auth_user; }
static const char *api_listener_role(porter_session *s) { return s->role; }

static void api_relay_client_set(porter_session *s, bool allowed)
{
    if (allowed)
        s->flags |= SESSION_FLAG_RELAY;
    else
        s->flags &= ~(unsigned)SESSION_FLAG_RELAY;
}

static const char *api_tls_info(porter_session *s, const char *key)
{
    return s->tls != NULL ? tls_facts_get(s->tls, key) : NULL;
}

static const char *api_auth_mechanism(porter_session *s) { return auth_mechanism_current(s); }
static const char *api_auth_username(porter_session *s) { return auth_username_current(s); }
static const char *api_auth_password(porter_session *s) { return auth_password_current(s); }

static size_t api_input_pending(porter_session *s)
{
    if (s->closed || s->input == NULL)
        return 0;
    if (s->run.active && s->run.hook == PORTER_HOOK_CONNECT)
        s->flags |= SESSION_FLAG_EARLY_TALK_JUDGED; /* reject_unauth_pipelining leaves it to us */
    return evbuffer_get_length(bufferevent_get_input(s->input));
}

static const char *api_hook_argument(porter_session *s)
{
    if ((s->run.hook == PORTER_HOOK_MAIL || s->run.hook == PORTER_HOOK_RCPT) && s->path_valid)
        return s->path.address;
    return s->command_argument ? s->command_argument : "";
}

static const char *api_hook_param(porter_session *s, const char *keyword)
{
    if (!s->path_valid || (s->run.hook != PORTER_HOOK_MAIL && s->run.hook != PORTER_HOOK_RCPT))
        return NULL;
    return smtp_path_param(&s->path, keyword);
}

static const char *api_queue_id(porter_session *s)
{
    return s->transaction ? s->transaction->queue_id : NULL;
}

static const char *api_mail_from(porter_session *s)
{
    return s->transaction ? s->transaction->mail_from : NULL;
}

static const char *api_mail_param(porter_session *s, const char *keyword)
{
    return s->transaction ? param_list_get(&s->transaction->mail_params, keyword) : NULL;
}

/*
 * api_path_valid - would address (no angle brackets) and params (may be NULL) pass as the
 * argument of MAIL FROM (kind REVERSE) or RCPT TO (FORWARD)? A plugin's or a milter's envelope
 * edit must not carry CR, LF, spaces or other bytes that the queue plugin would write into the
 * downstream's MAIL or RCPT command.
 */
static bool api_path_valid(enum smtp_path_kind kind, const char *address, const char *params)
{
    char *argument = xasprintf("%s:<%s>%s%s", kind == SMTP_PATH_REVERSE ? "FROM" : "TO", address,
                               params != NULL && params[0] != '\0' ? " " : "",
                               params != NULL ? params : "");
    struct smtp_parse_limits limits = SMTP_PARSE_LIMITS_DEFAULT;
    limits.allow_utf8 = true;
    struct smtp_path path;
    struct smtp_parse_error error;
    bool valid = smtp_parse_path(argument, strlen(argument), kind, &limits, &path, &error) == 0;
    smtp_path_clear(&path);
    free(argument);
    return valid;
}

static int api_mail_from_set(porter_session *s, const char *address, const char *params)
{
    if (s->transaction == NULL || address == NULL ||
        !api_path_valid(SMTP_PATH_REVERSE, address, params))
        return -1;
    struct param_list parsed = {0};
    if (param_list_parse(&parsed, params) != 0)
        return -1;
    free(s->transaction->mail_from);
    s->transaction->mail_from = xstrdup(address);
    if (params != NULL) {
        param_list_clear(&s->transaction->mail_params);
        s->transaction->mail_params = parsed;
    }
    return 0;
}

static size_t api_rcpt_count(porter_session *s)
{
    return s->transaction ? s->transaction->recipient_count : 0;
}

static const char *api_rcpt(porter_session *s, size_t index)
{
    if (s->transaction == NULL || index >= s->transaction->recipient_count)
        return NULL;
    return s->transaction->recipients[index].address;
}

static const char *api_rcpt_param(porter_session *s, size_t index, const char *keyword)
{
    if (s->transaction == NULL || index >= s->transaction->recipient_count)
        return NULL;
    return param_list_get(&s->transaction->recipients[index].params, keyword);
}

static int api_rcpt_add(porter_session *s, const char *address, const char *params)
{
    if (s->transaction == NULL || address == NULL ||
        !api_path_valid(SMTP_PATH_FORWARD, address, params))
        return -1;
    struct param_list parsed = {0};
    if (param_list_parse(&parsed, params) != 0)
        return -1;
    transaction_add_recipient(s->transaction, address, &parsed);
    param_list_clear(&parsed);
    return 0;
}

static int api_rcpt_remove(porter_session *s, const char *address)
{
    if (s->transaction == NULL || address == NULL)
        return -1;
    return transaction_remove_recipient(s->transaction, address) > 0 ? 0 : -1;
}

static void api_quarantine(porter_session *s, const char *reason)
{
    if (s->transaction == NULL)
        return;
    free(s->transaction->quarantine_reason);
    s->transaction->quarantine_reason = xstrdup(reason && *reason ? reason : "quarantined");
}

static const char *api_quarantined(porter_session *s)
{
    return s->transaction ? s->transaction->quarantine_reason : NULL;
}

/* api_discard - porter_discard: mark the message to be answered 250 and never queued; the
 * reason is kept as one log token (blanks, quotes, controls and backslashes become '_') */
static int api_discard(porter_session *s, const char *reason)
{
    const char *plugin = s->run.plugin != NULL ? s->run.plugin->name : "?";
    if (s->transaction == NULL || (s->run.active && s->run.hook == PORTER_HOOK_QUEUE)) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error plugin=%s error=\"porter_"
                    "discard %s\"", plugin, s->transaction == NULL ? "without a transaction"
                                                                 : "in the queue hook (too late)");
        return -1;
    }
    const char *given = reason != NULL && reason[0] != '\0' ? reason : "discarded";
    char *copy = xstrndup(given, strnlen(given, 200)); /* xstrndup copies exactly that many */
    for (char *p = copy; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            *p = '_';
    }
    free(s->transaction->discard_reason);
    s->transaction->discard_reason = copy;
    return 0;
}

/* api_headers - the header list, once the message is in */
static struct header_list *api_headers(porter_session *s)
{
    return s->transaction && s->transaction->headers_parsed ? &s->transaction->headers : NULL;
}

static size_t api_header_count(porter_session *s, const char *name)
{
    struct header_list *h = api_headers(s);
    return h ? headers_count(h, name) : 0;
}

static const char *api_header_get(porter_session *s, const char *name, size_t index)
{
    struct header_list *h = api_headers(s);
    return h ? headers_get(h, name, index) : NULL;
}

static char *api_header_value(const char *value);

/* api_header_insert_at - insert (position beyond the end appends); -1 for a bad name */
static int api_header_insert_at(porter_session *s, size_t position, const char *name,
                                const char *value)
{
    struct header_list *h = api_headers(s);
    if (h == NULL || name == NULL || value == NULL || !headers_name_valid(name))
        return -1;
    char *spaced = api_header_value(value);
    int result = headers_insert(h, position, name, spaced);
    free(spaced);
    transaction_headers_changed(s->transaction);
    return result;
}

/* api_header_value - "Name: value": the space after the colon that plugins leave out */
static char *api_header_value(const char *value)
{
    if (value == NULL)
        return NULL;
    return value[0] == ' ' || value[0] == '\t' ? xstrdup(value) : xasprintf(" %s", value);
}

static int api_header_add(porter_session *s, const char *name, const char *value)
{
    return api_header_insert_at(s, (size_t)-1, name, value);
}

static int api_header_insert(porter_session *s, size_t position, const char *name,
                             const char *value)
{
    return api_header_insert_at(s, position, name, value);
}

static int api_header_change(porter_session *s, const char *name, size_t index, const char *value)
{
    struct header_list *h = api_headers(s);
    if (h == NULL || name == NULL)
        return -1;
    char *spaced = api_header_value(value);
    int result = headers_change(h, name, index, spaced);
    free(spaced);
    transaction_headers_changed(s->transaction);
    return result;
}

static int api_header_remove(porter_session *s, const char *name)
{
    struct header_list *h = api_headers(s);
    if (h == NULL || name == NULL)
        return -1;
    int removed = headers_remove(h, name);
    transaction_headers_changed(s->transaction);
    return removed;
}

static off_t api_data_size(porter_session *s)
{
    return s->transaction ? (off_t)s->transaction->data_size : 0;
}

static int api_message(porter_session *s, struct porter_message *out)
{
    struct transaction *t = s->transaction;
    if (t == NULL || !t->headers_parsed || t->spool_fd < 0)
        return -1;
    out->headers = transaction_render_headers(t, &out->headers_length);
    out->body_fd = t->spool_fd;
    out->body_offset = t->body_offset;
    out->body_length = t->body_length;
    return 0;
}

static int api_body_replace(porter_session *s, const char *body, size_t length)
{
    if (s->transaction == NULL || !s->transaction->headers_parsed)
        return -1;
    return transaction_replace_body(s->transaction, s->config->spool_dir, body, length);
}

static void *api_data_get(porter_session *s)
{
    return s->run.plugin != NULL ? s->plugin_data[s->run.plugin->index] : NULL;
}

static void api_data_set(porter_session *s, void *data)
{
    if (s->run.plugin != NULL)
        s->plugin_data[s->run.plugin->index] = data;
}

/* api_notes - the note list of a scope */
static struct note_list *api_notes(porter_session *s, int scope)
{
    if (scope == PORTER_TRANSACTION)
        return s->transaction ? &s->transaction->notes : NULL;
    return &s->notes;
}

static int api_note_set(porter_session *s, int scope, const char *key, const char *value)
{
    struct note_list *notes = api_notes(s, scope);
    if (notes == NULL || key == NULL || value == NULL)
        return -1;
    note_list_set(notes, key, value);
    return 0;
}

/* api_log_fact - porter_log_fact: a key=value for the connection's transaction lines */
static int api_log_fact(porter_session *s, const char *key, const char *value)
{
    size_t length = key ? strlen(key) : 0;
    if (s == NULL || value == NULL || length == 0 || length > API_LOG_FACT_KEY_MAX ||
        strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_") != length ||
        (note_list_get(&s->log_facts, key) == NULL && s->log_facts.count >= API_LOG_FACTS_MAX))
        return -1;
    note_list_set(&s->log_facts, key, value);
    return 0;
}

static const char *api_note_get(porter_session *s, int scope, const char *key)
{
    struct note_list *notes = api_notes(s, scope);
    return notes && key ? note_list_get(notes, key) : NULL;
}

/* api_suspend - the hook waits for an answer of its own: what the store holds back for
 * company (riding counts, which that answer may be) goes out now */
static porter_handle api_suspend(porter_session *s)
{
    store_flush(worker_store(s->worker));
    return hook_chain_handle(s);
}

static int api_resume(porter_handle handle, int rc, int code, const char *enhanced,
                      const char *format, va_list ap)
{
    char text[API_TEXT_MAX];
    vsnprintf(text, sizeof text, format ? format : "", ap);
    return hook_chain_resume(handle, rc, code, enhanced, format ? text : NULL);
}

static struct event_base *api_event_base(porter_session *s)
{
    return s->base;
}

static const char *api_client_ptr(porter_session *s) { return s->client_ptr; }

/* api_host_name_copy - a copy of name without a final dot when it is a host name as EHLO
 * takes one (smtp_domain_valid, ASCII, no address literal) of at most 253 bytes; "unknown" for
 * NULL; NULL when it is not a host name */
static char *api_host_name_copy(const char *name)
{
    if (name == NULL)
        return xstrdup("unknown");
    size_t length = strlen(name);
    if (length > 0 && name[length - 1] == '.')
        length--;
    if (length == 0 || length > 253 || name[0] == '[' || !smtp_domain_valid(name, false))
        return NULL;
    return xstrndup(name, length);
}

static int api_set_client_name(porter_session *s, const char *name, const char *ptr)
{
    char *verified = api_host_name_copy(name);
    char *pointer = api_host_name_copy(ptr);
    if (verified == NULL || pointer == NULL) {
        free(verified);
        free(pointer);
        return -1;
    }
    free(s->client_name);
    free(s->client_ptr);
    s->client_name = verified;
    s->client_ptr = pointer;
    return 0;
}

static int api_at_loop_end(porter_session *s, void (*fn)(void *arg), void *arg)
{
    if (s == NULL || s->worker == NULL || fn == NULL)
        return -1;
    worker_at_loop_end(s->worker, fn, arg);
    return 0;
}

/* api_message_write - headers, the empty line, then the body; thread-safe */
static int api_message_write(const struct porter_message *m, int fd)
{
    static const char separator[] = "\r\n";
    const char *parts[2] = {m->headers, separator};
    size_t lengths[2] = {m->headers_length, 2};
    for (int i = 0; i < 2; i++) {
        size_t done = 0;
        while (done < lengths[i]) {
            ssize_t n = write(fd, parts[i] + done, lengths[i] - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return -1;
            done += (size_t)n;
        }
    }
    char buffer[65536];
    off_t offset = m->body_offset, end = m->body_offset + m->body_length;
    while (offset < end) {
        size_t want = (size_t)(end - offset) < sizeof buffer ? (size_t)(end - offset) : sizeof buffer;
        ssize_t got = pread(m->body_fd, buffer, want, offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        size_t done = 0;
        while (done < (size_t)got) {
            ssize_t n = write(fd, buffer + done, (size_t)got - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return -1;
            done += (size_t)n;
        }
        offset += got;
    }
    return 0;
}

/* api_setting - a porter.conf setting as text, read from the configuration directory */
static const char *api_setting(porter_args *a, const char *name)
{
    if (a == NULL || name == NULL || a->directory == NULL)
        return NULL;
    size_t count = 0;
    const struct config_setting *table = config_settings(&count);
    const struct config_setting *row = NULL;
    for (size_t i = 0; i < count && row == NULL; i++)
        if (strcmp(table[i].name, name) == 0)
            row = &table[i];
    if (row == NULL)
        return NULL;
    char *path = config_path_resolve(a->directory, "porter.conf");
    char *text = NULL, *error = NULL;
    size_t length = 0;
    struct porter_config *c = NULL;
    struct config_error_list errors = {0};
    if (config_read_file(path, CONFIG_FILE_MAX, &text, &length, &error) == 0)
        c = config_parse(a->directory, path, text, length, &errors);
    free(error);
    free(text);
    free(path);
    config_errors_clear(&errors);
    if (c == NULL)
        return NULL;
    const char *field = (const char *)c + row->offset;
    char *value = NULL;
    switch (row->type) {
    case CONFIG_STRING: {
        const char *string = *(char *const *)(const void *)field;
        value = string ? xstrdup(string) : NULL;
        break;
    }
    case CONFIG_INTEGER:
        value = xasprintf("%ld", *(const long *)(const void *)field);
        break;
    case CONFIG_SIZE:
        value = xasprintf("%llu", *(const unsigned long long *)(const void *)field);
        break;
    case CONFIG_SECONDS:
        value = xasprintf("%.6g", *(const double *)(const void *)field);
        break;
    case CONFIG_BOOL:
        value = xstrdup(*(const bool *)(const void *)field ? "yes" : "no");
        break;
    case CONFIG_CHOICE: {
        int stored = *(const int *)(const void *)field;
        int index = stored;
        if (row->choice_values != NULL) {
            index = -1;
            for (int i = 0; index < 0 && row->choices != NULL; i++) {
                const char *word = row->choices;
                for (int j = 0; j < i && word != NULL; j++) {
                    word = strchr(word, '|');
                    word = word ? word + 1 : NULL;
                }
                if (word == NULL)
                    break;
                if (row->choice_values[i] == stored)
                    index = i;
            }
        }
        const char *word = row->choices;
        for (int j = 0; j < index && word != NULL; j++) {
            word = strchr(word, '|');
            word = word ? word + 1 : NULL;
        }
        if (word != NULL && index >= 0)
            value = xstrndup(word, strcspn(word, "|"));
        break;
    }
    case CONFIG_LISTEN:
        value = c->listen_count > 0 ? xstrdup(c->listen[0].address) : NULL;
        break;
    default:
        break;
    }
    config_free(c);
    if (value == NULL)
        return NULL;
    a->paths = xrealloc(a->paths, (a->path_count + 1) * sizeof *a->paths);
    a->paths[a->path_count++] = value;
    return value;
}

/* api_dns_query - porter_dns_query_sync: the worker's resolver, blocking (pool threads) */
static struct porter_dns_answer *api_dns_query(int type, const char *name)
{
    return dns_query_sync(worker_dns(worker_current), type, name);
}

/* ---------------------------------------------------------------- running programs */

#define API_COMMAND_ARGS_MAX 1024 /* arguments of one porter_command */

/* One porter_command: the copied argv and the output, shared by the loop and a pool thread. */
struct api_command {
    char **argv;
    double timeout;
    porter_command_fn done;
    void *arg;
    char output[PORTER_COMMAND_OUTPUT_MAX];
};

static void api_command_free(struct api_command *c)
{
    for (size_t i = 0; c->argv[i] != NULL; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c);
}

/* api_command_work - on a pool thread: run the program */
static int api_command_work(void *arg)
{
    struct api_command *c = arg;
    return run_command((const char *const *)c->argv, c->timeout, c->output, sizeof c->output);
}

/* api_command_done - back on the loop: the plugin's continuation gives the verdict */
static int api_command_done(porter_session *s, void *arg, int status)
{
    struct api_command *c = arg;
    int rc = c->done(s, c->arg, status, c->output);
    api_command_free(c);
    return rc;
}

static int api_command(porter_session *s, const char *const argv[], double timeout,
                       porter_command_fn done, void *arg)
{
    size_t count = 0;
    while (argv != NULL && argv[count] != NULL && count <= API_COMMAND_ARGS_MAX)
        count++;
    if (count == 0 || count > API_COMMAND_ARGS_MAX || done == NULL) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error plugin=%s error=\"porter_command "
                    "needs a program, at most %d arguments and a continuation\"",
                    s->run.plugin != NULL ? s->run.plugin->name : "?", API_COMMAND_ARGS_MAX);
        return PORTER_DENYSOFT;
    }
    struct api_command *c = xcalloc(1, sizeof *c);
    c->argv = xcalloc(count + 1, sizeof *c->argv);
    for (size_t i = 0; i < count; i++)
        c->argv[i] = xstrdup(argv[i]);
    c->timeout = timeout;
    c->done = done;
    c->arg = arg;
    int rc = hook_chain_run_blocking(s, api_command_work, api_command_done, c);
    if (rc != PORTER_PENDING)
        api_command_free(c);
    return rc;
}

/* ---------------------------------------------------------------- multi-line replies */

/* api_reply_lines - append prefixed lines of text to the reply set in this call */
static int api_reply_lines(porter_session *s, int rc, const char *prefix, const char *text)
{
    struct reply *r = &s->run.reply;
    if (text == NULL)
        return rc;
    if (prefix == NULL)
        prefix = "";
    char *buffer = xmalloc(API_TEXT_MAX);
    size_t used = 0, lines = 0, prefix_length = strlen(prefix);
    if (r->text != NULL) {
        used = strlen(r->text);
        if (used > 0 && r->text[used - 1] == '\n')
            used--; /* a final '\n' ends the last line: the next one follows it */
        if (used > API_TEXT_MAX - 1)
            used = API_TEXT_MAX - 1;
        memcpy(buffer, r->text, used);
        lines = 1;
        for (size_t i = 0; i < used; i++)
            lines += buffer[i] == '\n';
    }
    const char *line = text;
    while (*line != '\0' && lines < REPLY_LINES_MAX) {
        size_t length = strcspn(line, "\n");
        const char *next = line + length + (line[length] == '\n');
        if (length > 0 && line[length - 1] == '\r')
            length--;
        size_t separator = lines > 0 ? 1 : 0;
        if (used + separator + prefix_length + length > API_TEXT_MAX - 1)
            break;
        if (separator)
            buffer[used++] = '\n';
        memcpy(buffer + used, prefix, prefix_length);
        memcpy(buffer + used + prefix_length, line, length);
        used += prefix_length + length;
        lines++;
        line = next;
    }
    buffer[used] = '\0';
    free(r->text);
    r->text = xstrdup(buffer);
    free(buffer);
    return rc;
}

/* ---------------------------------------------------------------- queue delivery */

/* One porter_deliver: the core's copies of the message, shared by the loop and a pool thread
 * (the loop writes everything before the job is queued and reads it after it completed). */
struct api_delivery {
    struct porter_delivery d;
    porter_deliver_fn deliver;
    void *state;
    char *accepted;               /* NULL: "Ok: queued as" */
    char *plugin;                 /* for the log */
    char session_id[24];          /* for the log, when the session is gone */
    struct worker *worker;        /* takes the spool file back */
    unsigned long long body_max;  /* max_message_size */
    bool ran;                     /* deliver was called */
    char *queue_id, *mail_from, *recipient_list, *message_id, *quarantined, *headers, *body;
    char **recipients;
};

static void api_delivery_free(struct api_delivery *job)
{
    for (size_t i = 0; job->recipients != NULL && job->recipients[i] != NULL; i++)
        free(job->recipients[i]);
    free(job->recipients);
    free(job->accepted);
    free(job->plugin);
    free(job->queue_id);
    free(job->mail_from);
    free(job->recipient_list);
    free(job->message_id);
    free(job->quarantined);
    free(job->headers);
    free(job->body);
    free(job);
}

/* api_deliver_work - on a pool thread: read the body, then the plugin's deliver */
static int api_deliver_work(void *arg)
{
    struct api_delivery *job = arg;
    struct porter_delivery *d = &job->d;
    const struct porter_message *m = &d->message;
    if (m->body_length < 0 || (unsigned long long)m->body_length > job->body_max) {
        snprintf(d->error, sizeof d->error, "the body (%lld bytes) is larger than "
                 "max_message_size (%llu)", (long long)m->body_length, job->body_max);
        return -1;
    }
    size_t length = (size_t)m->body_length, done = 0;
    job->body = xmalloc(length + 1);
    while (done < length) {
        ssize_t n = pread(m->body_fd, job->body + done, length - done, m->body_offset + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                snprintf(d->error, sizeof d->error, "reading the spool file: %m");
            else
                snprintf(d->error, sizeof d->error, "reading the spool file: short read");
            return -1;
        }
        done += (size_t)n;
    }
    job->body[length] = '\0';
    d->body = job->body;
    d->body_length = length;
    job->ran = true;
    int result = job->deliver(job->state, d);
    d->error[sizeof d->error - 1] = '\0';
    return result == 0 ? 0 : -1;
}

/* api_delivery_error - d->error fit for a log value: one line, no quotes */
static const char *api_delivery_error(struct porter_delivery *d)
{
    size_t length = strlen(d->error);
    while (length > 0 && (unsigned char)d->error[length - 1] <= ' ')
        d->error[--length] = '\0';
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)d->error[i];
        if (c < 0x20 || c == 0x7f)
            d->error[i] = ' ';
        else if (c == '"')
            d->error[i] = '\'';
    }
    return length > 0 ? d->error : "the plugin gave no reason";
}

/* api_deliver_done - back on the loop: 250 once stored, 451 otherwise; the spool file goes
 * back to the worker */
static int api_deliver_done(porter_session *s, void *arg, int result)
{
    struct api_delivery *job = arg;
    int rc = PORTER_DENYSOFT;
    if (s != NULL && result == 0) {
        char *text = xasprintf("%s %s", job->accepted ? job->accepted : "Ok: queued as",
                               job->queue_id);
        reply_set(&s->run.reply, 250, "2.0.0", text);
        free(text);
        rc = PORTER_OK;
    } else if (s != NULL) {
        log_message(PORTER_LOG_ERR, job->session_id, "event=queue_failed plugin=%s queue_id=%s "
                    "error=\"%s\"", job->plugin, job->queue_id, api_delivery_error(&job->d));
        reply_set(&s->run.reply, 451, "4.3.0", NULL);
    } else {
        /* Nobody waits: the client left or was answered 451 when the hook timed out. */
        log_message(PORTER_LOG_WARNING, job->session_id, "event=queue_abandoned plugin=%s "
                    "queue_id=%s stored=%s reason=\"%s\"", job->plugin, job->queue_id,
                    result == 0 ? "yes" : "no",
                    !job->ran     ? "not run: nobody waits any more"
                    : result == 0 ? "stored after the client left or was answered 451"
                                  : api_delivery_error(&job->d));
    }
    worker_spool_give(job->worker, job->d.message.body_fd);
    api_delivery_free(job);
    return rc;
}

static int api_deliver(porter_session *s, porter_deliver_fn deliver, void *state,
                       const char *accepted)
{
    struct transaction *t = s->transaction;
    const char *plugin = s->run.plugin != NULL ? s->run.plugin->name : "?";
    if (s->run.hook != PORTER_HOOK_QUEUE || deliver == NULL || t == NULL || !t->headers_parsed ||
        t->spool_fd < 0) {
        log_message(PORTER_LOG_ERR, s->id_string, "event=plugin_error plugin=%s error=\"porter_deliver "
                    "is for the queue hook, with a deliver function\"", plugin);
        return PORTER_DENYSOFT;
    }
    struct api_delivery *job = xcalloc(1, sizeof *job);
    job->deliver = deliver;
    job->state = state;
    job->accepted = accepted != NULL ? xstrdup(accepted) : NULL;
    job->plugin = xstrdup(plugin);
    snprintf(job->session_id, sizeof job->session_id, "%s", s->id_string);
    job->worker = s->worker;
    job->body_max = s->config->max_message_size;
    job->queue_id = xstrdup(t->queue_id);
    job->mail_from = xstrdup(t->mail_from != NULL ? t->mail_from : "");
    job->recipients = xcalloc(t->recipient_count + 1, sizeof *job->recipients);
    size_t list_length = 1;
    for (size_t i = 0; i < t->recipient_count; i++) {
        job->recipients[i] = xstrdup(t->recipients[i].address);
        list_length += strlen(t->recipients[i].address) + 1;
    }
    job->recipient_list = xcalloc(list_length, 1);
    for (size_t i = 0, used = 0; i < t->recipient_count; i++)
        used += (size_t)snprintf(job->recipient_list + used, list_length - used, "%s%s",
                                 i > 0 ? "," : "", job->recipients[i]);
    const char *message_id = headers_get(&t->headers, "Message-Id", 0);
    if (message_id != NULL) {
        message_id += strspn(message_id, " \t\r\n");
        size_t length = strlen(message_id);
        while (length > 0 && strchr(" \t\r\n", message_id[length - 1]) != NULL)
            length--;
        job->message_id = xstrndup(message_id, length);
    }
    job->quarantined = t->quarantine_reason != NULL ? xstrdup(t->quarantine_reason) : NULL;
    size_t headers_length = 0;
    const char *headers = transaction_render_headers(t, &headers_length);
    job->headers = xmalloc(headers_length + 1);
    memcpy(job->headers, headers, headers_length);
    job->headers[headers_length] = '\0';
    struct porter_delivery *d = &job->d;
    d->queue_id = job->queue_id;
    d->mail_from = job->mail_from;
    d->recipients = (const char *const *)job->recipients;
    d->recipient_count = t->recipient_count;
    d->recipient_list = job->recipient_list;
    d->message_id = job->message_id;
    d->quarantined = job->quarantined;
    d->received = time(NULL);
    d->message.headers = job->headers;
    d->message.headers_length = headers_length;
    d->message.body_offset = t->body_offset;
    d->message.body_length = t->body_length;
    d->message.body_fd = transaction_spool_take(t); /* the body cannot change under the job */
    int rc = hook_chain_run_serial(s, api_deliver_work, api_deliver_done, job);
    if (rc != PORTER_PENDING) {
        t->spool_fd = d->message.body_fd;
        api_delivery_free(job);
    }
    return rc;
}

/* ---------------------------------------------------------------- paths in values */

/* api_arg_resolve - a path resolved against the configuration directory, kept with the args */
static const char *api_arg_resolve(porter_args *a, const char *path)
{
    return plugin_args_keep_path(a, NULL, path);
}

/* ---------------------------------------------------------------- the store */

/* api_store_key - "PLUGIN:key": each plugin has its own key space; caller frees */
static char *api_store_key(porter_session *s, const char *key)
{
    return xasprintf("%s:%s", s->run.plugin != NULL ? s->run.plugin->name : "core",
                     key != NULL ? key : "");
}

/* api_store - a store request on the plugin's key */
static int api_store(porter_session *s, enum store_operation operation, const char *key,
                     const char *value, long long by, double ttl, porter_store_fn done, void *arg)
{
    char *full = api_store_key(s, key);
    int rc = hook_chain_store(s, operation, full, value, by, ttl, done, arg);
    free(full);
    return rc;
}

static int api_store_get(porter_session *s, const char *key, porter_store_fn done, void *arg)
{
    return api_store(s, STORE_GET, key, NULL, 0, 0, done, arg);
}

static int api_store_set(porter_session *s, const char *key, const char *value, double ttl,
                         porter_store_fn done, void *arg)
{
    return api_store(s, STORE_SET, key, value, 0, ttl, done, arg);
}

static int api_store_increment(porter_session *s, const char *key, long long by, double ttl,
                               porter_store_fn done, void *arg)
{
    return api_store(s, STORE_INCREMENT, key, NULL, by, ttl, done, arg);
}

static int api_store_delete(porter_session *s, const char *key, porter_store_fn done, void *arg)
{
    return api_store(s, STORE_DELETE, key, NULL, 0, 0, done, arg);
}

/* api_store_counts - several counters at once, keys as api_store puts them: for a waiting
 * hook (done) or, with background, outside the chain (callback) */
static int api_store_counts(porter_session *s, struct porter_store_count *counts, size_t count,
                            bool background, porter_store_fn done,
                            porter_store_background_fn callback, void *arg)
{
    char **keys = xcalloc(count > 0 ? count : 1, sizeof *keys);
    for (size_t i = 0; i < count && counts != NULL; i++)
        keys[i] = api_store_key(s, counts[i].key);
    int rc = background ? hook_chain_store_increments_background(
                              s, counts, (const char *const *)keys, count, callback, arg)
                        : hook_chain_store_increments(s, counts, (const char *const *)keys, count,
                                                      done, arg);
    for (size_t i = 0; i < count && counts != NULL; i++)
        free(keys[i]);
    free(keys);
    return rc;
}

static int api_store_increments(porter_session *s, struct porter_store_count *counts,
                                size_t count, porter_store_fn done, void *arg)
{
    return api_store_counts(s, counts, count, false, done, NULL, arg);
}

static int api_store_increments_background(porter_session *s, struct porter_store_count *counts,
                                           size_t count, porter_store_background_fn callback,
                                           void *arg)
{
    return api_store_counts(s, counts, count, true, NULL, callback, arg);
}

const struct porter_api plugin_api_table = {
    .abi = PORTER_PLUGIN_ABI,
    .reply = api_reply,
    .log = api_log,
    .session_id = api_session_id,
    .hostname = api_hostname,
    .client_ip = api_client_ip,
    .client_port = api_client_port,
    .client_name = api_client_name,
    .local_ip = api_local_ip,
    .local_port = api_local_port,
    .helo = api_helo,
    .said_ehlo = api_said_ehlo,
    .relay_client = api_relay_client,
    .relay_client_set = api_relay_client_set,
    .auth_user = api_auth_user,
    .listener_role = api_listener_role,
    .tls_info = api_tls_info,
    .input_pending = api_input_pending,
    .hook_argument = api_hook_argument,
    .hook_param = api_hook_param,
    .queue_id = api_queue_id,
    .mail_from = api_mail_from,
    .mail_param = api_mail_param,
    .mail_from_set = api_mail_from_set,
    .rcpt_count = api_rcpt_count,
    .rcpt = api_rcpt,
    .rcpt_param = api_rcpt_param,
    .rcpt_add = api_rcpt_add,
    .rcpt_remove = api_rcpt_remove,
    .quarantine = api_quarantine,
    .quarantined = api_quarantined,
    .header_count = api_header_count,
    .header_get = api_header_get,
    .header_add = api_header_add,
    .header_insert = api_header_insert,
    .header_change = api_header_change,
    .header_remove = api_header_remove,
    .data_size = api_data_size,
    .message = api_message,
    .body_replace = api_body_replace,
    .data_get = api_data_get,
    .data_set = api_data_set,
    .note_set = api_note_set,
    .note_get = api_note_get,
    .timer = hook_chain_timer,
    .run_blocking = hook_chain_run_blocking,
    .suspend = api_suspend,
    .resume = api_resume,
    .event_base = api_event_base,
    .arg_string = plugin_args_string,
    .arg_path = plugin_args_path,
    .arg_integer = plugin_args_integer,
    .arg_seconds = plugin_args_seconds,
    .arg_bool = plugin_args_bool,
    .arg_choice = plugin_args_choice,
    .arg_cidr = plugin_args_cidr,
    .arg_error = plugin_args_verror,
    .arg_positional = plugin_args_positional,
    .cidr_match = cidr_match,
    .cidr_free = cidr_free,
    .message_write = api_message_write,
    .run_command = run_command,
    .setting = api_setting,
    .dns_lookup = hook_chain_dns,
    .dns_query = api_dns_query,
    .dns_answer_free = dns_answer_free,
    .dns_status_name = dns_status_name,
    .auth_mechanism = api_auth_mechanism,
    .auth_username = api_auth_username,
    .auth_password = api_auth_password,
    .command = api_command,
    .reply_lines = api_reply_lines,
    .date_parse = date_parse,
    .deliver = api_deliver,
    .arg_resolve = api_arg_resolve,
    .wait_extend = hook_chain_wait_extend,
    .discard = api_discard,
    .at_loop_end = api_at_loop_end,
    .client_ptr = api_client_ptr,
    .set_client_name = api_set_client_name,
    .store_get = api_store_get,
    .store_set = api_store_set,
    .store_increment = api_store_increment,
    .store_delete = api_store_delete,
    .store_status_name = store_status_name,
    .dns_background = hook_chain_dns_background,
    .arg_list = plugin_args_list,
    .list_file = plugin_args_list_file,
    .list_count = list_count,
    .list_word = list_word,
    .list_word_count = list_word_count,
    .list_line = list_line,
    .list_source = list_source,
    .list_match_domain = list_match_domain,
    .list_match_address = list_match_address,
    .list_free = list_free,
    .address_domain = smtp_address_domain,
    .domain_equal = smtp_domain_equal,
    .domain_within = smtp_domain_within,
    .waiting_session = hook_chain_waiting,
    .log_fact = api_log_fact,
    .store_increments = api_store_increments,
    .store_increments_background = api_store_increments_background,
};
