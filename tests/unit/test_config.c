/*
 * test_config.c - unit tests of gateway/config.c: the settings table and its defaults, every
 * value type and suffix, every kind of error with FILE:LINE, collecting all errors, the
 * nearest-name suggestion, listen lines (IPv4, IPv6, roles, bad ports), the shared value
 * parsers, paths, config_load on real files, and the plugins file (words, quotes, comments,
 * continuations, limits, errors).
 */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/cidr.h"
#include "gateway/config.h"

/* ---- helpers ---- */

/* parse - config_parse on a NUL-terminated text, file "porter.conf", directory "/etc/porter" */
static struct porter_config *parse(const char *text, struct config_error_list *errors)
{
    return config_parse("/etc/porter", "porter.conf", text, strlen(text), errors);
}

/* join_errors - the messages joined by '\n' (a static buffer, for comparisons) */
static const char *join_errors(const struct config_error_list *errors)
{
    static char buffer[65536];
    size_t used = 0;
    buffer[0] = '\0';
    for (size_t i = 0; i < errors->count; i++) {
        int n = snprintf(buffer + used, sizeof buffer - used, "%s%s", i > 0 ? "\n" : "",
                         errors->messages[i]);
        if (n < 0 || (size_t)n >= sizeof buffer - used)
            break;
        used += (size_t)n;
    }
    return buffer;
}

/* setting_find - the table row called name */
static const struct config_setting *setting_find(const char *name)
{
    size_t count;
    const struct config_setting *table = config_settings(&count);
    for (size_t i = 0; i < count; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    fail_msg("no setting %s in the table", name);
    return NULL;
}

/* setting_format - a setting's value in c as text ("(null)" for an unset string) */
static void setting_format(const struct porter_config *c, const struct config_setting *s,
                           char *out, size_t size)
{
    const char *field = (const char *)c + s->offset;
    switch (s->type) {
    case CONFIG_STRING: {
        const char *value = *(char *const *)(const void *)field;
        snprintf(out, size, "%s", value != NULL ? value : "(null)");
        break;
    }
    case CONFIG_INTEGER:
        snprintf(out, size, "%ld", *(const long *)(const void *)field);
        break;
    case CONFIG_SIZE:
        snprintf(out, size, "%llu", *(const unsigned long long *)(const void *)field);
        break;
    case CONFIG_SECONDS:
        snprintf(out, size, "%g", *(const double *)(const void *)field);
        break;
    case CONFIG_BOOL:
        snprintf(out, size, "%s", *(const bool *)(const void *)field ? "yes" : "no");
        break;
    case CONFIG_CHOICE:
        snprintf(out, size, "%d", *(const int *)(const void *)field);
        break;
    case CONFIG_LISTEN: {
        size_t used = 0;
        out[0] = '\0';
        for (size_t i = 0; i < c->listen_count && used < size; i++)
            used += (size_t)snprintf(out + used, size - used, "%s%s %s", i > 0 ? ", " : "",
                                     c->listen[i].address, c->listen[i].role);
        break;
    }
    default:
        fail_msg("setting %s has type %d", s->name, s->type);
    }
}

/* ---- the table and defaults ---- */

static void test_table_is_consistent(void **state)
{
    size_t count;
    const struct config_setting *table = config_settings(&count);
    assert_true(count > 20);
    for (size_t i = 0; i < count; i++) {
        const struct config_setting *s = &table[i];
        if (s->description == NULL || s->description[0] == '\0')
            fail_msg("%s: got no description, want one", s->name);
        for (const char *p = s->name; *p != '\0'; p++)
            if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
                fail_msg("%s: got a name with '%c', want [a-z_]", s->name, *p);
        for (size_t j = 0; j < i; j++)
            if (strcmp(table[j].name, s->name) == 0)
                fail_msg("%s: got it twice in the table, want once", s->name);
        if (s->type < 0 || s->type >= CONFIG_TYPE_COUNT)
            fail_msg("%s: got type %d, want one below %d", s->name, s->type, CONFIG_TYPE_COUNT);
        if (strcmp(config_type_name(s->type), "invalid") == 0 ||
            strcmp(config_type_syntax(s->type), "invalid") == 0)
            fail_msg("%s: type %d has no name or syntax", s->name, s->type);
        if (s->minimum > s->maximum)
            fail_msg("%s: got range %g to %g, want minimum <= maximum", s->name, s->minimum,
                     s->maximum);
        if (s->type == CONFIG_CHOICE && (s->choices == NULL || s->default_value == NULL))
            fail_msg("%s: a choice without choices or a default", s->name);
        if (s->repeatable != (s->type == CONFIG_LISTEN))
            fail_msg("%s: got repeatable %d, want only listen repeatable", s->name, s->repeatable);
    }
    assert_string_equal(config_type_name(CONFIG_TYPE_COUNT), "invalid");
    assert_string_equal(config_bare_lf_name(CONFIG_BARE_LF_NORMALIZE), "normalize");
    assert_string_equal(config_bare_lf_name(CONFIG_BARE_LF_COUNT), "invalid");
}

struct default_case {
    const char *name;
    const char *want;
};

static const struct default_case default_cases[] = {
    {"hostname", "(null)"},
    {"listen", "127.0.0.1:2525 smtp"},
    {"user", "(null)"},
    {"group", "(null)"},
    {"workers", "0"},
    {"plugins_file", "plugins"},
    {"spool_dir", "/var/spool/porter"},
    {"plugin_timeout", "30"},
    {"max_message_size", "10240000"},
    {"max_command_line", "2048"},
    {"max_data_line", "65536"},
    {"max_header_size", "1048576"},
    {"max_header_count", "1000"},
    {"max_recipients", "1000"},
    {"max_messages_per_session", "1000"},
    {"max_errors", "20"},
    {"max_unrecognized", "10"},
    {"max_recipients_overshoot", "1000"},
    {"max_connections", "10000"},
    {"max_connections_per_ip", "50"},
    {"stress_threshold", "80"},
    {"stress_greeting_timeout", "10"},
    {"stress_command_timeout", "10"},
    {"greeting_timeout", "60"},
    {"command_timeout", "300"},
    {"data_timeout", "600"},
    {"command_deadline", "30"},
    {"data_min_rate", "500"},
    {"data_rate_window", "30"},
    {"session_timeout", "3600"},
    {"reject_unauth_pipelining", "yes"},
    {"shutdown_timeout", "30"},
    {"received_header", "yes"},
    {"bare_lf", "0"},
    {"log_level", "6"},
};

static void test_defaults(void **state)
{
    struct config_error_list errors = {0};
    struct porter_config *c = parse("", &errors);
    if (c == NULL)
        fail_msg("config_parse(\"\"): got errors %s, want defaults", join_errors(&errors));
    for (size_t i = 0; i < sizeof default_cases / sizeof default_cases[0]; i++) {
        char got[256];
        setting_format(c, setting_find(default_cases[i].name), got, sizeof got);
        if (strcmp(got, default_cases[i].want) != 0)
            fail_msg("default %s: got %s, want %s", default_cases[i].name, got,
                     default_cases[i].want);
    }
    assert_string_equal(c->directory, "/etc/porter");
    assert_non_null(c->plugin_dir);
#ifdef PORTER_PKGLIBDIR
    assert_string_equal(c->plugin_dir, PORTER_PKGLIBDIR);
#endif
    assert_int_equal(c->bare_lf, CONFIG_BARE_LF_REJECT);
    config_free(c);
    config_free(NULL);
    assert_int_equal(errors.count, 0);
}

/* ---- values ---- */

struct value_case {
    const char *text;
    const char *name;
    const char *want;
};

static const struct value_case value_cases[] = {
    {"workers = 4", "workers", "4"},
    {"workers=4", "workers", "4"},
    {"  workers\t=\t4  ", "workers", "4"},
    {"workers = 4\r\n", "workers", "4"},
    {"workers = 4 # four of them", "workers", "4"},
    {"workers = 4\t# four", "workers", "4"},
    {"# workers = 4\nworkers = 5\n", "workers", "5"},
    {"\n\n   \n\t\nworkers = 6", "workers", "6"},
    {"workers = 1k", "workers", "1024"},
    {"workers = 0", "workers", "0"},
    {"max_message_size = 10m", "max_message_size", "10485760"},
    {"max_message_size = 10M", "max_message_size", "10485760"},
    {"max_message_size = 1g", "max_message_size", "1073741824"},
    {"max_message_size = 1024g", "max_message_size", "1099511627776"},
    {"max_message_size = 1k", "max_message_size", "1024"},
    {"max_header_size = 64k", "max_header_size", "65536"},
    {"max_header_size = 0064k", "max_header_size", "65536"},
    {"max_recipients = 100", "max_recipients", "100"},
    {"max_recipients = 1000000", "max_recipients", "1000000"},
    {"plugin_timeout = 0.5", "plugin_timeout", "0.5"},
    {"plugin_timeout = 0.001", "plugin_timeout", "0.001"},
    {"plugin_timeout = 45s", "plugin_timeout", "45"},
    {"command_timeout = 5m", "command_timeout", "300"},
    {"command_timeout = 1.5m", "command_timeout", "90"},
    {"command_timeout = 300s", "command_timeout", "300"},
    {"session_timeout = 2h", "session_timeout", "7200"},
    {"session_timeout = 1d", "session_timeout", "86400"},
    {"session_timeout = 7d", "session_timeout", "604800"},
    {"shutdown_timeout = 0", "shutdown_timeout", "0"},
    {"received_header = no", "received_header", "no"},
    {"received_header = No", "received_header", "no"},
    {"received_header = off", "received_header", "no"},
    {"received_header = false", "received_header", "no"},
    {"received_header = 0", "received_header", "no"},
    {"received_header = yes", "received_header", "yes"},
    {"received_header = ON", "received_header", "yes"},
    {"received_header = true", "received_header", "yes"},
    {"received_header = 1", "received_header", "yes"},
    {"bare_lf = normalize", "bare_lf", "1"},
    {"bare_lf = reject", "bare_lf", "0"},
    {"log_level = err", "log_level", "3"},
    {"log_level = warning", "log_level", "4"},
    {"log_level = notice", "log_level", "5"},
    {"log_level = debug", "log_level", "7"},
    {"log_level = DEBUG", "log_level", "7"},
    {"hostname = mx.example.org", "hostname", "mx.example.org"},
    {"hostname = mx-1.Example.ORG", "hostname", "mx-1.Example.ORG"},
    {"hostname = localhost", "hostname", "localhost"},
    {"user = porter", "user", "porter"},
    {"group = mail", "group", "mail"},
    {"user = 1001", "user", "1001"},
    {"plugins_file = a#b", "plugins_file", "a#b"},
    {"plugins_file = my plugins", "plugins_file", "my plugins"},
    {"spool_dir = spool", "spool_dir", "spool"},
    {"plugin_dir = /a:/b:lib", "plugin_dir", "/a:/b:lib"},
    {"listen = 0.0.0.0:25", "listen", "0.0.0.0:25 smtp"},
    {"listen = [::]:25", "listen", "[::]:25 smtp"},
    {"listen = [::1]:587 submission", "listen", "[::1]:587 submission"},
    {"listen = 192.0.2.1:465\tSubmissions", "listen", "192.0.2.1:465 submissions"},
    {"listen = 127.0.0.1:65535 smtp", "listen", "127.0.0.1:65535 smtp"},
    {"listen = 127.0.0.1:1", "listen", "127.0.0.1:1 smtp"},
    {"listen = 127.0.0.1:25\nlisten = [::1]:25\nlisten = 127.0.0.1:587 submission", "listen",
     "127.0.0.1:25 smtp, [::1]:25 smtp, 127.0.0.1:587 submission"},
    {"listen = [2001:db8::1]:25\nlisten = 2001:db8::2 # not this", NULL, NULL},
};

static void test_values(void **state)
{
    for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++) {
        const struct value_case *t = &value_cases[i];
        if (t->name == NULL)
            continue;
        struct config_error_list errors = {0};
        struct porter_config *c = parse(t->text, &errors);
        if (c == NULL)
            fail_msg("\"%s\": got errors \"%s\", want %s = %s", t->text, join_errors(&errors),
                     t->name, t->want);
        char got[512];
        setting_format(c, setting_find(t->name), got, sizeof got);
        if (strcmp(got, t->want) != 0)
            fail_msg("\"%s\": got %s = %s, want %s", t->text, t->name, got, t->want);
        config_free(c);
    }
}

/* ---- errors ---- */

struct error_case {
    const char *text;
    const char *want; /* every message, joined by '\n' */
};

static const struct error_case error_cases[] = {
    {"workers = many",
     "porter.conf:1: workers: 'many' is not an integer (digits, optionally followed by k, m or "
     "g)"},
    {"workers = 2000", "porter.conf:1: workers: '2000' is out of range (0 to 1024)"},
    {"workers = -1", "porter.conf:1: workers: '-1' is out of range (0 to 1024)"},
    {"workers = 4 four", "porter.conf:1: workers: '4 four' is not an integer (digits, optionally "
                         "followed by k, m or g)"},
    {"workers = +4", "porter.conf:1: workers: '+4' is not an integer (digits, optionally "
                     "followed by k, m or g)"},
    {"max_recipients = 99", "porter.conf:1: max_recipients: '99' is out of range (100 to 1000000)"},
    {"max_message_size = 1t",
     "porter.conf:1: max_message_size: '1t' is not a size (digits, optionally followed by k, m "
     "or g)"},
    {"max_message_size = 99999999999999999999",
     "porter.conf:1: max_message_size: '99999999999999999999' is not a size (digits, optionally "
     "followed by k, m or g)"},
    {"max_message_size = 2000g",
     "porter.conf:1: max_message_size: '2000g' is out of range (1024 to 1099511627776)"},
    {"plugin_timeout = 0", "porter.conf:1: plugin_timeout: '0' is out of range (0.001 to 86400 "
                           "seconds)"},
    {"plugin_timeout = 2d", "porter.conf:1: plugin_timeout: '2d' is out of range (0.001 to 86400 "
                            "seconds)"},
    {"plugin_timeout = 5x", "porter.conf:1: plugin_timeout: '5x' is not a duration (like 30, "
                            "30s, 5m, 2h, 1d or 0.5)"},
    {"plugin_timeout = -1", "porter.conf:1: plugin_timeout: '-1' is not a duration (like 30, "
                            "30s, 5m, 2h, 1d or 0.5)"},
    {"plugin_timeout = .5", "porter.conf:1: plugin_timeout: '.5' is not a duration (like 30, "
                            "30s, 5m, 2h, 1d or 0.5)"},
    {"plugin_timeout = 5ms", "porter.conf:1: plugin_timeout: '5ms' is not a duration (like 30, "
                             "30s, 5m, 2h, 1d or 0.5)"},
    {"received_header = maybe", "porter.conf:1: received_header: 'maybe' is not yes or no (yes, "
                                "no, true, false, on, off, 1, 0)"},
    {"bare_lf = accept", "porter.conf:1: bare_lf: 'accept' is not one of reject, normalize"},
    {"log_level = warn", "porter.conf:1: log_level: 'warn' is not one of err, warning, notice, "
                         "info, debug"},
    {"wokers = 4", "porter.conf:1: unknown setting 'wokers' (did you mean 'workers'?)"},
    {"max_recipient = 4",
     "porter.conf:1: unknown setting 'max_recipient' (did you mean 'max_recipients'?)"},
    {"lisetn = [::1]:25", "porter.conf:1: unknown setting 'lisetn' (did you mean 'listen'?)"},
    {"Workers = 4", "porter.conf:1: unknown setting 'Workers' (did you mean 'workers'?)"},
    {"colour = red", "porter.conf:1: unknown setting 'colour'"},
    {"workers 4", "porter.conf:1: expected 'name = value'"},
    {"= 4", "porter.conf:1: expected 'name = value' (no name before '=')"},
    {"workers =", "porter.conf:1: workers: missing value"},
    {"workers = # none", "porter.conf:1: workers: missing value"},
    {"workers = 1\nworkers = 2", "porter.conf:2: 'workers' is already set on line 1"},
    {"workers = x\n\nworkers = 2",
     "porter.conf:1: workers: 'x' is not an integer (digits, optionally followed by k, m or g)\n"
     "porter.conf:3: 'workers' is already set on line 1"},
    {"hostname = bad host",
     "porter.conf:1: hostname: 'bad host' is not a domain name (use letters, digits, '-' and '.')"},
    {"hostname = a..b", "porter.conf:1: hostname: 'a..b' is not a domain name (empty label)"},
    {"hostname = a.b.", "porter.conf:1: hostname: 'a.b.' is not a domain name (empty label)"},
    {"user = -root", "porter.conf:1: user: '-root' is not a user or group name"},
    {"group = wheel:x", "porter.conf:1: group: 'wheel:x' is not a user or group name (use "
                        "letters, digits, '_', '-' and '.')"},
    {"workers = 4\x01", "porter.conf:1: control character \\x01 in line"},
    {"workers = 4\x7f", "porter.conf:1: control character \\x7f in line"},
    {"listen = 127.0.0.1",
     "porter.conf:1: listen: '127.0.0.1' is not ADDRESS:PORT (like 127.0.0.1:25 or [::1]:25)"},
    {"listen = 127.0.0.1:0", "porter.conf:1: listen: '127.0.0.1:0' has a bad port (want 1 to "
                             "65535)"},
    {"listen = 127.0.0.1:65536", "porter.conf:1: listen: '127.0.0.1:65536' has a bad port (want "
                                 "1 to 65535)"},
    {"listen = 127.0.0.1:0000025", "porter.conf:1: listen: '127.0.0.1:0000025' has a bad port "
                                   "(want 1 to 65535)"},
    {"listen = 127.0.0.1:25x", "porter.conf:1: listen: '127.0.0.1:25x' has a bad port (want 1 "
                               "to 65535)"},
    {"listen = 127.0.0.1:", "porter.conf:1: listen: '127.0.0.1:' has a bad port (want 1 to "
                            "65535)"},
    {"listen = 127.0.0.1:-25", "porter.conf:1: listen: '127.0.0.1:-25' has a bad port (want 1 "
                               "to 65535)"},
    {"listen = ::1:25", "porter.conf:1: listen: '::1:25' has an IPv6 address without brackets "
                        "(write [::1]:25)"},
    {"listen = [::1]25", "porter.conf:1: listen: '[::1]25' is not [IPV6]:PORT"},
    {"listen = [::1]", "porter.conf:1: listen: '[::1]' is not [IPV6]:PORT"},
    {"listen = [::g]:25", "porter.conf:1: listen: '[::g]:25' has a bad IPv6 address"},
    {"listen = [1.2.3.4]:25", "porter.conf:1: listen: '[1.2.3.4]:25' has a bad IPv6 address"},
    {"listen = localhost:25", "porter.conf:1: listen: 'localhost:25' has a bad IPv4 address (a "
                              "host name is not allowed here)"},
    {"listen = :25", "porter.conf:1: listen: ':25' has a bad IPv4 address"},
    {"listen = 127.0.0.1:25 lmtp", "porter.conf:1: listen: role 'lmtp' is not one of smtp, "
                                   "submission, submissions, milter, policy"},
    {"listen = unix:/run/porter.sock smtp", "porter.conf:1: listen: 'unix:/run/porter.sock' is a "
                                            "unix socket: only the milter and policy roles listen "
                                            "on one"},
    {"listen = unix:run/porter.sock milter", "porter.conf:1: listen: 'unix:run/porter.sock' is not "
                                             "unix:/ABSOLUTE/PATH (shorter than 100 bytes)"},
    {"listen = unix:/run/m.sock milter\nlisten = unix:/run/m.sock policy",
     "porter.conf:2: listen: 'unix:/run/m.sock' is listed twice"},
    {"listen = 127.0.0.1:25 smtp extra",
     "porter.conf:1: listen: option 'extra' is not proxy_protocol (or is given twice)"},
    {"listen = 127.0.0.1:25 smtp proxy_protocol proxy_protocol",
     "porter.conf:1: listen: option 'proxy_protocol' is not proxy_protocol (or is given twice)"},
    {"listen = 127.0.0.1:25 smtp proxy_protocol",
     "porter.conf: listen 127.0.0.1:25 has proxy_protocol but proxy_sources lists no load "
     "balancer"},
    {"proxy_sources = 10.1.2.3/8",
     "porter.conf:1: proxy_sources: '10.1.2.3/8' is not a CIDR list: '10.1.2.3/8' has address "
     "bits set after the prefix (did you mean 10.0.0.0/8?)"},
    {"listen = 127.0.0.1:25\nlisten = 127.0.0.1:25 submission",
     "porter.conf:2: listen: '127.0.0.1:25' is listed twice"},
    {"listen = [::1]:25\nlisten = [0:0::1]:25", "porter.conf:2: listen: '[0:0::1]:25' is listed "
                                                "twice"},
    {"listen = [2001:db8::1]:25\nlisten = 2001:db8::2 # not this",
     "porter.conf:2: listen: '2001:db8::2' has an IPv6 address without brackets (write [::1]:25)"},
    {"workers = x\nbare_lf = y\r\nnothing\nworkers = 3\nwokers = 2\n",
     "porter.conf:1: workers: 'x' is not an integer (digits, optionally followed by k, m or g)\n"
     "porter.conf:2: bare_lf: 'y' is not one of reject, normalize\n"
     "porter.conf:3: expected 'name = value'\n"
     "porter.conf:4: 'workers' is already set on line 1\n"
     "porter.conf:5: unknown setting 'wokers' (did you mean 'workers'?)"},
};

static void test_errors(void **state)
{
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *t = &error_cases[i];
        struct config_error_list errors = {0};
        struct porter_config *c = parse(t->text, &errors);
        if (c != NULL)
            fail_msg("\"%s\": got a config, want errors \"%s\"", t->text, t->want);
        if (strcmp(join_errors(&errors), t->want) != 0)
            fail_msg("\"%s\":\n got errors \"%s\"\nwant errors \"%s\"", t->text,
                     join_errors(&errors), t->want);
        config_errors_clear(&errors);
        assert_int_equal(errors.count, 0);
        assert_null(errors.messages);
    }
}

static void test_errors_binary_and_long_lines(void **state)
{
    struct config_error_list errors = {0};
    static const char nul_text[] = "workers = 1\nworkers\0 = 2\n";
    assert_null(config_parse("/etc/porter", "p.conf", nul_text, sizeof nul_text - 1, &errors));
    assert_string_equal(join_errors(&errors), "p.conf:2: NUL byte in line");
    config_errors_clear(&errors);

    char *text = malloc(CONFIG_LINE_MAX + 64);
    assert_non_null(text);
    int n = snprintf(text, 64, "workers = 1\nspool_dir = ");
    memset(text + n, 'x', CONFIG_LINE_MAX);
    strcpy(text + n + CONFIG_LINE_MAX, "\nworkers = z\n");
    assert_null(parse(text, &errors));
    assert_string_equal(join_errors(&errors),
                        "porter.conf:2: line longer than 4096 bytes\n"
                        "porter.conf:3: 'workers' is already set on line 1");
    config_errors_clear(&errors);
    free(text);

    /* a value is quoted in messages with unprintable bytes escaped and long ones cut */
    assert_null(parse("hostname = caf\xc3\xa9.example", &errors));
    assert_string_equal(join_errors(&errors),
                        "porter.conf:1: hostname: 'caf\\xc3\\xa9.example' is not a domain name "
                        "(use letters, digits, '-' and '.')");
    config_errors_clear(&errors);
}

static void test_too_many_errors(void **state)
{
    size_t lines = CONFIG_ERRORS_MAX + 50;
    char *text = malloc(lines * 8 + 1);
    assert_non_null(text);
    text[0] = '\0';
    for (size_t i = 0; i < lines; i++)
        strcat(text, "bogus\n");
    struct config_error_list errors = {0};
    assert_null(parse(text, &errors));
    if (errors.count != CONFIG_ERRORS_MAX + 1)
        fail_msg("got %zu errors, want %d", errors.count, CONFIG_ERRORS_MAX + 1);
    assert_string_equal(errors.messages[CONFIG_ERRORS_MAX],
                        "porter.conf:100: too many errors, stopped reading");
    config_errors_clear(&errors);
    free(text);
}

static void test_listen_replaces_default(void **state)
{
    struct config_error_list errors = {0};
    struct porter_config *c = parse("listen = [::1]:2526 submission\n", &errors);
    assert_non_null(c);
    assert_int_equal(c->listen_count, 1);
    assert_string_equal(c->listen[0].address, "[::1]:2526");
    assert_string_equal(c->listen[0].role, "submission");
    assert_false(c->listen[0].proxy_protocol);
    config_free(c);

    /* a PROXY listener with its balancers; the lists are built */
    c = parse("listen = 0.0.0.0:25 smtp proxy_protocol\nproxy_sources = 10.0.0.10/32, ::1\n"
              "xclient_clients = 127.0.0.1\n", &errors);
    assert_non_null(c);
    assert_true(c->listen[0].proxy_protocol);
    assert_true(cidr_match(c->proxy_sources_list, "10.0.0.10"));
    assert_false(cidr_match(c->proxy_sources_list, "10.0.0.11"));
    assert_true(cidr_match(c->xclient_clients_list, "127.0.0.1"));
    config_free(c);

    /* at most the table's maximum listen lines */
    const struct config_setting *s = setting_find("listen");
    size_t maximum = (size_t)s->maximum;
    char *text = malloc((maximum + 1) * 40);
    assert_non_null(text);
    text[0] = '\0';
    for (size_t i = 0; i <= maximum; i++)
        sprintf(text + strlen(text), "listen = 127.0.0.1:%zu\n", 1000 + i);
    assert_null(parse(text, &errors));
    char want[128];
    snprintf(want, sizeof want, "porter.conf:%zu: listen: more than %zu listen lines", maximum + 1,
             maximum);
    assert_string_equal(join_errors(&errors), want);
    config_errors_clear(&errors);
    free(text);
}

/* ---- shared value parsers ---- */

struct integer_case {
    const char *text;
    int want_result;
    long long want;
};

static const struct integer_case integer_cases[] = {
    {"0", 0, 0},
    {"42", 0, 42},
    {"-5", 0, -5},
    {"007", 0, 7},
    {"1k", 0, 1024},
    {"1K", 0, 1024},
    {"10m", 0, 10485760},
    {"2G", 0, 2147483648LL},
    {"-1k", 0, -1024},
    {"9223372036854775807", 0, LLONG_MAX},
    {"-9223372036854775808", 0, LLONG_MIN},
    {"9223372036854775808", -1, 0},
    {"-9223372036854775809", -1, 0},
    {"18446744073709551616", -1, 0},
    {"8589934592g", -1, 0},
    {"", -1, 0},
    {"-", -1, 0},
    {"k", -1, 0},
    {"1kk", -1, 0},
    {"1kb", -1, 0},
    {"+1", -1, 0},
    {" 1", -1, 0},
    {"1 ", -1, 0},
    {"0x10", -1, 0},
    {"1.5", -1, 0},
    {"1t", -1, 0},
};

static void test_parse_integer(void **state)
{
    for (size_t i = 0; i < sizeof integer_cases / sizeof integer_cases[0]; i++) {
        const struct integer_case *t = &integer_cases[i];
        long long got = 12345;
        int result = config_parse_integer(t->text, &got);
        if (result != t->want_result)
            fail_msg("config_parse_integer(\"%s\"): got %d, want %d", t->text, result,
                     t->want_result);
        if (result == 0 && got != t->want)
            fail_msg("config_parse_integer(\"%s\"): got %lld, want %lld", t->text, got, t->want);
        if (result != 0 && got != 12345)
            fail_msg("config_parse_integer(\"%s\"): failed but changed the value", t->text);
    }
}

struct seconds_case {
    const char *text;
    int want_result;
    double want;
};

static const struct seconds_case seconds_cases[] = {
    {"0", 0, 0},
    {"300", 0, 300},
    {"300s", 0, 300},
    {"300S", 0, 300},
    {"5m", 0, 300},
    {"2h", 0, 7200},
    {"1d", 0, 86400},
    {"0.5", 0, 0.5},
    {"0.25s", 0, 0.25},
    {"1.5m", 0, 90},
    {"0.1", 0, 0.1},
    {"0.000000001", 0, 1e-9},
    {"999999999999999", 0, 999999999999999.0},
    {"9999999999999999", -1, 0},
    {"0.0000000001", -1, 0},
    {"", -1, 0},
    {".5", -1, 0},
    {"5.", -1, 0},
    {"-1", -1, 0},
    {"+1", -1, 0},
    {"1e3", -1, 0},
    {"1w", -1, 0},
    {"1ms", -1, 0},
    {"1 s", -1, 0},
    {"1h30m", -1, 0},
    {"inf", -1, 0},
    {"nan", -1, 0},
};

static void test_parse_seconds(void **state)
{
    for (size_t i = 0; i < sizeof seconds_cases / sizeof seconds_cases[0]; i++) {
        const struct seconds_case *t = &seconds_cases[i];
        double got = -7;
        int result = config_parse_seconds(t->text, &got);
        if (result != t->want_result)
            fail_msg("config_parse_seconds(\"%s\"): got %d, want %d", t->text, result,
                     t->want_result);
        if (result == 0 && got != t->want)
            fail_msg("config_parse_seconds(\"%s\"): got %.17g, want %.17g", t->text, got, t->want);
        if (result != 0 && got != -7)
            fail_msg("config_parse_seconds(\"%s\"): failed but changed the value", t->text);
    }
}

static void test_parse_bool_and_choice(void **state)
{
    static const struct {
        const char *text;
        int want_result;
        bool want;
    } bools[] = {
        {"yes", 0, true},  {"YES", 0, true},   {"true", 0, true}, {"on", 0, true},
        {"1", 0, true},    {"no", 0, false},   {"False", 0, false}, {"off", 0, false},
        {"0", 0, false},   {"", -1, false},    {"y", -1, false},  {"yes ", -1, false},
        {"2", -1, false},  {"enabled", -1, false},
    };
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        bool got = !bools[i].want;
        int result = config_parse_bool(bools[i].text, &got);
        if (result != bools[i].want_result || (result == 0 && got != bools[i].want))
            fail_msg("config_parse_bool(\"%s\"): got %d/%d, want %d/%d", bools[i].text, result,
                     got, bools[i].want_result, bools[i].want);
    }

    static const struct {
        const char *text;
        const char *choices;
        int want;
    } choices[] = {
        {"denysoft", "denysoft|deny|log", 0},
        {"deny", "denysoft|deny|log", 1},
        {"LOG", "denysoft|deny|log", 2},
        {"den", "denysoft|deny|log", -1},
        {"denys", "denysoft|deny|log", -1},
        {"", "denysoft|deny|log", -1},
        {"deny|log", "denysoft|deny|log", -1},
        {"only", "only", 0},
        {"x", NULL, -1},
        {"", "|a", -1},
    };
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; i++) {
        int got = -1;
        int result = config_parse_choice(choices[i].text, choices[i].choices, &got);
        if (result != 0)
            got = -1;
        if (got != choices[i].want)
            fail_msg("config_parse_choice(\"%s\", \"%s\"): got %d, want %d", choices[i].text,
                     choices[i].choices ? choices[i].choices : "(null)", got, choices[i].want);
    }
    char *list = config_choices_list("a|bb|c");
    assert_string_equal(list, "a, bb, c");
    free(list);
}

static void test_quote_and_paths(void **state)
{
    static const struct {
        const char *text;
        const char *want;
    } quotes[] = {
        {"plain", "'plain'"},
        {"", "''"},
        {"a\x01z", "'a\\x01z'"},
        {"\xff", "'\\xff'"},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890+",
         "'12345678901234567890123456789012345678901234567890123456789012345678901234567890...'"},
    };
    for (size_t i = 0; i < sizeof quotes / sizeof quotes[0]; i++) {
        char *got = config_quote(quotes[i].text);
        if (strcmp(got, quotes[i].want) != 0)
            fail_msg("config_quote(\"%s\"): got %s, want %s", quotes[i].text, got,
                     quotes[i].want);
        free(got);
    }

    static const struct {
        const char *directory;
        const char *path;
        const char *want;
    } paths[] = {
        {"/etc/porter", "plugins", "/etc/porter/plugins"},
        {"/etc/porter/", "plugins", "/etc/porter/plugins"},
        {"/etc/porter", "/var/lib/x", "/var/lib/x"},
        {"/etc/porter", "./a/b", "/etc/porter/./a/b"},
        {"conf", "plugins", "conf/plugins"},
        {NULL, "plugins", "plugins"},
        {"", "plugins", "plugins"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char *got = config_path_resolve(paths[i].directory, paths[i].path);
        if (strcmp(got, paths[i].want) != 0)
            fail_msg("config_path_resolve(%s, %s): got %s, want %s", paths[i].directory,
                     paths[i].path, got, paths[i].want);
        free(got);
    }
    struct config_error_list errors = {0};
    struct porter_config *c = parse("", &errors);
    char *got = config_path(c, c->plugins_file);
    assert_string_equal(got, "/etc/porter/plugins");
    free(got);
    config_free(c);
}

/* ---- config_load ---- */

/* make_directory - a fresh temporary directory (static buffer) */
static char *make_directory(void)
{
    static char directory[64];
    snprintf(directory, sizeof directory, "/tmp/test_config.XXXXXX");
    assert_non_null(mkdtemp(directory));
    return directory;
}

/* write_file - write text to directory/name */
static void write_file(const char *directory, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* remove_file - remove directory/name */
static void remove_file(const char *directory, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    unlink(path);
}

static void test_load(void **state)
{
    char *directory = make_directory();
    write_file(directory, "porter.conf", "# test\nworkers = 2\nspool_dir = spool\n");
    struct config_error_list errors = {0};
    struct porter_config *c = config_load(directory, &errors);
    if (c == NULL)
        fail_msg("config_load: got errors %s, want a config", join_errors(&errors));
    assert_int_equal(c->workers, 2);
    assert_string_equal(c->directory, directory);
    assert_non_null(c->hostname); /* the system's name */
    char *spool = config_path(c, c->spool_dir);
    char want[256];
    snprintf(want, sizeof want, "%s/spool", directory);
    assert_string_equal(spool, want);
    free(spool);
    config_free(c);

    /* a relative directory becomes absolute */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/tmp"), 0);
    c = config_load(directory + strlen("/tmp/"), &errors);
    assert_int_equal(chdir(cwd), 0);
    assert_non_null(c);
    assert_string_equal(c->directory, directory);
    config_free(c);

    /* errors name the file by its full path */
    write_file(directory, "porter.conf", "hostname = mx.example.org\nworkers = lots\n");
    assert_null(config_load(directory, &errors));
    snprintf(want, sizeof want,
             "%s/porter.conf:2: workers: 'lots' is not an integer (digits, optionally followed "
             "by k, m or g)", directory);
    assert_string_equal(join_errors(&errors), want);
    config_errors_clear(&errors);

    /* no porter.conf */
    remove_file(directory, "porter.conf");
    assert_null(config_load(directory, &errors));
    snprintf(want, sizeof want, "%s/porter.conf: cannot open: No such file or directory",
             directory);
    assert_string_equal(join_errors(&errors), want);
    config_errors_clear(&errors);

    /* porter.conf is a directory */
    char sub[256];
    snprintf(sub, sizeof sub, "%s/porter.conf", directory);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_null(config_load(directory, &errors));
    snprintf(want, sizeof want, "%s/porter.conf: not a regular file", directory);
    assert_string_equal(join_errors(&errors), want);
    config_errors_clear(&errors);
    rmdir(sub);
    rmdir(directory);

    /* no directory */
    assert_null(config_load("/nonexistent/porter", &errors));
    assert_string_equal(join_errors(&errors), "/nonexistent/porter: No such file or directory");
    config_errors_clear(&errors);
}

static void test_system_hostname(void **state)
{
    char *name = config_system_hostname();
    assert_non_null(name);
    assert_true(strlen(name) > 0);
    free(name);
}

/* ---- the plugins file ---- */

/* format_lines - lines as "name@LINE [arg] [arg]" joined by '\n' (a static buffer) */
static const char *format_lines(const struct plugin_line_list *list)
{
    static char buffer[65536];
    size_t used = 0;
    buffer[0] = '\0';
    for (size_t i = 0; i < list->count; i++) {
        const struct plugin_line *p = &list->items[i];
        used += (size_t)snprintf(buffer + used, sizeof buffer - used, "%s%s@%d", i ? "\n" : "",
                                 p->name, p->line);
        for (int j = 0; j < p->argc; j++)
            used += (size_t)snprintf(buffer + used, sizeof buffer - used, " [%s]", p->argv[j]);
        assert_null(p->argv[p->argc]);
        assert_string_equal(p->file, "plugins");
    }
    return buffer;
}

struct lines_case {
    const char *text;
    const char *want_lines;  /* NULL: errors expected */
    const char *want_errors; /* "" when none */
};

static const struct lines_case lines_cases[] = {
    {"", "", ""},
    {"rcpt_ok", "rcpt_ok@1", ""},
    {"rcpt_ok\n", "rcpt_ok@1", ""},
    {"# the chain\n\n  dnsbl zones=zen.spamhaus.org  action=deny # trailing\nqueue_smtp\n",
     "dnsbl@3 [zones=zen.spamhaus.org] [action=deny]\nqueue_smtp@4", ""},
    {"milter name=x reply=\"go away now\" path=\"C:\\\\dir\" q=\"say \\\"hi\\\"\"",
     "milter@1 [name=x] [reply=go away now] [path=C:\\dir] [q=say \"hi\"]", ""},
    {"regex pattern=\"a\\d+\" plain=a\\d", "regex@1 [pattern=a\\d+] [plain=a\\d]", ""},
    {"x a#b \"#quoted\" c # comment \"with quote", "x@1 [a#b] [#quoted] [c]", ""},
    {"x \"\" key=\"\" \"a\"\"b\"", "x@1 [] [key=] [ab]", ""},
    {"x \"a b\"c", "x@1 [a bc]", ""},
    {"dnsbl \\\n  zones=a \\\n  action=log\nnext\n", "dnsbl@1 [zones=a] [action=log]\nnext@4", ""},
    {"dnsbl zones=a\\\naction=log", "dnsbl@1 [zones=a] [action=log]", ""},
    {"\\\ncontinued_name arg", "continued_name@2 [arg]", ""},
    {"a \\\n# a comment line inside a continuation\nb", "a@1\nb@3", ""},
    {"a b\r\nc\r\n", "a@1 [b]\nc@2", ""},
    {"a \\\r\n b\r\n", "a@1 [b]", ""},
    {"a\tb\t\tc", "a@1 [b] [c]", ""},
    {"a b\\", "a@1 [b]", ""},
    {"a_1 b\n\n\n   \t\n# x\nz9", "a_1@1 [b]\nz9@6", ""},
    {"x \"unterminated", NULL, "plugins:1: unterminated quote"},
    {"x \"unterminated\nnext", NULL, "plugins:1: unterminated quote"},
    {"ok\nx \"two\nlines\"\n", NULL, "plugins:2: unterminated quote\n"
                                      "plugins:3: unterminated quote"},
    {"Bad-Name", NULL, "plugins:1: bad plugin name 'Bad-Name' (use a-z, 0-9 and _, at most 64 "
                       "characters)"},
    {"\"quoted name\" x", NULL, "plugins:1: bad plugin name 'quoted name' (use a-z, 0-9 and _, at "
                                "most 64 characters)"},
    {"\"\"", NULL, "plugins:1: bad plugin name '' (use a-z, 0-9 and _, at most 64 characters)"},
    {"x a\x01", NULL, "plugins:1: control character in line"},
    {"x \"a\x1b\"", NULL, "plugins:1: control character in line"},
    {"A\nb\nC\n", NULL, "plugins:1: bad plugin name 'A' (use a-z, 0-9 and _, at most 64 "
                        "characters)\n"
                        "plugins:3: bad plugin name 'C' (use a-z, 0-9 and _, at most 64 "
                        "characters)"},
    {"a \\\nb \"x\nc\n", NULL, "plugins:2: unterminated quote"},
    {"a \"x \\\n y\" z\nok", NULL, "plugins:1: unterminated quote\n"
                                   "plugins:2: unterminated quote"},
};

static void test_plugin_lines(void **state)
{
    for (size_t i = 0; i < sizeof lines_cases / sizeof lines_cases[0]; i++) {
        const struct lines_case *t = &lines_cases[i];
        struct plugin_line_list list = {0};
        struct config_error_list errors = {0};
        int result = plugin_lines_parse("plugins", t->text, strlen(t->text), &list, &errors);
        int want_result = t->want_lines != NULL ? 0 : -1;
        if (result != want_result)
            fail_msg("\"%s\": got result %d (errors \"%s\"), want %d", t->text, result,
                     join_errors(&errors), want_result);
        const char *got_lines = format_lines(&list);
        if (t->want_lines != NULL && strcmp(got_lines, t->want_lines) != 0)
            fail_msg("\"%s\":\n got lines \"%s\"\nwant lines \"%s\"", t->text, got_lines,
                     t->want_lines);
        if (t->want_lines == NULL && list.count != 0)
            fail_msg("\"%s\": got %zu lines after errors, want none", t->text, list.count);
        if (strcmp(join_errors(&errors), t->want_errors) != 0)
            fail_msg("\"%s\":\n got errors \"%s\"\nwant errors \"%s\"", t->text,
                     join_errors(&errors), t->want_errors);
        plugin_lines_clear(&list);
        config_errors_clear(&errors);
    }
    plugin_lines_clear(NULL);
    config_errors_clear(NULL);
}

static void test_plugin_lines_limits(void **state)
{
    struct plugin_line_list list = {0};
    struct config_error_list errors = {0};

    static const char nul_text[] = "a\nb \0c\nd";
    assert_int_equal(plugin_lines_parse("plugins", nul_text, sizeof nul_text - 1, &list, &errors),
                     -1);
    assert_string_equal(join_errors(&errors), "plugins:2: NUL byte in line");
    config_errors_clear(&errors);

    char name[PLUGIN_NAME_MAX + 2];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(plugin_lines_parse("plugins", name, strlen(name), &list, &errors), -1);
    assert_int_equal(errors.count, 1);
    config_errors_clear(&errors);
    name[PLUGIN_NAME_MAX] = '\0';
    assert_int_equal(plugin_lines_parse("plugins", name, strlen(name), &list, &errors), 0);
    plugin_lines_clear(&list);

    /* words per line */
    char *text = malloc(PLUGIN_WORDS_MAX * 2 + 16);
    assert_non_null(text);
    strcpy(text, "x");
    for (int i = 1; i < PLUGIN_WORDS_MAX; i++)
        strcat(text, " a");
    assert_int_equal(plugin_lines_parse("plugins", text, strlen(text), &list, &errors), 0);
    assert_int_equal(list.items[0].argc, PLUGIN_WORDS_MAX - 1);
    plugin_lines_clear(&list);
    strcat(text, " a\nok");
    assert_int_equal(plugin_lines_parse("plugins", text, strlen(text), &list, &errors), -1);
    assert_string_equal(join_errors(&errors), "plugins:1: more than 256 words on one line");
    config_errors_clear(&errors);
    free(text);

    /* bytes per word */
    text = malloc(PLUGIN_WORD_MAX + 16);
    assert_non_null(text);
    strcpy(text, "x ");
    memset(text + 2, 'w', PLUGIN_WORD_MAX);
    text[2 + PLUGIN_WORD_MAX] = '\0';
    assert_int_equal(plugin_lines_parse("plugins", text, strlen(text), &list, &errors), 0);
    plugin_lines_clear(&list);
    strcat(text, "w");
    assert_int_equal(plugin_lines_parse("plugins", text, strlen(text), &list, &errors), -1);
    assert_string_equal(join_errors(&errors), "plugins:1: word longer than 65536 bytes");
    config_errors_clear(&errors);
    free(text);

    /* plugins per file */
    text = malloc((PLUGIN_LINES_MAX + 1) * 2 + 1);
    assert_non_null(text);
    text[0] = '\0';
    for (int i = 0; i <= PLUGIN_LINES_MAX; i++)
        strcat(text, "p\n");
    assert_int_equal(plugin_lines_parse("plugins", text, strlen(text), &list, &errors), -1);
    assert_string_equal(join_errors(&errors), "plugins:1001: more than 1000 plugins, stopped "
                                              "reading");
    assert_int_equal(list.count, 0);
    config_errors_clear(&errors);
    text[PLUGIN_LINES_MAX * 2] = '\0';
    assert_int_equal(plugin_lines_parse("plugins", text, strlen(text), &list, &errors), 0);
    assert_int_equal(list.count, PLUGIN_LINES_MAX);
    plugin_lines_clear(&list);
    free(text);

    /* errors per file */
    text = malloc((CONFIG_ERRORS_MAX + 10) * 2 + 1);
    assert_non_null(text);
    text[0] = '\0';
    for (int i = 0; i < CONFIG_ERRORS_MAX + 10; i++)
        strcat(text, "P\n");
    assert_int_equal(plugin_lines_parse("plugins", text, strlen(text), &list, &errors), -1);
    assert_int_equal(errors.count, CONFIG_ERRORS_MAX + 1);
    config_errors_clear(&errors);
    free(text);
}

static void test_plugin_lines_load(void **state)
{
    char *directory = make_directory();
    write_file(directory, "plugins", "rcpt_ok\nqueue_maildir dir=\"Mail box\"\n");
    char path[256];
    snprintf(path, sizeof path, "%s/plugins", directory);
    struct plugin_line_list list = {0};
    struct config_error_list errors = {0};
    assert_int_equal(plugin_lines_load(path, &list, &errors), 0);
    assert_int_equal(list.count, 2);
    assert_string_equal(list.items[1].file, path);
    assert_string_equal(list.items[1].name, "queue_maildir");
    assert_int_equal(list.items[1].line, 2);
    assert_string_equal(list.items[1].argv[0], "dir=Mail box");
    plugin_lines_clear(&list);

    remove_file(directory, "plugins");
    assert_int_equal(plugin_lines_load(path, &list, &errors), -1);
    char want[300];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(join_errors(&errors), want);
    config_errors_clear(&errors);
    rmdir(directory);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_errors_binary_and_long_lines),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_listen_replaces_default),
        cmocka_unit_test(test_parse_integer),
        cmocka_unit_test(test_parse_seconds),
        cmocka_unit_test(test_parse_bool_and_choice),
        cmocka_unit_test(test_quote_and_paths),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_system_hostname),
        cmocka_unit_test(test_plugin_lines),
        cmocka_unit_test(test_plugin_lines_limits),
        cmocka_unit_test(test_plugin_lines_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
