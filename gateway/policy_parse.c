/*
 * policy_parse.c - Postfix policy delegation requests and answers (pure).
 *
 * Interface: policy_parse.h. Fatal: out of memory only.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "memory.h"
#include "policy_parse.h"

#define POLICY_TEXT_MAX 400

int policy_request_line(struct policy_request *request, const char *line, size_t length,
                        const char **error)
{
    const char *why = NULL;
    if (length > 0 && line[length - 1] == '\r')
        length--;
    if (length == 0) {
        if (request->count == 0)
            return 0;
        return 1;
    }
    const char *equals = memchr(line, '=', length);
    if (length > POLICY_LINE_MAX)
        why = "line too long";
    else if (equals == NULL)
        why = "a line without '='";
    else if (equals == line)
        why = "an empty attribute name";
    else if (request->count == POLICY_ATTRIBUTES_MAX)
        why = "too many attributes";
    else if (request->bytes + length + 1 > POLICY_REQUEST_MAX)
        why = "request too large";
    for (size_t i = 0; why == NULL && i < length; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 && c != '\t')
            why = "a control byte in a line";
    }
    if (why == NULL) {
        size_t name_length = (size_t)(equals - line);
        for (size_t i = 0; i < request->count && why == NULL; i++)
            if (strlen(request->names[i]) == name_length &&
                memcmp(request->names[i], line, name_length) == 0)
                why = "an attribute given twice";
        if (why == NULL) {
            request->names[request->count] = xstrndup(line, name_length);
            request->values[request->count] = xstrndup(equals + 1, length - name_length - 1);
            request->count++;
            request->bytes += length + 1;
            return 0;
        }
    }
    if (error != NULL)
        *error = why;
    return -1;
}

const char *policy_request_get(const struct policy_request *request, const char *name)
{
    for (size_t i = 0; i < request->count; i++)
        if (strcmp(request->names[i], name) == 0)
            return request->values[i];
    return NULL;
}

void policy_request_clear(struct policy_request *request)
{
    for (size_t i = 0; i < request->count; i++) {
        free(request->names[i]);
        free(request->values[i]);
    }
    request->count = 0;
    request->bytes = 0;
}

static const char *const state_names[POLICY_STATE_COUNT] = {
    "CONNECT", "EHLO", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE", "OTHER",
};

enum policy_state policy_state_parse(const char *text)
{
    if (text == NULL)
        return POLICY_STATE_OTHER;
    if (strcasecmp(text, "HELO") == 0)
        return POLICY_STATE_EHLO;
    for (int i = 0; i < POLICY_STATE_OTHER; i++)
        if (strcasecmp(text, state_names[i]) == 0)
            return (enum policy_state)i;
    return POLICY_STATE_OTHER;
}

const char *policy_state_name(enum policy_state state)
{
    return state < POLICY_STATE_COUNT ? state_names[state] : "invalid";
}

char *policy_answer_format(const char *keyword, int code, const char *enhanced, const char *text)
{
    char clean[POLICY_TEXT_MAX + 1];
    size_t used = 0;
    for (const char *p = text ? text : ""; *p != '\0' && used < POLICY_TEXT_MAX; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\r')
            continue;
        if (c == '\n') {
            if (used + 2 > POLICY_TEXT_MAX)
                break;
            clean[used++] = ';';
            clean[used++] = ' ';
            continue;
        }
        clean[used++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    clean[used] = '\0';
    if (keyword != NULL)
        return clean[0] ? xasprintf("action=%s %s\n\n", keyword, clean)
                        : xasprintf("action=%s\n\n", keyword);
    if (code < 400 || code > 599)
        code = 451;
    bool enhanced_ok = enhanced != NULL && enhanced[0] == '0' + code / 100 && enhanced[1] == '.' &&
                       strspn(enhanced, "0123456789.") == strlen(enhanced) && strlen(enhanced) < 12;
    return xasprintf("action=%d %s%s%s\n\n", code, enhanced_ok ? enhanced : "",
                     enhanced_ok ? " " : "", clean[0] ? clean : "Rejected by policy");
}
