/*
 * test_greylist.c - unit tests of native-plugins/greylist.c (compiled in here, with a fake
 * plugin API): the client network (/24, /64, IPv4-mapped), sender normalisation (BATV, VERP
 * digits, null sender), triplet keys (hashed when too long), the decision table, and the RCPT
 * hook's decisions on an in-memory store answered at once: a new triplet deferred with the
 * retry time, a retry too early, a retry after the black period passes and whitelists, a
 * whitelisted triplet passes, exempt clients, autowhitelisting, store errors by
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

#include "greylist.c"

/* From the core (libporter.a), used as the real API would. */
porter_cidr_list *cidr_parse(const char *text, char **error);
bool cidr_match(const porter_cidr_list *list, const char *ip);
porter_list *list_parse(const char *text);
bool list_match_address(const porter_list *list, const char *address);
void cidr_free(porter_cidr_list *list);
void list_free(porter_list *list);

/* ---------------------------------------------------------------- a fake session and store */

#define FAKE_KEYS 32

static struct {
    const char *client_ip, *mail_from, *recipient, *auth_user;
    bool relay;
    int code;
    char enhanced[16], text[512], log[512];
    int store_calls;
    bool store_fails;
    char keys[FAKE_KEYS][512], values[FAKE_KEYS][128];
    double ttls[FAKE_KEYS];
    size_t key_count;
} fake;

static porter_session *const fake_session = (porter_session *)&fake;

static int fake_reply(porter_session *s, int rc, int code, const char *enhanced, const char *format,
                      va_list ap)
{
    fake.code = code;
    snprintf(fake.enhanced, sizeof fake.enhanced, "%s", enhanced != NULL ? enhanced : "");
    vsnprintf(fake.text, sizeof fake.text, format, ap);
    return rc;
}

static void fake_log(porter_session *s, int level, const char *format, va_list ap)
{
    vsnprintf(fake.log, sizeof fake.log, format, ap);
}

static const char *fake_client_ip(porter_session *s) { return fake.client_ip; }
static const char *fake_mail_from(porter_session *s) { return fake.mail_from; }
static const char *fake_hook_argument(porter_session *s) { return fake.recipient; }
static const char *fake_auth_user(porter_session *s) { return fake.auth_user; }
static bool fake_relay_client(porter_session *s) { return fake.relay; }

static int fake_find(const char *key)
{
    for (size_t i = 0; i < fake.key_count; i++)
        if (strcmp(fake.keys[i], key) == 0)
            return (int)i;
    return -1;
}

/* fake_put - the store's record for key (keys as the core would prefix them) */
static void fake_put(const char *key, const char *value, double ttl)
{
    int i = fake_find(key);
    if (i < 0) {
        assert_true(fake.key_count < FAKE_KEYS);
        i = (int)fake.key_count++;
        snprintf(fake.keys[i], sizeof fake.keys[i], "%s", key);
    }
    snprintf(fake.values[i], sizeof fake.values[i], "%s", value);
    fake.ttls[i] = ttl > 0 ? ttl : -1;
}

/* fake_store - one store call, answered at once (a real store answers on a later loop turn;
 * the plugin must not care) */
static int fake_store(porter_session *s, int op, const char *key, const char *value, long long by,
                      double ttl, porter_store_fn done, void *arg)
{
    fake.store_calls++;
    struct porter_store_result r = {.status = PORTER_STORE_OK, .ttl = -1};
    char count[32];
    if (fake.store_fails) {
        r.status = PORTER_STORE_ERROR;
        r.error = "no answer within store_timeout";
    } else if (op == 0) { /* get */
        int i = fake_find(key);
        if (i < 0) {
            r.status = PORTER_STORE_NOT_FOUND;
        } else {
            r.value = fake.values[i];
            r.length = strlen(r.value);
            r.ttl = fake.ttls[i];
        }
    } else if (op == 1) { /* set */
        fake_put(key, value, ttl);
    } else { /* increment */
        int i = fake_find(key);
        long long n = (i < 0 ? 0 : atoll(fake.values[i])) + by;
        snprintf(count, sizeof count, "%lld", n);
        fake_put(key, count, i < 0 ? ttl : fake.ttls[i]);
        r.count = n;
    }
    if (done == NULL)
        return PORTER_DECLINED;
    return done(s, arg, &r);
}

static int fake_store_get(porter_session *s, const char *key, porter_store_fn done, void *arg)
{
    return fake_store(s, 0, key, NULL, 0, 0, done, arg);
}

static int fake_store_set(porter_session *s, const char *key, const char *value, double ttl,
                          porter_store_fn done, void *arg)
{
    return fake_store(s, 1, key, value, 0, ttl, done, arg);
}

static int fake_store_increment(porter_session *s, const char *key, long long by, double ttl,
                                porter_store_fn done, void *arg)
{
    return fake_store(s, 2, key, NULL, by, ttl, done, arg);
}

static const struct porter_api fake_api = {
    .reply = fake_reply,
    .log = fake_log,
    .client_ip = fake_client_ip,
    .mail_from = fake_mail_from,
    .hook_argument = fake_hook_argument,
    .auth_user = fake_auth_user,
    .relay_client = fake_relay_client,
    .cidr_match = cidr_match,
    .list_match_address = list_match_address,
    .store_get = fake_store_get,
    .store_set = fake_store_set,
    .store_increment = fake_store_increment,
};

static struct greylist plugin;

static int setup(void **unused)
{
    porter_api = &fake_api;
    memset(&fake, 0, sizeof fake);
    fake.client_ip = "192.0.2.77";
    fake.mail_from = "alice@example.org";
    fake.recipient = "bob@example.com";
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
    fake.recipient = "Postmaster@example.com";
    assert_int_equal(rcpt(), PORTER_DECLINED);
    fake.recipient = "x@abuse.example";
    assert_int_equal(rcpt(), PORTER_DECLINED);
    assert_int_equal(fake.store_calls, 0);
    fake.recipient = "bob@example.com";
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
