/*
 * test_plugin_args.c - unit tests of gateway/plugin_args.c: the typed getters called through a
 * porter_api table (as a plugin calls them), named and positional words, unknown and repeated
 * keys, choices, paths, network lists inline and from files, and the error list.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/cidr.h"
#include "gateway/config.h"
#include "gateway/plugin_args.h"

/* The getters go straight into the plugin API table: this fails to compile if a type drifts. */
static const struct porter_api api = {
    .arg_string = plugin_args_string,
    .arg_path = plugin_args_path,
    .arg_integer = plugin_args_integer,
    .arg_seconds = plugin_args_seconds,
    .arg_bool = plugin_args_bool,
    .arg_choice = plugin_args_choice,
    .arg_cidr = plugin_args_cidr,
    .arg_error = plugin_args_verror,
    .arg_positional = plugin_args_positional,
    .cidr_match = cidr_match,
    .cidr_free = cidr_free,
};

/* arg_error - what porter_arg_error does in a plugin */
static void arg_error(porter_args *a, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void arg_error(porter_args *a, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    api.arg_error(a, format, ap);
    va_end(ap);
}

/* The line the current args were made from (freed by args_free). */
static struct plugin_line_list lines;

/* args_new - the args of a one-line plugins file; directory may be NULL */
static struct porter_args *args_new(const char *text, const char *directory)
{
    struct config_error_list errors = {0};
    if (plugin_lines_parse("plugins", text, strlen(text), &lines, &errors) != 0 ||
        lines.count != 1)
        fail_msg("plugin_lines_parse(\"%s\"): got %zu lines, errors %s; want one line", text,
                 lines.count, errors.count ? errors.messages[0] : "none");
    return plugin_args_new(&lines.items[0], directory);
}

static void args_free(struct porter_args *a)
{
    plugin_args_free(a);
    plugin_lines_clear(&lines);
}

/* errors_joined - the args' errors joined by '\n' (a static buffer) */
static const char *errors_joined(const struct porter_args *a)
{
    static char buffer[8192];
    size_t used = 0;
    buffer[0] = '\0';
    for (size_t i = 0; i < plugin_args_error_count(a) && used < sizeof buffer; i++)
        used += (size_t)snprintf(buffer + used, sizeof buffer - used, "%s%s", i ? "\n" : "",
                                 plugin_args_error(a, i));
    return buffer;
}

/* expect_errors - the args' errors are exactly want ("" for none) */
static void expect_errors(const struct porter_args *a, const char *context, const char *want)
{
    const char *got = errors_joined(a);
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n got errors \"%s\"\nwant errors \"%s\"", context, got, want);
}

static void test_string_and_positional(void **state)
{
    struct porter_args *a =
        args_new("p name=x url=http://h/?a=b empty= first \"two words\" =x 3=4=5 -k=v", NULL);
    assert_string_equal(api.arg_string(a, "name", "fallback"), "x");
    assert_string_equal(api.arg_string(a, "url", NULL), "http://h/?a=b");
    assert_string_equal(api.arg_string(a, "empty", "fallback"), "");
    assert_string_equal(api.arg_string(a, "absent", "fallback"), "fallback");
    assert_null(api.arg_string(a, "absent2", NULL));
    assert_string_equal(api.arg_string(a, "3", NULL), "4=5");
    assert_string_equal(api.arg_string(a, "-k", NULL), "v");
    assert_string_equal(api.arg_positional(a, 0), "first");
    assert_string_equal(api.arg_positional(a, 1), "two words");
    assert_string_equal(api.arg_positional(a, 2), "=x");
    assert_null(api.arg_positional(a, 3));
    assert_int_equal(plugin_args_finish(a), 0);
    expect_errors(a, "all asked for", "");
    args_free(a);
}

struct integer_case {
    const char *value;
    long fallback, minimum, maximum;
    long want;
    const char *want_error; /* "" when none */
};

static const struct integer_case integer_cases[] = {
    {"10", 5, 0, 100, 10, ""},
    {"0", 5, 0, 100, 0, ""},
    {"100", 5, 0, 100, 100, ""},
    {"10k", 5, 0, 1000000, 10240, ""},
    {"2m", 5, 0, 1L << 30, 2097152, ""},
    {"-5", 0, -10, 10, -5, ""},
    {NULL, 7, 0, 100, 7, ""},
    {"101", 5, 0, 100, 5, "plugins:1: p: n: '101' is not an integer between 0 and 100"},
    {"-1", 5, 0, 100, 5, "plugins:1: p: n: '-1' is not an integer between 0 and 100"},
    {"abc", 5, 0, 100, 5, "plugins:1: p: n: 'abc' is not an integer between 0 and 100"},
    {"", 5, 0, 100, 5, "plugins:1: p: n: '' is not an integer between 0 and 100"},
    {"1.5", 5, 0, 100, 5, "plugins:1: p: n: '1.5' is not an integer between 0 and 100"},
    {"99999999999999999999", 5, 0, 100, 5,
     "plugins:1: p: n: '99999999999999999999' is not an integer between 0 and 100"},
};

static void test_integer(void **state)
{
    for (size_t i = 0; i < sizeof integer_cases / sizeof integer_cases[0]; i++) {
        const struct integer_case *t = &integer_cases[i];
        char text[128];
        snprintf(text, sizeof text, "p%s%s", t->value ? " n=" : "", t->value ? t->value : "");
        struct porter_args *a = args_new(text, NULL);
        long got = api.arg_integer(a, "n", t->fallback, t->minimum, t->maximum);
        if (got != t->want)
            fail_msg("\"%s\": got %ld, want %ld", text, got, t->want);
        plugin_args_finish(a);
        expect_errors(a, text, t->want_error);
        args_free(a);
    }
}

static void test_seconds_and_bool(void **state)
{
    static const struct {
        const char *text;
        double want;
        const char *want_error;
    } seconds[] = {
        {"p t=30", 30, ""},
        {"p t=5m", 300, ""},
        {"p t=2h", 7200, ""},
        {"p t=1d", 86400, ""},
        {"p t=0.5", 0.5, ""},
        {"p", 9, ""},
        {"p t=soon", 9, "plugins:1: p: t: 'soon' is not a duration (like 30, 30s, 5m, 2h, 1d or "
                        "0.5)"},
        {"p t=-1", 9, "plugins:1: p: t: '-1' is not a duration (like 30, 30s, 5m, 2h, 1d or 0.5)"},
    };
    for (size_t i = 0; i < sizeof seconds / sizeof seconds[0]; i++) {
        struct porter_args *a = args_new(seconds[i].text, NULL);
        double got = api.arg_seconds(a, "t", 9);
        if (got != seconds[i].want)
            fail_msg("\"%s\": got %g, want %g", seconds[i].text, got, seconds[i].want);
        plugin_args_finish(a);
        expect_errors(a, seconds[i].text, seconds[i].want_error);
        args_free(a);
    }

    static const struct {
        const char *text;
        bool fallback, want;
        const char *want_error;
    } bools[] = {
        {"p b=yes", false, true, ""},
        {"p b=Off", true, false, ""},
        {"p b=1", false, true, ""},
        {"p", true, true, ""},
        {"p", false, false, ""},
        {"p b=sure", true, true, "plugins:1: p: b: 'sure' is not yes or no (yes, no, true, false, "
                                 "on, off, 1, 0)"},
    };
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        struct porter_args *a = args_new(bools[i].text, NULL);
        bool got = api.arg_bool(a, "b", bools[i].fallback);
        if (got != bools[i].want)
            fail_msg("\"%s\": got %d, want %d", bools[i].text, got, bools[i].want);
        plugin_args_finish(a);
        expect_errors(a, bools[i].text, bools[i].want_error);
        args_free(a);
    }
}

static void test_choice(void **state)
{
    static const struct {
        const char *text;
        int want;
        const char *want_error;
    } cases[] = {
        {"p", 0, ""},
        {"p action=denysoft", 0, ""},
        {"p action=deny", 1, ""},
        {"p action=LOG", 2, ""},
        {"p action=reject", 0, "plugins:1: p: action: 'reject' is not one of denysoft, deny, log"},
        {"p action=", 0, "plugins:1: p: action: '' is not one of denysoft, deny, log"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct porter_args *a = args_new(cases[i].text, NULL);
        int got = api.arg_choice(a, "action", "denysoft|deny|log");
        if (got != cases[i].want)
            fail_msg("\"%s\": got %d, want %d", cases[i].text, got, cases[i].want);
        plugin_args_finish(a);
        expect_errors(a, cases[i].text, cases[i].want_error);
        args_free(a);
    }
}

static void test_unknown_and_duplicate_keys(void **state)
{
    struct porter_args *a = args_new("p zones=a acton=deny", NULL);
    assert_string_equal(api.arg_string(a, "zones", ""), "a");
    assert_int_equal(api.arg_choice(a, "action", "denysoft|deny|log"), 0);
    api.arg_string(a, "zones", ""); /* asking twice lists the key once */
    assert_int_equal(plugin_args_finish(a), 1);
    expect_errors(a, "typo", "plugins:1: p: unknown argument 'acton' (known: zones, action)");
    assert_int_equal(plugin_args_finish(a), 1); /* once only */
    args_free(a);

    a = args_new("p verbose=yes", NULL);
    assert_int_equal(plugin_args_finish(a), 1);
    expect_errors(a, "no keys", "plugins:1: p: unknown argument 'verbose' (this plugin takes no "
                                "named arguments)");
    args_free(a);

    a = args_new("p a=1 b=2 a=3", NULL);
    assert_string_equal(api.arg_string(a, "a", ""), "1");
    assert_string_equal(api.arg_string(a, "b", ""), "2");
    assert_int_equal(plugin_args_finish(a), 1);
    expect_errors(a, "repeated key", "plugins:1: p: argument 'a' is given twice");
    args_free(a);

    a = args_new("p a=1 a=2", NULL);
    assert_int_equal(plugin_args_finish(a), 2);
    expect_errors(a, "repeated unknown key",
                  "plugins:1: p: argument 'a' is given twice\n"
                  "plugins:1: p: unknown argument 'a' (this plugin takes no named arguments)");
    args_free(a);

    a = args_new("p one two three", NULL);
    assert_string_equal(api.arg_positional(a, 0), "one");
    assert_int_equal(plugin_args_finish(a), 2);
    expect_errors(a, "extra positional words", "plugins:1: p: unexpected argument 'two'\n"
                                                "plugins:1: p: unexpected argument 'three'");
    args_free(a);

    a = args_new("p one two", NULL);
    assert_string_equal(api.arg_positional(a, 1), "two"); /* asking for 1 covers 0 */
    assert_null(api.arg_positional(a, 5));
    assert_int_equal(plugin_args_finish(a), 0);
    args_free(a);
}

static void test_errors_in_order(void **state)
{
    struct porter_args *a = args_new("p\\\n n=x t=y", NULL);
    api.arg_integer(a, "n", 1, 0, 10);
    arg_error(a, "needs %s or %d", "zones", 7);
    api.arg_seconds(a, "t", 1);
    assert_int_equal(plugin_args_finish(a), 3);
    expect_errors(a, "three errors",
                  "plugins:1: p: n: 'x' is not an integer between 0 and 10\n"
                  "plugins:1: p: needs zones or 7\n"
                  "plugins:1: p: t: 'y' is not a duration (like 30, 30s, 5m, 2h, 1d or 0.5)");
    assert_int_equal(plugin_args_error_count(a), 3);
    assert_null(plugin_args_error(a, 3));
    args_free(a);

    char long_message[2000];
    memset(long_message, 'm', sizeof long_message - 1);
    long_message[sizeof long_message - 1] = '\0';
    a = args_new("p", NULL);
    arg_error(a, "%s", long_message);
    assert_int_equal(strlen(plugin_args_error(a, 0)), strlen("plugins:1: p: ") + 1023);
    args_free(a);

    /* NULL args are harmless */
    assert_string_equal(plugin_args_string(NULL, "k", "f"), "f");
    assert_int_equal(plugin_args_integer(NULL, "k", 3, 0, 9), 3);
    assert_null(plugin_args_positional(NULL, 0));
    assert_int_equal(plugin_args_finish(NULL), 0);
    assert_int_equal(plugin_args_error_count(NULL), 0);
    assert_null(plugin_args_error(NULL, 0));
    plugin_args_free(NULL);
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

static void test_path(void **state)
{
    struct porter_args *a = args_new("p file=rcpthosts abs=/var/x", "/etc/porter");
    assert_string_equal(api.arg_path(a, "file", NULL), "/etc/porter/rcpthosts");
    assert_string_equal(api.arg_path(a, "abs", NULL), "/var/x");
    assert_string_equal(api.arg_path(a, "other", "relayclients"), "/etc/porter/relayclients");
    assert_null(api.arg_path(a, "none", NULL));
    char *resolved = plugin_args_resolve_path(a, "x/y");
    assert_string_equal(resolved, "/etc/porter/x/y");
    free(resolved);
    assert_int_equal(plugin_args_finish(a), 0);
    args_free(a);

    a = args_new("p file=rcpthosts", NULL);
    assert_string_equal(api.arg_path(a, "file", NULL), "rcpthosts");
    args_free(a);
}

static void test_cidr(void **state)
{
    char directory[] = "/tmp/test_plugin_args.XXXXXX";
    assert_non_null(mkdtemp(directory));
    write_file(directory, "relay_networks", "# relays\n10.0.0.0/8\n2001:db8::/32 192.0.2.1\n");
    write_file(directory, "bad_networks", "10.0.0.0/8\n10.0.0.1/8\n");

    static const struct {
        const char *text;
        const char *match;    /* an address on the list */
        const char *no_match; /* an address not on it */
        const char *want_error;
    } cases[] = {
        {"p relay=10.0.0.0/8,192.0.2.1", "10.3.4.5", "192.0.2.2", ""},
        {"p relay=\"10.0.0.0/8 ::1\"", "::1", "::2", ""},
        {"p relay=relay_networks", "2001:db8::1", "11.0.0.1", ""},
        {"p relay=./relay_networks", "192.0.2.1", "192.0.2.2", ""},
        {"p relay=DIR/relay_networks", "10.0.0.1", "::1", ""},
        {"p relay=10.0.0.0/33", NULL, NULL,
         "plugins:1: p: relay: '10.0.0.0/33' has a bad prefix length (want 0 to 32)"},
        {"p relay=relay_network", NULL, NULL,
         "plugins:1: p: relay: 'relay_network' is not an IPv4 or IPv6 address or network"},
        {"p relay=./missing", NULL, NULL,
         "plugins:1: p: relay: DIR/./missing: cannot open: No such file or directory"},
        {"p relay=bad_networks", NULL, NULL,
         "plugins:1: p: relay: DIR/bad_networks:2: '10.0.0.1/8' has address bits set after the "
         "prefix (did you mean 10.0.0.0/8?)"},
        {"p", NULL, NULL, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256], want_error[512];
        const char *dir = strstr(cases[i].text, "DIR");
        if (dir != NULL)
            snprintf(text, sizeof text, "%.*s%s%s", (int)(dir - cases[i].text), cases[i].text,
                     directory, dir + 3);
        else
            snprintf(text, sizeof text, "%s", cases[i].text);
        dir = strstr(cases[i].want_error, "DIR");
        if (dir != NULL)
            snprintf(want_error, sizeof want_error, "%.*s%s%s", (int)(dir - cases[i].want_error),
                     cases[i].want_error, directory, dir + 3);
        else
            snprintf(want_error, sizeof want_error, "%s", cases[i].want_error);

        struct porter_args *a = args_new(text, directory);
        porter_cidr_list *list = api.arg_cidr(a, "relay");
        if (cases[i].match != NULL) {
            if (list == NULL)
                fail_msg("\"%s\": got no list (errors %s), want one", text, errors_joined(a));
            if (!api.cidr_match(list, cases[i].match))
                fail_msg("\"%s\": got %s not on the list, want it on", text, cases[i].match);
            if (api.cidr_match(list, cases[i].no_match))
                fail_msg("\"%s\": got %s on the list, want it off", text, cases[i].no_match);
        } else if (list != NULL) {
            fail_msg("\"%s\": got a list of %zu, want NULL", text, cidr_count(list));
        }
        api.cidr_free(list);
        plugin_args_finish(a);
        expect_errors(a, text, want_error);
        args_free(a);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/relay_networks", directory);
    unlink(path);
    snprintf(path, sizeof path, "%s/bad_networks", directory);
    unlink(path);
    rmdir(directory);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_and_positional),
        cmocka_unit_test(test_integer),
        cmocka_unit_test(test_seconds_and_bool),
        cmocka_unit_test(test_choice),
        cmocka_unit_test(test_unknown_and_duplicate_keys),
        cmocka_unit_test(test_errors_in_order),
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
