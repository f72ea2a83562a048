/*
 * session_facts.c - facts an MTA in front reports (milter macros, policy attributes) set on a
 * session the way the SMTP path would have set them.
 *
 * Interface: session_facts.h. Fatal: out of memory.
 */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "memory.h"
#include "session_facts.h"
#include "tls.h"
#include "worker.h"

struct porter_session *session_facts_begin(struct worker *worker,
                                           const struct porter_config *config,
                                           struct plugin_registry *plugins, const char *role,
                                           const struct session_transport *transport, void *data)
{
    struct porter_session *s = session_new(worker);
    s->role = role;
    s->transport = transport;
    s->transport_data = data;
    s->state = SESSION_STATE_GREETED; /* no greeting: the MTA has one of its own */
    s->client_known = true;           /* the MTA names the client: plugins see its disconnect */
    session_bind(s, config, plugins);
    worker_add_session(worker, s);
    return s;
}

void session_facts_tls(struct porter_session *s, const char *version, const char *cipher,
                       const char *bits, const char *subject, const char *issuer)
{
    if (version == NULL || version[0] == '\0' || s->tls != NULL)
        return;
    struct tls_facts *f = xcalloc(1, sizeof *f);
    f->version = xstrndup(version, strnlen(version, 64));
    if (cipher != NULL && cipher[0] != '\0')
        f->cipher = xstrndup(cipher, strnlen(cipher, 128));
    if (bits != NULL && bits[0] != '\0')
        f->bits = xstrndup(bits, strnlen(bits, 16));
    if (subject != NULL && subject[0] != '\0')
        f->subject = xstrndup(subject, strnlen(subject, 512));
    if (issuer != NULL && issuer[0] != '\0')
        f->issuer = xstrndup(issuer, strnlen(issuer, 512));
    s->tls = f;
    s->flags |= SESSION_FLAG_TLS;
}

void session_facts_auth(struct porter_session *s, const char *user)
{
    if (user == NULL || user[0] == '\0' || s->auth_user != NULL ||
        !auth_identity_valid(user, strlen(user)))
        return;
    s->auth_user = xstrdup(user);
    s->flags |= SESSION_FLAG_RELAY;
}

void session_facts_name(char **field, const char *value)
{
    if (value == NULL)
        return;
    free(*field);
    *field = xstrndup(value, strnlen(value, 255));
}

struct transaction *session_facts_transaction(struct porter_session *s, const char *queue_id)
{
    if (s->transaction != NULL)
        return s->transaction;
    static const char allowed[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t length = queue_id != NULL ? strlen(queue_id) : 0;
    char *id = length > 0 && length < 64 && strspn(queue_id, allowed) == length
                   ? xstrdup(queue_id) : queue_id_new();
    s->transaction = transaction_new(id);
    free(id);
    s->state = SESSION_STATE_MAIL;
    return s->transaction;
}

bool session_facts_path(struct porter_session *s, const char *line, enum smtp_path_kind kind)
{
    if (s->path_valid) {
        smtp_path_clear(&s->path);
        s->path_valid = false;
    }
    struct smtp_parse_limits limits = {.max_local_part = 64, .max_domain = 255, .max_path = 256,
                                       .allow_utf8 = true};
    struct smtp_parse_error error = {0};
    s->path_valid = smtp_parse_path(line, strlen(line), kind, &limits, &s->path, &error) == 0;
    if (!s->path_valid)
        log_message(PORTER_LOG_NOTICE, s->id_string, "event=unparsable_address role=%s "
                    "error=\"%s\"", s->role, error.text ? error.text : "unparsable");
    return s->path_valid;
}

char *session_facts_bare_address(const char *argument)
{
    size_t length = strlen(argument);
    if (length >= 2 && argument[0] == '<' && argument[length - 1] == '>')
        return xstrndup(argument + 1, length - 2);
    return xstrdup(argument);
}
