/*
 * test_p0f.c - unit tests of native-plugins/p0f.c: the 21-byte query for IPv4 and IPv6
 * clients, reading p0f's 232-byte answers (a match, no match, bad magic, bad status, wrong
 * length, hostile text fields, an out-of-range distance), deny_os= matching, and what an
 * answer or a failure does: notes, log facts, the verdict, and one failure line until p0f
 * answers again. The plugin's .c is included; its API calls go to tests/unit/fake_api.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../native-plugins/p0f.c"
#include "fake_api.h"
#include "testlib.h"

/* answer - a p0f answer as p0f 3.09b lays it out (struct p0f_api_response, host order) */
static void answer(unsigned char out[P0F_ANSWER_SIZE], uint32_t status, int16_t distance,
                   const char *os_name, const char *os_flavor, const char *link)
{
    uint32_t magic = P0F_ANSWER_MAGIC;
    memset(out, 0, P0F_ANSWER_SIZE);
    memcpy(out, &magic, 4);
    memcpy(out + 4, &status, 4);
    memcpy(out + P0F_DISTANCE_AT, &distance, 2);
    strncpy((char *)out + P0F_OS_NAME_AT, os_name, P0F_TEXT_SIZE);
    strncpy((char *)out + P0F_OS_FLAVOR_AT, os_flavor, P0F_TEXT_SIZE);
    strncpy((char *)out + P0F_LINK_AT, link, P0F_TEXT_SIZE);
}

static void test_query_build(void **unused)
{
    unsigned char query[P0F_QUERY_SIZE];
    uint32_t magic;
    assert_int_equal(p0f_query_build("192.0.2.7", query), 0);
    memcpy(&magic, query, 4);
    assert_int_equal(magic, P0F_QUERY_MAGIC);
    assert_int_equal(query[4], P0F_ADDRESS_IPV4);
    assert_memory_equal(query + 5, "\xc0\x00\x02\x07\0\0\0\0\0\0\0\0\0\0\0\0", 16);
    assert_int_equal(p0f_query_build("2001:db8::1", query), 0);
    assert_int_equal(query[4], P0F_ADDRESS_IPV6);
    assert_memory_equal(query + 5, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    assert_int_equal(p0f_query_build("unknown", query), -1);
    assert_int_equal(p0f_query_build("", query), -1);
    assert_int_equal(p0f_query_build("192.0.2.7 ", query), -1);
}

static void test_answer_parse(void **unused)
{
    unsigned char a[P0F_ANSWER_SIZE + 1];
    struct p0f_facts f;
    answer(a, P0F_STATUS_OK, 3, "Linux", "3.11 and newer", "Ethernet or modem");
    assert_int_equal(p0f_answer_parse(a, P0F_ANSWER_SIZE, &f), P0F_MATCH);
    assert_int_equal(f.distance, 3);
    assert_string_equal(f.os_name, "Linux");
    assert_string_equal(f.os_flavor, "3.11 and newer");
    assert_string_equal(f.link, "Ethernet or modem");

    answer(a, P0F_STATUS_NO_MATCH, 0, "", "", "");
    assert_int_equal(p0f_answer_parse(a, P0F_ANSWER_SIZE, &f), P0F_NO_MATCH);
    answer(a, 0x00, 0, "", "", ""); /* bad query */
    assert_int_equal(p0f_answer_parse(a, P0F_ANSWER_SIZE, &f), P0F_BAD_ANSWER);
    answer(a, P0F_STATUS_OK, 0, "Linux", "", "");
    assert_int_equal(p0f_answer_parse(a, P0F_ANSWER_SIZE - 1, &f), P0F_BAD_ANSWER);
    assert_int_equal(p0f_answer_parse(a, P0F_ANSWER_SIZE + 1, &f), P0F_BAD_ANSWER);
    a[0] ^= 1; /* magic */
    assert_int_equal(p0f_answer_parse(a, P0F_ANSWER_SIZE, &f), P0F_BAD_ANSWER);

    /* unknown distance, text fields with no NUL and hostile bytes */
    answer(a, P0F_STATUS_OK, -1, "", "", "");
    memset(a + P0F_OS_NAME_AT, 'A', P0F_TEXT_SIZE);
    memcpy(a + P0F_OS_FLAVOR_AT, "x\"y\\z\r\n\x01\xff", 10);
    assert_int_equal(p0f_answer_parse(a, P0F_ANSWER_SIZE, &f), P0F_MATCH);
    assert_int_equal(f.distance, -1);
    assert_int_equal(strlen(f.os_name), P0F_TEXT_SIZE - 1);
    assert_string_equal(f.os_flavor, "x?y?z????");
    answer(a, P0F_STATUS_OK, 4000, "Linux", "", "");
    assert_int_equal(p0f_answer_parse(a, P0F_ANSWER_SIZE, &f), P0F_MATCH);
    assert_int_equal(f.distance, -1);
}

static void test_denied(void **unused)
{
    struct p0f_facts linux_client = {.distance = 0, .os_name = "Linux", .os_flavor = "2.2.x-3.x"};
    struct p0f_facts unknown = {.distance = 0};
    assert_false(p0f_denied("", &linux_client));
    assert_true(p0f_denied(",Linux,", &linux_client));
    assert_true(p0f_denied(",windows,LINUX,", &linux_client));
    assert_true(p0f_denied(",Windows,linux 2.2.x-3.x,", &linux_client));
    assert_false(p0f_denied(",Linux 3.11 and newer,", &linux_client));
    assert_false(p0f_denied(",Lin,", &linux_client));
    assert_false(p0f_denied(",Linuxx,", &linux_client));
    assert_false(p0f_denied(",,", &linux_client));
    assert_false(p0f_denied(",Linux,", &unknown));
}

/* run_done - the continuation with a p0f answer (or a failure) for a plugin */
/* run_done_at - p0f's answer to a query made at connect (at_connect) or at a later command */
static void run_done_at(struct p0f *plugin, bool at_connect, const char *error,
                        const unsigned char *a, size_t length)
{
    fake_api_install();
    struct p0f_job *job = calloc(1, sizeof *job);
    assert_non_null(job);
    job->plugin = plugin;
    job->at_connect = at_connect;
    p0f_done(job, error, (const char *)a, length);
}

static void run_done(struct p0f *plugin, const char *error, const unsigned char *a, size_t length)
{
    run_done_at(plugin, true, error, a, length);
}

static void test_done(void **unused)
{
    struct p0f plugin = {.deny_os = ",Windows,"};
    unsigned char a[P0F_ANSWER_SIZE];
    answer(a, P0F_STATUS_OK, 0, "Linux", "2.2.x-3.x", "loopback");
    run_done(&plugin, NULL, a, sizeof a);
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_non_null(strstr(fake.notes, "p0f_os_name=Linux\n"));
    assert_non_null(strstr(fake.notes, "p0f_distance=0\n"));
    assert_non_null(strstr(fake.notes, "p0f_os=Linux 2.2.x-3.x\n"));
    assert_non_null(strstr(fake.log, "event=p0f result=match os=\"Linux 2.2.x-3.x\" distance=0"));
    assert_string_equal(fake.facts, "p0f_os=Linux 2.2.x-3.x\np0f_distance=0\n");

    answer(a, P0F_STATUS_OK, 7, "Windows", "7 or 8", "");
    run_done(&plugin, NULL, a, sizeof a);
    assert_int_equal(fake.rc, PORTER_DENY);
    assert_int_equal(fake.code, 554);
    assert_string_equal(fake.text, "Connections from Windows 7 or 8 systems are not accepted here");

    answer(a, P0F_STATUS_NO_MATCH, 0, "", "", "");
    run_done(&plugin, NULL, a, sizeof a);
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_string_equal(fake.notes, "");
    assert_non_null(strstr(fake.log, "event=p0f result=unknown"));
    /* unknown at connect: asked again at the next HELO/EHLO or MAIL */
    assert_ptr_equal(fake.data, &p0f_ask_again);

    /* known only then: the match clears the marker; deny_os ends the connection */
    answer(a, P0F_STATUS_OK, 7, "Windows", "7 or 8", "");
    run_done_at(&plugin, false, NULL, a, sizeof a);
    assert_int_equal(fake.rc, PORTER_DENY_DISCONNECT);
    assert_int_equal(fake.code, 554);
    assert_null(fake.data);
    assert_int_equal(p0f_later(NULL, &plugin), PORTER_DECLINED);

    /* failures: logged once, until p0f answers again */
    run_done(&plugin, "cannot connect: No such file or directory", NULL, 0);
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_non_null(strstr(fake.log, "event=p0f result=error error=\"cannot connect"));
    run_done(&plugin, "no answer within the timeout", NULL, 0);
    assert_int_equal(fake.rc, PORTER_DECLINED);
    assert_string_equal(fake.log, "");
    answer(a, P0F_STATUS_NO_MATCH, 0, "", "", "");
    run_done(&plugin, NULL, a, sizeof a);
    run_done(&plugin, "cannot connect: Connection refused", NULL, 0);
    assert_non_null(strstr(fake.log, "event=p0f result=error"));

    /* the client left: nothing touched */
    fake_api_install();
    fake.gone = true;
    struct p0f_job *job = calloc(1, sizeof *job);
    assert_non_null(job);
    job->plugin = NULL;
    p0f_done(job, NULL, (const char *)a, sizeof a);
    assert_int_equal(fake.resumed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_build),
        cmocka_unit_test(test_answer_parse),
        cmocka_unit_test(test_denied),
        cmocka_unit_test(test_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
