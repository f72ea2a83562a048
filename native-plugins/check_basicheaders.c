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
 * read with porter_date_parse: RFC 5322 dates, with the obsolete forms of section 4.3: two-digit
 * years, zone names (UT, GMT, EST, EDT, CST, CDT, MST, MDT, PST, PDT; military letters and other
 * names count as -0000), a missing weekday, missing seconds, comments and folding. A message
 * that passes every rule declines (the next plugin decides).
 *
 * Arguments: past=DURATION (default 2d), future=DURATION (default 2h): how far the Date may
 * lie before and after the moment the message arrives.
 *
 * Memory: the state is freed by fini; nothing is kept per message.
 */
#include <stdlib.h>
#include <string.h>
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

static int basicheaders_data_post(porter_session *s, void *state)
{
    const struct basicheaders *b = state;
    const char *from = porter_header_get(s, "From", 0), *date = porter_header_get(s, "Date", 0);
    time_t now = time(NULL), when = porter_date_parse(date);
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

PORTER_PLUGIN(.name = "check_basicheaders",
              .description = "Refuses messages that lack the basics of RFC 5322 section 3.6. A "
                             "message that is empty, has no From: or no Date: header, or whose "
                             "Date: is unreadable or too far from the moment it arrives gets 550 "
                             "5.6.0 and a text that names the rule. Dates in the obsolete forms "
                             "of RFC 5322 section 4.3 are read. A message that passes declines: "
                             "the next plugin decides.",
              .arguments = PORTER_ARGUMENTS(
                  {"past", "2d", "How far before the message's arrival its Date: may lie."},
                  {"future", "2h", "How far after the message's arrival its Date: may lie."}),
              .init = basicheaders_init, .fini = free,
              .hooks[PORTER_HOOK_DATA_POST] = basicheaders_data_post);
