/*
 * test_smtp_parse.c - unit tests for gateway/smtp_parse.c (cmocka).
 *
 * Every test is a table; each row that goes wrong prints "got X, want Y" with the input
 * escaped, and the test fails after the whole table ran (so one run shows every mismatch).
 *
 * Covers: command splitting (case, unknown verbs, verbs glued to text, TAB after the verb,
 * trailing blanks, NUL / CR / LF / DEL / other controls, empty lines, 8-bit arguments);
 * MAIL / RCPT paths (prefix case, the one tolerated space after the colon and two rejected,
 * missing brackets, "<>" for MAIL only, "<postmaster>" for RCPT only, dot-strings and quoted
 * local parts with spaces, escaped quotes and backslashes, source routes, domains and address
 * literals IPv4 / IPv6 / general / bad, UTF-8 with and without SMTPUTF8 (the limit flag or the
 * SMTPUTF8 parameter on MAIL), overlong / surrogate / truncated / out-of-range UTF-8, length
 * limits exactly at and one over each limit, trailing spaces and TABs, text after ">");
 * ESMTP parameters (with and without values, keyword case, duplicates, bad keywords and
 * values, non-ASCII values, exactly SMTP_PARAM_MAX and one more); smtp_path_param and
 * smtp_path_clear; xtext decoding; HELO argument checking; BDAT; UTF-8 validation; names.
 */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testlib.h"

#include "smtp_parse.h"

/* ---------------------------------------------------------------- helpers */

/* string_or_null - for printing strings that may be NULL */
static const char *string_or_null(const char *s)
{
    return s != NULL ? s : "(null)";
}

static bool same_string(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* finish_table - fail the test when any row of a table went wrong */
static void finish_table(const char *table, int failures)
{
    if (failures > 0)
        fail_msg("%s: %d row(s) failed (see above)", table, failures);
}

/* ---------------------------------------------------------------- smtp_parse_command */

struct command_case {
    const char *line;
    size_t length; /* 0: strlen(line) */
    int want_rc;
    enum smtp_verb want_verb;
    const char *want_argument;
};

static const struct command_case command_cases[] = {
    {"MAIL FROM:<a@b>", 0, 0, SMTP_VERB_MAIL, "FROM:<a@b>"},
    {"mail from:<a@b>", 0, 0, SMTP_VERB_MAIL, "from:<a@b>"},
    {"MaIl FROM:<a@b> SIZE=10", 0, 0, SMTP_VERB_MAIL, "FROM:<a@b> SIZE=10"},
    {"MAIL FROM: <a@b>", 0, 0, SMTP_VERB_MAIL, "FROM: <a@b>"},
    {"MAIL   FROM:<a@b>", 0, 0, SMTP_VERB_MAIL, "FROM:<a@b>"},
    {"MAIL FROM:<a@b>   ", 0, 0, SMTP_VERB_MAIL, "FROM:<a@b>"},
    {"MAIL FROM:<a@b> \t ", 0, 0, SMTP_VERB_MAIL, "FROM:<a@b>"},
    {"RCPT TO:<a@b>", 0, 0, SMTP_VERB_RCPT, "TO:<a@b>"},
    {"MAIL", 0, 0, SMTP_VERB_MAIL, ""},
    {"MAILX FROM:<a@b>", 0, 0, SMTP_VERB_UNKNOWN, "FROM:<a@b>"},
    {"MAI", 0, 0, SMTP_VERB_UNKNOWN, ""},
    {"MAIL:FROM:<a@b>", 0, 0, SMTP_VERB_UNKNOWN, ""},
    {"HELO example.com", 0, 0, SMTP_VERB_HELO, "example.com"},
    {"EHLO   example.com  ", 0, 0, SMTP_VERB_EHLO, "example.com"},
    {"ehlo [192.0.2.1]", 0, 0, SMTP_VERB_EHLO, "[192.0.2.1]"},
    {"EHLO caf\xc3\xa9.example", 0, 0, SMTP_VERB_EHLO, "caf\xc3\xa9.example"},
    {"HELO\texample.com", 0, 0, SMTP_VERB_UNKNOWN, ""},
    {"NOOP\tx", 0, 0, SMTP_VERB_UNKNOWN, ""},
    {"NOOP x\ty", 0, 0, SMTP_VERB_NOOP, "x\ty"},
    {"QUIT", 0, 0, SMTP_VERB_QUIT, ""},
    {"quit", 0, 0, SMTP_VERB_QUIT, ""},
    {"QUIT   ", 0, 0, SMTP_VERB_QUIT, ""},
    {"QUIT\t", 0, 0, SMTP_VERB_QUIT, ""},
    {"DATA", 0, 0, SMTP_VERB_DATA, ""},
    {"DATA x", 0, 0, SMTP_VERB_DATA, "x"},
    {"BDAT 100 LAST", 0, 0, SMTP_VERB_BDAT, "100 LAST"},
    {"RSET", 0, 0, SMTP_VERB_RSET, ""},
    {"NOOP", 0, 0, SMTP_VERB_NOOP, ""},
    {"VRFY postmaster", 0, 0, SMTP_VERB_VRFY, "postmaster"},
    {"EXPN list", 0, 0, SMTP_VERB_EXPN, "list"},
    {"HELP", 0, 0, SMTP_VERB_HELP, ""},
    {"help mail", 0, 0, SMTP_VERB_HELP, "mail"},
    {"STARTTLS", 0, 0, SMTP_VERB_STARTTLS, ""},
    {"StartTLS", 0, 0, SMTP_VERB_STARTTLS, ""},
    {"STARTTLSX", 0, 0, SMTP_VERB_UNKNOWN, ""},
    {"START", 0, 0, SMTP_VERB_UNKNOWN, ""},
    {"AUTH PLAIN AGZvbwBiYXI=", 0, 0, SMTP_VERB_AUTH, "PLAIN AGZvbwBiYXI="},
    {"X", 0, 0, SMTP_VERB_UNKNOWN, ""},
    {"GET / HTTP/1.1", 0, 0, SMTP_VERB_UNKNOWN, "/ HTTP/1.1"},
    {" MAIL FROM:<a@b>", 0, 0, SMTP_VERB_UNKNOWN, "MAIL FROM:<a@b>"},
    {"\xc3\xa9", 0, 0, SMTP_VERB_UNKNOWN, ""},
    /* not lines at all: 500 5.5.2 */
    {"", 0, -1, SMTP_VERB_UNKNOWN, ""},
    {"   ", 0, -1, SMTP_VERB_UNKNOWN, ""},
    {"\t", 0, -1, SMTP_VERB_UNKNOWN, ""},
    {"MAIL FROM:<a\0@b>", 17, -1, SMTP_VERB_UNKNOWN, ""},
    {"\0", 1, -1, SMTP_VERB_UNKNOWN, ""},
    {"NOOP\0", 5, -1, SMTP_VERB_UNKNOWN, ""},
    {"NOOP\r", 0, -1, SMTP_VERB_UNKNOWN, ""},
    {"NOOP\n", 0, -1, SMTP_VERB_UNKNOWN, ""},
    {"DATA\r\n.\r\n", 0, -1, SMTP_VERB_UNKNOWN, ""},
    {"NOOP \x7f", 0, -1, SMTP_VERB_UNKNOWN, ""},
    {"\x1b[A", 0, -1, SMTP_VERB_UNKNOWN, ""},
    {"NOOP \x01", 0, -1, SMTP_VERB_UNKNOWN, ""},
};

static void test_command_table(void **state)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof command_cases / sizeof command_cases[0]; i++) {
        const struct command_case *t = &command_cases[i];
        size_t length = t->length ? t->length : strlen(t->line);
        char shown[256];
        escape(t->line, length, shown, sizeof shown);
        struct smtp_command command;
        memset(&command, 0xa5, sizeof command);
        int rc = smtp_parse_command(t->line, length, &command);
        if (rc != t->want_rc) {
            print_error("smtp_parse_command(\"%s\"): got rc %d, want %d\n", shown, rc, t->want_rc);
            failures++;
            continue;
        }
        if (rc != 0)
            continue;
        if (command.verb != t->want_verb) {
            print_error("smtp_parse_command(\"%s\"): got verb %s, want %s\n", shown,
                        smtp_verb_name(command.verb), smtp_verb_name(t->want_verb));
            failures++;
        }
        size_t want_length = strlen(t->want_argument);
        if (command.argument == NULL || command.argument_length != want_length ||
            memcmp(command.argument, t->want_argument, want_length) != 0) {
            char got[256];
            print_error("smtp_parse_command(\"%s\"): got argument \"%s\", want \"%s\"\n", shown,
                        command.argument ? escape(command.argument, command.argument_length, got,
                                                  sizeof got)
                                         : "(null)",
                        t->want_argument);
            failures++;
        } else if (want_length > 0 && (command.argument < t->line ||
                                       command.argument + want_length > t->line + length)) {
            print_error("smtp_parse_command(\"%s\"): argument does not point into the line\n",
                        shown);
            failures++;
        }
    }
    finish_table("command_cases", failures);
}

static void test_verb_names(void **state)
{
    static const char *const want[SMTP_VERB_COUNT] = {
        "UNKNOWN", "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET",
        "NOOP",    "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH", "XCLIENT",
    };
    int failures = 0;
    for (int v = 0; v < SMTP_VERB_COUNT; v++) {
        const char *got = smtp_verb_name((enum smtp_verb)v);
        if (!same_string(got, want[v])) {
            print_error("smtp_verb_name(%d): got \"%s\", want \"%s\"\n", v, string_or_null(got),
                        want[v]);
            failures++;
        }
        /* every known verb, in lower case, is recognised by the command parser */
        if (v == SMTP_VERB_UNKNOWN)
            continue;
        char line[32];
        size_t n = strlen(want[v]);
        for (size_t i = 0; i <= n; i++)
            line[i] = (char)(want[v][i] >= 'A' && want[v][i] <= 'Z' ? want[v][i] + 32 : want[v][i]);
        struct smtp_command command;
        if (smtp_parse_command(line, n, &command) != 0 || command.verb != (enum smtp_verb)v) {
            print_error("smtp_parse_command(\"%s\"): got verb %s, want %s\n", line,
                        smtp_verb_name(command.verb), want[v]);
            failures++;
        }
    }
    if (strcmp(smtp_verb_name(SMTP_VERB_COUNT), "INVALID") != 0) {
        print_error("smtp_verb_name(COUNT): got \"%s\", want \"INVALID\"\n",
                    smtp_verb_name(SMTP_VERB_COUNT));
        failures++;
    }
    if (strcmp(smtp_path_kind_name(SMTP_PATH_REVERSE), "reverse") != 0 ||
        strcmp(smtp_path_kind_name(SMTP_PATH_FORWARD), "forward") != 0 ||
        strcmp(smtp_path_kind_name(SMTP_PATH_KIND_COUNT), "invalid") != 0) {
        print_error("smtp_path_kind_name: got \"%s\" \"%s\" \"%s\", want reverse forward invalid\n",
                    smtp_path_kind_name(SMTP_PATH_REVERSE), smtp_path_kind_name(SMTP_PATH_FORWARD),
                    smtp_path_kind_name(SMTP_PATH_KIND_COUNT));
        failures++;
    }
    finish_table("verb names", failures);
}

/* ---------------------------------------------------------------- smtp_parse_path */

/* Which limits a row runs with. */
enum profile {
    PROFILE_DEFAULT = 0, /* 64 / 255 / 256, no UTF-8 */
    PROFILE_UTF8,        /* 64 / 255 / 256, SMTPUTF8 in effect */
    PROFILE_NULL,        /* limits == NULL: the defaults */
    PROFILE_TINY,        /* 3 / 5 / 12, no UTF-8 */
};

static const struct smtp_parse_limits *profile_limits(enum profile profile,
                                                      struct smtp_parse_limits *storage)
{
    *storage = SMTP_PARSE_LIMITS_DEFAULT;
    switch (profile) {
    case PROFILE_UTF8:
        storage->allow_utf8 = true;
        return storage;
    case PROFILE_NULL:
        return NULL;
    case PROFILE_TINY:
        storage->max_local_part = 3;
        storage->max_domain = 5;
        storage->max_path = 12;
        return storage;
    case PROFILE_DEFAULT:
    default:
        return storage;
    }
}

struct path_case {
    enum smtp_path_kind kind;
    enum profile profile;
    const char *argument;
    int want_rc;
    /* when want_rc == 0 */
    const char *want_address;
    const char *want_local;
    const char *want_domain;
    bool want_utf8;
    const char *want_params; /* rendered: "KEY=value KEY" */
    /* when want_rc == -1 */
    int want_code;
    const char *want_enhanced;
};

#define MAIL SMTP_PATH_REVERSE
#define RCPT SMTP_PATH_FORWARD
#define OK(kind, profile, argument, address, local, domain, utf8, params)                         \
    {kind, profile, argument, 0, address, local, domain, utf8, params, 0, NULL}
#define BAD(kind, profile, argument, code, enhanced)                                              \
    {kind, profile, argument, -1, NULL, NULL, NULL, false, NULL, code, enhanced}

static const struct path_case path_cases[] = {
    /* prefix and brackets */
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b>", "a@b", "a", "b", false, ""),
    OK(MAIL, PROFILE_DEFAULT, "from:<a@b>", "a@b", "a", "b", false, ""),
    OK(MAIL, PROFILE_DEFAULT, "From:<a@b>", "a@b", "a", "b", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "to:<a@b>", "a@b", "a", "b", false, ""),
    OK(MAIL, PROFILE_DEFAULT, "FROM: <a@b>", "a@b", "a", "b", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO: <a@b>", "a@b", "a", "b", false, ""),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:  <a@b>", 501, "5.1.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:  <a@b>", 501, "5.1.3"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:\t<a@b>", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM: \t<a@b>", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM :<a@b>", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM<a@b>", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "<a@b>", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FRO", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "TO:<a@b>", 501, "5.5.4"),
    BAD(RCPT, PROFILE_DEFAULT, "FROM:<a@b>", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM: ", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:a@b", 501, "5.1.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:a@b", 501, "5.1.3"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b.", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:a@b>", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<<a@b>>", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b>>", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b>x", 501, "5.1.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a@b>SIZE=1", 501, "5.1.3"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b>\t", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> <c@d>", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:Joe <a@b>", 501, "5.1.7"),
    /* trailing spaces */
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b> ", "a@b", "a", "b", false, ""),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b>    ", "a@b", "a", "b", false, ""),
    OK(MAIL, PROFILE_DEFAULT, "FROM: <a@b> SIZE=1  ", "a@b", "a", "b", false, "SIZE=1"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE=1\t", 501, "5.5.4"),
    /* null reverse-path */
    OK(MAIL, PROFILE_DEFAULT, "FROM:<>", "", "", "", false, ""),
    OK(MAIL, PROFILE_DEFAULT, "FROM: <>", "", "", "", false, ""),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<> SIZE=100 BODY=8BITMIME", "", "", "", false,
       "SIZE=100 BODY=8BITMIME"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_UTF8, "TO:<> NOTIFY=NEVER", 501, "5.1.3"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<@a:>", 501, "5.1.7"),
    /* postmaster */
    OK(RCPT, PROFILE_DEFAULT, "TO:<postmaster>", "postmaster", "postmaster", "", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<PostMaster>", "PostMaster", "PostMaster", "", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<POSTMASTER> NOTIFY=NEVER", "POSTMASTER", "POSTMASTER", "",
       false, "NOTIFY=NEVER"),
    OK(RCPT, PROFILE_DEFAULT, "TO:<Postmaster@example.com>", "Postmaster@example.com",
       "Postmaster", "example.com", false, ""),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<postmaster>", 501, "5.1.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\"postmaster\">", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@a.example:postmaster>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<postmasters>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<postmaste>", 501, "5.1.3"),
    /* no domain */
    BAD(RCPT, PROFILE_DEFAULT, "TO:<user>", 501, "5.1.3"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<user>", 501, "5.1.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<user@>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<user@@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a@b@c>", 501, "5.1.3"),
    /* dot-string local parts */
    OK(RCPT, PROFILE_DEFAULT, "TO:<first.last@example.com>", "first.last@example.com",
       "first.last", "example.com", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<!#$%&'*+-/=?^_`{|}~@example.com>",
       "!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~", "example.com", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<User+Tag@Example.COM>", "User+Tag@Example.COM", "User+Tag",
       "Example.COM", false, ""),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<.a@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a.@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a..b@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a b@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a(b)@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a,b@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a\\b@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a\tb@example.com>", 501, "5.1.3"),
    /* quoted local parts */
    OK(RCPT, PROFILE_DEFAULT, "TO:<\"john doe\"@example.com>", "\"john doe\"@example.com",
       "\"john doe\"", "example.com", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<\"a\\\"b\"@example.com>", "\"a\\\"b\"@example.com",
       "\"a\\\"b\"", "example.com", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<\"a\\\\b\"@example.com>", "\"a\\\\b\"@example.com",
       "\"a\\\\b\"", "example.com", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<\"a>b@c\"@example.com> SIZE=1", "\"a>b@c\"@example.com",
       "\"a>b@c\"", "example.com", false, "SIZE=1"),
    OK(RCPT, PROFILE_DEFAULT, "TO:<\"\"@example.com>", "\"\"@example.com", "\"\"", "example.com",
       false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<\" \"@example.com>", "\" \"@example.com", "\" \"",
       "example.com", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<\"\\ \"@example.com>", "\"\\ \"@example.com", "\"\\ \"",
       "example.com", false, ""),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\"unterminated@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\"a\"b@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\"a\".b@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a.\"b\"@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\"a\tb\"@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\"a\\\tb\"@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\"a\\\"@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_UTF8, "TO:<\"a\\\xc3\xa9\"@example.com>", 501, "5.1.3"),
    OK(RCPT, PROFILE_UTF8, "TO:<\"j\xc3\xb6rg m\"@example.com>", "\"j\xc3\xb6rg m\"@example.com",
       "\"j\xc3\xb6rg m\"", "example.com", true, ""),
    /* source routes */
    OK(RCPT, PROFILE_DEFAULT, "TO:<@a.example,@b.example:user@c.example>", "user@c.example",
       "user", "c.example", false, ""),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<@a.example:user@c.example>", "user@c.example", "user",
       "c.example", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<@[192.0.2.1],@b:\"x y\"@c>", "\"x y\"@c", "\"x y\"", "c", false,
       ""),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@a.example,b.example:user@c.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@:user@c.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@a.example user@c.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@a.example,:user@c.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@a.example,@:user@c.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@-a.example:user@c.example>", 501, "5.1.3"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<@a.example:>", 501, "5.1.7"),
    /* domains */
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@localhost>", "u@localhost", "u", "localhost", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@a-b.c-d.example>", "u@a-b.c-d.example", "u",
       "a-b.c-d.example", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@3com.com>", "u@3com.com", "u", "3com.com", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@123.45>", "u@123.45", "u", "123.45", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@xn--bcher-kva.example>", "u@xn--bcher-kva.example", "u",
       "xn--bcher-kva.example", false, ""),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@-a.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@a-.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@a.example.>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@.a.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@a..example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@a_b.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@a b.example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@a.example:25>", 501, "5.1.3"),
    /* address literals */
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@[127.0.0.1]>", "u@[127.0.0.1]", "u", "[127.0.0.1]", false,
       ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@[IPv6:::1]>", "u@[IPv6:::1]", "u", "[IPv6:::1]", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@[ipv6:2001:db8::25]>", "u@[ipv6:2001:db8::25]", "u",
       "[ipv6:2001:db8::25]", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@[IPv6:::ffff:192.0.2.1]>", "u@[IPv6:::ffff:192.0.2.1]", "u",
       "[IPv6:::ffff:192.0.2.1]", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@[IPv6:2001:db8:0:0:0:0:0:1]>",
       "u@[IPv6:2001:db8:0:0:0:0:0:1]", "u", "[IPv6:2001:db8:0:0:0:0:0:1]", false, ""),
    OK(RCPT, PROFILE_DEFAULT, "TO:<u@[x-tag:some-content]>", "u@[x-tag:some-content]", "u",
       "[x-tag:some-content]", false, ""),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[256.1.1.1]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[1.2.3]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[1.2.3.4.5]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[127.0.0.1>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[127.0.0.1]x>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[127.0.0.1].example>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[ 127.0.0.1]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[IPv6:1.2.3.4]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[IPv6:gggg::1]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[IPv6:1:2:3:4:5:6:7:8:9]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[IPv6:fe80::1%eth0]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[IPv6:]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[::1]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[2001:db8::1]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[fe80::1]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[:content]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[tag:]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[tag]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[tag-:x]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[t_g:x]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[tag:a[b]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<u@[tag:a\\b]>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_UTF8, "TO:<u@[tag:\xc3\xa9]>", 501, "5.1.3"),
    /* UTF-8 (RFC 6531) */
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<pel\xc3\xa9@example.com>", 553, "5.6.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<pel\xc3\xa9@example.com>", 553, "5.6.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<user@b\xc3\xbc" "cher.example>", 553, "5.6.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\"pel\xc3\xa9\"@example.com>", 553, "5.6.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<@b\xc3\xbc" "cher.example:u@example.com>", 553, "5.6.7"),
    BAD(RCPT, PROFILE_NULL, "TO:<pel\xc3\xa9@example.com>", 553, "5.6.7"),
    /* any 8-bit octet without SMTPUTF8 is 553, even when it is not UTF-8 at all */
    BAD(RCPT, PROFILE_DEFAULT, "TO:<pel\xe9@example.com>", 553, "5.6.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\xff@example.com>", 553, "5.6.7"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<\xc0\xaf@example.com>", 553, "5.6.7"),
    /* the SMTPUTF8 parameter opens UTF-8 for MAIL, not for RCPT */
    OK(MAIL, PROFILE_DEFAULT, "FROM:<pel\xc3\xa9@example.com> SMTPUTF8", "pel\xc3\xa9@example.com",
       "pel\xc3\xa9", "example.com", true, "SMTPUTF8"),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<pel\xc3\xa9@example.com> BODY=8BITMIME smtputf8",
       "pel\xc3\xa9@example.com", "pel\xc3\xa9", "example.com", true, "BODY=8BITMIME SMTPUTF8"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<pel\xc3\xa9@example.com> SMTPUTF8", 553, "5.6.7"),
    OK(MAIL, PROFILE_UTF8, "FROM:<pel\xc3\xa9@example.com>", "pel\xc3\xa9@example.com",
       "pel\xc3\xa9", "example.com", true, ""),
    OK(RCPT, PROFILE_UTF8, "TO:<pel\xc3\xa9@example.com>", "pel\xc3\xa9@example.com", "pel\xc3\xa9",
       "example.com", true, ""),
    OK(RCPT, PROFILE_UTF8, "TO:<user@b\xc3\xbc" "cher.example>", "user@b\xc3\xbc" "cher.example",
       "user", "b\xc3\xbc" "cher.example", true, ""),
    OK(RCPT, PROFILE_UTF8, "TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf"
                           "\xe5\x91\x8a>",
       "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
       "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", true, ""),
    OK(RCPT, PROFILE_UTF8, "TO:<\xf0\x9f\x98\x80@example.com>", "\xf0\x9f\x98\x80@example.com",
       "\xf0\x9f\x98\x80", "example.com", true, ""),
    OK(RCPT, PROFILE_UTF8, "TO:<\xf4\x8f\xbf\xbf@example.com>", "\xf4\x8f\xbf\xbf@example.com",
       "\xf4\x8f\xbf\xbf", "example.com", true, ""),
    OK(RCPT, PROFILE_UTF8, "TO:<a@example.com>", "a@example.com", "a", "example.com", false, ""),
    /* malformed UTF-8 with SMTPUTF8: a syntax error */
    BAD(RCPT, PROFILE_UTF8, "TO:<\xc0\xaf@example.com>", 501, "5.1.3"),           /* overlong / */
    BAD(RCPT, PROFILE_UTF8, "TO:<\xc1\xbf@example.com>", 501, "5.1.3"),           /* overlong */
    BAD(RCPT, PROFILE_UTF8, "TO:<\xe0\x80\xaf@example.com>", 501, "5.1.3"),       /* overlong */
    BAD(RCPT, PROFILE_UTF8, "TO:<\xf0\x80\x80\xaf@example.com>", 501, "5.1.3"),   /* overlong */
    BAD(RCPT, PROFILE_UTF8, "TO:<\xed\xa0\x80@example.com>", 501, "5.1.3"),       /* surrogate */
    BAD(RCPT, PROFILE_UTF8, "TO:<\xed\xbf\xbf@example.com>", 501, "5.1.3"),       /* surrogate */
    BAD(RCPT, PROFILE_UTF8, "TO:<\xf4\x90\x80\x80@example.com>", 501, "5.1.3"),   /* > 10FFFF */
    BAD(RCPT, PROFILE_UTF8, "TO:<\xf5\x80\x80\x80@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_UTF8, "TO:<\xff@example.com>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_UTF8, "TO:<\x80@example.com>", 501, "5.1.3"),               /* stray */
    BAD(RCPT, PROFILE_UTF8, "TO:<a\xc3@example.com>", 501, "5.1.3"),              /* truncated */
    BAD(RCPT, PROFILE_UTF8, "TO:<a@example.co\xe2\x82>", 501, "5.1.3"),           /* truncated */
    BAD(RCPT, PROFILE_UTF8, "TO:<pel\xe9@example.com>", 501, "5.1.3"),            /* Latin-1 */
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<\xc0\xaf@example.com> SMTPUTF8", 501, "5.1.7"),
    BAD(RCPT, PROFILE_UTF8, "TO:<a@-\xc3\xa9.example>", 501, "5.1.3"),
    /* parameters */
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE=10", "a@b", "a", "b", false, "SIZE=10"),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b> size=10 body=8BITMIME", "a@b", "a", "b", false,
       "SIZE=10 BODY=8BITMIME"),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SMTPUTF8", "a@b", "a", "b", false, "SMTPUTF8"),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b>  SIZE=10   BODY=7BIT  ", "a@b", "a", "b", false,
       "SIZE=10 BODY=7BIT"),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b> RET=HDRS ENVID=QQ+2B314 AUTH=<>", "a@b", "a", "b", false,
       "RET=HDRS ENVID=QQ+2B314 AUTH=<>"),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b> X-FOO-1=a 7BIT X--=!~", "a@b", "a", "b", false,
       "X-FOO-1=a 7BIT X--=!~"),
    OK(RCPT, PROFILE_DEFAULT, "TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b", "a@b", "a", "b",
       false, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE=", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE= BODY=7BIT", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE=1=2", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE==1", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE=10 SIZE=20", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> size=10 SIZE=10", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SMTPUTF8 SMTPUTF8", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> -SIZE=1", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SI_ZE=1", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE:1", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> =1", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SIZE=1\tBODY=7BIT", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> \tSIZE=1", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> K\xc3\xa9Y=1 SMTPUTF8", 501, "5.5.4"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> X=\x7f", 501, "5.5.4"),
    /* non-ASCII parameter values */
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@b> X=\xc3\xa9", 501, "5.5.4"),
    BAD(RCPT, PROFILE_DEFAULT, "TO:<a@b> ORCPT=utf-8;\xc3\xa9@b", 501, "5.5.4"),
    OK(MAIL, PROFILE_DEFAULT, "FROM:<a@b> SMTPUTF8 X=\xc3\xa9", "a@b", "a", "b", false,
       "SMTPUTF8 X=\xc3\xa9"),
    OK(RCPT, PROFILE_UTF8, "TO:<a@b> ORCPT=utf-8;\xc3\xa9@b", "a@b", "a", "b", false,
       "ORCPT=utf-8;\xc3\xa9@b"),
    BAD(RCPT, PROFILE_UTF8, "TO:<a@b> X=\xc3", 501, "5.5.4"),
    BAD(RCPT, PROFILE_UTF8, "TO:<a@b> X=\xed\xa0\x80", 501, "5.5.4"),
    /* error order: the address is judged before the parameters, the prefix before both */
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<a@> SIZE=10 SIZE=10", 501, "5.1.7"),
    BAD(MAIL, PROFILE_DEFAULT, "FROM:<pel\xc3\xa9@b> SIZE=", 501, "5.5.4"),
    /* limits with a tiny profile: local 3, domain 5, path 12 */
    OK(RCPT, PROFILE_TINY, "TO:<abc@de.fg>", "abc@de.fg", "abc", "de.fg", false, ""),
    BAD(RCPT, PROFILE_TINY, "TO:<abcd@de.fg>", 501, "5.1.3"),
    BAD(RCPT, PROFILE_TINY, "TO:<abc@de.fgh>", 501, "5.1.3"),
    BAD(MAIL, PROFILE_TINY, "FROM:<abcd@e>", 501, "5.1.7"),
    OK(RCPT, PROFILE_TINY, "TO:<@a:ab@d.fg>", "ab@d.fg", "ab", "d.fg", false, ""), /* path 12 */
    BAD(RCPT, PROFILE_TINY, "TO:<@ab:ab@d.fg>", 501, "5.1.3"),                   /* path 13 */
    OK(RCPT, PROFILE_TINY, "TO:<\"a\"@b>", "\"a\"@b", "\"a\"", "b", false, ""),
    BAD(RCPT, PROFILE_TINY, "TO:<\"ab\"@b>", 501, "5.1.3"),
    OK(MAIL, PROFILE_TINY, "FROM:<>", "", "", "", false, ""),
};

/* render_params - "KEY=value KEY" for comparing parameter lists */
static void render_params(const struct smtp_path *path, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < path->param_count; i++) {
        int n = snprintf(out + used, size - used, "%s%s%s%s", i ? " " : "",
                         path->params[i].keyword, path->params[i].value ? "=" : "",
                         path->params[i].value ? path->params[i].value : "");
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
}

/* path_is_empty - what a failed parse must leave behind */
static bool path_is_empty(const struct smtp_path *path)
{
    return path->address == NULL && path->local_part == NULL && path->domain == NULL &&
           path->param_count == 0 && !path->utf8 && !path->params_utf8;
}

/* check_path - run one row; returns the number of mismatches printed */
static int check_path(const struct path_case *t, const char *argument, size_t length)
{
    char shown[1024];
    escape(argument, length, shown, sizeof shown);
    struct smtp_parse_limits storage;
    const struct smtp_parse_limits *limits = profile_limits(t->profile, &storage);
    struct smtp_path path;
    memset(&path, 0x5a, sizeof path);
    struct smtp_parse_error error = {0};
    int rc = smtp_parse_path(argument, length, t->kind, limits, &path, &error);
    int failures = 0;
    const char *verb = t->kind == SMTP_PATH_REVERSE ? "MAIL" : "RCPT";
    if (rc != t->want_rc) {
        if (rc == 0)
            print_error("%s \"%s\": got success (address \"%s\"), want %d %s\n", verb, shown,
                        path.address, t->want_code, t->want_enhanced);
        else
            print_error("%s \"%s\": got %d %s \"%s\", want success\n", verb, shown, error.code,
                        string_or_null(error.enhanced), string_or_null(error.text));
        if (rc == 0)
            smtp_path_clear(&path);
        return 1;
    }
    if (rc != 0) {
        if (error.code != t->want_code || !same_string(error.enhanced, t->want_enhanced)) {
            print_error("%s \"%s\": got %d %s \"%s\", want %d %s\n", verb, shown, error.code,
                        string_or_null(error.enhanced), string_or_null(error.text), t->want_code,
                        t->want_enhanced);
            failures++;
        }
        if (error.text == NULL || error.text[0] == '\0') {
            print_error("%s \"%s\": got no error text, want one\n", verb, shown);
            failures++;
        }
        if (!path_is_empty(&path)) {
            print_error("%s \"%s\": got a filled path after failure, want an empty one\n", verb,
                        shown);
            failures++;
        }
        smtp_path_clear(&path);
        return failures;
    }
    struct {
        const char *what, *got, *want;
    } fields[] = {
        {"address", path.address, t->want_address},
        {"local_part", path.local_part, t->want_local},
        {"domain", path.domain, t->want_domain},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!same_string(fields[i].got, fields[i].want)) {
            char a[512], b[512];
            print_error("%s \"%s\": got %s \"%s\", want \"%s\"\n", verb, shown, fields[i].what,
                        fields[i].got ? escape(fields[i].got, strlen(fields[i].got), a, sizeof a)
                                      : "(null)",
                        escape(fields[i].want, strlen(fields[i].want), b, sizeof b));
            failures++;
        }
    }
    if (path.utf8 != t->want_utf8) {
        print_error("%s \"%s\": got utf8 %d, want %d\n", verb, shown, path.utf8, t->want_utf8);
        failures++;
    }
    char params[1024];
    render_params(&path, params, sizeof params);
    if (!same_string(params, t->want_params)) {
        char a[1024], b[1024];
        print_error("%s \"%s\": got params \"%s\", want \"%s\"\n", verb, shown,
                    escape(params, strlen(params), a, sizeof a),
                    escape(t->want_params, strlen(t->want_params), b, sizeof b));
        failures++;
    }
    bool want_params_utf8 = false;
    for (const char *p = t->want_params; *p; p++)
        if ((unsigned char)*p >= 0x80)
            want_params_utf8 = true;
    if (path.params_utf8 != want_params_utf8) {
        print_error("%s \"%s\": got params_utf8 %d, want %d\n", verb, shown, path.params_utf8,
                    want_params_utf8);
        failures++;
    }
    smtp_path_clear(&path);
    if (!path_is_empty(&path)) {
        print_error("%s \"%s\": smtp_path_clear left data behind\n", verb, shown);
        failures++;
    }
    return failures;
}

static void test_path_table(void **state)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof path_cases / sizeof path_cases[0]; i++) {
        const struct path_case *t = &path_cases[i];
        /* parse from an exact-size heap copy so ASan sees any read past the length */
        size_t length = strlen(t->argument);
        char *copy = malloc(length ? length : 1);
        assert_non_null(copy);
        memcpy(copy, t->argument, length);
        failures += check_path(t, copy, length);
        free(copy);
    }
    finish_table("path_cases", failures);
}

/* make_domain - length octets of "aaa.aaa..." with a dot every 50th octet, never last */
static void make_domain(char *out, size_t length)
{
    for (size_t i = 0; i < length; i++)
        out[i] = (i % 50 == 49 && i + 1 < length) ? '.' : 'a';
    out[length] = '\0';
}

/* A length-limit row: sizes of the local part and domain under the default limits. */
struct length_case {
    enum smtp_path_kind kind;
    size_t local_length;
    size_t domain_length;
    int want_rc;
    const char *want_enhanced;
    const char *want_text_part; /* a word the error text must contain */
};

static const struct length_case length_cases[] = {
    {RCPT, 64, 10, 0, NULL, NULL},
    {RCPT, 65, 10, -1, "5.1.3", "local part"},
    {MAIL, 65, 10, -1, "5.1.7", "local part"},
    {RCPT, 1, 252, 0, NULL, NULL},  /* path 1+1+1+252+1 = 256 */
    {RCPT, 1, 253, -1, "5.1.3", "path"},
    {RCPT, 64, 189, 0, NULL, NULL}, /* path 1+64+1+189+1 = 256 */
    {RCPT, 64, 190, -1, "5.1.3", "path"},
    {MAIL, 64, 190, -1, "5.1.7", "path"},
};

static void test_length_limits(void **state)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof length_cases / sizeof length_cases[0]; i++) {
        const struct length_case *t = &length_cases[i];
        char argument[1024];
        size_t used = (size_t)snprintf(argument, sizeof argument, "%s<",
                                       t->kind == SMTP_PATH_REVERSE ? "FROM:" : "TO:");
        memset(argument + used, 'l', t->local_length);
        used += t->local_length;
        argument[used++] = '@';
        make_domain(argument + used, t->domain_length);
        used += t->domain_length;
        argument[used++] = '>';
        argument[used] = '\0';
        struct smtp_parse_limits limits = SMTP_PARSE_LIMITS_DEFAULT;
        struct smtp_path path;
        struct smtp_parse_error error = {0};
        int rc = smtp_parse_path(argument, used, t->kind, &limits, &path, &error);
        if (rc != t->want_rc) {
            print_error("local %zu domain %zu: got rc %d (%s), want %d\n", t->local_length,
                        t->domain_length, rc, rc ? error.text : "ok", t->want_rc);
            failures++;
        } else if (rc != 0 && (error.code != 501 || strcmp(error.enhanced, t->want_enhanced) != 0 ||
                               strstr(error.text, t->want_text_part) == NULL)) {
            print_error("local %zu domain %zu: got %d %s \"%s\", want 501 %s with \"%s\"\n",
                        t->local_length, t->domain_length, error.code, error.enhanced, error.text,
                        t->want_enhanced, t->want_text_part);
            failures++;
        } else if (rc == 0 && (strlen(path.local_part) != t->local_length ||
                               strlen(path.domain) != t->domain_length)) {
            print_error("local %zu domain %zu: got local %zu domain %zu octets\n", t->local_length,
                        t->domain_length, strlen(path.local_part), strlen(path.domain));
            failures++;
        }
        if (rc == 0)
            smtp_path_clear(&path);
    }

    /* The domain limit alone: max_path wide open, max_domain exactly at and over. */
    struct {
        size_t domain_length;
        size_t max_domain;
        int want_rc;
    } domain_cases[] = {{255, 255, 0}, {256, 255, -1}, {10, 10, 0}, {11, 10, -1}};
    for (size_t i = 0; i < sizeof domain_cases / sizeof domain_cases[0]; i++) {
        char argument[512] = "TO:<u@";
        size_t used = strlen(argument);
        make_domain(argument + used, domain_cases[i].domain_length);
        used += domain_cases[i].domain_length;
        argument[used++] = '>';
        argument[used] = '\0';
        struct smtp_parse_limits limits = SMTP_PARSE_LIMITS_DEFAULT;
        limits.max_path = 1000;
        limits.max_domain = domain_cases[i].max_domain;
        struct smtp_path path;
        struct smtp_parse_error error = {0};
        int rc = smtp_parse_path(argument, used, SMTP_PATH_FORWARD, &limits, &path, &error);
        if (rc != domain_cases[i].want_rc ||
            (rc != 0 && strstr(error.text, "domain too long") == NULL)) {
            print_error("domain %zu with max_domain %zu: got rc %d (%s), want %d\n",
                        domain_cases[i].domain_length, domain_cases[i].max_domain, rc,
                        rc ? error.text : "ok", domain_cases[i].want_rc);
            failures++;
        }
        if (rc == 0)
            smtp_path_clear(&path);
    }

    /* Labels: 63 octets pass, 64 do not. */
    for (size_t label = 62; label <= 65; label++) {
        char argument[128] = "TO:<u@";
        size_t used = strlen(argument);
        memset(argument + used, 'd', label);
        used += label;
        memcpy(argument + used, ".example>", 10);
        used += 9;
        struct smtp_path path;
        struct smtp_parse_error error = {0};
        int rc = smtp_parse_path(argument, used, SMTP_PATH_FORWARD, NULL, &path, &error);
        int want = label <= 63 ? 0 : -1;
        if (rc != want) {
            print_error("label of %zu octets: got rc %d, want %d\n", label, rc, want);
            failures++;
        }
        if (rc == 0)
            smtp_path_clear(&path);
    }
    finish_table("length limits", failures);
}

static void test_param_count(void **state)
{
    int failures = 0;
    for (size_t count = SMTP_PARAM_MAX - 1; count <= SMTP_PARAM_MAX + 1; count++) {
        char argument[1024] = "FROM:<a@b>";
        size_t used = strlen(argument);
        for (size_t i = 0; i < count; i++)
            used += (size_t)snprintf(argument + used, sizeof argument - used, " X%zu=%zu", i, i);
        struct smtp_path path;
        struct smtp_parse_error error = {0};
        int rc = smtp_parse_path(argument, used, SMTP_PATH_REVERSE, NULL, &path, &error);
        int want = count <= SMTP_PARAM_MAX ? 0 : -1;
        if (rc != want) {
            print_error("%zu parameters: got rc %d, want %d\n", count, rc, want);
            failures++;
        } else if (rc == 0 && path.param_count != count) {
            print_error("%zu parameters: got param_count %zu\n", count, path.param_count);
            failures++;
        } else if (rc != 0 && (error.code != 501 || strcmp(error.enhanced, "5.5.4") != 0 ||
                               strstr(error.text, "Too many") == NULL)) {
            print_error("%zu parameters: got %d %s \"%s\", want 501 5.5.4 Too many\n", count,
                        error.code, error.enhanced, error.text);
            failures++;
        }
        if (rc == 0)
            smtp_path_clear(&path);
    }
    finish_table("parameter count", failures);
}

static void test_path_param_lookup(void **state)
{
    struct smtp_path path;
    struct smtp_parse_error error;
    const char *argument = "FROM:<a@b> SIZE=10 smtputf8 BODY=8BITMIME";
    assert_int_equal(smtp_parse_path(argument, strlen(argument), SMTP_PATH_REVERSE, NULL, &path,
                                     &error),
                     0);
    struct {
        const char *keyword, *want;
    } cases[] = {
        {"SIZE", "10"},     {"size", "10"},     {"SMTPUTF8", ""}, {"SmtpUtf8", ""},
        {"BODY", "8BITMIME"}, {"RET", NULL},      {"SIZ", NULL},  {"SIZE=10", NULL},
        {"", NULL},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = smtp_path_param(&path, cases[i].keyword);
        if (!same_string(got, cases[i].want)) {
            print_error("smtp_path_param(\"%s\"): got \"%s\", want \"%s\"\n", cases[i].keyword,
                        string_or_null(got), string_or_null(cases[i].want));
            failures++;
        }
    }
    assert_null(smtp_path_param(&path, NULL));
    assert_null(smtp_path_param(NULL, "SIZE"));
    smtp_path_clear(&path);
    assert_null(smtp_path_param(&path, "SIZE"));
    smtp_path_clear(&path); /* twice is harmless */
    smtp_path_clear(NULL);
    finish_table("smtp_path_param", failures);
}

/* An argument with a NUL inside is refused, never cut short at the NUL. */
static void test_path_nul(void **state)
{
    static const char argument[] = "TO:<a@b>\0 SIZE=1";
    struct smtp_path path;
    struct smtp_parse_error error;
    int rc = smtp_parse_path(argument, sizeof argument - 1, SMTP_PATH_FORWARD, NULL, &path, &error);
    if (rc != -1)
        fail_msg("NUL after the path: got rc %d, want -1", rc);
    static const char inside[] = "TO:<a\0@b>";
    rc = smtp_parse_path(inside, sizeof inside - 1, SMTP_PATH_FORWARD, NULL, &path, &error);
    if (rc != -1)
        fail_msg("NUL in the path: got rc %d, want -1", rc);
}

/* ---------------------------------------------------------------- xtext */

struct xtext_case {
    const char *in;
    size_t out_size;
    int want_rc;
    const char *want; /* when want_rc >= 0 */
};

static const struct xtext_case xtext_cases[] = {
    {"", 16, 0, ""},
    {"abc", 16, 3, "abc"},
    {"a+2Bb", 16, 3, "a+b"},
    {"+3D", 16, 1, "="},
    {"+20+2B+3D", 16, 3, " +="},
    {"QQ+2B314", 16, 6, "QQ+314"},
    {"+41", 16, 1, "A"},          /* encoded without need: accepted */
    {"+7F", 16, 1, "\x7f"},
    {"+C3+A9", 16, 2, "\xc3\xa9"}, /* UTF-8 of utf-8-addr-xtext survives */
    {"!~", 16, 2, "!~"},
    {"rfc822;a@b.example", 32, 18, "rfc822;a@b.example"},
    {"abc", 4, 3, "abc"},          /* exactly fits with its NUL */
    {"abcd", 4, -1, NULL},         /* one too long */
    {"a+2B", 3, 2, "a+"},
    {"a+2B", 2, -1, NULL},
    {"", 1, 0, ""},
    {"a", 1, -1, NULL},
    {"", 0, -1, NULL},
    {"+2b", 16, -1, NULL},         /* lower-case hex */
    {"+a0", 16, -1, NULL},
    {"+2", 16, -1, NULL},
    {"+", 16, -1, NULL},
    {"a+", 16, -1, NULL},
    {"+G0", 16, -1, NULL},
    {"+0G", 16, -1, NULL},
    {"+00", 16, -1, NULL},         /* NUL would end the string */
    {"a=b", 16, -1, NULL},
    {"a b", 16, -1, NULL},
    {"a\tb", 16, -1, NULL},
    {"a\x7f", 16, -1, NULL},
    {"\xc3\xa9", 16, -1, NULL},
    {"a\x01", 16, -1, NULL},
};

static void test_xtext_table(void **state)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof xtext_cases / sizeof xtext_cases[0]; i++) {
        const struct xtext_case *t = &xtext_cases[i];
        char shown[128];
        escape(t->in, strlen(t->in), shown, sizeof shown);
        char *out = malloc(t->out_size ? t->out_size : 1);
        assert_non_null(out);
        int rc = smtp_xtext_decode(t->in, out, t->out_size);
        if (rc != t->want_rc) {
            print_error("smtp_xtext_decode(\"%s\", %zu): got %d, want %d\n", shown, t->out_size, rc,
                        t->want_rc);
            failures++;
        } else if (rc >= 0 && ((size_t)rc != strlen(t->want) || strcmp(out, t->want) != 0)) {
            char got[128];
            print_error("smtp_xtext_decode(\"%s\"): got \"%s\", want \"%s\"\n", shown,
                        escape(out, strlen(out), got, sizeof got), t->want);
            failures++;
        }
        free(out);
    }
    char out[4];
    assert_int_equal(smtp_xtext_decode(NULL, out, sizeof out), -1);
    assert_int_equal(smtp_xtext_decode("a", NULL, 4), -1);
    finish_table("xtext_cases", failures);
}

/* ---------------------------------------------------------------- HELO argument */

struct domain_case {
    const char *name;
    bool allow_utf8;
    bool want;
};

static const struct domain_case domain_cases[] = {
    {"example.com", false, true},
    {"mail.example.com.", false, true},
    {"localhost", false, true},
    {"a", false, true},
    {"WIN_PC", false, true},
    {"my_host.example.com", false, true},
    {"_dmarc.example.com", false, true},
    {"xn--bcher-kva.example", false, true},
    {"192.0.2.1", false, true},
    {"3com.com", false, true},
    {"[192.0.2.1]", false, true},
    {"[IPv6:2001:db8::1]", false, true},
    {"[ipv6:::1]", false, true},
    {"[x-tag:content]", false, true},
    {"", false, false},
    {".", false, false},
    {"..", false, false},
    {".example.com", false, false},
    {"a..b", false, false},
    {"a.b..", false, false},
    {"-a.example", false, false},
    {"a-.example", false, false},
    {"a.-b", false, false},
    {"a b", false, false},
    {"a\tb", false, false},
    {"a@b", false, false},
    {"a/b", false, false},
    {"a:25", false, false},
    {"<example.com>", false, false},
    {"[192.0.2.1", false, false},
    {"192.0.2.1]", false, false},
    {"[192.0.2.256]", false, false},
    {"[192.0.2.1]x", false, false},
    {"[IPv6:zz]", false, false},
    {"[2001:db8::1]", false, false},
    {"[fe80::1]", false, false},
    {"[]", false, false},
    {"caf\xc3\xa9.example", false, false},
    {"caf\xc3\xa9.example", true, true},
    {"\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", true, true},
    {"caf\xc3.example", true, false},
    {"caf\xc0\xa9.example", true, false},
    {"caf\xed\xa0\x80.example", true, false},
    {"caf\xe9.example", true, false},
    {"-\xc3\xa9.example", true, false},
    {"[\xc3\xa9]", true, false},
};

static void test_domain_table(void **state)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof domain_cases / sizeof domain_cases[0]; i++) {
        const struct domain_case *t = &domain_cases[i];
        bool got = smtp_domain_valid(t->name, t->allow_utf8);
        if (got != t->want) {
            char shown[128];
            print_error("smtp_domain_valid(\"%s\", utf8 %d): got %d, want %d\n",
                        escape(t->name, strlen(t->name), shown, sizeof shown), t->allow_utf8, got,
                        t->want);
            failures++;
        }
    }

    /* sizes: labels of 63 / 64 octets, names of 255 / 256 octets */
    struct {
        size_t label, total;
        bool want;
    } sizes[] = {{63, 63, true}, {64, 64, false}, {50, 255, true}, {50, 256, false}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char name[300];
        for (size_t j = 0; j < sizes[i].total; j++)
            name[j] = (j % (sizes[i].label + 1) == sizes[i].label && j + 1 < sizes[i].total) ? '.'
                                                                                              : 'h';
        name[sizes[i].total] = '\0';
        bool got = smtp_domain_valid(name, false);
        if (got != sizes[i].want) {
            print_error("smtp_domain_valid(labels %zu, total %zu): got %d, want %d\n",
                        sizes[i].label, sizes[i].total, got, sizes[i].want);
            failures++;
        }
    }
    assert_false(smtp_domain_valid(NULL, true));
    finish_table("domain_cases", failures);
}

/* ---------------------------------------------------------------- BDAT */

struct bdat_case {
    const char *argument;
    int want_rc;
    unsigned long long want_size;
    bool want_last;
};

static const struct bdat_case bdat_cases[] = {
    {"100", 0, 100, false},
    {"100 LAST", 0, 100, true},
    {"100 last", 0, 100, true},
    {"100 LaSt", 0, 100, true},
    {"0", 0, 0, false},
    {"0 LAST", 0, 0, true},
    {"100 ", 0, 100, false},
    {"100  LAST  ", 0, 100, true},
    {"007", 0, 7, false},
    {"18446744073709551615", 0, ULLONG_MAX, false},
    {"18446744073709551615 LAST", 0, ULLONG_MAX, true},
    {"00000000000000000001", 0, 1, false},          /* 20 digits */
    {"000000000000000000001", -1, 0, false},        /* 21 digits */
    {"18446744073709551616", -1, 0, false},         /* ULLONG_MAX + 1 */
    {"99999999999999999999", -1, 0, false},
    {"184467440737095516150", -1, 0, false},
    {"", -1, 0, false},
    {" ", -1, 0, false},
    {" 100", -1, 0, false},
    {"LAST", -1, 0, false},
    {"-1", -1, 0, false},
    {"+1", -1, 0, false},
    {"1x", -1, 0, false},
    {"0x10", -1, 0, false},
    {"1 2", -1, 0, false},
    {"1\t", -1, 0, false},
    {"1\tLAST", -1, 0, false},
    {"100LAST", -1, 0, false},
    {"100 LASTX", -1, 0, false},
    {"100 LAS", -1, 0, false},
    {"100 LAST x", -1, 0, false},
    {"100 LAST LAST", -1, 0, false},
    {"1e3", -1, 0, false},
    {"\xd9\xa1", -1, 0, false},
};

static void test_bdat_table(void **state)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof bdat_cases / sizeof bdat_cases[0]; i++) {
        const struct bdat_case *t = &bdat_cases[i];
        size_t length = strlen(t->argument);
        char *copy = malloc(length ? length : 1);
        assert_non_null(copy);
        memcpy(copy, t->argument, length);
        unsigned long long size = 12345;
        bool last = true;
        int rc = smtp_parse_bdat(copy, length, &size, &last);
        char shown[128];
        escape(t->argument, length, shown, sizeof shown);
        if (rc != t->want_rc) {
            print_error("smtp_parse_bdat(\"%s\"): got rc %d, want %d\n", shown, rc, t->want_rc);
            failures++;
        } else if (rc == 0 && (size != t->want_size || last != t->want_last)) {
            print_error("smtp_parse_bdat(\"%s\"): got size %llu last %d, want %llu %d\n", shown,
                        size, last, t->want_size, t->want_last);
            failures++;
        } else if (rc != 0 && (size != 12345 || last != true)) {
            print_error("smtp_parse_bdat(\"%s\"): outputs changed on failure\n", shown);
            failures++;
        }
        free(copy);
    }
    finish_table("bdat_cases", failures);
}

/* ---------------------------------------------------------------- UTF-8 */

struct utf8_case {
    const char *text;
    bool want;
};

static const struct utf8_case utf8_cases[] = {
    {"", true},
    {"plain ascii", true},
    {"\xc2\x80", true},               /* U+0080, smallest 2-octet */
    {"\xdf\xbf", true},
    {"\xe0\xa0\x80", true},           /* U+0800, smallest 3-octet */
    {"\xed\x9f\xbf", true},           /* U+D7FF, just below surrogates */
    {"\xee\x80\x80", true},           /* U+E000, just above */
    {"\xef\xbf\xbf", true},
    {"\xf0\x90\x80\x80", true},       /* U+10000 */
    {"\xf4\x8f\xbf\xbf", true},       /* U+10FFFF */
    {"\xc0\x80", false},              /* overlong NUL */
    {"\xc1\xbf", false},
    {"\xe0\x9f\xbf", false},
    {"\xf0\x8f\xbf\xbf", false},
    {"\xed\xa0\x80", false},          /* U+D800 */
    {"\xed\xbf\xbf", false},          /* U+DFFF */
    {"\xf4\x90\x80\x80", false},      /* U+110000 */
    {"\xf5\x80\x80\x80", false},
    {"\xf8\x88\x80\x80\x80", false},
    {"\xfe", false},
    {"\xff", false},
    {"\x80", false},
    {"\xbf", false},
    {"\xc3", false},
    {"\xe2\x82", false},
    {"\xf0\x9f\x98", false},
    {"\xc3\x28", false},
    {"\xe2\x28\xa1", false},
    {"\xe2\x82\x28", false},
    {"\xf0\x28\x8c\xbc", false},
    {"a\xc3\xa9" "b", true},
};

static void test_utf8_table(void **state)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        const struct utf8_case *t = &utf8_cases[i];
        size_t length = strlen(t->text);
        bool got = smtp_utf8_valid(t->text, length);
        if (got != t->want) {
            char shown[64];
            print_error("smtp_utf8_valid(\"%s\"): got %d, want %d\n",
                        escape(t->text, length, shown, sizeof shown), got, t->want);
            failures++;
        }
    }
    /* a sequence cut by the length argument is invalid even if the octets go on */
    if (smtp_utf8_valid("\xc3\xa9", 1)) {
        print_error("smtp_utf8_valid(\"\\xc3\", 1): got 1, want 0\n");
        failures++;
    }
    finish_table("utf8_cases", failures);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_table),
        cmocka_unit_test(test_verb_names),
        cmocka_unit_test(test_path_table),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_param_count),
        cmocka_unit_test(test_path_param_lookup),
        cmocka_unit_test(test_path_nul),
        cmocka_unit_test(test_xtext_table),
        cmocka_unit_test(test_domain_table),
        cmocka_unit_test(test_bdat_table),
        cmocka_unit_test(test_utf8_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
