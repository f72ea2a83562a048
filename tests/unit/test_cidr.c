/*
 * test_cidr.c - unit tests of gateway/cidr.c: parsing entries, matching IPv4, IPv6 and
 * IPv4-mapped addresses at prefix edges (/0, /32, /128, odd lengths), entries with host bits
 * (refused, with a suggestion), bad entries, files with line numbers, socket addresses.
 */
#include "config.h"

#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/cidr.h"

/* The functions go straight into the plugin API table: this fails to compile if the types
 * drift apart. */
static const struct porter_api cidr_api = {.cidr_match = cidr_match, .cidr_free = cidr_free};

struct match_case {
    const char *list;
    const char *ip;
    bool want;
};

static const struct match_case match_cases[] = {
    {"10.0.0.0/8", "10.1.2.3", true},
    {"10.0.0.0/8", "10.255.255.255", true},
    {"10.0.0.0/8", "11.0.0.0", false},
    {"10.0.0.0/8", "9.255.255.255", false},
    {"0.0.0.0/0", "1.2.3.4", true},
    {"0.0.0.0/0", "255.255.255.255", true},
    {"0.0.0.0/0", "::ffff:1.2.3.4", true},
    {"0.0.0.0/0", "::1", false},
    {"192.0.2.1/32", "192.0.2.1", true},
    {"192.0.2.1/32", "192.0.2.2", false},
    {"192.0.2.1", "192.0.2.1", true},
    {"192.0.2.1", "192.0.2.0", false},
    {"192.0.2.128/25", "192.0.2.127", false},
    {"192.0.2.128/25", "192.0.2.128", true},
    {"192.0.2.128/25", "192.0.2.255", true},
    {"192.0.2.0/31", "192.0.2.1", true},
    {"192.0.2.0/31", "192.0.2.2", false},
    {"10.0.0.0/8", "::ffff:10.1.2.3", true},
    {"10.0.0.0/8", "::FFFF:10.1.2.3", true},
    {"10.0.0.0/8", "::ffff:0a01:0203", true},
    {"10.0.0.0/8", "::ffff:11.1.2.3", false},
    {"10.0.0.0/8", "::10.1.2.3", false},
    {"::ffff:10.0.0.0/104", "10.9.9.9", true},
    {"::ffff:10.0.0.0/104", "11.0.0.0", false},
    {"::ffff:192.0.2.1", "192.0.2.1", true},
    {"::ffff:192.0.2.1", "::ffff:192.0.2.1", true},
    {"::ffff:0:0/96", "203.0.113.7", true},
    {"2001:db8::/32", "2001:db8:1::5", true},
    {"2001:db8::/32", "2001:db9::1", false},
    {"2001:db8::/32", "2001:DB8::1", true},
    {"2001:db8::/33", "2001:db8:7fff::1", true},
    {"2001:db8::/33", "2001:db8:8000::1", false},
    {"::/0", "2001::1", true},
    {"::/0", "::", true},
    {"::/0", "1.2.3.4", false},
    {"::/0", "::ffff:1.2.3.4", false},
    {"::1/128", "::1", true},
    {"::1/128", "::2", false},
    {"::1", "0:0:0:0:0:0:0:1", true},
    {"fe80::/10", "fe80::1%eth0", true},
    {"fe80::/10", "febf::1", true},
    {"fe80::/10", "fec0::1", false},
    {"10.0.0.0/8", "10.1.2", false},
    {"10.0.0.0/8", "", false},
    {"10.0.0.0/8", "hello", false},
    {"10.0.0.0/8", "10.1.2.3/32", false},
    {"10.0.0.0/8", "10.1.2.3 ", false},
    {"", "10.1.2.3", false},
    {"# only a comment", "10.1.2.3", false},
    {"10.0.0.0/8, # 1.2.3.4\n192.0.2.0/24\t2001:db8::/32", "1.2.3.4", false},
    {"10.0.0.0/8, # 1.2.3.4\n192.0.2.0/24\t2001:db8::/32", "192.0.2.9", true},
    {"10.0.0.0/8, # 1.2.3.4\n192.0.2.0/24\t2001:db8::/32", "2001:db8::9", true},
    {"10.0.0.0/8,192.0.2.0/24#comment\r\n198.51.100.0/24", "198.51.100.1", true},
    {"127.0.0.1 ::1", "::1", true},
    {"127.0.0.1 ::1", "127.0.0.1", true},
    {"127.0.0.1 ::1", "::ffff:127.0.0.1", true},
};

static void test_match_table(void **state)
{
    for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
        const struct match_case *t = &match_cases[i];
        char *error = NULL;
        porter_cidr_list *list = cidr_parse(t->list, &error);
        if (list == NULL)
            fail_msg("cidr_parse(\"%s\"): got error %s, want a list", t->list, error);
        bool got = cidr_api.cidr_match(list, t->ip);
        if (got != t->want)
            fail_msg("cidr_match(\"%s\", \"%s\"): got %d, want %d", t->list, t->ip, got, t->want);
        cidr_api.cidr_free(list);
    }
}

struct error_case {
    const char *text;
    const char *want; /* a part of the error message */
};

static const struct error_case error_cases[] = {
    {"10.0.0.0/33", "'10.0.0.0/33' has a bad prefix length (want 0 to 32)"},
    {"10.0.0.0/", "'10.0.0.0/' has a bad prefix length"},
    {"10.0.0.0/8/9", "bad prefix length"},
    {"10.0.0.0/0008", "bad prefix length"},
    {"::1/129", "want 0 to 128"},
    {"10.0.0.0/-1", "'10.0.0.0/-1' is not an IPv4 or IPv6 address or network"},
    {"10.1.2.3/8", "did you mean 10.0.0.0/8?"},
    {"1.0.0.0/0", "did you mean 0.0.0.0/0?"},
    {"192.0.2.1/31", "did you mean 192.0.2.0/31?"},
    {"2001:db8::1/32", "did you mean 2001:db8::/32?"},
    {"::1/0", "did you mean ::/0?"},
    {"256.1.1.1", "'256.1.1.1' is not an IPv4"},
    {"10.0.0", "'10.0.0' is not"},
    {"010.0.0.1", "'010.0.0.1' is not"},
    {"1.2.3.4, bogus, 5.6.7.8", "'bogus' is not"},
    {"1.2.3.4 2001:db8:::1", "'2001:db8:::1' is not"},
    {"fe80::1%eth0", "'fe80::1%eth0' is not"},
    {"10.0.0.0/8;", "'10.0.0.0/8;' is not"},
    {"\x01", "a character that is not allowed"},
    {"1.2.3.4\xff", "a character that is not allowed"},
    {"1111111111111111111111111111111111111111111111111111111111111111111111", "too long"},
};

static void test_parse_errors(void **state)
{
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *t = &error_cases[i];
        char *error = NULL;
        porter_cidr_list *list = cidr_parse(t->text, &error);
        if (list != NULL)
            fail_msg("cidr_parse(\"%s\"): got a list of %zu, want an error containing \"%s\"",
                     t->text, cidr_count(list), t->want);
        if (error == NULL || strstr(error, t->want) == NULL)
            fail_msg("cidr_parse(\"%s\"): got error \"%s\", want one containing \"%s\"", t->text,
                     error ? error : "(null)", t->want);
        free(error);
    }
}

static void test_count_and_null(void **state)
{
    char *error = NULL;
    porter_cidr_list *list = cidr_parse("10.0.0.0/8,,, 1.2.3.4\n\n::1 # 1.1.1.1", &error);
    assert_non_null(list);
    if (cidr_count(list) != 3)
        fail_msg("cidr_count: got %zu, want 3", cidr_count(list));
    cidr_free(list);
    list = cidr_parse(NULL, &error);
    assert_non_null(list);
    assert_int_equal(cidr_count(list), 0);
    cidr_free(list);
    assert_int_equal(cidr_count(NULL), 0);
    assert_false(cidr_match(NULL, "10.0.0.1"));
    assert_false(cidr_match_sockaddr(NULL, NULL));
    cidr_free(NULL);
}

static void test_mapped_entry_is_stored_as_ipv4(void **state)
{
    char *error = NULL;
    porter_cidr_list *list = cidr_parse("::ffff:10.0.0.0/104", &error);
    assert_non_null(list);
    if (list->entries[0].family != 4 || list->entries[0].prefix != 8)
        fail_msg("got family %d prefix %d, want family 4 prefix 8", list->entries[0].family,
                 list->entries[0].prefix);
    cidr_free(list);
}

static void test_sockaddr(void **state)
{
    char *error = NULL;
    porter_cidr_list *list = cidr_parse("10.0.0.0/8 2001:db8::/32", &error);
    assert_non_null(list);

    struct sockaddr_in v4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "10.2.3.4", &v4.sin_addr);
    assert_true(cidr_match_sockaddr(list, (struct sockaddr *)&v4));
    inet_pton(AF_INET, "11.2.3.4", &v4.sin_addr);
    assert_false(cidr_match_sockaddr(list, (struct sockaddr *)&v4));

    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:10.9.8.7", &v6.sin6_addr);
    assert_true(cidr_match_sockaddr(list, (struct sockaddr *)&v6));
    inet_pton(AF_INET6, "2001:db8::25", &v6.sin6_addr);
    assert_true(cidr_match_sockaddr(list, (struct sockaddr *)&v6));
    inet_pton(AF_INET6, "2001:db7::25", &v6.sin6_addr);
    assert_false(cidr_match_sockaddr(list, (struct sockaddr *)&v6));

    struct sockaddr_un local = {.sun_family = AF_UNIX};
    assert_false(cidr_match_sockaddr(list, (struct sockaddr *)&local));
    cidr_free(list);
}

/* write_temp - a file with text in a fresh temporary directory; returns its path */
static char *write_temp(const char *text)
{
    char directory[] = "/tmp/test_cidr.XXXXXX";
    assert_non_null(mkdtemp(directory));
    char *path = malloc(sizeof directory + 5);
    assert_non_null(path);
    snprintf(path, sizeof directory + 5, "%s/list", directory);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* remove_temp - remove the file and its directory */
static void remove_temp(char *path)
{
    unlink(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
    free(path);
}

static void test_load_file(void **state)
{
    char *path = write_temp("# relay networks\n10.0.0.0/8 192.0.2.0/24\n\n2001:db8::/32 # v6\n");
    char *error = NULL;
    porter_cidr_list *list = cidr_load_file(path, &error);
    if (list == NULL)
        fail_msg("cidr_load_file: got error %s, want a list", error);
    assert_int_equal(cidr_count(list), 3);
    assert_true(cidr_match(list, "192.0.2.7"));
    assert_true(cidr_match(list, "2001:db8::7"));
    assert_false(cidr_match(list, "198.51.100.1"));
    cidr_free(list);
    remove_temp(path);

    path = write_temp("10.0.0.0/8\n\n192.0.2.0/24 192.0.2.1/24\n");
    list = cidr_load_file(path, &error);
    assert_null(list);
    char want[256];
    snprintf(want, sizeof want, "%s:3: '192.0.2.1/24' has address bits set", path);
    if (error == NULL || strstr(error, want) != error)
        fail_msg("got error \"%s\", want it to start with \"%s\"", error, want);
    free(error);
    remove_temp(path);

    error = NULL;
    list = cidr_load_file("/nonexistent/porter-cidr", &error);
    assert_null(list);
    if (error == NULL || strstr(error, "/nonexistent/porter-cidr: cannot open") == NULL)
        fail_msg("got error \"%s\", want \"/nonexistent/porter-cidr: cannot open...\"", error);
    free(error);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_count_and_null),
        cmocka_unit_test(test_mapped_entry_is_stored_as_ipv4),
        cmocka_unit_test(test_sockaddr),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
