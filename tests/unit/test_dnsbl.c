/*
 * test_dnsbl.c - unit tests of native-plugins/dnsbl_common.c, what the dnsbl and rhsbl plugins
 * share: the names asked (IPv4 reversed, IPv6 nibbles, IPv4-mapped, domains), the per-zone
 * match syntax, how an answer reads, TXT cleaning, allow_rcpt, and the decisions at RCPT on
 * the fake plugin API of fake_api.h (lookups answered by the test: listed, not listed,
 * timeout, an answer outside 127/8, a RCPT that waits and is resumed, relay clients, a
 * retired sender set, action=log).
 * Table-driven; failures print "got X, want Y".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dnsbl_common.h"

const struct porter_api *porter_api;

#include "fake_api.h"

/* ---------------------------------------------------------------- pure functions */

static void test_ip_names(void **unused)
{
    (void)unused;
    static const struct {
        const char *ip, *want;
    } cases[] = {
        {"192.0.2.1", "1.2.0.192.bl.example"},
        {"127.0.0.2", "2.0.0.127.bl.example"},
        {"::ffff:192.0.2.99", "99.2.0.192.bl.example"},
        {"2001:db8::1",
         "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example"},
        {"2001:DB8:abcd:12::ff00:42:8329",
         "9.2.3.8.2.4.0.0.0.0.f.f.0.0.0.0.2.1.0.0.d.c.b.a.8.b.d.0.1.0.0.2.bl.example"},
        {"bogus", NULL},
        {"192.0.2", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256] = "";
        int rc = dnsbl_ip_name(cases[i].ip, "bl.example", out, sizeof out);
        if (cases[i].want == NULL) {
            if (rc != -1)
                fail_msg("%s: got %d (\"%s\"), want -1", cases[i].ip, rc, out);
        } else if (rc != 0 || strcmp(out, cases[i].want) != 0) {
            fail_msg("%s: got %d \"%s\", want \"%s\"", cases[i].ip, rc, out, cases[i].want);
        }
    }
    char small[20];
    assert_int_equal(dnsbl_ip_name("192.0.2.1", "bl.example", small, sizeof small), -1);
    char zone[240], out[512];
    memset(zone, 'a', sizeof zone - 1);
    zone[sizeof zone - 1] = '\0';
    for (size_t i = 60; i < sizeof zone - 1; i += 61)
        zone[i] = '.';
    assert_int_equal(dnsbl_ip_name("2001:db8::1", zone, out, sizeof out), -1); /* > 253 */
}

static void test_domain_names(void **unused)
{
    (void)unused;
    static const struct {
        const char *domain, *want;
    } cases[] = {
        {"example.com", "example.com.dbl.example"},
        {"Mail.Example.COM.", "mail.example.com.dbl.example"},
        {"host_name.example", "host_name.example.dbl.example"},
        {"localhost", "localhost.dbl.example"},
        {"[192.0.2.1]", NULL},
        {"[IPv6:2001:db8::1]", NULL},
        {"a..example", NULL},
        {".example", NULL},
        {"", NULL},
        {"exa mple.com", NULL},
        {"bad\r\nname.example", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[300] = "";
        int rc = dnsbl_domain_name(cases[i].domain, "dbl.example", out, sizeof out);
        if (cases[i].want == NULL) {
            if (rc != -1)
                fail_msg("\"%s\": got %d (\"%s\"), want -1", cases[i].domain, rc, out);
        } else if (rc != 0 || strcmp(out, cases[i].want) != 0) {
            fail_msg("\"%s\": got %d \"%s\", want \"%s\"", cases[i].domain, rc, out,
                     cases[i].want);
        }
    }
}

static void test_match_parse(void **unused)
{
    (void)unused;
    static const struct {
        const char *text;
        int count; /* -1: refused */
        const char *first, *last; /* the last range */
    } cases[] = {
        {"127.0.0.2-127.0.0.11", 1, "127.0.0.2", "127.0.0.11"},
        {"127.0.0.2", 1, "127.0.0.2", "127.0.0.2"},
        {"127.0.0.2;127.0.0.4-127.0.0.7", 2, "127.0.0.4", "127.0.0.7"},
        {"127.0.0.11-127.0.0.2", -1, NULL, NULL},
        {"127.0.0.2-", -1, NULL, NULL},
        {"127.0.0.2;", -1, NULL, NULL},
        {"", -1, NULL, NULL},
        {"x", -1, NULL, NULL},
        {"127.0.0.256", -1, NULL, NULL},
        {"::1", -1, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dnsbl_range ranges[DNSBL_RANGES_MAX];
        size_t count = 0;
        char error[300] = "";
        int rc = dnsbl_match_parse(cases[i].text, ranges, &count, error, sizeof error);
        if (cases[i].count < 0) {
            if (rc != -1 || error[0] == '\0')
                fail_msg("\"%s\": got %d, want -1 with a message", cases[i].text, rc);
            continue;
        }
        if (rc != 0 || count != (size_t)cases[i].count)
            fail_msg("\"%s\": got %d with %zu ranges (%s), want %d", cases[i].text, rc, count,
                     error, cases[i].count);
        struct dnsbl_zone zone = {.name = "z", .range_count = 1};
        zone.ranges[0] = ranges[count - 1];
        assert_int_equal(dnsbl_answer_kind(&zone, cases[i].first), DNSBL_ANSWER_LISTED);
        assert_int_equal(dnsbl_answer_kind(&zone, cases[i].last), DNSBL_ANSWER_LISTED);
    }
    /* more ranges than fit */
    char many[2048] = "127.0.0.1";
    for (int i = 2; i <= DNSBL_RANGES_MAX + 1; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), ";127.0.0.%d", i);
    struct dnsbl_range ranges[DNSBL_RANGES_MAX];
    size_t count;
    char error[300];
    assert_int_equal(dnsbl_match_parse(many, ranges, &count, error, sizeof error), -1);
}

static void test_zones_parse(void **unused)
{
    (void)unused;
    struct dnsbl_zones zones;
    char error[300];
    assert_int_equal(dnsbl_zones_parse("zen.example=127.0.0.2-127.0.0.3;127.0.0.9,BL.Example.",
                                       DNSBL_MATCH_DEFAULT, &zones, error, sizeof error), 0);
    assert_int_equal(zones.count, 2);
    assert_string_equal(zones.items[0].name, "zen.example");
    assert_int_equal(zones.items[0].range_count, 2);
    assert_string_equal(zones.items[1].name, "bl.example");
    assert_int_equal(zones.items[1].range_count, 1);
    static const struct {
        const char *address;
        enum dnsbl_answer_kind zen, bl;
    } answers[] = {
        {"127.0.0.2", DNSBL_ANSWER_LISTED, DNSBL_ANSWER_LISTED},
        {"127.0.0.4", DNSBL_ANSWER_IGNORED, DNSBL_ANSWER_LISTED},
        {"127.0.0.9", DNSBL_ANSWER_LISTED, DNSBL_ANSWER_LISTED},
        {"127.0.0.1", DNSBL_ANSWER_IGNORED, DNSBL_ANSWER_IGNORED},
        {"127.255.255.254", DNSBL_ANSWER_IGNORED, DNSBL_ANSWER_IGNORED},
        {"192.0.2.1", DNSBL_ANSWER_INVALID, DNSBL_ANSWER_INVALID},
        {"2001:db8::1", DNSBL_ANSWER_INVALID, DNSBL_ANSWER_INVALID},
    };
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        enum dnsbl_answer_kind zen = dnsbl_answer_kind(&zones.items[0], answers[i].address);
        enum dnsbl_answer_kind bl = dnsbl_answer_kind(&zones.items[1], answers[i].address);
        if (zen != answers[i].zen || bl != answers[i].bl)
            fail_msg("%s: got %d/%d, want %d/%d", answers[i].address, zen, bl, answers[i].zen,
                     answers[i].bl);
    }
    dnsbl_zones_free(&zones);

    static const char *const bad[] = {"", "a.example,,b.example", "a.example,a.example",
                                      "a b.example", "a.example=127.0.0.x", "a..example",
                                      "a.example=", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        error[0] = '\0';
        if (dnsbl_zones_parse(bad[i], DNSBL_MATCH_DEFAULT, &zones, error, sizeof error) != -1 ||
            error[0] == '\0')
            fail_msg("zones \"%s\": accepted, want refused with a message", bad[i]);
    }
    char many[1024] = "z0.example";
    for (int i = 1; i <= DNSBL_ZONES_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), ",z%d.example", i);
    assert_int_equal(dnsbl_zones_parse(many, DNSBL_MATCH_DEFAULT, &zones, error, sizeof error),
                     -1);
}

static void test_txt_and_allow_rcpt(void **unused)
{
    (void)unused;
    char out[DNSBL_TXT_MAX + 1];
    const char txt[] = "Listed\r\n250 ok \"see\" http://x/\0tail";
    dnsbl_txt_clean(txt, sizeof txt - 1, out, sizeof out);
    assert_string_equal(out, "Listed??250 ok 'see' http://x/?tail");
    char long_text[400];
    memset(long_text, 'x', sizeof long_text);
    dnsbl_txt_clean(long_text, sizeof long_text, out, sizeof out);
    assert_int_equal(strlen(out), DNSBL_TXT_MAX);

    static const struct {
        const char *list, *recipient;
        bool want;
    } cases[] = {
        {"postmaster,abuse", "postmaster@example.org", true},
        {"postmaster,abuse", "Abuse@example.org", true},
        {"postmaster,abuse", "postmaster", true},
        {"postmaster,abuse", "bob@example.org", false},
        {"postmaster,abuse", "postmasterx@example.org", false},
        {"postmaster,abuse", "abus@example.org", false},
        {"hostmaster@example.org", "hostmaster@example.org", true},
        {"hostmaster@example.org", "hostmaster@example.net", false},
        {"", "postmaster@example.org", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (dnsbl_rcpt_allowed(cases[i].list, cases[i].recipient) != cases[i].want)
            fail_msg("allow_rcpt=%s, %s: got %d, want %d", cases[i].list, cases[i].recipient,
                     !cases[i].want, cases[i].want);
}

/* ---------------------------------------------------------------- decisions on a fake API */

static struct dnsbl_settings settings;

static int setup(void **unused)
{
    (void)unused;
    fake_api_install();
    fake.client_ip = "192.0.2.1";
    char error[300];
    memset(&settings, 0, sizeof settings);
    if (dnsbl_zones_parse("a.example,b.example=127.0.0.2-127.0.0.3", DNSBL_MATCH_DEFAULT,
                          &settings.zones, error, sizeof error) != 0)
        fail_msg("%s", error);
    settings.action = PORTER_DENY;
    settings.code = 554;
    snprintf(settings.enhanced, sizeof settings.enhanced, "5.7.1");
    settings.allow_rcpt = strdup("postmaster,abuse");
    settings.txt = true;
    settings.wait = 23;
    return 0;
}

static int teardown(void **unused)
{
    (void)unused;
    dnsbl_disconnect(fake_session, NULL);
    dnsbl_settings_free(&settings);
    return 0;
}

/* rcpt - the RCPT hook for recipient */
static int rcpt(const char *recipient)
{
    fake.argument = recipient;
    fake.text[0] = '\0';
    return dnsbl_rcpt(fake_session, &settings);
}

static void test_listed_waiting_rcpt(void **unused)
{
    (void)unused;
    dnsbl_start(fake_session, &settings, "client", "192.0.2.1", true);
    assert_int_equal(fake.lookup_count, 2);
    assert_string_equal(fake.lookups[0].name, "1.2.0.192.a.example");
    assert_string_equal(fake.lookups[1].name, "1.2.0.192.b.example");
    assert_int_equal(fake.lookups[0].type, PORTER_DNS_A);
    /* postmaster passes at once; another recipient waits for the lookups */
    assert_int_equal(rcpt("postmaster@example.org"), PORTER_DECLINED);
    assert_int_equal(rcpt("bob@example.org"), PORTER_PENDING);
    assert_true(fake.extended == 23);
    fake_dns_answer(0, PORTER_DNS_NXDOMAIN, NULL);
    assert_int_equal(fake.resumed, 0);
    fake_dns_answer(1, PORTER_DNS_OK, "127.0.0.3");
    assert_int_equal(fake.lookup_count, 3); /* the TXT record of the listed name */
    assert_int_equal(fake.lookups[2].type, PORTER_DNS_TXT);
    assert_string_equal(fake.lookups[2].name, "1.2.0.192.b.example");
    assert_int_equal(fake.resumed, 0);
    fake_dns_answer(2, PORTER_DNS_OK, "Listed\r\nsee http://b.example/");
    assert_int_equal(fake.resumed, 1);
    assert_int_equal(fake.rc, PORTER_DENY);
    assert_int_equal(fake.code, 554);
    assert_string_equal(fake.enhanced, "5.7.1");
    static const char refused[] = "Service unavailable; Client host [192.0.2.1] blocked using "
                                  "b.example; Listed??see http://b.example/";
    assert_string_equal(fake.text, refused);
    /* the next recipient: at once */
    assert_int_equal(rcpt("carol@example.org"), PORTER_DENY);
    assert_int_equal(fake.resumed, 1);
    assert_string_equal(fake.text, refused);
    assert_non_null(strstr(fake.log, "event=dnsbl what=client name=192.0.2.1 zone=b.example "
                                     "result=listed answer=127.0.0.3 txt=\"Listed??see"));
    /* relay clients and authenticated users pass */
    fake.relay = true;
    assert_int_equal(rcpt("carol@example.org"), PORTER_DECLINED);
    fake.relay = false;
    fake.auth_user = "alice";
    assert_int_equal(rcpt("carol@example.org"), PORTER_DECLINED);
}

static void test_not_listed_timeout_invalid(void **unused)
{
    (void)unused;
    dnsbl_start(fake_session, &settings, "client", "2001:db8::1", true);
    assert_int_equal(fake.lookup_count, 2);
    fake_dns_answer(0, PORTER_DNS_TEMPFAIL, NULL);      /* a timeout never refuses */
    fake_dns_answer(1, PORTER_DNS_OK, "127.0.0.4");     /* outside b.example's match */
    assert_int_equal(fake.lookup_count, 2);             /* no TXT */
    assert_null(fake.data);                             /* nothing listed: nothing kept */
    assert_int_equal(rcpt("bob@example.org"), PORTER_DECLINED);
    assert_non_null(strstr(fake.log, "zone=a.example result=tempfail dns=tempfail action=accept"));
    teardown(NULL);
    setup(NULL);
    dnsbl_start(fake_session, &settings, "client", "192.0.2.1", true);
    fake_dns_answer(0, PORTER_DNS_OK, "198.51.100.1");  /* a wildcard: the zone misbehaves */
    fake_dns_answer(1, PORTER_DNS_NODATA, NULL);
    assert_int_equal(rcpt("bob@example.org"), PORTER_DECLINED);
    assert_non_null(strstr(fake.log, "event=dnsbl_invalid_answer zone=a.example"));
    /* no lookups at all (allow=, or a plugin that never started): nothing to say */
    teardown(NULL);
    setup(NULL);
    assert_int_equal(rcpt("bob@example.org"), PORTER_DECLINED);
    char *error = NULL;
    settings.allow = cidr_parse("192.0.2.0/24", &error);
    dnsbl_start(fake_session, &settings, "client", "192.0.2.1", true);
    assert_int_equal(fake.lookup_count, 0);
}

static void test_action_log_and_no_txt(void **unused)
{
    (void)unused;
    settings.action = PORTER_DECLINED;
    settings.txt = false;
    dnsbl_start(fake_session, &settings, "client", "192.0.2.1", true);
    fake_dns_answer(0, PORTER_DNS_OK, "127.0.0.2");
    fake_dns_answer(1, PORTER_DNS_OK, "127.0.0.2");
    assert_int_equal(fake.lookup_count, 2);
    assert_null(fake.data);             /* the listing was logged: nothing is kept for RCPT */
    assert_int_equal(rcpt("bob@example.org"), PORTER_DECLINED);
    assert_non_null(strstr(fake.log, "zone=a.example result=listed answer=127.0.0.2"));
}

static void test_retired_sender_set(void **unused)
{
    (void)unused;
    /* rhsbl: the HELO name, then a sender whose lookups are still out when a new MAIL comes */
    dnsbl_start(fake_session, &settings, "helo", "[192.0.2.1]", false); /* a literal: not asked */
    assert_int_equal(fake.lookup_count, 0);
    dnsbl_start(fake_session, &settings, "helo", "mx.example.org", false);
    assert_string_equal(fake.lookups[0].name, "mx.example.org.a.example");
    fake_dns_answer(0, PORTER_DNS_NXDOMAIN, NULL);
    fake_dns_answer(1, PORTER_DNS_NXDOMAIN, NULL);
    dnsbl_start(fake_session, &settings, "sender", "spam.example", false);
    assert_int_equal(fake.lookup_count, 4);
    dnsbl_forget(fake_session, "sender"); /* MAIL FROM:<> */
    assert_int_equal(rcpt("bob@example.org"), PORTER_DECLINED); /* nothing waits */
    fake_dns_answer(2, PORTER_DNS_OK, "127.0.0.2");  /* the retired set is listed: moot, no TXT */
    assert_int_equal(fake.lookup_count, 4);
    fake_dns_answer(3, PORTER_DNS_NXDOMAIN, NULL);
    assert_int_equal(rcpt("bob@example.org"), PORTER_DECLINED);
    /* a new sender, listed: the refusal names it */
    dnsbl_start(fake_session, &settings, "sender", "Spam.Example", false);
    fake_dns_answer(4, PORTER_DNS_OK, "127.0.0.2");
    fake_dns_answer(6, PORTER_DNS_NXDOMAIN, NULL); /* its TXT */
    fake_dns_answer(5, PORTER_DNS_NXDOMAIN, NULL);
    assert_int_equal(rcpt("bob@example.org"), PORTER_DENY);
    assert_string_equal(fake.text, "Service unavailable; Sender domain [Spam.Example] "
                                           "blocked using a.example");
    /* a new sender replaces it while its lookups run (freed at disconnect: teardown) */
    dnsbl_start(fake_session, &settings, "sender", "other.example", false);
    assert_int_equal(rcpt("bob@example.org"), PORTER_PENDING);
    dnsbl_start(fake_session, &settings, "sender", "third.example", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip_names),
        cmocka_unit_test(test_domain_names),
        cmocka_unit_test(test_match_parse),
        cmocka_unit_test(test_zones_parse),
        cmocka_unit_test(test_txt_and_allow_rcpt),
        cmocka_unit_test_setup_teardown(test_listed_waiting_rcpt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_listed_timeout_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_action_log_and_no_txt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retired_sender_set, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
