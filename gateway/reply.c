/*
 * reply.c - SMTP reply formatting and the default replies of verdicts (see reply.h).
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "memory.h"
#include "reply.h"

static const char *const rc_names[PORTER_RC_COUNT] = {
    "DECLINED", "OK", "DENY", "DENYSOFT", "DENY_DISCONNECT", "DENYSOFT_DISCONNECT", "DONE",
    "PENDING",
};

static const char *const hook_names[PORTER_HOOK_COUNT] = {
    "connect", "helo", "ehlo", "auth", "mail", "rcpt", "data", "data_post",
    "queue", "reset_transaction", "quit", "disconnect", "unrecognized_command", "vrfy", "noop",
    "help", "tls", "deny",
};

const char *porter_rc_name(int rc)
{
    return rc >= 0 && rc < PORTER_RC_COUNT ? rc_names[rc] : "INVALID";
}

const char *porter_hook_name(int hook)
{
    return hook >= 0 && hook < PORTER_HOOK_COUNT ? hook_names[hook] : "invalid";
}

int porter_hook_from_name(const char *name)
{
    for (int i = 0; i < PORTER_HOOK_COUNT; i++)
        if (strcmp(hook_names[i], name) == 0)
            return i;
    return -1;
}

void reply_clear(struct reply *r)
{
    free(r->text);
    r->text = NULL;
    r->code = 0;
    r->enhanced[0] = '\0';
}

void reply_set(struct reply *r, int code, const char *enhanced, const char *text)
{
    reply_clear(r);
    r->code = code;
    if (enhanced != NULL)
        snprintf(r->enhanced, sizeof r->enhanced, "%s", enhanced);
    if (text != NULL)
        r->text = xstrdup(text);
}

/* reply_enhanced_valid - "c.sss.ddd" with c in 2,4,5 and 1-3 digit fields */
static int reply_enhanced_valid(const char *e)
{
    if (e == NULL || (e[0] != '2' && e[0] != '4' && e[0] != '5') || e[1] != '.')
        return 0;
    const char *p = e + 2;
    for (int field = 0; field < 2; field++) {
        int digits = 0;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
        if (digits < 1 || digits > 3)
            return 0;
        if (field == 0 && *p++ != '.')
            return 0;
    }
    return *p == '\0';
}

/* reply_write_line - one line of a reply, sanitised and cut to REPLY_LINE_MAX */
static void reply_write_line(struct evbuffer *out, int code, char separator, const char *enhanced,
                             const char *line, size_t length)
{
    char clean[REPLY_LINE_MAX + 1];
    if (length > REPLY_LINE_MAX)
        length = REPLY_LINE_MAX;
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)line[i];
        clean[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    clean[length] = '\0';
    if (enhanced != NULL)
        evbuffer_add_printf(out, "%03d%c%s %s\r\n", code, separator, enhanced, clean);
    else
        evbuffer_add_printf(out, "%03d%c%s\r\n", code, separator, clean);
}

void reply_write(struct evbuffer *out, int code, const char *enhanced, const char *text)
{
    char fixed[16];
    if (code < 200 || code > 599)
        code = 451;
    if (enhanced != NULL) {
        if (!reply_enhanced_valid(enhanced))
            enhanced = code >= 500 ? "5.0.0" : code >= 400 ? "4.0.0" : "2.0.0";
        snprintf(fixed, sizeof fixed, "%s", enhanced);
        fixed[0] = (char)(code / 100 == 3 ? '2' : '0' + code / 100);
        enhanced = fixed;
    }
    if (text == NULL)
        text = "";
    const char *line = text;
    for (int lines = 1;; lines++) {
        const char *newline = strchr(line, '\n');
        if (newline == NULL || newline[1] == '\0' || lines == REPLY_LINES_MAX) {
            size_t length = newline != NULL ? (size_t)(newline - line) : strlen(line);
            if (length > 0 && line[length - 1] == '\r')
                length--;
            reply_write_line(out, code, ' ', enhanced, line, length);
            return;
        }
        size_t length = (size_t)(newline - line);
        if (length > 0 && line[length - 1] == '\r')
            length--;
        reply_write_line(out, code, '-', enhanced, line, length);
        line = newline + 1;
    }
}

/* The default replies, by verdict; a few hooks have their own. */
struct reply_default_row {
    int hook; /* -1: any */
    int rc;
    int code;
    const char *enhanced;
    const char *text;
};

static const struct reply_default_row reply_defaults[] = {
    {PORTER_HOOK_MAIL, PORTER_OK, 250, "2.1.0", "Ok"},
    {PORTER_HOOK_RCPT, PORTER_OK, 250, "2.1.5", "Ok"},
    {PORTER_HOOK_CONNECT, PORTER_DENY, 554, "5.7.1", "Connection refused"},
    {PORTER_HOOK_CONNECT, PORTER_DENYSOFT, 421, "4.7.0", "Service not available, try again later"},
    {PORTER_HOOK_MAIL, PORTER_DENY, 550, "5.7.1", "Sender rejected"},
    {PORTER_HOOK_MAIL, PORTER_DENYSOFT, 451, "4.7.1", "Sender temporarily rejected, try again later"},
    {PORTER_HOOK_RCPT, PORTER_DENY, 550, "5.7.1", "Recipient rejected"},
    {PORTER_HOOK_RCPT, PORTER_DENYSOFT, 450, "4.7.1", "Recipient temporarily rejected, try again later"},
    {PORTER_HOOK_DATA_POST, PORTER_DENY, 550, "5.7.1", "Message rejected"},
    {PORTER_HOOK_DATA_POST, PORTER_DENYSOFT, 451, "4.7.1", "Message temporarily rejected, try again later"},
    {PORTER_HOOK_QUEUE, PORTER_DENY, 554, "5.3.0", "Message not accepted for delivery"},
    {PORTER_HOOK_QUEUE, PORTER_DENYSOFT, 451, "4.3.0", "Message not queued, try again later"},
    {PORTER_HOOK_QUEUE, PORTER_DECLINED, 451, "4.3.0", "No queue plugin accepted the message, try again later"},
    {-1, PORTER_DENY, 550, "5.7.1", "Command rejected"},
    {-1, PORTER_DENYSOFT, 451, "4.7.1", "Command temporarily rejected, try again later"},
    {-1, PORTER_DENY_DISCONNECT, 554, "5.7.1", "Rejected, closing connection"},
    {-1, PORTER_DENYSOFT_DISCONNECT, 421, "4.7.0", "Try again later, closing connection"},
};

void reply_default(enum porter_hook hook, int rc, int *code, const char **enhanced,
                   const char **text)
{
    for (size_t i = 0; i < sizeof reply_defaults / sizeof reply_defaults[0]; i++) {
        const struct reply_default_row *row = &reply_defaults[i];
        if ((row->hook == (int)hook || row->hook == -1) && row->rc == rc) {
            *code = row->code;
            *enhanced = row->enhanced;
            *text = row->text;
            return;
        }
    }
    *code = 250;
    *enhanced = "2.0.0";
    *text = "Ok";
}

void reply_resolve(const struct reply *given, enum porter_hook hook, int rc, int *code,
                   const char **enhanced, const char **text)
{
    reply_default(hook, rc, code, enhanced, text);
    if (given == NULL)
        return;
    /* A plugin's code must agree with its verdict's class: a DENY is never a 2xx or 4xx. */
    if (given->code != 0) {
        int class = given->code / 100;
        int wanted = *code / 100;
        if ((rc == PORTER_DONE || rc == PORTER_OK || rc == PORTER_DECLINED) || class == wanted)
            *code = given->code;
    }
    if (given->enhanced[0] != '\0')
        *enhanced = given->enhanced;
    if (given->text != NULL)
        *text = given->text;
}
