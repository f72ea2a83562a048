/*
 * test_log.c - unit tests of log.c's log_value (a value that stays one key=value token,
 * however it is written) and memory.c's xjoin.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "memory.h"

static void test_log_value(void **state)
{
    static const struct {
        const char *value;
        const char *want;
    } cases[] = {
        {"plain", "plain"},
        {"<bob@example.com>,<carol@example.com>", "<bob@example.com>,<carol@example.com>"},
        {"a=b", "a=b"},
        {"", "\"\""},
        {NULL, "-"},
        {"two words", "\"two words\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"line\nbreak\ttab", "\"line\\nbreak\\ttab\""},
        {"bell\acontrol", "\"bell?control\""},
        {"<\"a b\"@example.org>", "\"<\\\"a b\\\"@example.org>\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buffer[128];
        const char *got = log_value(buffer, sizeof buffer, cases[i].value);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("log_value(%s): got [%s], want [%s]", cases[i].value ? cases[i].value : "NULL",
                     got, cases[i].want);
    }
}

/* A value cut to fit stays well formed: the closing quote is kept and no escape is split. */
static void test_log_value_cut(void **state)
{
    char buffer[12];
    const char *got = log_value(buffer, sizeof buffer, "a \"b\" c d e f g");
    assert_true(strlen(got) < sizeof buffer);
    assert_int_equal(got[0], '"');
    assert_int_equal(got[strlen(got) - 1], '"');
    assert_string_equal(got, "\"a \\\"b\\\" c\"");
    char tiny[2];
    assert_string_equal(log_value(tiny, sizeof tiny, "x y"), "");
    assert_string_equal(log_value(tiny, sizeof tiny, "x"), "x");
}

static void test_xjoin(void **state)
{
    char *items[] = {"a", "bb", "ccc"};
    char *joined = xjoin(items, 3, ", ");
    assert_string_equal(joined, "a, bb, ccc");
    free(joined);
    joined = xjoin(items, 0, ", ");
    assert_string_equal(joined, "");
    free(joined);
    joined = xjoin(items, 1, "; ");
    assert_string_equal(joined, "a");
    free(joined);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_value),
        cmocka_unit_test(test_log_value_cut),
        cmocka_unit_test(test_xjoin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
