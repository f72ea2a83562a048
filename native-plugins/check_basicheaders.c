/*
 * check_basicheaders - refuse messages that lack what RFC 5322 section 3.6 requires of every
 * message: some content, a From: header and a Date: header, with a date near now.
 *
 * Hook: data_post. Each rule refuses with 550 5.6.0 and a text that names it:
 *     an empty message            "You have to send some data first"
 *     no From: header             "Mail with no From header not accepted here"
 *     no Date: header             "Mail with no Date header not accepted here"
 *     a Date: that is not a date  "Mail with an unreadable Date header not accepted here"
 *     a Date: outside the window  "Mail with a Date header too far in the past or future ..."
 * Headers are read with the core's header API (the first header of each name counts). Dates are
 * RFC 5322 dates, with the obsolete forms of section 4.3: two-digit years, zone names (UT, GMT,
 * EST, EDT, CST, CDT, MST, MDT, PST, PDT; military letters count as -0000), a missing weekday,
 * missing seconds, comments and folding. Anything else declines.
 *
 * Arguments: past=DURATION (default 2d), future=DURATION (default 2h): how far the Date may
 * lie before and after the moment the message arrives.
 *
 * Memory: the state is freed by fini; nothing is kept per message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <porter/plugin.h>

struct basicheaders {
    double past;
    double future;
};

static void *basicheaders_init(porter_args *a)
{
    struct basicheaders *b = calloc(1, sizeof *b);
    b->past = porter_arg_seconds(a, "past", 2 * 86400.0);
    b->future = porter_arg_seconds(a, "future", 2 * 3600.0);
    return b;
}

/* basicheaders_date - an RFC 5322 date (obsolete forms too) in seconds since the epoch; -1 */
static time_t basicheaders_date(const char *text)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    static const char zones[][4] = {"UT", "UTC", "GMT", "EST", "EDT", "CST", "CDT", "MST", "MDT", "PST",
                                    "PDT"};
    static const int zone_hours[] = {0, 0, 0, -5, -4, -6, -5, -7, -6, -8, -7};
    struct tm tm = {0};
    char month[4], sign[2], digits[5], zone[4];
    int year, weekday = 0, used = 0, seconds = 0, minutes = 0;
    sscanf(text, " %*[A-Za-z] ,%n", &weekday);
    const char *p = text + weekday;
    if (sscanf(p, " %d %3[A-Za-z] %d %d :%d%n", &tm.tm_mday, month, &year, &tm.tm_hour, &tm.tm_min,
               &used) != 5)
        return -1;
    if (sscanf(p += used, " :%d%n", &tm.tm_sec, &seconds) == 1)
        p += seconds;
    while (tm.tm_mon < 12 && strncasecmp(month, months + 3 * tm.tm_mon, 3) != 0)
        tm.tm_mon++;
    if (tm.tm_mon == 12 || (unsigned)tm.tm_mday - 1 > 30 || (unsigned)tm.tm_hour > 23 ||
        (unsigned)tm.tm_min > 59 || (unsigned)tm.tm_sec > 60 || year < 0)
        return -1;
    if (sscanf(p, " %1[+-]%4[0-9]", sign, digits) == 2 && strlen(digits) == 4)
        minutes = (sign[0] == '-' ? -1 : 1) * (atoi(digits) / 100 * 60 + atoi(digits) % 100);
    else if (sscanf(p, " %3[A-Za-z]", zone) == 1)
        for (size_t i = 0; i < sizeof zones / sizeof zones[0]; i++)
            if (strcasecmp(zone, zones[i]) == 0)
                minutes = zone_hours[i] * 60;
    tm.tm_year = (year < 50 ? year + 2000 : year < 1000 ? year + 1900 : year) - 1900;
    return timegm(&tm) - (time_t)minutes * 60;
}

static int basicheaders_data_post(porter_session *s, void *state)
{
    const struct basicheaders *b = state;
    const char *from = porter_header_get(s, "From", 0), *date = porter_header_get(s, "Date", 0);
    time_t now = time(NULL), when = date != NULL ? basicheaders_date(date) : -1;
    if (porter_data_size(s) == 0)
        return porter_reply(s, PORTER_DENY, 550, "5.6.0", "You have to send some data first");
    if (from == NULL || from[strspn(from, " \t\r\n")] == '\0')
        return porter_reply(s, PORTER_DENY, 550, "5.6.0", "Mail with no From header not accepted here");
    if (date == NULL || date[strspn(date, " \t\r\n")] == '\0')
        return porter_reply(s, PORTER_DENY, 550, "5.6.0", "Mail with no Date header not accepted here");
    if (when == (time_t)-1)
        return porter_reply(s, PORTER_DENY, 550, "5.6.0", "Mail with an unreadable Date header not "
                                                          "accepted here");
    if ((double)when < (double)now - b->past || (double)when > (double)now + b->future)
        return porter_reply(s, PORTER_DENY, 550, "5.6.0", "Mail with a Date header too far in the past "
                                                          "or future not accepted here");
    return PORTER_DECLINED;
}

PORTER_PLUGIN(.name = "check_basicheaders", .init = basicheaders_init, .fini = free,
              .hooks[PORTER_HOOK_DATA_POST] = basicheaders_data_post);
