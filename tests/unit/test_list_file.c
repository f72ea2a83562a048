/*
 * test_list_file.c - unit tests of gateway/list_file.c (list files and inline lists: entries,
 * words, line numbers, comments, domain and address matching) and of the domain helpers in
 * gateway/smtp_parse.c that plugins get (porter_address_domain, porter_domain_equal,
 * porter_domain_within).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/list_file.h"
#include "gateway/smtp_parse.h"

/* The functions go straight into the plugin API table: this fails to compile if the types
 * drift apart. */
static const struct porter_api list_api = {
    .list_count = list_count, .list_word = list_word, .list_word_count = list_word_count,
    .list_line = list_line, .list_source = list_source, .list_match_domain = list_match_domain,
    .list_match_address = list_match_address, .list_free = list_free,
    .address_domain = smtp_address_domain, .domain_equal = smtp_domain_equal,
    .domain_within = smtp_domain_within};

/* write_file - text into a new temporary file; its path (static buffer) */
static const char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/porter-test-list-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_file_entries(void **unused)
{
    const char *path = write_file("# a key table\n"
                                  "example.com  sel1 keys/a.pem\n"
                                  "\n"
                                  "   \t\n"
                                  "example.org\tsel2 /k/b.pem ed25519-sha256 # trailing comment\r\n"
                                  "#only a comment\n"
                                  "last.example");
    char *error = NULL;
    porter_list *l = list_load_file(path, &error);
    unlink(path);
    assert_non_null(l);
    assert_int_equal(list_api.list_count(l), 3);
    assert_int_equal(list_word_count(l, 0), 3);
    assert_string_equal(list_word(l, 0, 0), "example.com");
    assert_string_equal(list_word(l, 0, 2), "keys/a.pem");
    assert_null(list_word(l, 0, 3));
    assert_int_equal(list_line(l, 0), 2);
    assert_int_equal(list_word_count(l, 1), 4);
    assert_string_equal(list_word(l, 1, 3), "ed25519-sha256");
    assert_int_equal(list_line(l, 1), 5);
    assert_string_equal(list_word(l, 2, 0), "last.example");
    assert_int_equal(list_line(l, 2), 7);
    assert_null(list_word(l, 3, 0));
    assert_int_equal(list_line(l, 3), 0);
    assert_string_equal(list_source(l), path);
    list_free(l);
    list_free(NULL);
}

static void test_file_missing(void **unused)
{
    char *error = NULL;
    assert_null(list_load_file("/nonexistent/porter-list", &error));
    assert_non_null(error);
    if (strstr(error, "/nonexistent/porter-list: cannot open") == NULL)
        fail_msg("got error \"%s\", want \"/nonexistent/porter-list: cannot open...\"", error);
    free(error);
}

static void test_inline(void **unused)
{
    porter_list *l = list_parse("bl.example.net, bl2.example.net  ,,other.example");
    assert_int_equal(list_count(l), 3);
    assert_string_equal(list_word(l, 1, 0), "bl2.example.net");
    assert_int_equal(list_word_count(l, 1), 1);
    assert_string_equal(list_source(l), "inline");
    list_free(l);
    l = list_parse(NULL);
    assert_int_equal(list_count(l), 0);
    assert_false(list_match_domain(l, "example.com"));
    list_free(l);
}

struct match_case {
    const char *name;
    bool domain;   /* list_match_domain, else list_match_address */
    bool want;
};

static void test_matching(void **unused)
{
    porter_list *l = list_parse("Example.COM .sub.example.net alice@Example.org @mail.example "
                                "trailing.example.");
    static const struct match_case cases[] = {
        {"example.com", true, true},
        {"EXAMPLE.com.", true, true},
        {"www.example.com", true, false},      /* no dot: the domain only */
        {"sub.example.net", true, false},      /* a dot: subdomains only */
        {"a.sub.example.net", true, true},
        {"a.b.SUB.example.net", true, true},
        {"xsub.example.net", true, false},
        {"trailing.example", true, true},
        {"", true, false},
        {"bob@example.com", false, true},      /* by its domain */
        {"bob@x.sub.example.net", false, true},
        {"alice@example.org", false, true},
        {"ALICE@EXAMPLE.ORG", false, true},
        {"bob@example.org", false, false},
        {"anyone@mail.example", false, true},
        {"anyone@x.mail.example", false, false}, /* @domain is that domain exactly */
        {"postmaster", false, false},
        {"", false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = cases[i].domain ? list_match_domain(l, cases[i].name)
                                   : list_match_address(l, cases[i].name);
        if (got != cases[i].want)
            fail_msg("%s %s: got %d, want %d", cases[i].domain ? "domain" : "address",
                     cases[i].name, got, cases[i].want);
    }
    assert_false(list_match_domain(l, NULL));
    assert_false(list_match_address(NULL, "a@example.com"));
    list_free(l);
}

static void test_domain_helpers(void **unused)
{
    assert_string_equal(list_api.address_domain("user@Example.com"), "Example.com");
    assert_string_equal(smtp_address_domain("\"a@b\"@example.com"), "example.com");
    assert_null(smtp_address_domain("postmaster"));
    assert_null(smtp_address_domain("user@"));
    assert_null(smtp_address_domain(""));
    assert_null(smtp_address_domain(NULL));
    assert_true(smtp_domain_equal("Example.COM", "example.com."));
    assert_false(smtp_domain_equal("example.com", "example.co"));
    assert_false(smtp_domain_equal(NULL, "x"));
    assert_true(smtp_domain_within("mx.Example.com", "example.COM"));
    assert_true(smtp_domain_within("example.com.", "example.com"));
    assert_false(smtp_domain_within("badexample.com", "example.com"));
    assert_false(smtp_domain_within("com", "example.com"));
    assert_false(smtp_domain_within("example.com", ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_entries),
        cmocka_unit_test(test_file_missing),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_domain_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
