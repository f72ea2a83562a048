/*
 * smtp_parse.h - pure parsers for SMTP command lines: RFC 5321 section 4.1 (commands, paths,
 * ESMTP parameters), RFC 6531 (SMTPUTF8 addresses), RFC 3461 (xtext), RFC 3030 (BDAT).
 *
 * Interface:
 *   smtp_parse_command  splits one line into verb and argument (pointers into the caller's line)
 *   smtp_parse_path     the argument of MAIL / RCPT into address parts and ESMTP parameters
 *   smtp_path_clear     frees what smtp_parse_path filled in
 *   smtp_path_param     looks up one parameter
 *   smtp_parse_bdat     the argument of BDAT
 *   smtp_xtext_decode   RFC 3461 xtext (ENVID, ORCPT)
 *   smtp_domain_valid   a HELO / EHLO argument
 *   smtp_utf8_valid     well-formed UTF-8 (no overlongs, surrogates, or code points > U+10FFFF)
 *
 * Pure: no I/O, no globals, no logging; every input is untrusted and every length is bounded by
 * the caller's length argument or a limit in struct smtp_parse_limits. Fatal: out of memory only
 * (memory.h). Memory: smtp_parse_command returns pointers into the caller's line;
 * smtp_parse_path allocates the strings in struct smtp_path, which the caller owns and frees
 * with smtp_path_clear. Error texts are static strings.
 *
 * What smtp_parse_path accepts (RFC 5321 section 4.1.2, RFC 6531 section 3.3):
 *   "FROM:" / "TO:" in any case, then at most ONE space (common in the wild; Postfix tolerates
 *   it), then the path in angle brackets. "<>" only for MAIL; "<postmaster>" (any case) without
 *   a domain only for RCPT. A source route "@a,@b:" before the mailbox is accepted and dropped
 *   (each hop a domain or an address literal). Local-part: Dot-string or Quoted-string (quoted
 *   pairs %d92 %d32-126, qtextSMTP); kept as written, quotes included. Domain: dot-separated
 *   labels of letters, digits and hyphens (no hyphen first or last, ASCII labels at most 63
 *   octets, no final dot) or an address literal: "[IPv4]", "[IPv6:...]" (inet_pton) or a
 *   General-address-literal "[tag:content]" (an IPv6 address without its "IPv6:" tag, such as
 *   "[2001:db8::1]", is refused rather than read as tag "2001"). Parameters follow the
 *   closing ">" after spaces: esmtp-keyword (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") and an
 *   optional "=" esmtp-value of 1*(%d33-60 / %d62-126). Spaces: one or more between
 *   parameters, and trailing spaces, are tolerated; a TAB anywhere (even quoted) is an error.
 *   Lengths are octets: local part <= max_local_part, domain <= max_domain, and the path from
 *   "<" to ">" inclusive (source route included) <= max_path (RFC 5321 section 4.5.3.1).
 *
 * Non-ASCII (RFC 6531): UTF-8 is allowed in the local part, domain labels (U-labels; no IDNA
 * checks beyond well-formed UTF-8) and parameter values when limits->allow_utf8 is set, or,
 * for MAIL, when the same command carries the SMTPUTF8 parameter (so the caller may pass
 * allow_utf8 = false for MAIL and let the parser see the parameter). path->utf8 tells whether
 * the path between the brackets has non-ASCII octets, path->params_utf8 whether a parameter
 * value has.
 *
 * Reply codes for smtp_parse_path failures (struct smtp_parse_error):
 *   501 5.5.4  "FROM:" / "TO:" missing (Postfix answers the same)
 *   501 5.1.7  bad sender address syntax, or a sender path / local part / domain too long (MAIL)
 *   501 5.1.3  the same for a recipient, and "<>" in RCPT (RCPT)
 *   553 5.6.7  an address with any non-ASCII octet while UTF-8 is not allowed
 *              (RFC 6531 section 3.7.4.1: 553 "mailbox name not allowed" with X.6.7)
 *   501 5.1.7 / 5.1.3  non-ASCII that is not well-formed UTF-8 while UTF-8 is allowed
 *   501 5.5.4  malformed ESMTP parameters: bad keyword, "KEY=" with no value, bad value octet,
 *              non-ASCII value without SMTPUTF8, duplicate keyword, more than SMTP_PARAM_MAX
 * The parser does not know which parameters the server supports: for a well-formed but
 * unsupported keyword the CALLER answers 555 5.5.4 (RFC 5321 section 4.1.1.11).
 * Checks run in this order: prefix, path syntax, lengths, parameter syntax, non-ASCII.
 */
#ifndef PORTER_SMTP_PARSE_H
#define PORTER_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* The commands the gateway knows; the names in smtp_verb_name are their wire spelling. */
enum smtp_verb {
    SMTP_VERB_UNKNOWN = 0,
    SMTP_VERB_HELO,
    SMTP_VERB_EHLO,
    SMTP_VERB_MAIL,
    SMTP_VERB_RCPT,
    SMTP_VERB_DATA,
    SMTP_VERB_BDAT,
    SMTP_VERB_RSET,
    SMTP_VERB_NOOP,
    SMTP_VERB_QUIT,
    SMTP_VERB_VRFY,
    SMTP_VERB_EXPN,
    SMTP_VERB_HELP,
    SMTP_VERB_STARTTLS,
    SMTP_VERB_AUTH,
    SMTP_VERB_XCLIENT,
    SMTP_VERB_COUNT
};

/* smtp_verb_name - "MAIL", "RCPT", ... "UNKNOWN"; "INVALID" for a value out of range */
const char *smtp_verb_name(enum smtp_verb verb);

struct smtp_command {
    enum smtp_verb verb;
    /*
     * Into the caller's line: the text after the verb and the spaces that follow it, without
     * trailing spaces and TABs; a static "" (not in the line) when there is none. For MAIL
     * and RCPT it still starts with "FROM:" / "TO:" (smtp_parse_path handles that).
     */
    const char *argument;
    size_t argument_length;
};

/*
 * smtp_parse_command - split one command line (without its CRLF) into verb and argument.
 *
 * Trailing spaces and TABs are ignored. The verb is the text before the first space, compared
 * without regard to case; it must be followed by a space or the end of the line, so "MAILX"
 * and "NOOP<TAB>x" are SMTP_VERB_UNKNOWN (a line that starts with a space has an empty verb:
 * unknown too). Returns 0, or -1 when the line is empty (or only spaces and TABs) or contains
 * NUL, CR, LF or any other control character except TAB (DEL included); the caller answers
 * 500 5.5.2. Octets >= 0x80 are allowed (SMTPUTF8 addresses); their checks come later.
 */
int smtp_parse_command(const char *line, size_t length, struct smtp_command *out);

#define SMTP_PARAM_MAX 16

struct smtp_param {
    char *keyword; /* upper-cased */
    char *value;   /* NULL when the parameter has no "=value" (never "") */
};

struct smtp_path {
    char *address;    /* mailbox without angle brackets, source route removed; "" for <> */
    char *local_part; /* as written (quotes kept); "" for <>; "postmaster" as written */
    char *domain;     /* domain or address literal ("[127.0.0.1]"); "" for <> and <postmaster> */
    bool utf8;        /* the path has non-ASCII octets (needs SMTPUTF8) */
    bool params_utf8; /* a parameter value has non-ASCII octets (needs SMTPUTF8) */
    size_t param_count;
    struct smtp_param params[SMTP_PARAM_MAX]; /* in the order the client wrote them */
};

/* Which argument smtp_parse_path reads: MAIL FROM (reverse-path) or RCPT TO (forward-path). */
enum smtp_path_kind { SMTP_PATH_REVERSE = 0, SMTP_PATH_FORWARD, SMTP_PATH_KIND_COUNT };

/* smtp_path_kind_name - "reverse" or "forward" (for logs); "invalid" out of range */
const char *smtp_path_kind_name(enum smtp_path_kind kind);

struct smtp_parse_limits {
    size_t max_local_part; /* octets; RFC 5321 minimum: 64 */
    size_t max_domain;     /* octets; RFC 5321 minimum: 255 */
    size_t max_path;       /* octets from "<" to ">" inclusive; RFC 5321 minimum: 256 */
    bool allow_utf8;       /* SMTPUTF8 is in effect (RCPT in an SMTPUTF8 transaction) */
};

/* The RFC 5321 sizes without SMTPUTF8; smtp_parse_path uses them when limits is NULL. */
#define SMTP_PARSE_LIMITS_DEFAULT                                                              \
    ((struct smtp_parse_limits){                                                               \
        .max_local_part = 64, .max_domain = 255, .max_path = 256, .allow_utf8 = false})

/* Why smtp_parse_path refused: the reply to send. All three point to static data. */
struct smtp_parse_error {
    int code;             /* 501 or 553 */
    const char *enhanced; /* "5.1.7", "5.1.3", "5.5.4" or "5.6.7" */
    const char *text;     /* reply text without code */
};

/*
 * smtp_parse_path - parse the argument of MAIL ("FROM:<path> params") or RCPT ("TO:<path>
 * params"); see the top of this file for the grammar and the reply codes. limits may be NULL
 * (SMTP_PARSE_LIMITS_DEFAULT). On success fills out and returns 0; the caller frees it with
 * smtp_path_clear. On failure returns -1, sets *error and leaves out empty (nothing to free,
 * smtp_path_clear is harmless). out's previous content is overwritten, not freed.
 */
int smtp_parse_path(const char *argument, size_t length, enum smtp_path_kind kind,
                    const struct smtp_parse_limits *limits, struct smtp_path *out,
                    struct smtp_parse_error *error);

/* smtp_path_clear - free a path's strings and zero it; accepts NULL and an empty path */
void smtp_path_clear(struct smtp_path *path);

/*
 * smtp_path_param - a parameter's value by keyword (any case): the value, "" when the
 * parameter is present without a value, NULL when it is absent. Borrowed from path.
 */
const char *smtp_path_param(const struct smtp_path *path, const char *keyword);

/*
 * smtp_xtext_decode - decode RFC 3461 xtext (NUL-terminated in) into out, NUL-terminated.
 * xtext is 1*("!".."~" except "+" and "=") and "+HH" with HH two UPPER-case hex digits. An
 * encoded character that did not need encoding is accepted. Returns the decoded length, or -1
 * when in is malformed (bad octet, bad or short "+HH", "+00" which would end the C string) or
 * the result and its NUL do not fit in out_size. The empty string decodes to "" (returns 0).
 */
int smtp_xtext_decode(const char *in, char *out, size_t out_size);

/*
 * smtp_domain_valid - is name (NUL-terminated) acceptable as a HELO / EHLO argument?
 * Lenient on purpose, for real clients: dot-separated labels of letters, digits, hyphens and
 * underscores (Windows hosts send them), no hyphen first or last in a label, ASCII labels of
 * 1-63 octets, one optional final dot, at most 255 octets in all. A bare IPv4 address passes
 * (its labels are digits); policy about it belongs to plugins. Or an address literal as in
 * smtp_parse_path: "[1.2.3.4]", "[IPv6:...]", "[tag:content]". With allow_utf8, well-formed
 * non-ASCII UTF-8 counts as a letter. No spaces, no other punctuation, no control octets.
 */
bool smtp_domain_valid(const char *name, bool allow_utf8);

/* smtp_address_domain - the domain of local@domain (after the last '@'), NULL when there is
 * no '@' or nothing after it; a pointer into address. Pure. */
const char *smtp_address_domain(const char *address);
/* smtp_domain_equal - the same domain: ASCII letters compared without case, one final dot
 * ignored on either side; false for NULL. Pure. */
bool smtp_domain_equal(const char *a, const char *b);
/* smtp_domain_within - domain is parent or one of its subdomains ("mx.example.com" is within
 * "example.com", "badexample.com" is not); as smtp_domain_equal for case and final dots. */
bool smtp_domain_within(const char *domain, const char *parent);

/*
 * smtp_parse_bdat - the argument of BDAT (RFC 3030): "chunk-size [LAST]". The size is 1-20
 * ASCII digits (leading zeros allowed) that fit in unsigned long long; LAST in any case after
 * one or more spaces; trailing spaces tolerated. Returns 0 and sets *size and *last, or -1 (and
 * leaves them alone) for anything else: the caller cannot know the chunk's length then.
 */
int smtp_parse_bdat(const char *argument, size_t length, unsigned long long *size, bool *last);

/*
 * smtp_utf8_valid - are length octets at text well-formed UTF-8 (RFC 3629)? ASCII included.
 * Rejects stray continuation octets, truncated sequences, overlong forms (C0, C1, E0 80-9F,
 * F0 80-8F), surrogates (ED A0-BF) and code points above U+10FFFF (F4 90+, F5-FF).
 */
bool smtp_utf8_valid(const char *text, size_t length);

#endif
