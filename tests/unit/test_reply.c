/*
 * test_reply.c - unit tests of reply.c: multi-line formatting, enhanced-code class fixing,
 * sanitising of control characters, and the default replies of verdicts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "reply.h"

/* render - reply_write into a string (caller frees) */
static char *render(int code, const char *enhanced, const char *text)
{
    struct evbuffer *out = evbuffer_new();
    reply_write(out, code, enhanced, text);
    size_t length = evbuffer_get_length(out);
    char *result = calloc(1, length + 1);
    evbuffer_remove(out, result, length);
    evbuffer_free(out);
    return result;
}

static void test_reply_formats(void **state)
{
    static const struct {
        int code;
        const char *enhanced;
        const char *text;
        const char *want;
    } cases[] = {
        {250, "2.0.0", "Ok", "250 2.0.0 Ok\r\n"},
        {220, NULL, "mx ESMTP", "220 mx ESMTP\r\n"},
        {221, "2.0.0", "bye\n / one\n / two", "221-2.0.0 bye\r\n221-2.0.0  / one\r\n221 2.0.0  / two\r\n"},
        {550, "2.1.0", "mismatched class", "550 5.1.0 mismatched class\r\n"},
        {451, "bogus", "bad enhanced", "451 4.0.0 bad enhanced\r\n"},
        {550, "5.7.1", "ctl\x01here\r", "550 5.7.1 ctl here\r\n"},
        {250, "2.0.0", "trailing newline\n", "250 2.0.0 trailing newline\r\n"},
        {250, NULL, "a\r\nb", "250-a\r\n250 b\r\n"},
        {999, "5.0.0", "bad code", "451 4.0.0 bad code\r\n"},
        {354, "2.0.0", "go", "354 2.0.0 go\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = render(cases[i].code, cases[i].enhanced, cases[i].text);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].want);
        free(got);
    }
}

static void test_reply_long_line_cut(void **state)
{
    char text[2000];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    char *got = render(250, "2.0.0", text);
    size_t want = 4 + 6 + REPLY_LINE_MAX + 2;
    if (strlen(got) != want)
        fail_msg("got length %zu, want %zu", strlen(got), want);
    free(got);
}

static void test_reply_defaults(void **state)
{
    static const struct {
        int hook, rc, code;
        const char *enhanced;
    } cases[] = {
        {PORTER_HOOK_RCPT, PORTER_DENY, 550, "5.7.1"},
        {PORTER_HOOK_RCPT, PORTER_DENYSOFT, 450, "4.7.1"},
        {PORTER_HOOK_RCPT, PORTER_OK, 250, "2.1.5"},
        {PORTER_HOOK_MAIL, PORTER_OK, 250, "2.1.0"},
        {PORTER_HOOK_CONNECT, PORTER_DENYSOFT, 421, "4.7.0"},
        {PORTER_HOOK_QUEUE, PORTER_DECLINED, 451, "4.3.0"},
        {PORTER_HOOK_HELO, PORTER_DENY_DISCONNECT, 554, "5.7.1"},
        {PORTER_HOOK_NOOP, PORTER_DENYSOFT_DISCONNECT, 421, "4.7.0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int code;
        const char *enhanced, *text;
        reply_default(cases[i].hook, cases[i].rc, &code, &enhanced, &text);
        if (code != cases[i].code || strcmp(enhanced, cases[i].enhanced) != 0)
            fail_msg("case %zu (%s %s): got %d %s, want %d %s", i, porter_hook_name(cases[i].hook),
                     porter_rc_name(cases[i].rc), code, enhanced, cases[i].code, cases[i].enhanced);
    }
}

static void test_reply_resolve(void **state)
{
    struct reply given = {0};
    int code;
    const char *enhanced, *text;
    /* A DENY may not carry a 2xx code: the default class wins, the text stays. */
    reply_set(&given, 250, "5.7.1", "no");
    reply_resolve(&given, PORTER_HOOK_RCPT, PORTER_DENY, &code, &enhanced, &text);
    assert_int_equal(code, 550);
    assert_string_equal(text, "no");
    reply_set(&given, 554, NULL, "go away");
    reply_resolve(&given, PORTER_HOOK_MAIL, PORTER_DENY, &code, &enhanced, &text);
    assert_int_equal(code, 554);
    assert_string_equal(enhanced, "5.7.1");
    reply_set(&given, 221, "2.0.0", "fortune");
    reply_resolve(&given, PORTER_HOOK_QUIT, PORTER_DONE, &code, &enhanced, &text);
    assert_int_equal(code, 221);
    reply_clear(&given);
    reply_resolve(&given, PORTER_HOOK_RCPT, PORTER_DENY, &code, &enhanced, &text);
    assert_string_equal(text, "Recipient rejected");
}

static void test_names(void **state)
{
    assert_string_equal(porter_rc_name(PORTER_DENYSOFT), "DENYSOFT");
    assert_string_equal(porter_rc_name(99), "INVALID");
    assert_string_equal(porter_hook_name(PORTER_HOOK_DATA_POST), "data_post");
    assert_int_equal(porter_hook_from_name("queue"), PORTER_HOOK_QUEUE);
    assert_int_equal(porter_hook_from_name("nope"), -1);
    for (int hook = 0; hook < PORTER_HOOK_COUNT; hook++)
        assert_int_equal(porter_hook_from_name(porter_hook_name(hook)), hook);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_formats),
        cmocka_unit_test(test_reply_long_line_cut),
        cmocka_unit_test(test_reply_defaults),
        cmocka_unit_test(test_reply_resolve),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
