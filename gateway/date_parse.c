/*
 * date_parse.c - RFC 5322 date-time values as seconds since the epoch (see date_parse.h).
 *
 * A cursor walks the text once, part by part: [weekday ","] day month year hour ":" minute
 * [":" second] [zone], skipping comments and folding white space between parts (the obsolete
 * syntax of RFC 5322 section 4.3 allows them everywhere). The instant is computed from the
 * civil date with integer arithmetic (no timegm, no time zone database), so the parser is pure
 * and thread-safe. Nothing is allocated; nothing is fatal.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "date_parse.h"

#define DATE_WORD_MAX 16 /* longest word kept for comparison; longer words match nothing */

static const char *const date_months[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const date_weekdays[7][2] = {
    {"mon", "monday"}, {"tue", "tuesday"}, {"wed", "wednesday"}, {"thu", "thursday"},
    {"fri", "friday"}, {"sat", "saturday"}, {"sun", "sunday"},
};

/* The zone names of RFC 5322 section 4.3 with a known offset (others count as -0000). */
static const struct {
    const char *name;
    int minutes;
} date_zones[] = {
    {"ut", 0},         {"gmt", 0},        {"est", -5 * 60}, {"edt", -4 * 60}, {"cst", -6 * 60},
    {"cdt", -5 * 60}, {"mst", -7 * 60}, {"mdt", -6 * 60}, {"pst", -8 * 60}, {"pdt", -7 * 60},
};

/* date_is_alpha / date_is_digit - ASCII only, whatever the locale */
static bool date_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool date_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* date_skip_cfws - skip white space (CR and LF of folding included) and nested comments with
 * quoted pairs; false on a comment that is not closed */
static bool date_skip_cfws(const char **cursor)
{
    const char *p = *cursor;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p != '(')
            break;
        size_t depth = 0;
        do {
            if (*p == '\0')
                return false;
            if (*p == '\\' && p[1] != '\0') {
                p += 2;
                continue;
            }
            if (*p == '(')
                depth++;
            else if (*p == ')')
                depth--;
            p++;
        } while (depth > 0);
    }
    *cursor = p;
    return true;
}

/* date_number - minimum to maximum digits as a number; false when the count is outside */
static bool date_number(const char **cursor, int minimum, int maximum, int *value, int *digits)
{
    const char *p = *cursor;
    int number = 0, count = 0;
    while (date_is_digit(*p)) {
        if (++count > maximum)
            return false;
        number = number * 10 + (*p++ - '0');
    }
    if (count < minimum)
        return false;
    *value = number;
    if (digits != NULL)
        *digits = count;
    *cursor = p;
    return true;
}

/* date_word - a run of letters, lowercased into word (an empty word when there is none; a
 * word too long to keep is returned cut, and matches no name because length says so) */
static size_t date_word(const char **cursor, char word[DATE_WORD_MAX + 1])
{
    const char *p = *cursor;
    size_t length = 0;
    while (date_is_alpha(*p)) {
        if (length < DATE_WORD_MAX)
            word[length] = (char)(*p | 0x20);
        length++;
        p++;
    }
    word[length < DATE_WORD_MAX ? length : DATE_WORD_MAX] = '\0';
    *cursor = p;
    return length;
}

/* date_separator - CFWS, c, CFWS; false when c is not there */
static bool date_separator(const char **cursor, char c)
{
    const char *p = *cursor;
    if (!date_skip_cfws(&p) || *p != c)
        return false;
    p++;
    if (!date_skip_cfws(&p))
        return false;
    *cursor = p;
    return true;
}

/* date_leap - a Gregorian leap year */
static bool date_leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* date_days_in_month - month 0-11 */
static int date_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 1 && date_leap(year) ? 29 : days[month];
}

/* date_days_from_civil - days since 1970-01-01 of a proleptic Gregorian date (month 1-12) */
static long long date_days_from_civil(long long year, long long month, long long day)
{
    year -= month <= 2;
    long long era = (year >= 0 ? year : year - 399) / 400;
    long long year_of_era = year - era * 400;
    long long day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/* date_weekday - "Mon," or "Monday," (consumed); true also when there is none */
static bool date_weekday(const char **cursor)
{
    const char *p = *cursor;
    char word[DATE_WORD_MAX + 1];
    size_t length = date_word(&p, word);
    if (length == 0)
        return true;
    bool known = false;
    for (size_t i = 0; i < 7 && !known; i++)
        known = strcmp(word, date_weekdays[i][0]) == 0 || strcmp(word, date_weekdays[i][1]) == 0;
    if (!known || !date_separator(&p, ','))
        return false;
    *cursor = p;
    return true;
}

/* date_zone - the zone's offset in minutes east of UTC; false on a malformed numeric zone */
static bool date_zone(const char **cursor, int *minutes)
{
    const char *p = *cursor;
    *minutes = 0;
    if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, value;
        if (!date_number(&p, 4, 4, &value, NULL) || value % 100 > 59)
            return false;
        *minutes = sign * (value / 100 * 60 + value % 100);
    } else {
        char word[DATE_WORD_MAX + 1];
        size_t length = date_word(&p, word);
        for (size_t i = 0; i < sizeof date_zones / sizeof date_zones[0] && length > 0; i++)
            if (strcmp(word, date_zones[i].name) == 0)
                *minutes = date_zones[i].minutes;
    }
    *cursor = p;
    return true;
}

time_t date_parse(const char *text)
{
    const char *p = text;
    char word[DATE_WORD_MAX + 1];
    int day, month = 0, year, year_digits, hour, minute, second = 0, zone;
    if (text == NULL || !date_skip_cfws(&p) || !date_weekday(&p) || !date_skip_cfws(&p))
        return -1;
    /* day month year */
    if (!date_number(&p, 1, 2, &day, NULL) || !date_skip_cfws(&p))
        return -1;
    if (date_word(&p, word) != 3)
        return -1;
    while (month < 12 && strcmp(word, date_months[month]) != 0)
        month++;
    if (month == 12 || !date_skip_cfws(&p) || !date_number(&p, 2, 4, &year, &year_digits))
        return -1;
    if (year_digits == 2)
        year += year < 50 ? 2000 : 1900;
    else if (year_digits == 3)
        year += 1900;
    if (year < 1900 || day < 1 || day > date_days_in_month(year, month))
        return -1;
    /* hour ":" minute [":" second] */
    if (!date_skip_cfws(&p) || !date_number(&p, 1, 2, &hour, NULL) || hour > 23 ||
        !date_separator(&p, ':') || !date_number(&p, 1, 2, &minute, NULL) || minute > 59)
        return -1;
    if (date_separator(&p, ':') && (!date_number(&p, 1, 2, &second, NULL) || second > 60))
        return -1;
    /* zone; anything after it is ignored */
    if (!date_skip_cfws(&p) || !date_zone(&p, &zone))
        return -1;
    long long days = date_days_from_civil(year, month + 1, day);
    long long seconds = days * 86400 + hour * 3600 + minute * 60 + second - (long long)zone * 60;
    return (time_t)seconds;
}
