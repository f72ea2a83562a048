/*
 * auth_notes.h - the transaction notes that the authentication plugins (spf, dkim_verify,
 * dmarc) leave for each other, for any later plugin, and for the core's Authentication-Results
 * header. Every note lives in the PORTER_TRANSACTION scope; values are plain ASCII.
 *
 * Results use RFC 8601's words. A plugin that did not run (not in conf/plugins, or the client
 * is exempt) leaves no note; a later plugin treats a missing note as "none".
 *
 *   spf                pass | fail | softfail | neutral | none | temperror | permerror: the
 *                      result for the identity in spf-identity (set at MAIL)
 *   spf-identity       mailfrom | helo: helo when the sender is null (RFC 7208 2.4)
 *   spf-domain         the domain that identity names (the MAIL FROM domain, or the HELO name)
 *   spf-helo           the result of the separate HELO check (only with check_helo=yes and a
 *                      non-null sender)
 *   dkim               pass when a signature passed, else the first of fail, permerror,
 *                      temperror, policy, neutral met; none when the message is not signed
 *   dkim-signatures    one line per signature ('\n' between lines): "RESULT DOMAIN SELECTOR",
 *                      RESULT as in dkim, DOMAIN the d= tag (lower case), SELECTOR the s= tag
 *   dmarc              pass | fail | none | temperror | permerror
 *   dmarc-domain       the RFC5322.From domain that was evaluated
 *   dmarc-policy       none | quarantine | reject: the policy the domain publishes (p=, or sp=
 *                      for a subdomain)
 *   dmarc-disposition  none | quarantine | reject: what Porter did (after pct= and the local
 *                      override list)
 *   auth-results:METHOD  one RFC 8601 resinfo per line ('\n' between lines), for example
 *                      "spf=pass smtp.mailfrom=example.org"; gateway/auth_results.c joins them
 *                      into the one Authentication-Results header (authserv-id = hostname)
 */
#ifndef PORTER_AUTH_NOTES_H
#define PORTER_AUTH_NOTES_H

#define AUTH_NOTE_SPF "spf"
#define AUTH_NOTE_SPF_IDENTITY "spf-identity"
#define AUTH_NOTE_SPF_DOMAIN "spf-domain"
#define AUTH_NOTE_SPF_HELO "spf-helo"
#define AUTH_NOTE_DKIM "dkim"
#define AUTH_NOTE_DKIM_SIGNATURES "dkim-signatures"
#define AUTH_NOTE_DMARC "dmarc"
#define AUTH_NOTE_DMARC_DOMAIN "dmarc-domain"
#define AUTH_NOTE_DMARC_POLICY "dmarc-policy"
#define AUTH_NOTE_DMARC_DISPOSITION "dmarc-disposition"
#define AUTH_NOTE_RESULTS_SPF "auth-results:spf"
#define AUTH_NOTE_RESULTS_DKIM "auth-results:dkim"
#define AUTH_NOTE_RESULTS_DMARC "auth-results:dmarc"

#endif
