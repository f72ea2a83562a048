/*
 * test_spamassassin.c - unit tests of native-plugins/spamassassin.c: reading spamd's answers
 * to SYMBOLS (spam, ham, error codes, malformed status and Spam: lines, hostile rule lists),
 * the X-Spam-Status folding, and the verdict and header edits each answer gives with and
 * without reject_score=, and under on_error=tempfail and accept. The plugin's .c is included;
 * its API calls go to tests/unit/fake_api.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../native-plugins/spamassassin.c"
#include "fake_api.h"
#include "testlib.h"

#define SPAM_ANSWER "SPAMD/1.1 0 EX_OK\r\nContent-length: 40\r\nSpam: True ; 1003.3 / 5.0\r\n\r\n" \
                    "GTUBE,MISSING_DATE,NO_RECEIVED,NO_RELAYS"
#define HAM_ANSWER "SPAMD/1.1 0 EX_OK\r\nContent-length: 9\r\nSpam: False ; -0.1 / 5.0\r\n\r\nNO_RELAYS"

struct parse_case {
    const char *answer;
    int want;             /* 0 or -1 */
    bool spam;
    double score, required;
    const char *tests;    /* or, when want is -1, a part of the error text */
};

static const struct parse_case parse_cases[] = {
    {SPAM_ANSWER, 0, true, 1003.3, 5.0, "GTUBE,MISSING_DATE,NO_RECEIVED,NO_RELAYS"},
    {HAM_ANSWER, 0, false, -0.1, 5.0, "NO_RELAYS"},
    {"SPAMD/1.5 0 EX_OK\nSpam: Yes ; 7 / 5\n\nA,B\n", 0, true, 7, 5, "A,B"},
    {"SPAMD/1.1 0 EX_OK\r\nSpam: No ; 0.0 / 5.0\r\n\r\n", 0, false, 0, 5, ""},
    {"SPAMD/1.1 0 EX_OK\r\nspam: true;3.5/5.0\r\n\r\nX", 0, true, 3.5, 5, "X"},
    {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 9 / 5\r\n\r\nA, B;<script>\r\n", 0, true, 9, 5, "A,Bscript"},
    {"SPAMD/1.1 76 Bad header line: (EOF)\r\n", -1, false, 0, 0, "spamd: SPAMD/1.1 76"},
    {"SPAMD/1.1 0 EX_OK\r\nContent-length: 3\r\n\r\nA,B", -1, false, 0, 0, "no Spam: line"},
    {"SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n\r\n", -1, false, 0, 0, "bad Spam: line"},
    {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 5\r\n\r\n", -1, false, 0, 0, "bad Spam: line"},
    {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; x / 5\r\n\r\n", -1, false, 0, 0, "bad Spam: line"},
    {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 5 extra\r\n\r\n", -1, false, 0, 0, "bad Spam: line"},
    {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; nan / 5\r\n\r\n", -1, false, 0, 0, "bad Spam: line"},
    {"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1e300 / 5\r\n\r\n", -1, false, 0, 0, "bad Spam: line"},
    {"HTTP/1.1 200 OK\r\n\r\n", -1, false, 0, 0, "not a spamd answer"},
    {"SPAMD/1.1\r\n", -1, false, 0, 0, "not a spamd answer"},
    {"", -1, false, 0, 0, "not a spamd answer"},
};

static void test_answer_parse(void **unused)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct spamd_result r;
        char error[SPAMD_ERROR_MAX], shown[512];
        int got = spamd_answer_parse(c->answer, strlen(c->answer), &r, error, sizeof error);
        escape(c->answer, strlen(c->answer), shown, sizeof shown);
        if (got != c->want)
            fail_msg("answer \"%s\": got %d (%s), want %d", shown, got, error, c->want);
        if (got == 0 && (r.spam != c->spam || r.score != c->score || r.required != c->required ||
                         strcmp(r.tests, c->tests) != 0))
            fail_msg("answer \"%s\": got %d %.1f/%.1f \"%s\", want %d %.1f/%.1f \"%s\"", shown,
                     r.spam, r.score, r.required, r.tests, c->spam, c->score, c->required,
                     c->tests);
        if (got != 0 && strstr(error, c->tests) == NULL)
            fail_msg("answer \"%s\": error \"%s\" does not say \"%s\"", shown, error, c->tests);
    }
}

static void test_status_folding(void **unused)
{
    struct spamd_result r = {.spam = true, .score = 12.5, .required = 5.0};
    char out[SPAMD_TESTS_MAX + 256];
    spamd_status(&r, out, sizeof out);
    assert_string_equal(out, "Yes, score=12.5 required=5.0 tests=none");
    for (int i = 0; i < 40; i++)
        strcat(r.tests, i ? ",RULE_NUMBER_XX" : "RULE_NUMBER_XX");
    spamd_status(&r, out, sizeof out);
    /* after the first line (15 columns of "X-Spam-Status: " before it) every line starts with
     * a tab (8 columns); none is longer than 78 columns, and nothing is lost */
    const char *line = out;
    size_t width = 15, rules = 0;
    for (const char *eol; (eol = strstr(line, "\r\n")) != NULL; line = eol + 2, width = 7) {
        assert_true(width + (size_t)(eol - line) <= 78);
        assert_int_equal(eol[2], '\t');
    }
    assert_true(width + strlen(line) <= 78);
    for (const char *p = strstr(out, "RULE_NUMBER_XX"); p; p = strstr(p + 1, "RULE_NUMBER_XX"))
        rules++;
    assert_int_equal(rules, 40);
}

/* run_done - the continuation with an answer (or a failure) and a fresh job */
static void run_done(int on_error, double reject_score, const char *failure, const char *answer)
{
    fake_api_install();
    struct spamd_job *job = calloc(1, sizeof *job);
    assert_non_null(job);
    job->on_error = on_error;
    job->reject_score = reject_score;
    spamd_done(job, failure, answer, answer ? strlen(answer) : 0);
}

static void test_verdicts(void **unused)
{
    run_done(DAEMON_TALK_TEMPFAIL, 10, NULL, SPAM_ANSWER);
    assert_int_equal(fake.rc, PORTER_DENY);
    assert_int_equal(fake.code, 550);
    assert_string_equal(fake.enhanced, "5.7.1");
    assert_string_equal(fake.text, "Message refused as spam (score 1003.3)");
    assert_string_equal(fake.headers, "");
    assert_non_null(strstr(fake.log, "result=spam score=1003.3 required=5.0 tests=GTUBE,"));
    assert_non_null(strstr(fake.log, "action=reject"));
    assert_non_null(strstr(fake.notes, "spam_score=1003.3\n"));

    run_done(DAEMON_TALK_TEMPFAIL, 1003.3, NULL, SPAM_ANSWER); /* at the score: refused */
    assert_int_equal(fake.rc, PORTER_DENY);

    run_done(DAEMON_TALK_TEMPFAIL, -1, NULL, SPAM_ANSWER); /* no reject_score: headers only */
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_string_equal(fake.headers,
                        "-X-Spam-Flag\n-X-Spam-Status\n-X-Spam-Score\nX-Spam-Flag: YES\n"
                        "X-Spam-Score: 1003.3\nX-Spam-Status: Yes, score=1003.3 required=5.0 "
                        "tests=GTUBE,MISSING_DATE,\r\n\tNO_RECEIVED,NO_RELAYS\n");

    run_done(DAEMON_TALK_TEMPFAIL, 10, NULL, HAM_ANSWER);
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_string_equal(fake.headers, "-X-Spam-Flag\n-X-Spam-Status\n-X-Spam-Score\n"
                        "X-Spam-Score: -0.1\nX-Spam-Status: No, score=-0.1 required=5.0 "
                        "tests=NO_RELAYS\n");

    run_done(DAEMON_TALK_TEMPFAIL, 10, "cannot connect: No such file or directory", NULL);
    assert_int_equal(fake.rc, PORTER_DENYSOFT);
    assert_int_equal(fake.code, 451);
    assert_string_equal(fake.enhanced, "4.7.1");
    assert_non_null(strstr(fake.log, "result=error error=\"cannot connect: No such file or "
                                     "directory\" action=tempfail"));

    run_done(DAEMON_TALK_ACCEPT, 10, NULL, "SPAMD/1.1 76 Bad header line\r\n");
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_string_equal(fake.headers, "");
    assert_non_null(strstr(fake.log, "action=accept"));
}

static void test_client_gone(void **unused)
{
    fake_api_install();
    fake.gone = true;
    struct spamd_job *job = calloc(1, sizeof *job);
    assert_non_null(job);
    spamd_done(job, NULL, SPAM_ANSWER, strlen(SPAM_ANSWER));
    assert_int_equal(fake.resumed, 0);
    assert_string_equal(fake.headers, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_parse),
        cmocka_unit_test(test_status_folding),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_client_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
