/*
 * test_greylist.c - unit tests of native-plugins/greylist.c (compiled in here, with the fake
 * plugin API of fake_api.h): the client network (/24, /64, IPv4-mapped), sender normalisation
 * (BATV, VERP digits, null sender), triplet keys (hashed when too long), the decision table,
 * and the RCPT hook's decisions on an in-memory store answered at once: a new triplet deferred
 * with the retry time, a retry too early, a retry after the black period passes and
 * whitelists, a whitelisted triplet passes, exempt clients, autowhitelisting, store errors by
 * on_store_error, and the worker's cache of whitelistings (white_cache=). Table-driven;
 * failures print "got X, want Y".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "greylist.c"
#include "fake_api.h"

static struct greylist plugin;

static int setup(void **unused)
{
    free(plugin.cache);
    fake_api_install();
    fake.client_ip = "192.0.2.77";
    fake.mail_from = "alice@example.org";
    fake.argument = "bob@example.com";
    memset(&plugin, 0, sizeof plugin);
    plugin.black = 300;
    plugin.grey = 4 * 3600;
    plugin.white = 36 * 86400;
    plugin.ipv4_prefix = 24;
    plugin.ipv6_prefix = 64;
    return 0;
}

/* rcpt - run the hook; the verdict */
static int rcpt(void)
{
    fake.code = 0;
    fake.text[0] = '\0';
    return greylist_rcpt(fake_session, &plugin);
}

/* ---------------------------------------------------------------- pure functions */

static void test_network(void **unused)
{
    static const struct {
        const char *ip;
        int v4, v6;
        const char *want;
    } cases[] = {
        {"192.0.2.77", 24, 64, "192.0.2.0/24"},
        {"192.0.2.77", 32, 64, "192.0.2.77/32"},
        {"10.1.2.3", 16, 64, "10.1.0.0/16"},
        {"::ffff:192.0.2.77", 24, 64, "192.0.2.0/24"},
        {"2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"},
        {"2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"},
        {"2001:db8:1:2:3:4:5:6", 24, 60, "2001:db8:1::/60"},
        {"bogus", 24, 64, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64] = "";
        int rc = greylist_network(cases[i].ip, cases[i].v4, cases[i].v6, out, sizeof out);
        if (cases[i].want == NULL ? rc != -1 : rc != 0 || strcmp(out, cases[i].want) != 0)
            fail_msg("%s: got %d \"%s\", want \"%s\"", cases[i].ip, rc, out,
                     cases[i].want ? cases[i].want : "-1");
    }
}

static void test_sender(void **unused)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"Alice@Example.ORG", "alice@example.org"},
        {"", "<>"},
        {NULL, "<>"},
        {"prvs=1234abcd=alice@example.org", "alice@example.org"},
        {"PRVS=0123456789=bounce@example.org", "bounce@example.org"},
        {"btv1==0123abc==alice@example.org", "alice@example.org"},
        {"bounce-12345-678@lists.example.org", "bounce-#-#@lists.example.org"},
        {"user@host2.example.org", "user@host2.example.org"}, /* digits in the domain stay */
        {"prvs=tag-without-end@example.org", "prvs=tag-without-end@example.org"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        greylist_sender(cases[i].in, out, sizeof out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].in ? cases[i].in : "NULL", out,
                     cases[i].want);
    }
}

static void test_triplet_key(void **unused)
{
    char key[GREYLIST_KEY_MAX + 64];
    greylist_triplet_key("192.0.2.0/24", "Alice@Example.org", "Bob@Example.COM", key, sizeof key);
    assert_string_equal(key, "t:192.0.2.0/24,alice@example.org,bob@example.com");
    char local[400];
    memset(local, 'x', sizeof local - 1);
    local[sizeof local - 1] = '\0';
    char sender[500], other[500];
    snprintf(sender, sizeof sender, "%s@example.org", local);
    greylist_triplet_key("192.0.2.0/24", sender, "bob@example.com", key, sizeof key);
    assert_true(strlen(key) <= GREYLIST_KEY_MAX);
    assert_non_null(strstr(key, "t:192.0.2.0/24,#"));
    char key2[GREYLIST_KEY_MAX + 64];
    snprintf(other, sizeof other, "%s@example.net", local);
    greylist_triplet_key("192.0.2.0/24", other, "bob@example.com", key2, sizeof key2);
    assert_string_not_equal(key, key2); /* the hash tells them apart */
}

static void test_decide(void **unused)
{
    static const struct {
        const char *record;
        double ttl, now;
        enum greylist_action want;
        double first;
    } cases[] = {
        {NULL, -1, 5000, GREYLIST_NEW, 5000},
        {"garbage", -1, 5000, GREYLIST_NEW, 5000},
        {"x 1000000", -1, 5000, GREYLIST_NEW, 5000},
        {"g 0", -1, 5000, GREYLIST_NEW, 5000},
        {"g 1000000x", -1, 5000, GREYLIST_NEW, 5000},
        {"g 1000000", 14000, 1000, GREYLIST_WAIT, 1000},   /* first seen at 1000 s */
        {"g 1000000", 14000, 1299.9, GREYLIST_WAIT, 1000},
        {"g 1000000", 14000, 1300, GREYLIST_PASS, 1000},
        {"g 1000000", 100, 9000, GREYLIST_PASS, 1000},
        {"w 1000000", 36 * 86400 - 10, 9000, GREYLIST_WHITE, 1000},
        {"w 1000000", 30 * 86400, 9000, GREYLIST_WHITE_REFRESH, 1000},
        {"w 1000000", -1, 9000, GREYLIST_WHITE, 1000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double first = -1;
        enum greylist_action got = greylist_decide(&plugin, cases[i].record, cases[i].ttl,
                                                   cases[i].now, &first);
        if (got != cases[i].want || first != cases[i].first)
            fail_msg("case %zu (%s at %.1f): got %d first %.1f, want %d first %.1f", i,
                     cases[i].record ? cases[i].record : "NULL", cases[i].now, got, first,
                     cases[i].want, cases[i].first);
    }
}

/* ---------------------------------------------------------------- the hook */

static const char triplet[] = "t:192.0.2.0/24,alice@example.org,bob@example.com";

static void test_new_then_wait_then_pass(void **unused)
{
    assert_int_equal(rcpt(), PORTER_DENYSOFT);
    assert_int_equal(fake.code, 451);
    assert_string_equal(fake.enhanced, "4.7.1");
    if (strstr(fake.text, "try again in 300 seconds") == NULL)
        fail_msg("got \"%s\", want a text with \"try again in 300 seconds\"", fake.text);
    int i = fake_find(triplet);
    assert_true(i >= 0 && fake.values[i][0] == 'g');
    assert_true(fake.ttls[i] == 300 + 4 * 3600);
    /* a retry at once: still deferred, same first-seen time */
    char before[128];
    snprintf(before, sizeof before, "%s", fake.values[i]);
    assert_int_equal(rcpt(), PORTER_DENYSOFT);
    assert_string_equal(fake.values[i], before);
    if (strstr(fake.text, "try again in") == NULL)
        fail_msg("got \"%s\", want a retry time", fake.text);
    /* 301 seconds later (the record says so): passes, whitelisted for white */
    char record[64];
    snprintf(record, sizeof record, "g %lld", (long long)((greylist_now() - 301) * 1000));
    fake_put(triplet, record, 4 * 3600);
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_true(fake.values[i][0] == 'w' && fake.ttls[i] == 36 * 86400);
    assert_non_null(strstr(fake.log, "result=pass"));
    /* and then passes at once */
    int calls = fake.store_calls;
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, calls + 1); /* a get, no refresh: white is fresh */
}

static void test_exempt(void **unused)
{
    char *error = NULL;
    plugin.allow = cidr_parse("198.51.100.0/24", &error);
    plugin.allow_rcpt = list_parse("postmaster@example.com,@abuse.example");
    fake.relay = true;
    assert_int_equal(rcpt(), PORTER_DECLINED);
    fake.relay = false;
    fake.auth_user = "carol";
    assert_int_equal(rcpt(), PORTER_DECLINED);
    fake.auth_user = NULL;
    fake.client_ip = "198.51.100.9";
    assert_int_equal(rcpt(), PORTER_DECLINED);
    fake.client_ip = "192.0.2.1";
    fake.argument = "Postmaster@example.com";
    assert_int_equal(rcpt(), PORTER_DECLINED);
    fake.argument = "x@abuse.example";
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 0);
    fake.argument = "bob@example.com";
    assert_int_equal(rcpt(), PORTER_DENYSOFT);
    cidr_free(plugin.allow);
    list_free(plugin.allow_rcpt);
}

static void test_autowhitelist(void **unused)
{
    plugin.autowhitelist = 2;
    char record[64];
    const char *triplets[] = {"t:192.0.2.0/24,a@example.org,bob@example.com",
                              "t:192.0.2.0/24,b@example.org,bob@example.com"};
    const char *senders[] = {"a@example.org", "b@example.org"};
    for (int i = 0; i < 2; i++) { /* two triplets pass after their wait */
        snprintf(record, sizeof record, "g %lld", (long long)((greylist_now() - 400) * 1000));
        fake_put(triplets[i], record, 1000);
        fake.mail_from = senders[i];
        assert_int_equal(rcpt(), PORTER_DECLINED);
    }
    int i = fake_find("c:192.0.2.0/24");
    assert_true(i >= 0);
    assert_string_equal(fake.values[i], "2");
    /* a third, new triplet of the same network is not greylisted */
    fake.mail_from = "new@example.net";
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_true(fake_find("t:192.0.2.0/24,new@example.net,bob@example.com") < 0);
    /* another network is */
    fake.client_ip = "203.0.113.5";
    assert_int_equal(rcpt(), PORTER_DENYSOFT);
}

static void test_store_error(void **unused)
{
    fake.store_fails = true;
    assert_int_equal(rcpt(), PORTER_DECLINED); /* on_store_error=accept */
    assert_non_null(strstr(fake.log, "event=store_error action=accept"));
    plugin.tempfail = true;
    assert_int_equal(rcpt(), PORTER_DENYSOFT);
    assert_int_equal(fake.code, 451);
    assert_string_equal(fake.enhanced, "4.3.0");
}

static void test_white_cache(void **unused)
{
    plugin.white_cache = 300;
    char record[64];
    snprintf(record, sizeof record, "w %lld", (long long)((greylist_now() - 9000) * 1000));
    fake_put(triplet, record, 36 * 86400 - 60);
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 1);
    assert_int_equal(rcpt(), PORTER_DECLINED); /* remembered: no store call */
    assert_int_equal(fake.store_calls, 1);
    /* gone from the store: still remembered by this worker for white_cache */
    fake_expire(triplet);
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 1);
    /* another recipient is another triplet: asked, and greylisted */
    fake.argument = "carol@example.com";
    assert_int_equal(rcpt(), PORTER_DENYSOFT);
    assert_int_equal(fake.store_calls, 3); /* get, then set */
    /* a whitelisting about to expire in the store (too young to refresh) is remembered no
     * longer than that */
    plugin.white = GREYLIST_REFRESH + 0.1;
    fake.argument = "dave@example.com";
    fake_put("t:192.0.2.0/24,alice@example.org,dave@example.com", record, 0.2);
    assert_int_equal(rcpt(), PORTER_DECLINED);
    fake_expire("t:192.0.2.0/24,alice@example.org,dave@example.com");
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    assert_int_equal(rcpt(), PORTER_DENYSOFT);
    /* a triplet that passes now is remembered at once */
    fake.argument = "erin@example.com";
    snprintf(record, sizeof record, "g %lld", (long long)((greylist_now() - 400) * 1000));
    fake_put("t:192.0.2.0/24,alice@example.org,erin@example.com", record, 1000);
    assert_int_equal(rcpt(), PORTER_DECLINED);
    int calls = fake.store_calls;
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, calls);
    /* white_cache=0: always asked */
    plugin.white_cache = 0;
    free(plugin.cache);
    plugin.cache = NULL;
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, calls + 1);
}

static void test_white_cache_network(void **unused)
{
    plugin.white_cache = 300;
    plugin.autowhitelist = 2;
    fake_put("c:192.0.2.0/24", "5", 1000);
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 1);
    fake.mail_from = "someone@example.net"; /* any triplet of the network */
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 1);
}

static int teardown(void **unused)
{
    free(plugin.cache);
    plugin.cache = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_network, setup),
        cmocka_unit_test_setup(test_sender, setup),
        cmocka_unit_test_setup(test_triplet_key, setup),
        cmocka_unit_test_setup(test_decide, setup),
        cmocka_unit_test_setup(test_new_then_wait_then_pass, setup),
        cmocka_unit_test_setup(test_exempt, setup),
        cmocka_unit_test_setup(test_autowhitelist, setup),
        cmocka_unit_test_setup(test_store_error, setup),
        cmocka_unit_test_setup_teardown(test_white_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_white_cache_network, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
