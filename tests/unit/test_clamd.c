/*
 * test_clamd.c - unit tests of native-plugins/clamd.c: reading clamd's INSTREAM answers
 * (clean, a virus and its name, errors, cut and hostile answers) and the verdict each
 * answer, or a failed exchange, gives under on_error=tempfail and on_error=accept. The
 * plugin's .c is included; its API calls go to tests/unit/fake_api.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../native-plugins/clamd.c"
#include "fake_api.h"
#include "testlib.h"

struct parse_case {
    const char *answer;
    size_t length;   /* 0: strlen */
    int want;
    const char *want_name;
};

static const struct parse_case parse_cases[] = {
    {"stream: OK", 0, CLAMD_CLEAN, ""},
    {"stream: OK\n", 0, CLAMD_CLEAN, ""},
    {"stream: OK\0garbage", 18, CLAMD_CLEAN, ""},
    {"stream: Eicar-Test-Signature FOUND", 0, CLAMD_VIRUS, "Eicar-Test-Signature"},
    {"stream: Porter.Test.EICAR.UNOFFICIAL FOUND\0", 44, CLAMD_VIRUS, "Porter.Test.EICAR.UNOFFICIAL"},
    {"stream: Win.Test \"quoted\" FOUND", 0, CLAMD_VIRUS, "Win.Test ?quoted?"},
    {"stream: \r\x1b[31m FOUND", 0, CLAMD_VIRUS, "??[31m"},
    {"INSTREAM size limit exceeded. ERROR", 0, CLAMD_ERROR, "INSTREAM size limit exceeded. ERROR"},
    {"stream: Can't allocate memory ERROR", 0, CLAMD_ERROR, "stream: Can't allocate memory ERROR"},
    {"stream: FOUND", 0, CLAMD_ERROR, "stream: FOUND"},
    {"stream:  FOUND", 0, CLAMD_ERROR, "stream:  FOUND"},
    {"stream: OKAY", 0, CLAMD_ERROR, "stream: OKAY"},
    {"stream: ", 0, CLAMD_ERROR, "stream: "},
    {"stream", 0, CLAMD_ERROR, "stream"},
    {"", 0, CLAMD_ERROR, "empty answer"},
    {"\0stream: OK", 11, CLAMD_ERROR, "empty answer"},
    {"1: stream: OK", 0, CLAMD_ERROR, "1: stream: OK"},
    {"UNKNOWN COMMAND", 0, CLAMD_ERROR, "UNKNOWN COMMAND"},
};

static void test_answer_parse(void **unused)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        char name[CLAMD_NAME_MAX], shown[256];
        size_t length = c->length ? c->length : strlen(c->answer);
        int got = clamd_answer_parse(c->answer, length, name, sizeof name);
        if (got != c->want || strcmp(name, c->want_name) != 0)
            fail_msg("answer \"%s\": got %d \"%s\", want %d \"%s\"",
                     escape(c->answer, length, shown, sizeof shown), got, name, c->want,
                     c->want_name);
    }
}

static void test_answer_parse_bounds(void **unused)
{
    /* a long name is cut to the buffer; a tiny buffer still gets a terminated string */
    char answer[2048], name[CLAMD_NAME_MAX], tiny[4];
    memcpy(answer, "stream: ", 8);
    memset(answer + 8, 'A', 1500);
    memcpy(answer + 1508, " FOUND", 6);
    assert_int_equal(clamd_answer_parse(answer, 1514, name, sizeof name), CLAMD_VIRUS);
    assert_int_equal(strlen(name), CLAMD_NAME_MAX - 1);
    assert_int_equal(clamd_answer_parse("stream: Eicar FOUND", 19, tiny, sizeof tiny), CLAMD_VIRUS);
    assert_string_equal(tiny, "Eic");
}

/* run_done - the continuation with an answer (or an error) and a fresh job */
static void run_done(int on_error, const char *error, const char *answer)
{
    fake_api_install();
    struct clamd_job *job = calloc(1, sizeof *job);
    assert_non_null(job);
    job->on_error = on_error;
    clamd_done(job, error, answer, answer ? strlen(answer) : 0);
}

static void test_verdicts(void **unused)
{
    run_done(DAEMON_TALK_TEMPFAIL, NULL, "stream: OK");
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_non_null(strstr(fake.log, "event=clamd result=clean"));

    run_done(DAEMON_TALK_ACCEPT, NULL, "stream: Eicar-Test-Signature FOUND");
    assert_int_equal(fake.rc, PORTER_DENY);
    assert_int_equal(fake.code, 554);
    assert_string_equal(fake.enhanced, "5.7.1");
    assert_string_equal(fake.text, "Virus found: Eicar-Test-Signature");
    assert_non_null(strstr(fake.notes, "virus=Eicar-Test-Signature\n"));
    assert_non_null(strstr(fake.log, "result=virus virus=\"Eicar-Test-Signature\""));

    run_done(DAEMON_TALK_TEMPFAIL, "cannot connect: Connection refused", NULL);
    assert_int_equal(fake.rc, PORTER_DENYSOFT);
    assert_int_equal(fake.code, 451);
    assert_string_equal(fake.enhanced, "4.7.1");
    assert_non_null(strstr(fake.log, "error=\"cannot connect: Connection refused\" action=tempfail"));

    run_done(DAEMON_TALK_ACCEPT, "no answer within the timeout", NULL);
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_non_null(strstr(fake.log, "action=accept"));

    run_done(DAEMON_TALK_TEMPFAIL, NULL, "INSTREAM size limit exceeded. ERROR");
    assert_int_equal(fake.rc, PORTER_DENYSOFT);
    assert_non_null(strstr(fake.log, "error=\"INSTREAM size limit exceeded. ERROR\""));
}

static void test_client_gone(void **unused)
{
    /* nobody waits any more: no verdict, no log, the job is freed (ASan checks) */
    fake_api_install();
    fake.gone = true;
    struct clamd_job *job = calloc(1, sizeof *job);
    assert_non_null(job);
    clamd_done(job, NULL, "stream: Eicar FOUND", 19);
    assert_int_equal(fake.resumed, 0);
    assert_string_equal(fake.log, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_parse),
        cmocka_unit_test(test_answer_parse_bounds),
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_client_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
