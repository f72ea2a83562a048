/*
 * auth_results.c - Authentication-Results (RFC 8601) from the plugins' notes (see
 * auth_results.h). Notes named "auth-results:METHOD" hold the resinfo of one method, one per
 * line when a method has several (two SPF identities, several DKIM signatures), for example
 * "auth-results:spf" = "spf=pass smtp.mailfrom=example.org"; they are joined in the order the
 * plugins wrote them, one resinfo per folded line:
 *
 *     Authentication-Results: mx.example.net;
 *     	spf=pass smtp.mailfrom=example.org;
 *     	dkim=pass header.d=example.org header.s=sel header.a=rsa-sha256 header.b=AbCdEfGh
 *
 * The header goes on top of the message: RFC 8601 2.1 makes it a trace field, added at the top
 * like Received. Fatal: out of memory. Nothing here does I/O.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth_results.h"
#include "config.h"
#include "memory.h"
#include "session.h"

#define AUTH_RESULTS_PREFIX "auth-results:"
#define AUTH_RESULTS_HEADER "Authentication-Results"

/* auth_results_skip_cfws - past folding white space and (nested) comments, RFC 5322 3.2.2 */
static const char *auth_results_skip_cfws(const char *p)
{
    int depth = 0;
    for (; *p != '\0'; p++) {
        if (depth > 0 && *p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '(')
            depth++;
        else if (*p == ')' && depth > 0)
            depth--;
        else if (depth == 0 && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            break;
    }
    return p;
}

/* auth_results_claims_us - does an incoming header's authserv-id equal our hostname? */
static bool auth_results_claims_us(const char *value, const char *hostname)
{
    value = auth_results_skip_cfws(value);
    size_t length = strcspn(value, "; \t\r\n(");
    return length == strlen(hostname) && strncasecmp(value, hostname, length) == 0;
}

void auth_results_strip(struct porter_session *s)
{
    struct transaction *t = s->transaction;
    size_t index = 0;
    bool changed = false;
    while (index < headers_count(&t->headers, AUTH_RESULTS_HEADER)) {
        const char *value = headers_get(&t->headers, AUTH_RESULTS_HEADER, index);
        if (auth_results_claims_us(value, s->config->hostname)) {
            headers_change(&t->headers, AUTH_RESULTS_HEADER, index, NULL);
            changed = true;
        } else {
            index++;
        }
    }
    if (changed)
        transaction_headers_changed(t);
}

void auth_results_add(struct porter_session *s)
{
    struct transaction *t = s->transaction;
    char *results = NULL;
    for (size_t i = 0; i < t->notes.count; i++) {
        const struct note *note = &t->notes.items[i];
        if (strncmp(note->key, AUTH_RESULTS_PREFIX, strlen(AUTH_RESULTS_PREFIX)) != 0)
            continue;
        /* one resinfo per line of the note; empty lines are skipped */
        for (const char *line = note->value; *line != '\0';) {
            size_t length = strcspn(line, "\r\n");
            if (length > 0) {
                char *joined = xasprintf("%s;\r\n\t%.*s", results ? results : "", (int)length,
                                         line);
                free(results);
                results = joined;
            }
            line += length;
            line += strspn(line, "\r\n");
        }
    }
    if (results == NULL)
        return;
    char *value = xasprintf(" %s%s", s->config->hostname, results);
    headers_insert(&t->headers, 0, AUTH_RESULTS_HEADER, value);
    free(value);
    free(results);
    transaction_headers_changed(t);
}

void auth_results_apply(struct porter_session *s)
{
    auth_results_strip(s);
    auth_results_add(s);
}
