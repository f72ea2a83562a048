/*
 * session_facts.h - the facts of a session that an MTA in front reports instead of Porter
 * learning them itself (the milter and policy listeners): TLS, the AUTH user, the queue id,
 * the MAIL/RCPT address a hook reads, the transaction.
 *
 * Interface: each function sets one kind of fact on a session that has no SMTP socket. Values
 * are untrusted: names are cut, an AUTH identity must pass auth_identity_valid, a queue id
 * that is not [0-9A-Za-z]{1,63} is replaced by our own.
 * Memory: the session owns whatever is set (copies). Fatal: out of memory.
 */
#ifndef PORTER_SESSION_FACTS_H
#define PORTER_SESSION_FACTS_H

#include <stdbool.h>

#include "session.h"

/* session_facts_begin - a session of transport (role "milter" or "policy"; data is the
 * transport's connection) with the worker's config and plugins, in the worker's table */
struct porter_session *session_facts_begin(struct worker *worker,
                                           const struct porter_config *config,
                                           struct plugin_registry *plugins, const char *role,
                                           const struct session_transport *transport, void *data);
/* session_facts_tls - TLS as the MTA saw it (version NULL or "": no TLS; others may be NULL) */
void session_facts_tls(struct porter_session *s, const char *version, const char *cipher,
                       const char *bits, const char *subject, const char *issuer);
/* session_facts_auth - an AUTH user the MTA accepted: relay client, as on the SMTP path */
void session_facts_auth(struct porter_session *s, const char *user);
/* session_facts_name - set *field (client_name, client_ptr, helo) to value cut to 255 bytes */
void session_facts_name(char **field, const char *value);
/* session_facts_transaction - the transaction, created (state MAIL) with the MTA's queue id
 * when it is a sane one */
struct transaction *session_facts_transaction(struct porter_session *s, const char *queue_id);
/* session_facts_path - "FROM:<a@b> ARGS" / "TO:<a@b> ARGS" into s->path for the hook;
 * false (logged) when our parser refuses what the MTA accepted (the hook then has no argument) */
bool session_facts_path(struct porter_session *s, const char *line, enum smtp_path_kind kind);
/* session_facts_bare_address - "<a@b>" without its brackets (a copy the caller frees) */
char *session_facts_bare_address(const char *argument);

#endif
