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
/* The two halves of auth_results_apply: auth_results_strip removes the incoming headers that
 * claim our authserv-id (best run before the data_post chain, so that no plugin sees them);
 * auth_results_add writes ours from the notes (after data_post). Stripping twice is harmless. */
void auth_results_strip(struct porter_session *s);
void auth_results_add(struct porter_session *s);

#endif
