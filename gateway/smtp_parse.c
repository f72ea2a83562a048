/*
 * smtp_parse.c - SMTP command line, path, ESMTP parameter, BDAT, xtext and HELO argument
 * parsing (see smtp_parse.h for the grammar accepted and the reply codes chosen).
 *
 * Interface: smtp_parse_command, smtp_parse_path, smtp_path_clear, smtp_path_param,
 * smtp_parse_bdat, smtp_xtext_decode, smtp_domain_valid, smtp_utf8_valid, smtp_verb_name,
 * smtp_path_kind_name.
 *
 * How paths are parsed: one pass over the argument with a cursor decides the structure
 * (RFC 5321 section 4.1.2), treating every octet >= 0x80 as a letter wherever RFC 6531 allows
 * UTF8-non-ascii (atext, qtextSMTP, sub-domain labels, esmtp-value). Only once the whole
 * command is known - including an SMTPUTF8 parameter on MAIL - is non-ASCII judged: refused
 * with 553 5.6.7 without SMTPUTF8, or checked for well-formed UTF-8 with it. Character
 * classes are explicit ASCII ranges, never <ctype.h>, so a locale cannot widen them.
 *
 * Pure: no I/O, no globals except constant tables. Fatal: out of memory (memory.h). Memory:
 * the strings of a struct smtp_path belong to the caller (smtp_path_clear); error texts are
 * static.
 */
#include "config.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "memory.h"
#include "smtp_parse.h"

/* ---------------------------------------------------------------- names */

static const char *const smtp_verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = "UNKNOWN", [SMTP_VERB_HELO] = "HELO", [SMTP_VERB_EHLO] = "EHLO",
    [SMTP_VERB_MAIL] = "MAIL",       [SMTP_VERB_RCPT] = "RCPT", [SMTP_VERB_DATA] = "DATA",
    [SMTP_VERB_BDAT] = "BDAT",       [SMTP_VERB_RSET] = "RSET", [SMTP_VERB_NOOP] = "NOOP",
    [SMTP_VERB_QUIT] = "QUIT",       [SMTP_VERB_VRFY] = "VRFY", [SMTP_VERB_EXPN] = "EXPN",
    [SMTP_VERB_HELP] = "HELP",       [SMTP_VERB_STARTTLS] = "STARTTLS",
    [SMTP_VERB_AUTH] = "AUTH",       [SMTP_VERB_XCLIENT] = "XCLIENT",
};

const char *smtp_verb_name(enum smtp_verb verb)
{
    if ((unsigned)verb >= SMTP_VERB_COUNT)
        return "INVALID";
    return smtp_verb_names[verb];
}

static const char *const smtp_path_kind_names[SMTP_PATH_KIND_COUNT] = {
    [SMTP_PATH_REVERSE] = "reverse",
    [SMTP_PATH_FORWARD] = "forward",
};

const char *smtp_path_kind_name(enum smtp_path_kind kind)
{
    if ((unsigned)kind >= SMTP_PATH_KIND_COUNT)
        return "invalid";
    return smtp_path_kind_names[kind];
}

/* ---------------------------------------------------------------- character classes */

static bool is_ascii_alpha(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool is_ascii_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_ascii_alnum(unsigned char ch)
{
    return is_ascii_alpha(ch) || is_ascii_digit(ch);
}

static bool is_8bit(unsigned char ch)
{
    return ch >= 0x80;
}

/* is_atext - RFC 5322 atext (ASCII part): letters, digits and !#$%&'*+-/=?^_`{|}~ */
static bool is_atext(unsigned char ch)
{
    if (is_ascii_alnum(ch))
        return true;
    switch (ch) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
        return true;
    default:
        return false;
    }
}

/* is_dcontent - RFC 5321 dcontent: %d33-90 / %d94-126 (printable except "[", "\", "]") */
static bool is_dcontent(unsigned char ch)
{
    return (ch >= 33 && ch <= 90) || (ch >= 94 && ch <= 126);
}

/* is_esmtp_value_ascii - RFC 5321 esmtp-value octet: %d33-60 / %d62-126 (printable but "=") */
static bool is_esmtp_value_ascii(unsigned char ch)
{
    return ch >= 33 && ch <= 126 && ch != '=';
}

static bool has_8bit(const unsigned char *p, size_t length)
{
    for (size_t i = 0; i < length; i++)
        if (is_8bit(p[i]))
            return true;
    return false;
}

/* ---------------------------------------------------------------- UTF-8 */

/* utf8_sequence_length - octets of the well-formed UTF-8 sequence at p (left > 0), or 0 */
static size_t utf8_sequence_length(const unsigned char *p, size_t left)
{
    unsigned char lead = p[0];
    if (lead < 0x80)
        return 1;
    size_t need;
    unsigned char low = 0x80, high = 0xbf; /* allowed range of the second octet */
    if (lead >= 0xc2 && lead <= 0xdf) {
        need = 2;
    } else if (lead == 0xe0) {
        need = 3;
        low = 0xa0; /* below is overlong */
    } else if (lead == 0xed) {
        need = 3;
        high = 0x9f; /* above is a surrogate */
    } else if (lead >= 0xe1 && lead <= 0xef) {
        need = 3;
    } else if (lead == 0xf0) {
        need = 4;
        low = 0x90; /* below is overlong */
    } else if (lead >= 0xf1 && lead <= 0xf3) {
        need = 4;
    } else if (lead == 0xf4) {
        need = 4;
        high = 0x8f; /* above is past U+10FFFF */
    } else {
        return 0; /* continuation octet, C0, C1, F5-FF */
    }
    if (left < need)
        return 0;
    if (p[1] < low || p[1] > high)
        return 0;
    for (size_t i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return need;
}

bool smtp_utf8_valid(const char *text, size_t length)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < length) {
        size_t n = utf8_sequence_length(p + i, length - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* ---------------------------------------------------------------- command line */

int smtp_parse_command(const char *line, size_t length, struct smtp_command *out)
{
    out->verb = SMTP_VERB_UNKNOWN;
    out->argument = "";
    out->argument_length = 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -1;
    }
    size_t end = length;
    while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    if (end == 0)
        return -1;
    size_t verb_length = 0;
    while (verb_length < end && line[verb_length] != ' ')
        verb_length++;
    for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
        if (strlen(smtp_verb_names[v]) == verb_length &&
            strncasecmp(line, smtp_verb_names[v], verb_length) == 0) {
            out->verb = (enum smtp_verb)v;
            break;
        }
    }
    size_t start = verb_length;
    while (start < end && line[start] == ' ')
        start++;
    if (start < end) {
        out->argument = line + start;
        out->argument_length = end - start;
    }
    return 0;
}

/* ---------------------------------------------------------------- path grammar */

/* A cursor over the bytes being parsed; p never passes end. */
struct cursor {
    const unsigned char *p;
    const unsigned char *end;
};

static bool cursor_at(const struct cursor *c, unsigned char ch)
{
    return c->p < c->end && *c->p == ch;
}

/* scan_dot_string - Dot-string = Atom *("." Atom), atext or non-ASCII octets */
static bool scan_dot_string(struct cursor *c)
{
    for (;;) {
        const unsigned char *start = c->p;
        while (c->p < c->end && (is_atext(*c->p) || is_8bit(*c->p)))
            c->p++;
        if (c->p == start)
            return false; /* empty atom: leading, doubled or trailing dot */
        if (!cursor_at(c, '.'))
            return true;
        c->p++;
    }
}

/*
 * scan_quoted_string - DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE, where qtextSMTP is
 * %d32-33 / %d35-91 / %d93-126 (and non-ASCII) and quoted-pairSMTP is "\" %d32-126
 */
static bool scan_quoted_string(struct cursor *c)
{
    if (!cursor_at(c, '"'))
        return false;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch == '\\') {
            if (c->p + 1 >= c->end || c->p[1] < 32 || c->p[1] > 126)
                return false;
            c->p += 2;
        } else if ((ch >= 32 && ch <= 126) || is_8bit(ch)) {
            c->p++;
        } else {
            return false;
        }
    }
    return false;
}

/*
 * scan_label - sub-domain = Let-dig [Ldh-str]: letters, digits (non-ASCII counts as a letter),
 * hyphens inside only; an ASCII label has at most 63 octets. underscore: HELO leniency.
 */
static bool scan_label(struct cursor *c, bool underscore)
{
    const unsigned char *start = c->p;
    bool ascii = true;
    while (c->p < c->end) {
        unsigned char ch = *c->p;
        if (is_8bit(ch))
            ascii = false;
        else if (!is_ascii_alnum(ch) && ch != '-' && !(underscore && ch == '_'))
            break;
        c->p++;
    }
    size_t length = (size_t)(c->p - start);
    if (length == 0 || start[0] == '-' || c->p[-1] == '-')
        return false;
    return !ascii || length <= 63;
}

/* scan_domain - Domain = sub-domain *("." sub-domain); stops before anything else */
static bool scan_domain(struct cursor *c, bool underscore)
{
    for (;;) {
        if (!scan_label(c, underscore))
            return false;
        if (!cursor_at(c, '.') || c->p + 1 >= c->end ||
            !(is_ascii_alnum(c->p[1]) || is_8bit(c->p[1]) || c->p[1] == '-' ||
              (underscore && c->p[1] == '_')))
            return true; /* the dot, if any, is not followed by a label: the caller judges */
        c->p++;
    }
}

/* literal_is_ipv4_shaped - only digits and dots: an IPv4-address-literal or nothing */
static bool literal_is_ipv4_shaped(const unsigned char *p, size_t length)
{
    for (size_t i = 0; i < length; i++)
        if (!is_ascii_digit(p[i]) && p[i] != '.')
            return false;
    return true;
}

/* literal_content_valid - inside "[...]": IPv4, "IPv6:" IPv6-addr, or Standardized-tag ":" ... */
static bool literal_content_valid(const unsigned char *p, size_t length)
{
    char text[INET6_ADDRSTRLEN + 8];
    unsigned char binary[sizeof(struct in6_addr)];
    if (length >= 5 && strncasecmp((const char *)p, "IPv6:", 5) == 0) {
        if (length - 5 >= sizeof text)
            return false;
        memcpy(text, p + 5, length - 5);
        text[length - 5] = '\0';
        return inet_pton(AF_INET6, text, binary) == 1;
    }
    if (literal_is_ipv4_shaped(p, length)) {
        if (length >= sizeof text)
            return false;
        memcpy(text, p, length);
        text[length] = '\0';
        return inet_pton(AF_INET, text, binary) == 1;
    }
    /* An IPv6 address without its "IPv6:" tag is a client's mistake, not a general literal. */
    if (length < sizeof text) {
        memcpy(text, p, length);
        text[length] = '\0';
        if (inet_pton(AF_INET6, text, binary) == 1)
            return false;
    }
    /* General-address-literal: Ldh-str ":" 1*dcontent (dcontent already checked) */
    const unsigned char *colon = memchr(p, ':', length);
    if (colon == NULL || colon == p || colon + 1 == p + length)
        return false;
    for (const unsigned char *q = p; q < colon; q++)
        if (!is_ascii_alnum(*q) && *q != '-')
            return false;
    return colon[-1] != '-';
}

/* scan_address_literal - "[" content "]" with the content checked as above */
static bool scan_address_literal(struct cursor *c)
{
    if (!cursor_at(c, '['))
        return false;
    const unsigned char *start = ++c->p;
    while (c->p < c->end && is_dcontent(*c->p))
        c->p++;
    if (!cursor_at(c, ']'))
        return false;
    size_t length = (size_t)(c->p - start);
    c->p++;
    return length > 0 && literal_content_valid(start, length);
}

/* scan_domain_or_literal - Domain / address-literal */
static bool scan_domain_or_literal(struct cursor *c)
{
    if (cursor_at(c, '['))
        return scan_address_literal(c);
    return scan_domain(c, false);
}

/* scan_source_route - A-d-l ":" = At-domain *("," At-domain) ":"; each hop may be a literal */
static bool scan_source_route(struct cursor *c)
{
    for (;;) {
        if (!cursor_at(c, '@'))
            return false;
        c->p++;
        if (!scan_domain_or_literal(c))
            return false;
        if (cursor_at(c, ':')) {
            c->p++;
            return true;
        }
        if (!cursor_at(c, ','))
            return false;
        c->p++;
    }
}

/* ---------------------------------------------------------------- path errors */

/* What was wrong with a path; each has a sender and a recipient text. */
enum path_problem {
    PATH_PROBLEM_PREFIX = 0,
    PATH_PROBLEM_BRACKETS,
    PATH_PROBLEM_NULL,
    PATH_PROBLEM_ROUTE,
    PATH_PROBLEM_LOCAL_PART,
    PATH_PROBLEM_NO_DOMAIN,
    PATH_PROBLEM_DOMAIN,
    PATH_PROBLEM_AFTER_PATH,
    PATH_PROBLEM_LOCAL_PART_LONG,
    PATH_PROBLEM_DOMAIN_LONG,
    PATH_PROBLEM_PATH_LONG,
    PATH_PROBLEM_UTF8_MALFORMED,
    PATH_PROBLEM_COUNT
};

static const char *const path_problem_texts[SMTP_PATH_KIND_COUNT][PATH_PROBLEM_COUNT] = {
    [SMTP_PATH_REVERSE] = {
        [PATH_PROBLEM_PREFIX] = "Syntax: MAIL FROM:<address>",
        [PATH_PROBLEM_BRACKETS] = "Bad sender address syntax: <address> expected",
        [PATH_PROBLEM_NULL] = "Bad sender address syntax",
        [PATH_PROBLEM_ROUTE] = "Bad sender address syntax in source route",
        [PATH_PROBLEM_LOCAL_PART] = "Bad sender address syntax in local part",
        [PATH_PROBLEM_NO_DOMAIN] = "Bad sender address syntax: domain required",
        [PATH_PROBLEM_DOMAIN] = "Bad sender address syntax in domain",
        [PATH_PROBLEM_AFTER_PATH] = "Bad sender address syntax: space expected after >",
        [PATH_PROBLEM_LOCAL_PART_LONG] = "Sender local part too long",
        [PATH_PROBLEM_DOMAIN_LONG] = "Sender domain too long",
        [PATH_PROBLEM_PATH_LONG] = "Sender path too long",
        [PATH_PROBLEM_UTF8_MALFORMED] = "Bad sender address: malformed UTF-8",
    },
    [SMTP_PATH_FORWARD] = {
        [PATH_PROBLEM_PREFIX] = "Syntax: RCPT TO:<address>",
        [PATH_PROBLEM_BRACKETS] = "Bad recipient address syntax: <address> expected",
        [PATH_PROBLEM_NULL] = "Bad recipient address syntax: <> is only a sender",
        [PATH_PROBLEM_ROUTE] = "Bad recipient address syntax in source route",
        [PATH_PROBLEM_LOCAL_PART] = "Bad recipient address syntax in local part",
        [PATH_PROBLEM_NO_DOMAIN] = "Bad recipient address syntax: domain required",
        [PATH_PROBLEM_DOMAIN] = "Bad recipient address syntax in domain",
        [PATH_PROBLEM_AFTER_PATH] = "Bad recipient address syntax: space expected after >",
        [PATH_PROBLEM_LOCAL_PART_LONG] = "Recipient local part too long",
        [PATH_PROBLEM_DOMAIN_LONG] = "Recipient domain too long",
        [PATH_PROBLEM_PATH_LONG] = "Recipient path too long",
        [PATH_PROBLEM_UTF8_MALFORMED] = "Bad recipient address: malformed UTF-8",
    },
};

static void set_error(struct smtp_parse_error *error, int code, const char *enhanced,
                      const char *text)
{
    error->code = code;
    error->enhanced = enhanced;
    error->text = text;
}

/* path_error - a 501 for a path problem: 5.5.4 for a missing prefix, else 5.1.7 / 5.1.3 */
static int path_error(struct smtp_parse_error *error, enum smtp_path_kind kind,
                      enum path_problem problem)
{
    const char *enhanced = problem == PATH_PROBLEM_PREFIX     ? "5.5.4"
                           : kind == SMTP_PATH_REVERSE ? "5.1.7"
                                                       : "5.1.3";
    set_error(error, 501, enhanced, path_problem_texts[kind][problem]);
    return -1;
}

/* param_error - a 501 5.5.4 for a parameter problem */
static int param_error(struct smtp_parse_error *error, const char *text)
{
    set_error(error, 501, "5.5.4", text);
    return -1;
}

/* ---------------------------------------------------------------- paths */

void smtp_path_clear(struct smtp_path *path)
{
    if (path == NULL)
        return;
    free(path->address);
    free(path->local_part);
    free(path->domain);
    for (size_t i = 0; i < path->param_count && i < SMTP_PARAM_MAX; i++) {
        free(path->params[i].keyword);
        free(path->params[i].value);
    }
    memset(path, 0, sizeof *path);
}

const char *smtp_path_param(const struct smtp_path *path, const char *keyword)
{
    if (path == NULL || keyword == NULL)
        return NULL;
    for (size_t i = 0; i < path->param_count && i < SMTP_PARAM_MAX; i++)
        if (strcasecmp(path->params[i].keyword, keyword) == 0)
            return path->params[i].value != NULL ? path->params[i].value : "";
    return NULL;
}

/* Where the pieces of a parsed path lie in the argument. */
struct path_spans {
    const unsigned char *open;        /* "<" */
    const unsigned char *close;       /* ">" */
    const unsigned char *mailbox;     /* first octet of the local part (after any route) */
    const unsigned char *local_end;   /* one past the local part */
    const unsigned char *domain;      /* first octet of the domain, NULL when none */
};

/*
 * parse_path_structure - "<" [ A-d-l ":" ] Mailbox ">" or "<>" (reverse) or "<postmaster>"
 * (forward) from c; fills spans and leaves c after ">". -1 with error.
 */
static int parse_path_structure(struct cursor *c, enum smtp_path_kind kind,
                                struct path_spans *spans, struct smtp_parse_error *error)
{
    memset(spans, 0, sizeof *spans);
    if (!cursor_at(c, '<'))
        return path_error(error, kind, PATH_PROBLEM_BRACKETS);
    spans->open = c->p++;
    if (cursor_at(c, '>')) {
        if (kind != SMTP_PATH_REVERSE)
            return path_error(error, kind, PATH_PROBLEM_NULL);
        spans->mailbox = spans->local_end = c->p;
        spans->close = c->p++;
        return 0;
    }
    bool routed = cursor_at(c, '@');
    if (routed && !scan_source_route(c))
        return path_error(error, kind, PATH_PROBLEM_ROUTE);
    spans->mailbox = c->p;
    bool quoted = cursor_at(c, '"');
    if (!(quoted ? scan_quoted_string(c) : scan_dot_string(c)))
        return path_error(error, kind, PATH_PROBLEM_LOCAL_PART);
    spans->local_end = c->p;
    if (cursor_at(c, '>')) {
        size_t local_length = (size_t)(spans->local_end - spans->mailbox);
        bool postmaster = kind == SMTP_PATH_FORWARD && !routed && local_length == 10 &&
                          strncasecmp((const char *)spans->mailbox, "postmaster", 10) == 0;
        if (!postmaster)
            return path_error(error, kind, PATH_PROBLEM_NO_DOMAIN);
        spans->close = c->p++;
        return 0;
    }
    if (!cursor_at(c, '@'))
        return path_error(error, kind, PATH_PROBLEM_LOCAL_PART);
    c->p++;
    spans->domain = c->p;
    if (!scan_domain_or_literal(c) || !cursor_at(c, '>'))
        return path_error(error, kind, PATH_PROBLEM_DOMAIN);
    spans->close = c->p++;
    return 0;
}

/* parse_params - *(1*SP esmtp-param) *SP after the path; -1 with error. Sets params_utf8. */
static int parse_params(struct cursor *c, struct smtp_path *out, struct smtp_parse_error *error)
{
    while (c->p < c->end) {
        if (*c->p != ' ')
            return param_error(error, "Syntax error in parameters: space expected");
        while (cursor_at(c, ' '))
            c->p++;
        if (c->p == c->end)
            break;
        const unsigned char *keyword = c->p;
        if (!is_ascii_alnum(*c->p))
            return param_error(error, "Syntax error in parameter keyword");
        while (c->p < c->end && (is_ascii_alnum(*c->p) || *c->p == '-'))
            c->p++;
        size_t keyword_length = (size_t)(c->p - keyword);
        const unsigned char *value = NULL;
        size_t value_length = 0;
        if (cursor_at(c, '=')) {
            value = ++c->p;
            while (c->p < c->end && *c->p != ' ') {
                if (!is_esmtp_value_ascii(*c->p) && !is_8bit(*c->p))
                    return param_error(error, "Syntax error in parameter value");
                c->p++;
            }
            value_length = (size_t)(c->p - value);
            if (value_length == 0)
                return param_error(error, "Parameter value missing after =");
            if (has_8bit(value, value_length))
                out->params_utf8 = true;
        } else if (c->p < c->end && *c->p != ' ') {
            return param_error(error, "Syntax error in parameter keyword");
        }
        for (size_t i = 0; i < out->param_count; i++)
            if (strlen(out->params[i].keyword) == keyword_length &&
                strncasecmp(out->params[i].keyword, (const char *)keyword, keyword_length) == 0)
                return param_error(error, "Duplicate parameter");
        if (out->param_count >= SMTP_PARAM_MAX)
            return param_error(error, "Too many parameters");
        struct smtp_param *param = &out->params[out->param_count++];
        param->keyword = xstrndup((const char *)keyword, keyword_length);
        for (char *p = param->keyword; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        param->value = value != NULL ? xstrndup((const char *)value, value_length) : NULL;
    }
    return 0;
}

/* check_path_lengths - RFC 5321 section 4.5.3.1 sizes against the caller's limits */
static int check_path_lengths(const struct path_spans *spans, enum smtp_path_kind kind,
                              const struct smtp_parse_limits *limits,
                              struct smtp_parse_error *error)
{
    size_t local_length = (size_t)(spans->local_end - spans->mailbox);
    size_t domain_length = spans->domain != NULL ? (size_t)(spans->close - spans->domain) : 0;
    size_t path_length = (size_t)(spans->close - spans->open) + 1;
    if (local_length > limits->max_local_part)
        return path_error(error, kind, PATH_PROBLEM_LOCAL_PART_LONG);
    if (domain_length > limits->max_domain)
        return path_error(error, kind, PATH_PROBLEM_DOMAIN_LONG);
    if (path_length > limits->max_path)
        return path_error(error, kind, PATH_PROBLEM_PATH_LONG);
    return 0;
}

/* check_non_ascii - RFC 6531: non-ASCII needs SMTPUTF8 and must be well-formed UTF-8 */
static int check_non_ascii(const struct path_spans *spans, enum smtp_path_kind kind,
                           bool allow_utf8, const struct smtp_path *out,
                           struct smtp_parse_error *error)
{
    const unsigned char *inside = spans->open + 1;
    size_t inside_length = (size_t)(spans->close - inside);
    if (out->utf8) {
        if (!allow_utf8) {
            set_error(error, 553, "5.6.7", "Non-ASCII addresses not permitted without SMTPUTF8");
            return -1;
        }
        if (!smtp_utf8_valid((const char *)inside, inside_length))
            return path_error(error, kind, PATH_PROBLEM_UTF8_MALFORMED);
    }
    if (out->params_utf8) {
        if (!allow_utf8)
            return param_error(error, "Non-ASCII parameter value requires SMTPUTF8");
        for (size_t i = 0; i < out->param_count; i++) {
            const char *value = out->params[i].value;
            if (value != NULL && !smtp_utf8_valid(value, strlen(value)))
                return param_error(error, "Malformed UTF-8 in parameter value");
        }
    }
    return 0;
}

int smtp_parse_path(const char *argument, size_t length, enum smtp_path_kind kind,
                    const struct smtp_parse_limits *limits, struct smtp_path *out,
                    struct smtp_parse_error *error)
{
    memset(out, 0, sizeof *out);
    if ((unsigned)kind >= SMTP_PATH_KIND_COUNT)
        kind = SMTP_PATH_FORWARD;
    struct smtp_parse_limits defaults = SMTP_PARSE_LIMITS_DEFAULT;
    if (limits == NULL)
        limits = &defaults;

    const char *prefix = kind == SMTP_PATH_REVERSE ? "FROM:" : "TO:";
    size_t prefix_length = strlen(prefix);
    if (length < prefix_length || strncasecmp(argument, prefix, prefix_length) != 0)
        return path_error(error, kind, PATH_PROBLEM_PREFIX);
    struct cursor c = {(const unsigned char *)argument + prefix_length,
                       (const unsigned char *)argument + length};
    if (cursor_at(&c, ' '))
        c.p++; /* one space after the colon, as Postfix tolerates; not two */

    struct path_spans spans;
    if (parse_path_structure(&c, kind, &spans, error) != 0)
        return -1;
    if (c.p < c.end && *c.p != ' ')
        return path_error(error, kind, PATH_PROBLEM_AFTER_PATH);
    if (check_path_lengths(&spans, kind, limits, error) != 0)
        return -1;
    if (parse_params(&c, out, error) != 0) {
        smtp_path_clear(out);
        return -1;
    }
    out->utf8 = has_8bit(spans.open + 1, (size_t)(spans.close - spans.open - 1));
    bool allow_utf8 = limits->allow_utf8 ||
                      (kind == SMTP_PATH_REVERSE && smtp_path_param(out, "SMTPUTF8") != NULL);
    if (check_non_ascii(&spans, kind, allow_utf8, out, error) != 0) {
        smtp_path_clear(out);
        return -1;
    }
    out->address = xstrndup((const char *)spans.mailbox, (size_t)(spans.close - spans.mailbox));
    out->local_part =
        xstrndup((const char *)spans.mailbox, (size_t)(spans.local_end - spans.mailbox));
    out->domain = spans.domain != NULL
                      ? xstrndup((const char *)spans.domain, (size_t)(spans.close - spans.domain))
                      : xstrdup("");
    return 0;
}

/* ---------------------------------------------------------------- small checks */

/* hex_value - an upper-case hex digit's value, or -1 (RFC 3461 allows only upper case) */
static int hex_value(unsigned char ch)
{
    if (is_ascii_digit(ch))
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int smtp_xtext_decode(const char *in, char *out, size_t out_size)
{
    if (in == NULL || out == NULL || out_size == 0)
        return -1;
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
        unsigned char ch = *p;
        if (ch == '+') {
            int high = hex_value(p[1]);
            int low = high >= 0 ? hex_value(p[2]) : -1;
            if (low < 0)
                return -1;
            ch = (unsigned char)(high * 16 + low);
            if (ch == '\0')
                return -1;
            p += 2;
        } else if (ch < 33 || ch > 126 || ch == '=') {
            return -1;
        }
        if (used + 1 >= out_size || used >= INT_MAX)
            return -1;
        out[used++] = (char)ch;
    }
    out[used] = '\0';
    return (int)used;
}

bool smtp_domain_valid(const char *name, bool allow_utf8)
{
    if (name == NULL)
        return false;
    size_t length = strnlen(name, 256);
    if (length == 0 || length > 255)
        return false;
    struct cursor c = {(const unsigned char *)name, (const unsigned char *)name + length};
    if (name[0] == '[') {
        if (!scan_address_literal(&c))
            return false;
    } else {
        if (!scan_domain(&c, true))
            return false;
        if (cursor_at(&c, '.'))
            c.p++; /* one final dot: "host.example.com." */
    }
    if (c.p != c.end)
        return false;
    if (has_8bit((const unsigned char *)name, length))
        return allow_utf8 && smtp_utf8_valid(name, length);
    return true;
}

int smtp_parse_bdat(const char *argument, size_t length, unsigned long long *size, bool *last)
{
    size_t i = 0;
    unsigned long long value = 0;
    while (i < length && is_ascii_digit((unsigned char)argument[i])) {
        unsigned digit = (unsigned)(argument[i] - '0');
        if (i >= 20 || value > (ULLONG_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
        i++;
    }
    if (i == 0)
        return -1;
    bool is_last = false;
    if (i < length && argument[i] != ' ')
        return -1;
    while (i < length && argument[i] == ' ')
        i++;
    if (i < length) {
        if (length - i < 4 || strncasecmp(argument + i, "LAST", 4) != 0)
            return -1;
        is_last = true;
        i += 4;
        while (i < length && argument[i] == ' ')
            i++;
        if (i < length)
            return -1;
    }
    *size = value;
    *last = is_last;
    return 0;
}

/* ---------------------------------------------------------------- domains of addresses */

const char *smtp_address_domain(const char *address)
{
    const char *at = address != NULL ? strrchr(address, '@') : NULL;
    return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

/* smtp_domain_length - length without one final dot */
static size_t smtp_domain_length(const char *name)
{
    size_t length = strlen(name);
    return length > 0 && name[length - 1] == '.' ? length - 1 : length;
}

bool smtp_domain_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return false;
    size_t length = smtp_domain_length(a);
    return length == smtp_domain_length(b) && strncasecmp(a, b, length) == 0;
}

bool smtp_domain_within(const char *domain, const char *parent)
{
    if (domain == NULL || parent == NULL)
        return false;
    size_t length = smtp_domain_length(domain), parent_length = smtp_domain_length(parent);
    if (parent_length == 0 || length < parent_length)
        return false;
    const char *tail = domain + length - parent_length;
    return strncasecmp(tail, parent, parent_length) == 0 &&
           (tail == domain || tail[-1] == '.');
}
