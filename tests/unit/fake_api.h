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
 * fake.client_ip (porter_client_ip), fake.argument (porter_hook_argument), fake.auth_user,
 * fake.relay, fake.data (porter_data_get/set); fake.gone makes porter_waiting_session answer
 * NULL (the client left). CIDR matching and DNS status names are the core's own (libporter.a).
 * Header-only (static); include it after <cmocka.h> and the plugin's .c file. Nothing is
 * allocated.
 */
#ifndef PORTER_FAKE_API_H
#define PORTER_FAKE_API_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cidr.h"
#include "dns_packet.h"

#define FAKE_LOOKUPS_MAX 64

/* One porter_dns_background call. */
struct fake_lookup {
    int type;
    char name[256];
    porter_dns_background_fn callback;
    void *arg;
    bool answered;
};

struct fake_state {
    bool gone;                  /* porter_waiting_session answers NULL */
    const char *client_ip;
    const char *argument;       /* porter_hook_argument */
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
    .auth_user = fake_auth_user,
    .relay_client = fake_relay_client,
    .data_get = fake_data_get,
    .data_set = fake_data_set,
    .suspend = fake_suspend,
    .wait_extend = fake_wait_extend,
    .dns_background = fake_dns_background,
    .cidr_match = cidr_match,
    .cidr_free = cidr_free,
    .dns_status_name = dns_status_name,
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
