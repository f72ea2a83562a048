/*
 * test_metrics.c - unit tests of the operations modules' pure parts: metrics.c (counting into
 * a slot, summing, the Prometheus text) and log.c's JSON line format. Table-driven where it
 * reads better; failures print got and want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "metrics.h"

/* has_line - text contains line as a whole line */
static int has_line(const char *text, const char *line)
{
    size_t length = strlen(line);
    for (const char *p = strstr(text, line); p != NULL; p = strstr(p + 1, line))
        if ((p == text || p[-1] == '\n') && (p[length] == '\n' || p[length] == '\0'))
            return 1;
    fprintf(stderr, "missing line: %s\n", line);
    return 0;
}

static void test_metrics_counts_and_renders(void **state)
{
    (void)state;
    const char *plugins[] = {"rcpt_ok", "milter:clamav"};
    const char *listeners[] = {"127.0.0.1:25"};
    const char *roles[] = {"smtp"};
    metrics_worker_describe(plugins, 2, listeners, roles, 1);
    metrics_session_opened(0);
    metrics_session_opened(0);
    metrics_session_closed(0);
    metrics_hook(0, PORTER_HOOK_RCPT, PORTER_OK, 200);      /* 0.0002 s: first bucket */
    metrics_hook(1, PORTER_HOOK_DATA_POST, PORTER_DENY, 3000000); /* 3 s: the 5 s bucket */
    metrics_transaction(250, 1, true, 1000);
    metrics_transaction(550, 1, true, 500);
    metrics_transaction(451, -1, false, 10);
    metrics_transaction(0, -1, false, 0); /* ended by RSET: not counted */
    struct metrics_sums *sums = metrics_collect();
    struct metrics_master_facts facts = {.generation = 3, .workers = 2, .queue_depth = -1};
    char *text = metrics_render(sums, &facts);
    assert_true(has_line(text, "porter_sessions_open{listener=\"127.0.0.1:25\",role=\"smtp\"} 1"));
    assert_true(has_line(text, "porter_sessions_total{listener=\"127.0.0.1:25\",role=\"smtp\"} 2"));
    assert_true(has_line(text, "porter_messages_accepted_total 1"));
    assert_true(has_line(text, "porter_messages_accepted_bytes_total 1000"));
    assert_true(has_line(text, "porter_transactions_total{class=\"2xx\",plugin=\"milter:clamav\"} 1"));
    assert_true(has_line(text, "porter_transactions_total{class=\"5xx\",plugin=\"milter:clamav\"} 1"));
    assert_true(has_line(text, "porter_transactions_total{class=\"4xx\",plugin=\"-\"} 1"));
    assert_true(has_line(text, "porter_plugin_hook_duration_seconds_bucket{plugin=\"rcpt_ok\","
                               "hook=\"rcpt\",le=\"0.0005\"} 1"));
    assert_true(has_line(text, "porter_plugin_hook_duration_seconds_bucket{plugin=\"milter:clamav\","
                               "hook=\"data_post\",le=\"2.5\"} 0"));
    assert_true(has_line(text, "porter_plugin_hook_duration_seconds_bucket{plugin=\"milter:clamav\","
                               "hook=\"data_post\",le=\"5\"} 1"));
    assert_true(has_line(text, "porter_plugin_hook_duration_seconds_sum{plugin=\"milter:clamav\","
                               "hook=\"data_post\"} 3.000000"));
    assert_true(has_line(text, "porter_plugin_verdicts_total{plugin=\"milter:clamav\","
                               "hook=\"data_post\",verdict=\"DENY\"} 1"));
    assert_true(has_line(text, "porter_config_generation 3"));
    assert_true(has_line(text, "# TYPE porter_plugin_hook_duration_seconds histogram"));
    assert_null(strstr(text, "porter_queue_messages")); /* no spool queue: not exposed */
    free(text);
    metrics_sums_free(sums);
}

static void test_metrics_session_view(void **state)
{
    (void)state;
    int view = metrics_view_open(42, "192.0.2.1", 0, 1000);
    assert_true(view >= 0);
    metrics_view_hook(view, PORTER_HOOK_MAIL, 1, 2000);
    assert_int_equal(metrics_here->sessions[view].hook, PORTER_HOOK_MAIL);
    assert_int_equal(metrics_here->sessions[view].hook_started_usec, 2000);
    metrics_view_close(view);
    assert_int_equal(metrics_here->sessions[view].id, 0);
    for (int i = 0; i < METRICS_RECENT + 5; i++)
        metrics_verdict((uint64_t)i, "192.0.2.1", PORTER_HOOK_RCPT, 0, PORTER_DENY, 10);
    assert_int_equal(metrics_here->recent_next, METRICS_RECENT + 5);
    assert_int_equal(metrics_here->recent[(METRICS_RECENT + 4) % METRICS_RECENT].session,
                     METRICS_RECENT + 4);
}

static void test_log_json(void **state)
{
    (void)state;
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"session=1A event=connect client=192.0.2.1 port=25",
         "\"session\":\"1A\",\"event\":\"connect\",\"client\":\"192.0.2.1\",\"port\":\"25\"}"},
        {"event=transaction reply=\"250 2.0.0 Ok: queued as X\" plugin=queue_maildir",
         "\"event\":\"transaction\",\"reply\":\"250 2.0.0 Ok: queued as X\",\"plugin\":\"queue_maildir\"}"},
        {"session=1 plugin=spf event=x plugin=other",
         "\"session\":\"1\",\"plugin\":\"spf\",\"event\":\"x\",\"plugin_2\":\"other\"}"},
        {"session=1 plugin=fortune a fortune: \"quoted\" text",
         "\"session\":\"1\",\"plugin\":\"fortune\",\"message\":\"a fortune: \\\"quoted\\\" text\"}"},
        {"event=x error=\"back\\slash\"", "\"event\":\"x\",\"error\":\"back\\\\slash\"}"},
        /* log_value's escapes: \" and \\ inside a quoted value */
        {"event=x helo=\"say \\\"hi\\\" \\\\o/\" n=1",
         "\"event\":\"x\",\"helo\":\"say \\\"hi\\\" \\\\o/\",\"n\":\"1\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[1024];
        log_format_json(out, sizeof out, "2026-01-01T00:00:00.000+0000", PORTER_LOG_INFO,
                        cases[i].line);
        const char *body = strstr(out, ",\"pid\":");
        body = body != NULL ? strchr(body + 1, ',') : NULL;
        if (body == NULL || strcmp(body + 1, cases[i].want) != 0) {
            fprintf(stderr, "line %s\n got  %s\n want ...,%s\n", cases[i].line, out, cases[i].want);
            fail();
        }
        assert_true(strncmp(out, "{\"time\":\"2026-01-01T00:00:00.000+0000\",\"level\":\"info\"", 52) == 0);
    }
    /* a line far longer than the buffer stays one closed object */
    char line[3000], out[512];
    memset(line, 'a', sizeof line - 1);
    memcpy(line, "event=x v=", 10);
    line[sizeof line - 1] = '\0';
    size_t length = log_format_json(out, sizeof out, "t", PORTER_LOG_INFO, line);
    assert_true(length < sizeof out && out[length - 1] == '}' && out[length] == '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_counts_and_renders),
        cmocka_unit_test(test_metrics_session_view),
        cmocka_unit_test(test_log_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
