/*
 * test_ratelimit.c - unit tests of native-plugins/ratelimit.c (compiled in here, with the fake
 * plugin API of fake_api.h): the COUNT/PERIOD syntax, periods as replies write them, and the
 * hooks' decisions on an in-memory store: connections and concurrent per client IP (421,
 * closed; both in one round trip), messages (at a transaction's first RCPT) and recipients per
 * client IP or per authenticated user (451), the window ending (the counter expires),
 * concurrent given back at disconnect, allow= clients, limits left out, store errors by
 * on_store_error; and connect's counts in the background: a client first seen or near a
 * limit waits, one far from its limits does not; an answer over the limit refuses at the
 * next command (given before it, or to the command that waits for it); concurrent given back
 * exactly once, also when the answer never came; and messages and recipients the same way
 * (RCPT does not wait, DATA does; 451 at the next RCPT or DATA). Table-driven; failures print "got X, want Y".
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
    if (fake.data != NULL) /* the connection's record */
        ratelimit_disconnect(fake_session, &plugin);
    free(plugin.seen);
    plugin.seen = NULL;
    return 0;
}

/* new_session - a new session of the client (the last one's record is the test's to end); its
 * connect hook's verdict */
static int new_session(void)
{
    fake.data = NULL;
    return ratelimit_connect(fake_session, &plugin);
}

/* concurrent - the client's concurrent counter in the store */
static long long concurrent(void)
{
    int i = fake_find("concurrent:192.0.2.7");
    return i < 0 ? -99 : atoll(fake.values[i]);
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

/* expect_refusal - the last reply: code, enhanced code (NULL: not checked) and a text that
 * contains text */
static void expect_refusal(int code, const char *enhanced, const char *text)
{
    assert_int_equal(fake.code, code);
    if (enhanced != NULL)
        assert_string_equal(fake.enhanced, enhanced);
    if (strstr(fake.text, text) == NULL)
        fail_msg("got \"%s\"", fake.text);
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
    expect_refusal(421, "4.7.0", "Too many connections from 192.0.2.7 (at most 2 per 1m); try "
                                 "again in 60 seconds");
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
    assert_ptr_equal(first, &ratelimit_only_concurrent); /* idle: no record, just the marker */
    fake.data = NULL; /* a second session of the same client */
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DENYSOFT_DISCONNECT);
    expect_refusal(421, NULL, "Too many concurrent connections from 192.0.2.7 (at most 1)");
    assert_int_equal(ratelimit_disconnect(fake_session, &plugin), PORTER_DECLINED); /* refused */
    fake.data = first;
    assert_int_equal(ratelimit_disconnect(fake_session, &plugin), PORTER_DECLINED); /* the first */
    assert_null(fake.data);
    assert_string_equal(fake.values[fake_find("concurrent:192.0.2.7")], "0");
    assert_int_equal(ratelimit_connect(fake_session, &plugin), PORTER_DECLINED);
    /* a counter gone below one (expired while sessions were open) starts again at one */
    fake_put("concurrent:192.0.2.7", "-3", 3600);
    fake.data = NULL; /* a new session (the marker is nothing to free) */
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
    expect_refusal(451, "4.7.1", "Too many messages from 192.0.2.7 (at most 1 per 1h)");
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

/* The first connection from a client waits for the store; once this worker knows the client
 * far from its limits, the next ones are counted in the background (the greeting does not
 * wait), until the counts seen and still in flight would fill a limit more than half. */
static void test_connect_background(void **unused)
{
    limit(RATELIMIT_CONNECTIONS, "100/1m");
    limit(RATELIMIT_CONCURRENT, "4");
    assert_int_equal(new_session(), PORTER_DECLINED);
    void *first = fake.data;
    assert_int_equal(fake.store_round_trips, 1); /* waited */
    assert_int_equal(fake.background_count, 0);
    /* seen: 1 connection, 1 open; one more leaves concurrent at 2 of 4 */
    assert_int_equal(new_session(), PORTER_DECLINED);
    void *second = fake.data;
    assert_int_equal(fake.store_round_trips, 1);
    assert_int_equal(fake.background_count, 1);
    /* with that one in flight, a third would reach 3 of 4: it waits */
    assert_int_equal(new_session(), PORTER_DECLINED);
    void *third = fake.data;
    assert_int_equal(fake.store_round_trips, 2);
    assert_int_equal(fake.background_count, 1);
    /* the second's EHLO and DATA do not wait for its answer, which lets it on */
    fake.data = second;
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DECLINED); /* EHLO */
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DECLINED); /* DATA */
    fake_background_answer(0);
    assert_int_equal(fake.resumed, 0);
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DECLINED); /* MAIL */
    second = fake.data; /* answered: the record gave way to the marker */
    assert_ptr_equal(second, &ratelimit_only_concurrent);
    assert_int_equal(concurrent(), 3);
    struct ratelimit_seen *e = ratelimit_slot(&plugin, "192.0.2.7");
    assert_true(e->in_flight[RATELIMIT_CONCURRENT] == 0 && e->counts[RATELIMIT_CONCURRENT] == 3 &&
                e->counts[RATELIMIT_CONNECTIONS] == 3);
    /* each gives its concurrent count back once */
    void *sessions[] = {first, second, third};
    for (size_t i = 0; i < 3; i++) {
        fake.data = sessions[i];
        assert_int_equal(ratelimit_disconnect(fake_session, &plugin), PORTER_DECLINED);
    }
    assert_int_equal(concurrent(), 0);
    /* another client is first seen again: it waits */
    fake.client_ip = "192.0.2.8";
    int round_trips = fake.store_round_trips;
    assert_int_equal(new_session(), PORTER_DECLINED);
    assert_int_equal(fake.store_round_trips, round_trips + 1);
    ratelimit_disconnect(fake_session, &plugin);
}

/* Other workers or gateways counted meanwhile: the background answer is over the limit, and
 * the client gets the 421 at its next command once the answer is in (nothing waits for it:
 * a command before the answer goes on). */
static void test_background_refused(void **unused)
{
    limit(RATELIMIT_CONNECTIONS, "10/1m");
    limit(RATELIMIT_CONCURRENT, "100");
    assert_int_equal(new_session(), PORTER_DECLINED);
    ratelimit_disconnect(fake_session, &plugin);
    assert_int_equal(new_session(), PORTER_DECLINED);
    assert_int_equal(fake.background_count, 1);
    fake_put("connections:192.0.2.7", "40", 60); /* another gateway's flood */
    fake_background_answer(0);
    assert_int_equal(fake.resumed, 0);
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DENYSOFT_DISCONNECT);
    expect_refusal(421, "4.7.0", "Too many connections from 192.0.2.7 (at most 10 per 1m); try "
                                 "again in 60 seconds");
    assert_non_null(strstr(fake.log, "event=ratelimit limit=connections subject=\"192.0.2.7\" "
                                     "count=41 max=10"));
    ratelimit_disconnect(fake_session, &plugin);
    assert_int_equal(concurrent(), 0);
    /* the table knows now: the next connection waits, and its 421 is the greeting */
    assert_int_equal(new_session(), PORTER_DENYSOFT_DISCONNECT);
    assert_int_equal(fake.background_count, 1);
    ratelimit_disconnect(fake_session, &plugin);
    /* a new window: far again; DATA before the answer goes on, the end of data after it
     * refuses */
    fake_expire("connections:192.0.2.7");
    assert_int_equal(new_session(), PORTER_DECLINED); /* waits: the window seen is not over */
    ratelimit_disconnect(fake_session, &plugin);
    fake_expire("connections:192.0.2.7");
    struct ratelimit_seen *e = ratelimit_slot(&plugin, "192.0.2.7");
    e->window_end[RATELIMIT_CONNECTIONS] = 0; /* the window this worker saw has ended */
    assert_int_equal(new_session(), PORTER_DECLINED);
    assert_int_equal(fake.background_count, 2);
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DECLINED); /* MAIL */
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DECLINED); /* DATA */
    fake_put("connections:192.0.2.7", "10", 60);
    fake_background_answer(1);
    assert_int_equal(fake.resumed, 0);
    assert_int_equal(ratelimit_command(fake_session, &plugin), /* end of data */
                     PORTER_DENYSOFT_DISCONNECT);
    assert_int_equal(fake.code, 421);
    ratelimit_disconnect(fake_session, &plugin);
    assert_int_equal(concurrent(), 0);
}

/* Messages and recipients far from their limits are counted in the background too: neither
 * RCPT nor DATA waits, and a refusal comes at the next RCPT, DATA or end of data once its
 * answer is in (451 4.7.1); near a limit, RCPT waits and refuses itself, as before. */
static void test_rcpt_background(void **unused)
{
    limit(RATELIMIT_MESSAGES, "100/1h");
    limit(RATELIMIT_RECIPIENTS, "100/1h");
    assert_int_equal(message("Q1"), PORTER_DECLINED); /* first seen: waits */
    assert_int_equal(fake.store_round_trips, 1);
    assert_int_equal(message("Q2"), PORTER_DECLINED);
    assert_int_equal(ratelimit_rcpt(fake_session, &plugin), PORTER_DECLINED);
    assert_int_equal(fake.store_round_trips, 1);
    assert_int_equal(fake.background_count, 2);
    fake_background_answer(0);
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DECLINED); /* DATA */
    fake_put("recipients:192.0.2.7", "500", 3600); /* another gateway counted meanwhile */
    fake_background_answer(1);
    assert_int_equal(fake.resumed, 0);
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DENYSOFT); /* end */
    expect_refusal(451, "4.7.1", "Too many recipients from 192.0.2.7 (at most 100 per 1h)");
    assert_string_equal(fake.values[fake_find("messages:192.0.2.7")], "2");
    /* known near the limit now: the next RCPT waits and refuses itself */
    assert_int_equal(message("Q3"), PORTER_DENYSOFT);
    assert_int_equal(fake.background_count, 2);
    /* a refusal that came before the next command is given by the next RCPT */
    fake_expire("recipients:192.0.2.7");
    ratelimit_slot(&plugin, "192.0.2.7")->window_end[RATELIMIT_RECIPIENTS] = 0;
    assert_int_equal(message("Q4"), PORTER_DECLINED); /* far: in the background */
    assert_int_equal(fake.background_count, 3);
    fake_put("messages:192.0.2.7", "100", 3600);
    fake_background_answer(2);
    assert_int_equal(fake.resumed, 0);
    assert_int_equal(ratelimit_rcpt(fake_session, &plugin), PORTER_DENYSOFT);
    if (strstr(fake.text, "Too many messages from 192.0.2.7") == NULL)
        fail_msg("got \"%s\"", fake.text);
    assert_int_equal(ratelimit_command(fake_session, &plugin), PORTER_DECLINED); /* given once */
}

/* A client that leaves before the background answer: the callback never runs, the count
 * was made all the same, and the concurrent count is given back once. */
static void test_background_left(void **unused)
{
    limit(RATELIMIT_CONCURRENT, "10");
    assert_int_equal(new_session(), PORTER_DECLINED);
    ratelimit_disconnect(fake_session, &plugin);
    assert_int_equal(new_session(), PORTER_DECLINED);
    assert_int_equal(fake.background_count, 1);
    assert_int_equal(ratelimit_slot(&plugin, "192.0.2.7")->in_flight[RATELIMIT_CONCURRENT], 1);
    ratelimit_disconnect(fake_session, &plugin); /* before the answer */
    assert_int_equal(ratelimit_slot(&plugin, "192.0.2.7")->in_flight[RATELIMIT_CONCURRENT], 0);
    fake_background_lost(0);
    assert_int_equal(concurrent(), 0);
    assert_int_equal(fake.resumed, 0);
    /* an answer that never came unlearns nothing: the next connection is counted in the
     * background too */
    assert_int_equal(new_session(), PORTER_DECLINED);
    assert_int_equal(fake.background_count, 2);
    fake_background_answer(1);
    ratelimit_disconnect(fake_session, &plugin);
    assert_int_equal(concurrent(), 0);
    /* a client that leaves while its connect waits: the continuation learns it (s NULL) and
     * the disconnect hook gives the count back */
    plugin.limits[RATELIMIT_CONCURRENT].count = 1; /* never far: wait */
    fake.data = NULL;
    struct ratelimit_connection *record = ratelimit_connection(fake_session);
    static const enum ratelimit_kind kinds[] = {RATELIMIT_CONNECTIONS, RATELIMIT_CONCURRENT};
    struct ratelimit_check *c = ratelimit_check_new(fake_session, &plugin, kinds, 2);
    record->concurrent = true;
    ratelimit_slot(&plugin, "192.0.2.7")->in_flight[RATELIMIT_CONCURRENT]++;
    fake_count("concurrent:192.0.2.7", 1, 3600); /* the +1 was made */
    ratelimit_counted(NULL, c, NULL);
    assert_int_equal(ratelimit_slot(&plugin, "192.0.2.7")->in_flight[RATELIMIT_CONCURRENT], 0);
    ratelimit_disconnect(fake_session, &plugin);
    assert_int_equal(concurrent(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_and_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_allowed_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_background, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rcpt_background, setup, teardown),
    };
    int failures = cmocka_run_group_tests(tests, NULL, NULL);
    fake_api_install();
    return failures;
}
