/*
 * auth.h - SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms: the AUTH
 * command, its 334 continuation exchange, the auth hook through which plugins check the
 * credentials, and the growing delay and the disconnect after failed attempts.
 *
 * Interface:
 *   pure helpers   auth_base64_decode (strict RFC 4648), auth_plain_parse (the PLAIN message),
 *                  auth_identity_valid, auth_mechanism_from_name / auth_mechanism_name
 *   session side   auth_offered (EHLO), auth_check and auth_proceed (the AUTH row of the
 *                  command table), auth_wants_line / auth_line (continuation lines),
 *                  auth_cancel, auth_paused (a failure delay runs: input waits), auth_forget
 *                  (STARTTLS), and the accessors behind porter_auth_mechanism/_username/
 *                  _password.
 *
 * The core decodes the mechanism; the auth hook's plugins read the mechanism, the
 * authentication identity and the password and answer OK (authenticated, 235), DENY (535
 * 5.7.8), DENYSOFT (454 4.7.0) or DECLINED (the next plugin; when nobody accepts: 535). A
 * failure is answered after auth_failure_delay, doubled for each further failure (at most
 * AUTH_DELAY_MAX seconds, on a timer: the worker never blocks); failure auth_max_failures gets
 * 421 and the connection is closed. An authorization identity other than the authentication
 * identity is refused. Secrets are never logged; the password and the lines that carried it
 * are wiped from memory when the verdict is in.
 *
 * Fatal: out of memory. Memory: struct auth_exchange belongs to its session
 * (auth_exchange_free). Strings from the accessors are borrowed from the session.
 */
#ifndef PORTER_AUTH_H
#define PORTER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct porter_session;

#define AUTH_LINE_MAX 12288     /* RFC 4954 section 4: AUTH command and response lines */
#define AUTH_IDENTITY_MAX 255   /* octets of an authentication or authorization identity */
#define AUTH_PASSWORD_MAX 1024  /* octets of a password */
#define AUTH_DELAY_MAX 60.0     /* seconds: the longest delay before a 535 */

enum auth_mechanism {
    AUTH_MECHANISM_PLAIN = 0,
    AUTH_MECHANISM_LOGIN,
    AUTH_MECHANISM_COUNT
};
/* auth_mechanism_name - "PLAIN", "LOGIN"; "invalid" out of range */
const char *auth_mechanism_name(int mechanism);
/* auth_mechanism_from_name - the mechanism named by length octets (any case), or -1 */
int auth_mechanism_from_name(const char *name, size_t length);

/* Where an AUTH exchange is. */
enum auth_stage {
    AUTH_STAGE_IDLE = 0,   /* no exchange */
    AUTH_STAGE_PLAIN,      /* "334 " sent: waiting for the PLAIN message */
    AUTH_STAGE_USERNAME,   /* LOGIN: "334 VXNlcm5hbWU6" sent */
    AUTH_STAGE_PASSWORD,   /* LOGIN: "334 UGFzc3dvcmQ6" sent */
    AUTH_STAGE_HOOK,       /* the auth hook runs */
    AUTH_STAGE_DELAY,      /* a failure waits for its reply */
    AUTH_STAGE_COUNT
};
const char *auth_stage_name(int stage);

/*
 * auth_base64_decode - strict base64 (RFC 4648 section 4): length a multiple of 4, the
 * standard alphabet, '=' only as final padding, unused bits zero, no spaces. Writes at most
 * out_size octets; returns their count, or -1 for malformed input or too little room. An
 * empty input decodes to 0 octets. Pure.
 */
long auth_base64_decode(const char *in, size_t length, unsigned char *out, size_t out_size);

/* The three parts of a PLAIN message, pointing into the decoded data (not NUL-terminated). */
struct auth_plain {
    const char *authzid;
    size_t authzid_length;  /* 0: none */
    const char *authcid;
    size_t authcid_length;
    const char *password;
    size_t password_length;
};

/*
 * auth_plain_parse - "[authzid] NUL authcid NUL passwd" (RFC 4616): exactly two NULs, an
 * authcid and an authzid (if any) that pass auth_identity_valid, a password of 1 to
 * AUTH_PASSWORD_MAX octets. 0 with out filled, or -1. Pure.
 */
int auth_plain_parse(const unsigned char *data, size_t length, struct auth_plain *out);

/* auth_identity_valid - 1 to AUTH_IDENTITY_MAX octets of well-formed UTF-8 without control
 * characters, '"' or '\\' (identities appear in logs and headers). Pure. */
bool auth_identity_valid(const char *text, size_t length);

/* ---- the session side ---- */

struct auth_exchange;
void auth_exchange_free(struct auth_exchange *a);

/* auth_offered - whether EHLO lists AUTH now: a plugin handles the auth hook, and TLS is on
 * or the configuration allows AUTH without it */
bool auth_offered(const struct porter_session *s);
/* The EHLO keyword line. */
#define AUTH_EHLO_KEYWORD "AUTH PLAIN LOGIN"

/* auth_check - the AUTH command: -1 refused (replied), 1 a 334 was sent, 0 run the auth hook.
 * The command argument (which may carry a password) is wiped and replaced by the mechanism. */
int auth_check(struct porter_session *s, const char *argument);
/* auth_proceed - the auth hook's verdict */
void auth_proceed(struct porter_session *s, int rc);
/* auth_wants_line - the next input line answers a 334 */
bool auth_wants_line(const struct porter_session *s);
/* auth_line - that line (CRLF removed); wiped afterwards */
void auth_line(struct porter_session *s, char *line, size_t length);
/* auth_cancel - end a 334 exchange without a verdict (its line was refused already) */
void auth_cancel(struct porter_session *s);
/* auth_paused - a failure's delay runs: the session reads no commands meanwhile */
bool auth_paused(const struct porter_session *s);
/* auth_forget - STARTTLS: drop the authenticated identity and any exchange */
void auth_forget(struct porter_session *s);

/* For the plugin API: the mechanism (in the auth hook, or the one that succeeded), the
 * authentication identity and the password (both only in the auth hook); NULL otherwise. */
const char *auth_mechanism_current(const struct porter_session *s);
const char *auth_username_current(const struct porter_session *s);
const char *auth_password_current(const struct porter_session *s);

#endif
