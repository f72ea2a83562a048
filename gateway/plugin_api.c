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
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "cidr.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "plugin_args.h"
#include "plugin_host.h"
#include "run_command.h"
#include "session.h"

#define API_TEXT_MAX 8192

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
    return NULL; /* no TLS yet: every TLS fact is absent */
}

static size_t api_input_pending(porter_session *s)
{
    if (s->closed || s->input == NULL)
        return 0;
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

static int api_mail_from_set(porter_session *s, const char *address, const char *params)
{
    if (s->transaction == NULL || address == NULL)
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
    if (s->transaction == NULL || address == NULL)
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

static const char *api_note_get(porter_session *s, int scope, const char *key)
{
    struct note_list *notes = api_notes(s, scope);
    return notes && key ? note_list_get(notes, key) : NULL;
}

static porter_handle api_suspend(porter_session *s)
{
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
};
