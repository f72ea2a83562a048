/*
 * auth_results.c - Authentication-Results (RFC 8601) from the plugins' notes (see
 * auth_results.h). Notes named "auth-results:METHOD" hold one resinfo each, for example
 * "auth-results:spf" = "spf=pass smtp.mailfrom=example.org"; they are joined in the order the
 * plugins wrote them.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth_results.h"
#include "config.h"
#include "memory.h"
#include "session.h"

#define AUTH_RESULTS_PREFIX "auth-results:"

/* auth_results_claims_us - does an incoming header's authserv-id equal our hostname? */
static int auth_results_claims_us(const char *value, const char *hostname)
{
    while (*value == ' ' || *value == '\t' || *value == '\r' || *value == '\n')
        value++;
    size_t length = strcspn(value, "; \t\r\n");
    return length == strlen(hostname) && strncasecmp(value, hostname, length) == 0;
}

void auth_results_apply(struct porter_session *s)
{
    struct transaction *t = s->transaction;
    const char *hostname = s->config->hostname;
    size_t index = 0;
    bool changed = false;
    while (index < headers_count(&t->headers, "Authentication-Results")) {
        const char *value = headers_get(&t->headers, "Authentication-Results", index);
        if (auth_results_claims_us(value, hostname)) {
            headers_change(&t->headers, "Authentication-Results", index, NULL);
            changed = true;
        } else {
            index++;
        }
    }
    char *results = NULL;
    for (size_t i = 0; i < t->notes.count; i++) {
        const struct note *note = &t->notes.items[i];
        if (strncmp(note->key, AUTH_RESULTS_PREFIX, strlen(AUTH_RESULTS_PREFIX)) != 0)
            continue;
        char *joined = xasprintf("%s;\r\n\t%s", results ? results : "", note->value);
        free(results);
        results = joined;
    }
    if (results != NULL) {
        char *value = xasprintf(" %s%s", hostname, results);
        /* Just below our Received header, so it reads as ours. */
        headers_insert(&t->headers, s->config->received_header ? 1 : 0, "Authentication-Results", value);
        free(value);
        free(results);
        changed = true;
    }
    if (changed)
        transaction_headers_changed(t);
}
