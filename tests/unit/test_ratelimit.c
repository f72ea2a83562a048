/*
 * test_ratelimit.c - unit tests of native-plugins/ratelimit.c (compiled in here, with the fake
 * plugin API of fake_api.h): the COUNT/PERIOD syntax, periods as replies write them, and the
 * hooks' decisions on an in-memory store: connections and concurrent per client IP (421,
 * closed; both in one round trip), messages (at a transaction's first RCPT) and recipients per
 * client IP or per authenticated user (451), the window ending (the counter expires),
 * concurrent given back at disconnect, allow= clients, limits left out, store errors by
 * on_store_error. Table-driven; failures print "got X, want Y".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.c"
#include "fake_api.h"

static struct ratelimit plugin;

static int setup(void **unused)
{
    fake_api_install();
    fake.client_ip = "192.0.2.7";
    memset(&plugin, 0, sizeof plugin);
    plugin.concurrent_ttl = 3600;
    return 0;
}

static int teardown(void **unused)
{
    free(fake.data); /* the connection's record, as the disconnect hook would */
    fake.data = NULL;
    return 0;
}

/* message - the first RCPT of transaction queue_id (a message, and a recipient) */
static int message(const char *queue_id)
{
    fake.queue_id = queue_id;
    return ratelimit_rcpt(fake_session, &plugin);
}

static void limit(enum ratelimit_kind kind, const char *text)
{
    assert_int_equal(ratelimit_parse(text, kind != RATELIMIT_CONCURRENT, &plugin.limits[kind]), 0);
}

static void test_parse(void **unused)
{
    static const struct {
        const char *text;
        bool with_period;
        int want;
        long long count;
        double period;
    } cases[] = {
        {"30/1m", true, 0, 30, 60},
        {"100/1h", true, 0, 100, 3600},
        {"500/h", true, 0, 500, 3600},
        {"5/90", true, 0, 5, 90},
        {"5/90s", true, 0, 5, 90},
        {"1000/1d", true, 0, 1000, 86400},
        {"2/2w", true, 0, 2, 2 * 604800},
        {"10", false, 0, 10, 0},
        {"10", true, -1, 0, 0},
        {"10/", true, 0, 10, 1}, /* a bare "/" is per second */
        {"0/1m", true, -1, 0, 0},
        {"-3/1m", true, -1, 0, 0},
        {"x/1m", true, -1, 0, 0},
        {"3/1y", true, -1, 0, 0},
        {"3/1mm", true, -1, 0, 0},
        {"3/0.5s", true, -1, 0, 0},
        {"10/1m", false, -1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ratelimit_limit out = {0, 0};
        int got = ratelimit_parse(cases[i].text, cases[i].with_period, &out);
        if (got != cases[i].want ||
            (got == 0 && (out.count != cases[i].count || out.period != cases[i].period)))
            fail_msg("%s: got %d (%lld per %g), want %d (%lld per %g)", cases[i].text, got,
                     out.count, out.period, cases[i].want, cases[i].count, cases[i].period);
    }
    char text[32];
    ratelimit_period_text(60, text, sizeof text);
    assert_string_equal(text, "1m");
    ratelimit_period_text(7200, text, sizeof text);
    assert_string_equal(text, "2h");
    ratelimit_period_text(90, text, sizeof text);
    assert_string_equal(text, "90s");
}

static void test_connections(void **unused)
{
    limit(RATELIMIT_CONNECTIONS, "2/1m");
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DENYSOFT_DISCONNECT);
    assert_int_equal(fake.code, 421);
    assert_string_equal(fake.enhanced, "4.7.0");
    if (strstr(fake.text, "Too many connections from 192.0.2.7 (at most 2 per 1m); try again "
                          "in 60 seconds") == NULL)
        fail_msg("got \"%s\"", fake.text);
    assert_true(fake.ttls[fake_find("connections:192.0.2.7")] == 60);
    /* another client is counted apart */
    fake.client_ip = "192.0.2.8";
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
    /* the window ends: the counter expires and the client may connect again */
    fake.client_ip = "192.0.2.7";
    fake_expire("connections:192.0.2.7");
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
}

static void test_concurrent(void **unused)
{
    limit(RATELIMIT_CONNECTIONS, "100/1m");
    limit(RATELIMIT_CONCURRENT, "1");
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 2); /* connections and concurrent, */
    assert_int_equal(fake.store_round_trips, 1); /* in one round trip */
    void *first = fake.data;
    assert_non_null(first);
    fake.data = NULL; /* a second session of the same client */
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DENYSOFT_DISCONNECT);
    assert_int_equal(fake.code, 421);
    if (strstr(fake.text, "Too many concurrent connections from 192.0.2.7 (at most 1)") == NULL)
        fail_msg("got \"%s\"", fake.text);
    assert_int_equal(ratelimit_disconnect(fake_session, &plugin), PORTER_DECLINED); /* refused */
    fake.data = first;
    assert_int_equal(ratelimit_disconnect(fake_session, &plugin), PORTER_DECLINED); /* the first */
    assert_null(fake.data);
    assert_string_equal(fake.values[fake_find("concurrent:192.0.2.7")], "0");
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
    /* a counter gone below one (expired while sessions were open) starts again at one */
    fake_put("concurrent:192.0.2.7", "-3", 3600);
    free(fake.data);
    fake.data = NULL;
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
    assert_string_equal(fake.values[fake_find("concurrent:192.0.2.7")], "1");
}

static void test_messages_and_recipients(void **unused)
{
    limit(RATELIMIT_MESSAGES, "1/1h");
    limit(RATELIMIT_RECIPIENTS, "3/1h");
    assert_int_equal(message("Q1"), PORTER_DECLINED);
    assert_int_equal(fake.store_round_trips, 1); /* message and recipient in one */
    assert_int_equal(fake.store_calls, 2);
    assert_int_equal(ratelimit_rcpt(fake_session, &plugin), PORTER_DECLINED); /* same message */
    assert_string_equal(fake.values[fake_find("messages:192.0.2.7")], "1");
    assert_string_equal(fake.values[fake_find("recipients:192.0.2.7")], "2");
    assert_int_equal(message("Q2"), PORTER_DENYSOFT); /* the second message */
    assert_int_equal(fake.code, 451);
    assert_string_equal(fake.enhanced, "4.7.1");
    if (strstr(fake.text, "Too many messages from 192.0.2.7 (at most 1 per 1h)") == NULL)
        fail_msg("got \"%s\"", fake.text);
    /* refused: the next RCPT of that transaction counts the message again, and is refused */
    assert_int_equal(ratelimit_rcpt(fake_session, &plugin), PORTER_DENYSOFT);
    if (strstr(fake.text, "Too many messages") == NULL)
        fail_msg("got \"%s\"", fake.text);
    assert_string_equal(fake.values[fake_find("messages:192.0.2.7")], "3");
    /* recipients: 4 counted by now */
    limit(RATELIMIT_MESSAGES, "100/1h");
    assert_int_equal(message("Q3"), PORTER_DENYSOFT);
    if (strstr(fake.text, "Too many recipients") == NULL)
        fail_msg("got \"%s\"", fake.text);
    /* an authenticated user is counted as the user, not as the address */
    limit(RATELIMIT_MESSAGES, "1/1h");
    fake.auth_user = "alice";
    assert_int_equal(message("Q4"), PORTER_DECLINED); /* alice's first message */
    assert_int_equal(message("Q5"), PORTER_DENYSOFT);
    if (strstr(fake.text, "Too many messages from user alice") == NULL)
        fail_msg("got \"%s\"", fake.text);
    assert_true(fake_find("messages:user alice") >= 0);
    assert_string_equal(fake.values[fake_find("messages:user alice")], "2");
}

static void test_off_allowed_and_errors(void **unused)
{
    /* limits left out are not checked */
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
    assert_int_equal(message("Q1"), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 0);
    limit(RATELIMIT_MESSAGES, "1/1h");
    char *error = NULL;
    plugin.allow = cidr_parse("192.0.2.0/24", &error);
    for (int i = 0; i < 3; i++)
        assert_int_equal(message(i == 0 ? "A" : i == 1 ? "B" : "C"), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 0);
    cidr_free(plugin.allow);
    plugin.allow = NULL;
    fake.store_fails = true;
    assert_int_equal(message("Q2"), PORTER_DECLINED);
    assert_non_null(strstr(fake.log, "event=store_error limit=messages action=accept"));
    plugin.tempfail = true;
    assert_int_equal(message("Q3"), PORTER_DENYSOFT);
    assert_string_equal(fake.enhanced, "4.3.0");
    limit(RATELIMIT_CONNECTIONS, "5/1m");
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DENYSOFT_DISCONNECT);
    assert_int_equal(fake.code, 421);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_and_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_allowed_and_errors, setup, teardown),
    };
    int failures = cmocka_run_group_tests(tests, NULL, NULL);
    fake_api_install();
    return failures;
}
