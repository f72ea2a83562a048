/*
 * plugin_fake.h - a fake plugin API for the unit tests of native plugins that are compiled
 * into their test (#include "PLUGIN.c" first, then this): one fake session whose facts the
 * test sets, the reply and the last log line recorded, per-connection data, and an in-memory
 * store that answers every call at once (a real store answers on a later loop turn; a plugin
 * must not care). CIDR and list matching are the core's own (libporter.a).
 *
 * Header-only: include it once per test program. fake_reset() before each test.
 */
#ifndef PORTER_PLUGIN_FAKE_H
#define PORTER_PLUGIN_FAKE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* From the core (libporter.a), used as the real API would. */
porter_cidr_list *cidr_parse(const char *text, char **error);
bool cidr_match(const porter_cidr_list *list, const char *ip);
void cidr_free(porter_cidr_list *list);
porter_list *list_parse(const char *text);
bool list_match_address(const porter_list *list, const char *address);
void list_free(porter_list *list);

#define FAKE_KEYS 32

static struct {
    const char *client_ip, *mail_from, *recipient, *auth_user, *queue_id;
    bool relay;
    int code;
    char enhanced[16], text[512], log[512];
    int store_calls;              /* counters count one each */
    int store_round_trips;        /* porter_store_increments counts one in all */
    bool store_fails;
    char keys[FAKE_KEYS][512], values[FAKE_KEYS][128];
    double ttls[FAKE_KEYS];
    size_t key_count;
    void *data;                   /* porter_data_get/set */
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
static const char *fake_queue_id(porter_session *s) { return fake.queue_id; }
static bool fake_relay_client(porter_session *s) { return fake.relay; }
static void *fake_data_get(porter_session *s) { return fake.data; }
static void fake_data_set(porter_session *s, void *data) { fake.data = data; }

static inline int fake_find(const char *key)
{
    for (size_t i = 0; i < fake.key_count; i++)
        if (strcmp(fake.keys[i], key) == 0)
            return (int)i;
    return -1;
}

/* fake_put - the store's record for key (keys as the core would prefix them) */
static inline void fake_put(const char *key, const char *value, double ttl)
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

/* fake_expire - the key's time is up */
static inline void fake_expire(const char *key)
{
    int i = fake_find(key);
    if (i < 0)
        return;
    fake.key_count--;
    memmove(fake.keys[i], fake.keys[fake.key_count], sizeof fake.keys[i]);
    memmove(fake.values[i], fake.values[fake.key_count], sizeof fake.values[i]);
    fake.ttls[i] = fake.ttls[fake.key_count];
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

/* fake_store_increments - each counter as fake_store_increment, then done once (a real store
 * makes one round trip of them) */
static int fake_store_increments(porter_session *s, struct porter_store_count *counts, size_t n,
                                 porter_store_fn done, void *arg)
{
    struct porter_store_result all = {.status = PORTER_STORE_OK, .ttl = -1, .count = (long long)n};
    fake.store_round_trips++;
    for (size_t c = 0; c < n; c++) {
        fake.store_calls++;
        if (fake.store_fails) {
            counts[c].status = all.status = PORTER_STORE_ERROR;
            counts[c].error = all.error = "no answer within store_timeout";
            continue;
        }
        int i = fake_find(counts[c].key);
        long long count = (i < 0 ? 0 : atoll(fake.values[i])) + counts[c].by;
        char text[32];
        snprintf(text, sizeof text, "%lld", count);
        fake_put(counts[c].key, text, i < 0 ? counts[c].ttl : fake.ttls[i]);
        counts[c].status = PORTER_STORE_OK;
        counts[c].count = count;
        counts[c].ttl_left = fake.ttls[fake_find(counts[c].key)];
    }
    return done(s, arg, &all);
}

static const struct porter_api fake_api = {
    .reply = fake_reply,
    .log = fake_log,
    .client_ip = fake_client_ip,
    .mail_from = fake_mail_from,
    .hook_argument = fake_hook_argument,
    .auth_user = fake_auth_user,
    .queue_id = fake_queue_id,
    .relay_client = fake_relay_client,
    .data_get = fake_data_get,
    .data_set = fake_data_set,
    .cidr_match = cidr_match,
    .list_match_address = list_match_address,
    .store_get = fake_store_get,
    .store_set = fake_store_set,
    .store_increment = fake_store_increment,
    .store_increments = fake_store_increments,
};

/* fake_reset - a fresh session and an empty store; the plugin's porter_api is the fake */
static inline void fake_reset(void)
{
    porter_api = &fake_api;
    memset(&fake, 0, sizeof fake); /* fake.data is the plugin's (its disconnect hook frees it) */
}

#endif
