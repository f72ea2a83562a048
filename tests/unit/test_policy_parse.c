/*
 * test_policy_parse.c - unit tests for gateway/policy_parse.c (cmocka): Postfix policy
 * delegation requests and answers.
 *
 * Covers: a request as Postfix sends it (CRLF tolerated, empty values, the empty line ends it,
 * empty lines before it ignored, the request reusable after clear), every refusal (no '=',
 * empty name, control byte, a name twice, a line too long, too many attributes, a request too
 * large), protocol_state names, and the answers: keywords, refusals with and without an
 * enhanced code, a wrong-class enhanced code dropped, a bad code made 451, text cleaned (line
 * breaks, control and 8-bit bytes) and cut, so the answer is always one line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy_parse.h"

/* feed - the lines of text (LF-separated) into r; the last result */
static int feed(struct policy_request *r, const char *text, const char **error)
{
    int got = 0;
    const char *line = text;
    while (*line != '\0') {
        size_t length = strcspn(line, "\n");
        got = policy_request_line(r, line, length, error);
        if (got != 0)
            return got;
        line += length + (line[length] == '\n');
    }
    return got;
}

static void test_request(void **state)
{
    struct policy_request r = {0};
    const char *error = NULL;
    assert_int_equal(feed(&r, "\n", &error), 0); /* an empty line before a request: ignored */
    assert_int_equal(feed(&r, "request=smtpd_access_policy\r\nprotocol_state=RCPT\n"
                              "client_address=192.0.2.1\nsender=\ninstance=123.456.7\n", &error), 0);
    assert_int_equal(policy_request_line(&r, "", 0, &error), 1);
    assert_string_equal(policy_request_get(&r, "protocol_state"), "RCPT");
    assert_string_equal(policy_request_get(&r, "sender"), "");
    assert_string_equal(policy_request_get(&r, "instance"), "123.456.7");
    assert_null(policy_request_get(&r, "recipient"));
    assert_int_equal(policy_request_line(&r, "\r", 1, &error), 1); /* CR LF ends it too */
    policy_request_clear(&r);
    assert_null(policy_request_get(&r, "protocol_state"));
    assert_int_equal(feed(&r, "a=1\nb=x=y\n\n", &error), 1);
    assert_string_equal(policy_request_get(&r, "b"), "x=y");
    policy_request_clear(&r);
}

static void test_refusals(void **state)
{
    static const struct {
        const char *text, *error;
    } cases[] = {
        {"no equals sign\n", "a line without '='"},
        {"=value\n", "an empty attribute name"},
        {"a=b\x01\n", "a control byte in a line"},
        {"a=1\na=2\n", "an attribute given twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct policy_request r = {0};
        const char *error = NULL;
        if (feed(&r, cases[i].text, &error) != -1 || error == NULL ||
            strcmp(error, cases[i].error) != 0)
            fail_msg("%s: got %s, want %s", cases[i].text, error ? error : "(none)", cases[i].error);
        policy_request_clear(&r);
    }
    struct policy_request r = {0};
    const char *error = NULL;
    char *long_line = malloc(POLICY_LINE_MAX + 2);
    memset(long_line, 'a', POLICY_LINE_MAX + 1);
    long_line[1] = '=';
    assert_int_equal(policy_request_line(&r, long_line, POLICY_LINE_MAX + 1, &error), -1);
    assert_string_equal(error, "line too long");
    assert_int_equal(policy_request_line(&r, long_line, POLICY_LINE_MAX, &error), 0);
    free(long_line);
    policy_request_clear(&r);
    for (int i = 0; i < POLICY_ATTRIBUTES_MAX; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "a%d=1", i);
        assert_int_equal(policy_request_line(&r, line, (size_t)n, &error), 0);
    }
    assert_int_equal(policy_request_line(&r, "b=1", 3, &error), -1);
    assert_string_equal(error, "too many attributes");
    policy_request_clear(&r);
    char *big = malloc(POLICY_LINE_MAX);
    memset(big, 'v', POLICY_LINE_MAX);
    int got = 0;
    for (int i = 0; i < 20 && got == 0; i++) {
        big[0] = (char)('a' + i);
        big[1] = '=';
        got = policy_request_line(&r, big, POLICY_LINE_MAX, &error);
    }
    assert_int_equal(got, -1);
    assert_string_equal(error, "request too large");
    free(big);
    policy_request_clear(&r);
}

static void test_states(void **state)
{
    assert_int_equal(policy_state_parse("RCPT"), POLICY_STATE_RCPT);
    assert_int_equal(policy_state_parse("HELO"), POLICY_STATE_EHLO);
    assert_int_equal(policy_state_parse("ehlo"), POLICY_STATE_EHLO);
    assert_int_equal(policy_state_parse("END-OF-MESSAGE"), POLICY_STATE_END_OF_MESSAGE);
    assert_int_equal(policy_state_parse("VRFY"), POLICY_STATE_OTHER);
    assert_int_equal(policy_state_parse(NULL), POLICY_STATE_OTHER);
    assert_string_equal(policy_state_name(POLICY_STATE_DATA), "DATA");
}

static void check_answer(const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", got, want);
}

static void test_answers(void **state)
{
    struct {
        char *got;
        const char *want;
    } cases[] = {
        {policy_answer_format("DUNNO", 0, NULL, NULL), "action=DUNNO\n\n"},
        {policy_answer_format("OK", 0, NULL, ""), "action=OK\n\n"},
        {policy_answer_format("HOLD", 0, NULL, "test_edit"), "action=HOLD test_edit\n\n"},
        {policy_answer_format(NULL, 550, "5.7.1", "go away"), "action=550 5.7.1 go away\n\n"},
        {policy_answer_format(NULL, 451, NULL, "later"), "action=451 later\n\n"},
        {policy_answer_format(NULL, 451, "5.7.1", "wrong class"), "action=451 wrong class\n\n"},
        {policy_answer_format(NULL, 250, "2.0.0", "not a refusal"), "action=451 not a refusal\n\n"},
        {policy_answer_format(NULL, 554, "5.7.1", "two\nlines\r\n\x01\xff"),
         "action=554 5.7.1 two; lines; ??\n\n"},
        {policy_answer_format(NULL, 550, NULL, ""), "action=550 Rejected by policy\n\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_answer(cases[i].got, cases[i].want);
        free(cases[i].got);
    }
    char text[1000];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    char *cut = policy_answer_format(NULL, 550, "5.7.1", text);
    assert_true(strlen(cut) < 430);
    assert_true(strchr(cut, '\n') == cut + strlen(cut) - 2); /* one line, then the empty one */
    free(cut);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
