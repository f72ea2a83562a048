/*
 * fuzz_date_parse.c - libFuzzer target for the RFC 5322 date parser (gateway/date_parse.c).
 *
 * Input: the bytes are the text (cut at the first NUL and at DATE_FUZZ_MAX bytes). The target
 * aborts when:
 *   - two parses of the same text disagree (the parser must be pure);
 *   - leading white space or a leading comment changes the result;
 *   - a date is accepted outside what the grammar can name: years 1900-9999 shifted by a zone
 *     of at most 99:59 and a leap second;
 *   - an accepted instant whose UTC year is 1900-9999, written back by strftime in the
 *     RFC 5322 form, does not parse to the same instant.
 * Memory: everything is on the stack; nothing is kept between inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "date_parse.h"

#define DATE_FUZZ_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long long earliest = -2208988800LL - 100LL * 3600; /* 1900 - 99:59 */
    static const long long latest = 253402300799LL + 100LL * 3600 + 1; /* 9999 + 99:59 + 1 s */
    char text[DATE_FUZZ_MAX + 1];
    char prefixed[DATE_FUZZ_MAX + 16];
    if (size > DATE_FUZZ_MAX)
        size = DATE_FUZZ_MAX;
    memcpy(text, data, size);
    text[size] = '\0';
    long long first = (long long)date_parse(text);
    if ((long long)date_parse(text) != first)
        abort();
    snprintf(prefixed, sizeof prefixed, " \t(c) %s", text);
    if ((long long)date_parse(prefixed) != first)
        abort();
    if (first == -1)
        return 0;
    if (first < earliest || first > latest)
        abort();
    time_t when = (time_t)first;
    struct tm tm;
    if (gmtime_r(&when, &tm) == NULL)
        abort();
    if (tm.tm_year + 1900 < 1900 || tm.tm_year + 1900 > 9999)
        return 0;
    char written[64];
    strftime(written, sizeof written, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    if ((long long)date_parse(written) != first)
        abort();
    return 0;
}
