/*
 * fake_api.h - a recording stand-in for the core's plugin API, for unit tests that include a
 * plugin's .c file (or link it) and call its hooks, continuations and decisions directly
 * (test_clamd.c, test_spamassassin.c, test_p0f.c, test_dnsbl.c).
 *
 * fake_api_install() points the plugin's porter_api at a table whose calls record what the
 * plugin did into `fake`: the verdict given with porter_resume or porter_reply (rc, code,
 * enhanced code, text; porter_resume also counts in fake.resumed), the log lines, notes, log
 * facts and header edits (as "Name: value\n" lines, a removal as "-Name\n"), the last
 * porter_wait_extend, and the porter_dns_background lookups asked (fake.lookups, in order:
 * the test answers them with fake_dns_answer). What the plugin reads comes from `fake` too:
 * fake.client_ip (porter_client_ip), fake.argument (porter_hook_argument), fake.mail_from,
 * fake.queue_id, fake.auth_user, fake.relay, fake.data (porter_data_get/set: the plugin's,
 * its disconnect hook frees it); fake.gone makes porter_waiting_session answer NULL (the
 * client left). The store (porter_store_get/set/increment/increments) is an in-memory table
 * answered at once (a real store answers on a later loop turn; a plugin must not care):
 * fake_put and fake_expire set it up, fake_find reads it, fake.store_calls counts requests
 * (a counter each), fake.store_round_trips the calls, fake.store_fails makes them fail.
 * porter_store_increments_background calls are recorded (fake.backgrounds, in order) and
 * counted only when the test answers one with fake_background_answer (the counts, then the
 * callback) or fake_background_lost (the counts without the callback: the session left).
 * CIDR and list matching and DNS status names are the core's own (libporter.a).
 * Header-only (static); include it after <cmocka.h> and the plugin's .c file. Nothing is
 * allocated.
 */
#ifndef PORTER_FAKE_API_H
#define PORTER_FAKE_API_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "dns_packet.h"
#include "list_file.h"

#define FAKE_LOOKUPS_MAX 64
#define FAKE_KEYS 32

/* One porter_dns_background call. */
struct fake_lookup {
    int type;
    char name[256];
    porter_dns_background_fn callback;
    void *arg;
    bool answered;
};

/* One porter_store_increments_background call: its counters as the core copies them (the
 * plugin's array may be gone when the session left), and the plugin's, for the answer. */
struct fake_background {
    struct porter_store_count *counts;
    size_t count;
    char keys[2][128];
    long long by[2];
    double ttl[2];
    long long counted[2];
    porter_store_background_fn callback;
    void *arg;
    bool answered;
};

struct fake_state {
    bool gone;                  /* porter_waiting_session answers NULL */
    const char *client_ip;
    const char *argument;       /* porter_hook_argument */
    const char *mail_from;      /* porter_mail_from */
    const char *queue_id;       /* porter_queue_id */
    const char *auth_user;      /* porter_auth_user */
    bool relay;                 /* porter_relay_client */
    void *data;                 /* porter_data_get / porter_data_set */
    int resumed;                /* porter_resume calls */
    int rc, code;
    char enhanced[16];
    char text[1024];
    char log[8192];             /* every log line, '\n'-separated */
    char notes[1024];           /* "key=value\n" */
    char facts[1024];           /* porter_log_fact: "key=value\n" */
    char headers[4096];         /* "Name: value\n" added, "-Name\n" removed */
    double extended;            /* the last porter_wait_extend */
    struct fake_lookup lookups[FAKE_LOOKUPS_MAX];
    size_t lookup_count;
    /* the store */
    int store_calls;            /* requests (a counter each) */
    int store_round_trips;      /* calls (porter_store_increments counts one) */
    bool store_fails;
    char keys[FAKE_KEYS][512], values[FAKE_KEYS][128];
    double ttls[FAKE_KEYS];
    size_t key_count;
    struct fake_background backgrounds[8];
    size_t background_count;
};

static struct fake_state fake;
static porter_session *const fake_session = (porter_session *)&fake;

static void fake_append(char *buffer, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void fake_append(char *buffer, size_t size, const char *format, ...)
{
    size_t used = strlen(buffer);
    va_list ap;
    va_start(ap, format);
    if (used < size)
        vsnprintf(buffer + used, size - used, format, ap);
    va_end(ap);
}

static void fake_verdict(int rc, int code, const char *enhanced, const char *format, va_list ap)
{
    fake.rc = rc;
    fake.code = code;
    snprintf(fake.enhanced, sizeof fake.enhanced, "%s", enhanced ? enhanced : "");
    vsnprintf(fake.text, sizeof fake.text, format ? format : "", ap);
}

static int fake_resume(porter_handle handle, int rc, int code, const char *enhanced,
                       const char *format, va_list ap)
{
    fake.resumed++;
    fake_verdict(rc, code, enhanced, format, ap);
    return fake.gone ? -1 : 0;
}

static int fake_reply(porter_session *s, int rc, int code, const char *enhanced,
                      const char *format, va_list ap)
{
    fake_verdict(rc, code, enhanced, format, ap);
    return rc;
}

static void fake_log(porter_session *s, int level, const char *format, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, format, ap);
    fake_append(fake.log, sizeof fake.log, "%s\n", line);
}

static porter_session *fake_waiting_session(porter_handle handle)
{
    return fake.gone ? NULL : fake_session;
}

static int fake_note_set(porter_session *s, int scope, const char *key, const char *value)
{
    fake_append(fake.notes, sizeof fake.notes, "%s=%s\n", key, value);
    return 0;
}

static int fake_log_fact(porter_session *s, const char *key, const char *value)
{
    fake_append(fake.facts, sizeof fake.facts, "%s=%s\n", key, value);
    return 0;
}

static int fake_header_add(porter_session *s, const char *name, const char *value)
{
    fake_append(fake.headers, sizeof fake.headers, "%s: %s\n", name, value);
    return 0;
}

static int fake_header_insert(porter_session *s, size_t position, const char *name,
                              const char *value)
{
    return fake_header_add(s, name, value);
}

static int fake_header_remove(porter_session *s, const char *name)
{
    fake_append(fake.headers, sizeof fake.headers, "-%s\n", name);
    return 0;
}

static const char *fake_client_ip(porter_session *s)
{
    return fake.client_ip ? fake.client_ip : "192.0.2.1";
}

static const char *fake_hook_argument(porter_session *s)
{
    return fake.argument;
}

static const char *fake_mail_from(porter_session *s)
{
    return fake.mail_from;
}

static const char *fake_queue_id(porter_session *s)
{
    return fake.queue_id;
}

static const char *fake_auth_user(porter_session *s)
{
    return fake.auth_user;
}

static bool fake_relay_client(porter_session *s)
{
    return fake.relay;
}

static void *fake_data_get(porter_session *s)
{
    return fake.data;
}

static void fake_data_set(porter_session *s, void *data)
{
    fake.data = data;
}

static porter_handle fake_suspend(porter_session *s)
{
    porter_handle handle = {7, 1};
    return handle;
}

static int fake_wait_extend(porter_handle handle, double seconds)
{
    fake.extended = seconds;
    return 0;
}

static int fake_dns_background(porter_session *s, int type, const char *name,
                               porter_dns_background_fn callback, void *arg)
{
    assert_true(fake.lookup_count < FAKE_LOOKUPS_MAX);
    struct fake_lookup *l = &fake.lookups[fake.lookup_count++];
    l->type = type;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->callback = callback;
    l->arg = arg;
    l->answered = false;
    return 0;
}

/* ---------------------------------------------------------------- the store */

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

/* fake_count - add by to key's counter (a new one gets ttl); its new value */
static long long fake_count(const char *key, long long by, double ttl)
{
    int i = fake_find(key);
    long long n = (i < 0 ? 0 : atoll(fake.values[i])) + by;
    char text[32];
    snprintf(text, sizeof text, "%lld", n);
    fake_put(key, text, i < 0 ? ttl : fake.ttls[i]);
    return n;
}

/* fake_store - one store call: 0 get, 1 set, 2 increment */
static int fake_store(porter_session *s, int op, const char *key, const char *value, long long by,
                      double ttl, porter_store_fn done, void *arg)
{
    fake.store_calls++;
    fake.store_round_trips++;
    struct porter_store_result r = {.status = PORTER_STORE_OK, .ttl = -1};
    if (fake.store_fails) {
        r.status = PORTER_STORE_ERROR;
        r.error = "no answer within store_timeout";
    } else if (op == 0) {
        int i = fake_find(key);
        if (i < 0) {
            r.status = PORTER_STORE_NOT_FOUND;
        } else {
            r.value = fake.values[i];
            r.length = strlen(r.value);
            r.ttl = fake.ttls[i];
        }
    } else if (op == 1) {
        fake_put(key, value, ttl);
    } else {
        r.count = fake_count(key, by, ttl);
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

/* fake_store_increments - each counter as fake_store_increment, then done once */
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
        counts[c].status = PORTER_STORE_OK;
        counts[c].count = fake_count(counts[c].key, counts[c].by, counts[c].ttl);
        counts[c].ttl_left = fake.ttls[fake_find(counts[c].key)];
    }
    return done(s, arg, &all);
}

static int fake_store_increments_background(porter_session *s, struct porter_store_count *counts,
                                            size_t n, porter_store_background_fn callback,
                                            void *arg)
{
    assert_true(fake.background_count < sizeof fake.backgrounds / sizeof fake.backgrounds[0]);
    assert_true(n <= 2);
    struct fake_background *b = &fake.backgrounds[fake.background_count++];
    *b = (struct fake_background){.counts = counts, .count = n, .callback = callback, .arg = arg};
    for (size_t c = 0; c < n; c++) {
        snprintf(b->keys[c], sizeof b->keys[c], "%s", counts[c].key);
        b->by[c] = counts[c].by;
        b->ttl[c] = counts[c].ttl;
    }
    return 0;
}

/* fake_background_count - the counts of background call index are made (once) */
static inline void fake_background_count(size_t index)
{
    assert_true(index < fake.background_count);
    struct fake_background *b = &fake.backgrounds[index];
    assert_false(b->answered);
    b->answered = true;
    for (size_t c = 0; c < b->count; c++) {
        fake.store_calls++;
        b->counted[c] = fake_count(b->keys[c], b->by[c], b->ttl[c]);
    }
}

/* fake_background_answer - background call index is counted and answered */
static inline void fake_background_answer(size_t index)
{
    fake_background_count(index);
    struct fake_background *b = &fake.backgrounds[index];
    struct porter_store_result all = {.status = PORTER_STORE_OK, .ttl = -1,
                                      .count = (long long)b->count};
    for (size_t c = 0; c < b->count; c++) {
        b->counts[c].status = PORTER_STORE_OK;
        b->counts[c].count = b->counted[c];
        b->counts[c].ttl_left = fake.ttls[fake_find(b->keys[c])];
    }
    b->callback(fake_session, b->arg, &all);
}

/* fake_background_lost - background call index is counted, its session gone: no callback */
static inline void fake_background_lost(size_t index)
{
    fake_background_count(index);
}

static const struct porter_api fake_api_table = {
    .abi = PORTER_PLUGIN_ABI,
    .reply = fake_reply,
    .log = fake_log,
    .resume = fake_resume,
    .waiting_session = fake_waiting_session,
    .note_set = fake_note_set,
    .log_fact = fake_log_fact,
    .header_add = fake_header_add,
    .header_insert = fake_header_insert,
    .header_remove = fake_header_remove,
    .client_ip = fake_client_ip,
    .hook_argument = fake_hook_argument,
    .mail_from = fake_mail_from,
    .queue_id = fake_queue_id,
    .auth_user = fake_auth_user,
    .relay_client = fake_relay_client,
    .data_get = fake_data_get,
    .data_set = fake_data_set,
    .suspend = fake_suspend,
    .wait_extend = fake_wait_extend,
    .dns_background = fake_dns_background,
    .cidr_match = cidr_match,
    .cidr_free = cidr_free,
    .list_match_address = list_match_address,
    .dns_status_name = dns_status_name,
    .store_get = fake_store_get,
    .store_set = fake_store_set,
    .store_increment = fake_store_increment,
    .store_increments = fake_store_increments,
    .store_increments_background = fake_store_increments_background,
};

/* fake_api_install - a fresh record, and the plugin's calls go to it */
static inline void fake_api_install(void)
{
    memset(&fake, 0, sizeof fake);
    fake.rc = -1;
    porter_api = &fake_api_table;
}

/* fake_dns_answer - answer lookup number index (once): status, and one A or TXT record's
 * text when status is PORTER_DNS_OK */
static inline void fake_dns_answer(size_t index, int status, const char *record)
{
    assert_true(index < fake.lookup_count);
    struct fake_lookup *l = &fake.lookups[index];
    assert_false(l->answered);
    l->answered = true;
    struct porter_dns_record r = {.text = record, .length = record ? strlen(record) : 0};
    struct porter_dns_answer answer = {.status = status, .type = l->type, .name = l->name,
                                       .count = status == PORTER_DNS_OK ? 1 : 0,
                                       .records = &r};
    l->callback(fake_session, l->arg, &answer);
}

#endif /* PORTER_FAKE_API_H */
