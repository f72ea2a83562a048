/*
 * auth_results.h - the Authentication-Results header (RFC 8601), written once per message by
 * the core from the transaction notes that plugins (spf, dkim_verify, dmarc) leave.
 *
 * Interface: auth_results_apply runs after the data_post chain accepted the message and before
 * the queue chain: it removes incoming Authentication-Results headers that claim our
 * authserv-id (forgery defence) and, when any plugin left a result, adds ours on top.
 */
#ifndef PORTER_AUTH_RESULTS_H
#define PORTER_AUTH_RESULTS_H

struct porter_session;

void auth_results_apply(struct porter_session *s);

#endif
