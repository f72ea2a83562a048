/*
 * policy_parse.h - Postfix's SMTPD access policy delegation protocol (SMTPD_POLICY_README):
 * reading a request (name=value lines ending in an empty line) and writing the answer
 * ("action=..." then an empty line).
 *
 * Interface: pure functions, no I/O, no globals; gateway/policy_listener.c is the user (plus
 * the unit test and the fuzz target). Every input is untrusted and bounded: a line of at most
 * POLICY_LINE_MAX bytes, at most POLICY_ATTRIBUTES_MAX attributes and POLICY_REQUEST_MAX bytes
 * per request.
 * Memory: struct policy_request owns copies of its names and values (policy_request_clear
 * frees them and makes it ready for the next request); policy_request_get returns a string
 * owned by the request. policy_answer_format returns a string the caller frees.
 * Fatal: out of memory only.
 */
#ifndef PORTER_POLICY_PARSE_H
#define PORTER_POLICY_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define POLICY_LINE_MAX 4096        /* bytes of one name=value line without its LF */
#define POLICY_ATTRIBUTES_MAX 64    /* attributes in one request (Postfix sends about 30) */
#define POLICY_REQUEST_MAX 65536    /* bytes of one request */

struct policy_request {
    char *names[POLICY_ATTRIBUTES_MAX];
    char *values[POLICY_ATTRIBUTES_MAX];
    size_t count;
    size_t bytes; /* read so far */
};

/*
 * policy_request_line - one line (without its LF; a CR before it is dropped) into request.
 * Returns 1 when the line was empty and ends a request of at least one attribute, 0 when more
 * lines are needed (an empty line before any attribute is ignored, as Postfix's own servers
 * do), or -1 with *error (static text) when the line is too long, has no '=' or an empty
 * name, holds a NUL or control byte, names an attribute twice, or the request grows past
 * POLICY_ATTRIBUTES_MAX or POLICY_REQUEST_MAX. The caller closes the connection after -1.
 */
int policy_request_line(struct policy_request *request, const char *line, size_t length,
                        const char **error);
/* policy_request_get - value of name; NULL when absent (an attribute may be "") */
const char *policy_request_get(const struct policy_request *request, const char *name);
void policy_request_clear(struct policy_request *request);

/* The protocol states a request names (attribute protocol_state). */
enum policy_state {
    POLICY_STATE_CONNECT = 0,
    POLICY_STATE_EHLO,          /* EHLO and HELO */
    POLICY_STATE_MAIL,
    POLICY_STATE_RCPT,
    POLICY_STATE_DATA,
    POLICY_STATE_END_OF_MESSAGE,
    POLICY_STATE_OTHER,         /* VRFY, ETRN, a state we do not know: answered DUNNO */
    POLICY_STATE_COUNT
};
enum policy_state policy_state_parse(const char *text);
const char *policy_state_name(enum policy_state state);

/*
 * policy_answer_format - "action=TEXT\n\n" for a verdict: keyword one of "DUNNO", "OK",
 * "HOLD", "DISCARD", or NULL for a refusal "CODE ENHANCED TEXT" (code 4xx or 5xx; enhanced
 * may be NULL). The text keeps printable ASCII only (line breaks become "; ", other control
 * and 8-bit bytes '?') and is cut to 400 bytes, so the answer is always one valid line.
 * Caller frees.
 */
char *policy_answer_format(const char *keyword, int code, const char *enhanced, const char *text);

#endif
