/*
 * test_xclient.c - unit tests of xclient_parse (gateway/xclient.c): every attribute of
 * Postfix's XCLIENT, xtext values, [UNAVAILABLE] and [TEMPUNAVAIL], names in any case, IPv6
 * with and without the IPV6: prefix, and the 501 texts for bad names and values.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/xclient.h"

static void test_all_attributes(void **state)
{
    (void)state;
    struct xclient_attributes a;
    char error[128] = "";
    assert_int_equal(xclient_parse("NAME=mx.client.example ADDR=192.0.2.7 PORT=4711 PROTO=ESMTP "
                                   "HELO=helo.example LOGIN=alice+40example.org "
                                   "DESTADDR=IPV6:2001:db8::25 DESTPORT=25", &a, error, sizeof error),
                     0);
    assert_string_equal(a.name, "mx.client.example");
    assert_string_equal(a.addr, "192.0.2.7");
    assert_int_equal(a.port, 4711);
    assert_true(a.has_proto && a.esmtp);
    assert_string_equal(a.helo, "helo.example");
    assert_string_equal(a.login, "alice@example.org");
    assert_string_equal(a.destaddr, "2001:db8::25");
    assert_int_equal(a.destport, 25);
}

static void test_unavailable_and_case(void **state)
{
    (void)state;
    struct xclient_attributes a;
    char error[128] = "";
    assert_int_equal(xclient_parse("name=[UNAVAILABLE] addr=[TEMPUNAVAIL] Login=[UNAVAILABLE] "
                                   "proto=smtp addr=2001:DB8::1", &a, error, sizeof error), 0);
    assert_true(a.has_name && a.has_login);
    assert_string_equal(a.name, "");
    assert_string_equal(a.login, "");
    assert_string_equal(a.addr, "2001:db8::1"); /* the later ADDR wins */
    assert_true(a.has_proto);
    assert_false(a.esmtp);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *argument;
        const char *error;
    } cases[] = {
        {"", "Syntax: XCLIENT attribute=value..."},
        {"   ", "Syntax: XCLIENT attribute=value..."},
        {"ADDR", "Bad XCLIENT attribute syntax"},
        {"=1.2.3.4", "Bad XCLIENT attribute syntax"},
        {"FOO=bar", "Bad XCLIENT attribute name: FOO"},
        {"F0O=bar", "Bad XCLIENT attribute name: ?"},
        {"ADDR=1.2.3", "Bad ADDR syntax"},
        {"ADDR=IPV6:1.2.3.4", "Bad ADDR syntax"},
        {"PORT=65536", "Bad PORT syntax"},
        {"PORT=-1", "Bad PORT syntax"},
        {"PROTO=LMTP", "Bad PROTO syntax"},
        {"NAME=bad..name", "Bad NAME syntax"},
        {"HELO=a+20b", "Bad HELO syntax"},
        {"LOGIN=a+22b", "Bad LOGIN syntax"},
        {"NAME=+zz", "Bad NAME syntax"},
        {"DESTPORT=x", "Bad DESTPORT syntax"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct xclient_attributes a;
        char error[128] = "";
        int rc = xclient_parse(cases[i].argument, &a, error, sizeof error);
        if (rc != -1 || strcmp(error, cases[i].error) != 0)
            fail_msg("\"%s\": got %d \"%s\", want -1 \"%s\"", cases[i].argument, rc, error,
                     cases[i].error);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_attributes),
        cmocka_unit_test(test_unavailable_and_case),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
