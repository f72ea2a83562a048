/*
 * test_date_parse.c - unit tests of gateway/date_parse.c: RFC 5322 dates and their obsolete
 * forms (RFC 5322 sections 3.3, 4.3 and appendix A.5/A.6.3), zones, calendar edges (leap
 * years, leap seconds, 1900 and 9999), dates before 1970, and text that is not a date; a
 * round trip of every day of a 400-year cycle through strftime's RFC 5322 format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define PORTER_CORE
#include <porter/plugin.h>

#include "gateway/date_parse.h"

/* The function goes straight into the plugin API table: this fails to compile if the types
 * drift apart. */
static const struct porter_api date_api = {.date_parse = date_parse};

struct date_case {
    const char *text;
    long long want; /* seconds since the epoch; -1: not a date */
};

static const struct date_case date_cases[] = {
    /* RFC 5322 appendix A examples and the plain form */
    {"Fri, 21 Nov 1997 09:55:06 -0600", 880127706},
    {"Tue, 1 Jul 2003 10:52:37 +0200", 1057049557},
    {"Thu, 13 Feb 1969 23:32:54 -0330", -27723426},
    {"Thu, 01 Jan 1970 00:00:00 +0000", 0},
    {"1 Jan 2000 00:00:00 +0000", 946684800},
    /* obsolete forms (section 4.3) */
    {"21 Nov 97 09:55:06 GMT", 880106106},
    {"Fri, 21 Nov 1997 09:55 -0600", 880127700},
    {"Friday, 21 Nov 1997 09:55:06 -0600", 880127706},
    {"fri, 21 nov 1997 09:55:06 -0600", 880127706},
    {"FRI, 21 NOV 1997 09:55:06 -0600", 880127706},
    {"Fri ,21 Nov 1997 09:55:06 -0600", 880127706},
    {"Fri, 21 Nov 1997 9:55:06 -0600", 880127706},
    {"Fri, 21 Nov 1997 09 : 55 : 06 -0600", 880127706},
    {"Fri, 21 Nov 1997 09:55:6 -0600", 880127706},
    {"Fri,21 Nov 1997 09:55:06 -0600", 880127706},
    {"  Fri, 21 Nov 1997 09:55:06 -0600  ", 880127706},
    {"Fri, 21\r\n Nov 1997\r\n\t09:55:06 -0600", 880127706},
    {"Fri, 21 Nov 1997 09:55:06 -0600 (CST)", 880127706},
    {"Fri, 21 Nov 1997 09:55:06 -0600 CST", 880127706},
    {"(Fri) 21 Nov 1997 09:55:06 -0600", 880127706},
    {"Fri, 21 (nested (comment) \\) here) Nov 1997 09:55:06 -0600", 880127706},
    {"1 Jan 49 00:00:00 +0000", 2493072000LL},
    {"1 Jan 50 00:00:00 +0000", -631152000},
    {"1 Jan 103 00:00:00 +0000", 1041379200},
    {"1 Jan 049 00:00:00 +0000", -662688000},
    /* zones */
    {"1 Jan 2026 10:00:00 EST", 1767279600},
    {"1 Jan 2026 10:00:00 est", 1767279600},
    {"1 Jan 2026 10:00:00 PDT", 1767286800},
    {"1 Jan 2026 10:00:00 UT", 1767261600},
    {"1 Jan 2026 10:00:00 GMT", 1767261600},
    {"1 Jan 2026 10:00:00 Z", 1767261600},
    {"1 Jan 2026 10:00:00 A", 1767261600},
    {"1 Jan 2026 10:00:00 CEST", 1767261600},
    {"1 Jan 2026 10:00:00", 1767261600},
    {"1 Jan 2026 10:00:00 -0000", 1767261600},
    {"1 Jan 2026 10:00:00 +9959", 1766901660},
    {"1 Jan 2026 10:00:00 -9959", 1767621540},
    {"1 Jan 2026 10:00:00 +0530", 1767241800},
    /* calendar edges */
    {"29 Feb 2024 12:00:00 +0000", 1709208000},
    {"29 Feb 2000 12:00:00 +0000", 951825600},
    {"30 Jun 2016 23:59:60 +0000", 1467331200},
    {"31 Dec 9999 23:59:59 +0000", 253402300799LL},
    {"1 Jan 1900 00:00:00 +0000", -2208988800LL},
    /* not dates */
    {"", -1},
    {"   ", -1},
    {"yesterday", -1},
    {"2026-01-31T10:00:00Z", -1},
    {"Foo, 21 Nov 1997 09:55:06 -0600", -1},
    {"Fri 21 Nov 1997 09:55:06 -0600", -1},
    {"Fri, 21 Foo 1997 09:55:06 -0600", -1},
    {"Fri, 21 November 1997 09:55:06 -0600", -1},
    {"Fri, 21 Nov 1997 25:00:00 -0600", -1},
    {"Fri, 21 Nov 1997 24:00:00 -0600", -1},
    {"Fri, 21 Nov 1997 09:60:00 -0600", -1},
    {"Fri, 21 Nov 1997 09:55:61 -0600", -1},
    {"Fri, 21 Nov 1997 09:55: -0600", -1},
    {"Fri, 21 Nov 1997 09 -0600", -1},
    {"Fri, 21 Nov 1997 -0600", -1},
    {"Fri, 21 Nov 09:55:06 -0600", -1},
    {"Fri, 0 Nov 1997 09:55:06 -0600", -1},
    {"Fri, 31 Nov 1997 09:55:06 -0600", -1},
    {"Fri, 123 Nov 1997 09:55:06 -0600", -1},
    {"29 Feb 2023 12:00:00 +0000", -1},
    {"29 Feb 1900 12:00:00 +0000", -1},
    {"1 Jan 1899 00:00:00 +0000", -1},
    {"1 Jan 12026 00:00:00 +0000", -1},
    {"1 Jan 7 00:00:00 +0000", -1},
    {"1 Jan 2026 10:00:00 +060", -1},
    {"1 Jan 2026 10:00:00 +06000", -1},
    {"1 Jan 2026 10:00:00 +01:00", -1},
    {"1 Jan 2026 10:00:00 +0060", -1},
    {"1 Jan 2026 10:00:00 -", -1},
    {"1 Jan 2026 10:00:00 +0000 (unclosed", 1767261600}, /* after the zone: ignored */
    {"1 Jan 2026 10:00:00 (unclosed", -1},
    {"1 Jan 2026 (unclosed 10:00:00 +0000", -1},
    {"(unclosed", -1},
    {"Fri, 21 Nov 1997 09:55:99999999999999999999 -0600", -1},
};

/* test_date_cases - the table */
static void test_date_cases(void **state)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof date_cases / sizeof date_cases[0]; i++) {
        const struct date_case *c = &date_cases[i];
        long long got = (long long)date_api.date_parse(c->text);
        if (got != c->want) {
            print_error("date_parse(\"%s\"): got %lld, want %lld\n", c->text, got, c->want);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* test_date_round_trip - every day of 1970-2369 (a whole 400-year cycle) at a varying time,
 * written by strftime as RFC 5322 says, parses back to the same instant */
static void test_date_round_trip(void **state)
{
    int failures = 0;
    const long long start = 0, days = 146097;
    for (long long day = 0; day < days && failures < 10; day++) {
        time_t when = (time_t)((start + day) * 86400 + (day * 7919) % 86400);
        struct tm tm;
        char text[64];
        gmtime_r(&when, &tm);
        strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S +0000", &tm);
        long long got = (long long)date_parse(text);
        if (got != (long long)when) {
            print_error("date_parse(\"%s\"): got %lld, want %lld\n", text, got, (long long)when);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* test_date_zone_shift - the same local time in two zones differs by the zones' offsets */
static void test_date_zone_shift(void **state)
{
    static const struct {
        const char *zone;
        long long minutes;
    } zones[] = {{"EST", -300}, {"EDT", -240}, {"CST", -360}, {"CDT", -300}, {"MST", -420},
                 {"MDT", -360}, {"PST", -480}, {"PDT", -420}, {"UT", 0},     {"GMT", 0},
                 {"+0000", 0},  {"-0130", -90}, {"+1345", 825}};
    const long long base = (long long)date_parse("Sat, 6 Jun 2026 12:34:56 +0000");
    int failures = 0;
    for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "Sat, 6 Jun 2026 12:34:56 %s", zones[i].zone);
        long long got = (long long)date_parse(text), want = base - zones[i].minutes * 60;
        if (got != want) {
            print_error("date_parse(\"%s\"): got %lld, want %lld\n", text, got, want);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* test_date_null - NULL is not a date */
static void test_date_null(void **state)
{
    assert_int_equal((long long)date_parse(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_date_cases),
        cmocka_unit_test(test_date_round_trip),
        cmocka_unit_test(test_date_zone_shift),
        cmocka_unit_test(test_date_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
