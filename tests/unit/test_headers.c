/*
 * test_headers.c - unit tests for gateway/headers.c (cmocka).
 *
 * Covers: parsing valid blocks (folding, empty values, 8-bit text) with a byte-exact render
 * round trip, every parse error (and that a failed parse leaves the list as it was), the
 * header limit, case-insensitive count/get, add/insert/change/remove, value normalisation
 * (bare LF/CR, injection of new lines or an empty line), name validation, and a randomised
 * render -> parse -> render round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testlib.h"

#include "headers.h"

/* check_string - the same for C strings; NULL is printed as (null) */
static void check_string(const char *what, const char *got, const char *want)
{
    if (got == NULL || want == NULL) {
        if (got != want)
            fail_msg("%s: got %s, want %s", what, got ? got : "(null)", want ? want : "(null)");
        return;
    }
    check_bytes(what, got, strlen(got), want, strlen(want));
}

static void check_size(const char *what, size_t got, size_t want)
{
    if (got != want)
        fail_msg("%s: got %zu, want %zu", what, got, want);
}

struct parse_case {
    const char *name;
    const char *block;
    size_t count;
    const char *first_name;
    const char *first_value;
    const char *last_value;
};

static const struct parse_case parse_cases[] = {
    {"empty block", "", 0, NULL, NULL, NULL},
    {"one header", "Subject: hello\r\n", 1, "Subject", " hello", " hello"},
    {"no space after colon", "X-A:b\r\n", 1, "X-A", "b", "b"},
    {"empty value", "X-Empty:\r\n", 1, "X-Empty", "", ""},
    {"two headers", "From: a@b\r\nTo: c@d\r\n", 2, "From", " a@b", " c@d"},
    {"folded with space", "Subject: one\r\n two\r\n", 1, "Subject", " one\r\n two", " one\r\n two"},
    {"folded with tab, then header", "Subject: one\r\n\ttwo\r\n  three\r\nTo: x\r\n", 2, "Subject",
     " one\r\n\ttwo\r\n  three", " x"},
    {"whitespace-only continuation", "A: b\r\n \r\n", 1, "A", " b\r\n ", " b\r\n "},
    {"8-bit value", "Subject: caf\xc3\xa9\r\n", 1, "Subject", " caf\xc3\xa9", " caf\xc3\xa9"},
    {"odd but valid name", "X!#$%&'*+-.^_`|~0:v\r\n", 1, "X!#$%&'*+-.^_`|~0", "v", "v"},
    {"colon inside value", "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n", 1, "Date",
     " Mon, 1 Jan 2024 10:00:00 +0000", " Mon, 1 Jan 2024 10:00:00 +0000"},
    {"trailing spaces kept", "A: b  \r\n", 1, "A", " b  ", " b  "},
};

/* test_parse_valid - good blocks parse to the expected list and render back byte for byte */
static void test_parse_valid(void **state)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct header_list list;
        const char *error = NULL;
        headers_init(&list);
        int rc = headers_parse(&list, c->block, strlen(c->block), 100, &error);
        if (rc != 0)
            fail_msg("%s: got error \"%s\", want success", c->name, error);
        check_size(c->name, list.count, c->count);
        if (c->count > 0) {
            check_string(c->name, list.items[0].name, c->first_name);
            check_string(c->name, list.items[0].value, c->first_value);
            check_string(c->name, list.items[list.count - 1].value, c->last_value);
        }
        size_t length;
        char *rendered = headers_render(&list, &length);
        check_bytes(c->name, rendered, length, c->block, strlen(c->block));
        free(rendered);

        /* parsed values are already normalised: copying them with headers_add is exact */
        struct header_list copy;
        headers_init(&copy);
        for (size_t j = 0; j < list.count; j++)
            assert_int_equal(headers_add(&copy, list.items[j].name, list.items[j].value), 0);
        rendered = headers_render(&copy, &length);
        check_bytes("copy through headers_add", rendered, length, c->block, strlen(c->block));
        free(rendered);
        headers_clear(&copy);
        headers_clear(&list);
    }
}

struct parse_error_case {
    const char *name;
    const char *block;
    size_t length; /* 0: strlen */
    size_t max_count;
};

static const struct parse_error_case parse_error_cases[] = {
    {"no colon", "not a header\r\n", 0, 100},
    {"continuation first", " folded\r\n", 0, 100},
    {"tab continuation first", "\tfolded\r\n", 0, 100},
    {"space before colon", "Subject : x\r\n", 0, 100},
    {"empty name", ": x\r\n", 0, 100},
    {"no CRLF at end", "A: b", 0, 100},
    {"no CRLF at end after a good line", "A: b\r\nC: d", 0, 100},
    {"continuation without CRLF", "A: b\r\n c", 0, 100},
    {"bare LF line end", "A: b\n", 0, 100},
    {"bare LF at start", "\nA: b\r\n", 0, 100},
    {"bare CR inside", "A: b\rc\r\n", 0, 100},
    {"bare CR inside continuation", "A: b\r\n c\rd\r\n", 0, 100},
    {"NUL in value", "A: b\0c\r\n", 8, 100},
    {"NUL in name", "A\0: b\r\n", 7, 100},
    {"empty line", "A: b\r\n\r\n", 0, 100},
    {"control char in name", "A\x01: b\r\n", 0, 100},
    {"8-bit name", "Caf\xc3\xa9: b\r\n", 0, 100},
    {"too many headers", "A: 1\r\nB: 2\r\nC: 3\r\n", 0, 2},
    {"no header allowed", "A: 1\r\n", 0, 0},
};

/* test_parse_errors - bad blocks fail with a message and leave the list as it was */
static void test_parse_errors(void **state)
{
    for (size_t i = 0; i < sizeof parse_error_cases / sizeof parse_error_cases[0]; i++) {
        const struct parse_error_case *c = &parse_error_cases[i];
        struct header_list list;
        headers_init(&list);
        /* a list that already holds one header must keep exactly it */
        assert_int_equal(headers_parse(&list, "Keep: me\r\n", 10, 100, NULL), 0);
        const char *error = NULL;
        size_t length = c->length ? c->length : strlen(c->block);
        size_t max_count = c->max_count == 100 ? 100 : c->max_count + 1;
        int rc = headers_parse(&list, c->block, length, max_count, &error);
        if (rc != -1)
            fail_msg("%s: got %d, want -1", c->name, rc);
        if (error == NULL || *error == '\0')
            fail_msg("%s: got no error message, want one", c->name);
        check_size(c->name, list.count, 1);
        check_string(c->name, list.items[0].name, "Keep");
        check_string(c->name, list.items[0].value, " me");
        headers_clear(&list);
    }
}

/* test_parse_limit - max_count is the total the list may hold */
static void test_parse_limit(void **state)
{
    struct header_list list;
    const char *error = NULL;
    headers_init(&list);
    const char *block = "A: 1\r\nB: 2\r\n C\r\n";
    assert_int_equal(headers_parse(&list, block, strlen(block), 2, &error), 0);
    check_size("exactly the limit", list.count, 2);
    assert_int_equal(headers_parse(&list, "D: 4\r\n", 6, 2, &error), -1);
    check_string("error", error, "too many headers");
    check_size("after refusal", list.count, 2);
    headers_clear(&list);
}

/* test_count_get - names compare case-insensitively; index counts headers of that name */
static void test_count_get(void **state)
{
    struct header_list list;
    headers_init(&list);
    const char *block = "Received: one\r\nSubject: s\r\nRECEIVED: two\r\nreceived: three\r\n";
    assert_int_equal(headers_parse(&list, block, strlen(block), 100, NULL), 0);
    check_size("count Received", headers_count(&list, "received"), 3);
    check_size("count subject", headers_count(&list, "SUBJECT"), 1);
    check_size("count absent", headers_count(&list, "X-None"), 0);
    check_size("count NULL", headers_count(&list, NULL), 0);
    check_string("get 0", headers_get(&list, "Received", 0), " one");
    check_string("get 1", headers_get(&list, "received", 1), " two");
    check_string("get 2", headers_get(&list, "rEcEiVeD", 2), " three");
    check_string("get 3", headers_get(&list, "Received", 3), NULL);
    check_string("get absent", headers_get(&list, "X-None", 0), NULL);
    check_string("prefix is not a match", headers_get(&list, "Receive", 0), NULL);
    headers_clear(&list);
}

/* render_list - the rendered block as a NUL-terminated string the caller frees */
static char *render_list(const struct header_list *list)
{
    size_t length;
    return headers_render(list, &length);
}

/* test_edits - add, insert, change, delete and remove in order, checked by the render */
static void test_edits(void **state)
{
    struct header_list list;
    headers_init(&list);
    assert_int_equal(headers_add(&list, "From", " a@b"), 0);
    assert_int_equal(headers_add(&list, "Subject", " hi"), 0);
    assert_int_equal(headers_insert(&list, 0, "Received", " first"), 0);
    assert_int_equal(headers_insert(&list, 2, "X-Mid", " mid"), 0);
    assert_int_equal(headers_insert(&list, 99, "X-End", " end"), 0);
    char *got = render_list(&list);
    check_string("after add/insert", got,
                 "Received: first\r\nFrom: a@b\r\nX-Mid: mid\r\nSubject: hi\r\nX-End: end\r\n");
    free(got);

    assert_int_equal(headers_change(&list, "subject", 0, " changed"), 0);
    assert_int_equal(headers_change(&list, "Subject", 1, " nope"), -1);
    assert_int_equal(headers_change(&list, "X-None", 0, " nope"), -1);
    assert_int_equal(headers_change(&list, "X-None", 0, NULL), -1);
    assert_int_equal(headers_change(&list, "x-mid", 0, NULL), 0);
    got = render_list(&list);
    check_string("after change/delete", got,
                 "Received: first\r\nFrom: a@b\r\nSubject: changed\r\nX-End: end\r\n");
    free(got);

    assert_int_equal(headers_add(&list, "received", " second"), 0);
    assert_int_equal(headers_add(&list, "X-Other", " o"), 0);
    assert_int_equal(headers_change(&list, "Received", 1, " 2nd"), 0);
    check_string("changed the second", headers_get(&list, "received", 1), " 2nd");
    assert_int_equal(headers_remove(&list, "RECEIVED"), 2);
    assert_int_equal(headers_remove(&list, "Received"), 0);
    got = render_list(&list);
    check_string("after remove", got, "From: a@b\r\nSubject: changed\r\nX-End: end\r\nX-Other: o\r\n");
    free(got);

    headers_clear(&list);
    check_size("cleared", list.count, 0);
    got = render_list(&list);
    check_string("empty render", got, "");
    free(got);
    assert_int_equal(headers_add(&list, "Reused", " yes"), 0);
    check_string("reused after clear", headers_get(&list, "reused", 0), " yes");
    headers_clear(&list);
}

/* test_names - invalid names are refused by add and insert */
static void test_names(void **state)
{
    static const struct {
        const char *name;
        bool valid;
    } cases[] = {
        {"Subject", true}, {"X-A_b.c", true}, {"~!", true},       {"", false},
        {"Sub ject", false}, {"Subject:", false}, {"Sub\r\nX", false}, {"Caf\xc3\xa9", false},
        {"A\tB", false},     {"\x7f", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = headers_name_valid(cases[i].name);
        if (got != cases[i].valid)
            fail_msg("headers_name_valid(\"%s\"): got %d, want %d", cases[i].name, got, cases[i].valid);
        struct header_list list;
        headers_init(&list);
        int want = cases[i].valid ? 0 : -1;
        int rc = headers_add(&list, cases[i].name, " v");
        if (rc != want)
            fail_msg("headers_add(\"%s\"): got %d, want %d", cases[i].name, rc, want);
        rc = headers_insert(&list, 0, cases[i].name, " v");
        if (rc != want)
            fail_msg("headers_insert(\"%s\"): got %d, want %d", cases[i].name, rc, want);
        check_size(cases[i].name, list.count, cases[i].valid ? 2 : 0);
        headers_clear(&list);
    }
    assert_false(headers_name_valid(NULL));
}

/* test_normalize - values given to the edits become safe, parseable folding */
static void test_normalize(void **state)
{
    static const struct {
        const char *given;
        const char *stored;
    } cases[] = {
        {" plain", " plain"},
        {"", ""},
        {" a\nb", " a\r\n b"},
        {" a\n\tb", " a\r\n\tb"},
        {" a\r\n b", " a\r\n b"},
        {" a\r\n\tb", " a\r\n\tb"},
        {" a\rb", " a\r\n b"},
        {" a\r b", " a\r\n b"},
        {" a\r\nInjected: yes", " a\r\n Injected: yes"},
        {" a\r\n\r\nbody", " a\r\n \r\n body"},
        {" a\n\nb", " a\r\n \r\n b"},
        {" trailing\r\n", " trailing"},
        {" trailing\n\r\n\r", " trailing"},
        {"\r\n", ""},
        {"\nstart", "\r\n start"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct header_list list;
        headers_init(&list);
        assert_int_equal(headers_add(&list, "X-Test", cases[i].given), 0);
        check_string("add", list.items[0].value, cases[i].stored);
        assert_int_equal(headers_insert(&list, 0, "X-Test", cases[i].given), 0);
        check_string("insert", list.items[0].value, cases[i].stored);
        assert_int_equal(headers_change(&list, "X-Test", 1, cases[i].given), 0);
        check_string("change", list.items[1].value, cases[i].stored);

        /* whatever was given, the render parses back to the same list */
        size_t length;
        char *block = headers_render(&list, &length);
        struct header_list again;
        const char *error = NULL;
        headers_init(&again);
        if (headers_parse(&again, block, length, 100, &error) != 0)
            fail_msg("reparse of %s: got error \"%s\", want success", cases[i].stored, error);
        check_size("reparse count", again.count, 2);
        check_string("reparse value", again.items[0].value, cases[i].stored);
        free(block);
        headers_clear(&again);
        headers_clear(&list);
    }
}

/* test_random_round_trip - random lists render, parse back equal, and render identically */
static void test_random_round_trip(void **state)
{
    static const char *const names[] = {"A", "Subject", "x-y", "RECEIVED", "z~"};
    static const char pieces[] = " \tab:\r\n.\x80";
    uint32_t seed = 12345;
    for (int round = 0; round < 2000; round++) {
        struct header_list list;
        headers_init(&list);
        seed = seed * 1103515245u + 12345u;
        size_t count = (seed >> 16) % 6;
        for (size_t i = 0; i < count; i++) {
            char value[24];
            seed = seed * 1103515245u + 12345u;
            size_t length = (seed >> 16) % (sizeof value - 1);
            for (size_t j = 0; j < length; j++) {
                seed = seed * 1103515245u + 12345u;
                value[j] = pieces[(seed >> 16) % (sizeof pieces - 1)];
            }
            value[length] = '\0';
            seed = seed * 1103515245u + 12345u;
            const char *name = names[(seed >> 16) % 5];
            if (seed & 1)
                assert_int_equal(headers_add(&list, name, value), 0);
            else
                assert_int_equal(headers_insert(&list, (seed >> 8) % 4, name, value), 0);
        }
        size_t length;
        char *block = headers_render(&list, &length);
        struct header_list again;
        const char *error = NULL;
        headers_init(&again);
        if (headers_parse(&again, block, length, 100, &error) != 0)
            fail_msg("round %d: got error \"%s\", want success", round, error);
        check_size("round trip count", again.count, list.count);
        for (size_t i = 0; i < list.count; i++) {
            check_string("round trip name", again.items[i].name, list.items[i].name);
            check_string("round trip value", again.items[i].value, list.items[i].value);
        }
        size_t length2;
        char *block2 = headers_render(&again, &length2);
        check_bytes("second render", block2, length2, block, length);
        free(block);
        free(block2);
        headers_clear(&again);
        headers_clear(&list);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),   cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_limit),   cmocka_unit_test(test_count_get),
        cmocka_unit_test(test_edits),         cmocka_unit_test(test_names),
        cmocka_unit_test(test_normalize),     cmocka_unit_test(test_random_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
