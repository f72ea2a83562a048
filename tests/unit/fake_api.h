/*
 * fake_api.h - a recording stand-in for the core's plugin API, for unit tests that include a
 * plugin's .c file and call its continuations and decisions directly (test_clamd.c,
 * test_spamassassin.c, test_p0f.c).
 *
 * fake_api_install() points the plugin's porter_api at a table whose calls record what the
 * plugin did into `fake`: the verdict given with porter_resume or porter_reply (rc, code,
 * enhanced code, text), the log lines, notes, log facts and header edits (as "Name: value\n" lines, a
 * removal as "-Name\n"). fake.gone makes porter_waiting_session answer NULL (the client left);
 * fake.client_ip is what porter_client_ip answers. Header-only (static); include it after
 * <cmocka.h> and the plugin's .c file. Nothing is allocated.
 */
#ifndef PORTER_FAKE_API_H
#define PORTER_FAKE_API_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct fake_state {
    bool gone;                  /* porter_waiting_session answers NULL */
    const char *client_ip;
    int resumed;                /* porter_resume calls */
    int rc, code;
    char enhanced[16];
    char text[1024];
    char log[4096];             /* every log line, '\n'-separated */
    char notes[1024];           /* "key=value\n" */
    char facts[1024];           /* porter_log_fact: "key=value\n" */
    char headers[4096];         /* "Name: value\n" added, "-Name\n" removed */
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
};

/* fake_api_install - a fresh record, and the plugin's calls go to it */
static inline void fake_api_install(void)
{
    memset(&fake, 0, sizeof fake);
    fake.rc = -1;
    porter_api = &fake_api_table;
}

#endif /* PORTER_FAKE_API_H */
