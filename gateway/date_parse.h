/*
 * date_parse.h - RFC 5322 date-time values ("Date:", "Resent-Date:") as seconds since the epoch.
 *
 * Interface: date_parse (also porter_date_parse in the plugin API). Pure and thread-safe: no
 * I/O, no globals, no time zone database; nothing is allocated. Nothing is fatal.
 */
#ifndef PORTER_DATE_PARSE_H
#define PORTER_DATE_PARSE_H

#include <time.h>

/*
 * date_parse - the instant a date-time of RFC 5322 section 3.3 names, with the obsolete forms
 * of section 4.3: comments and folding white space around every part, a missing weekday (or a
 * full weekday name), missing seconds, 1-digit hours and minutes, 2-digit years (00-49 are
 * 2000-2049, 50-99 are 1950-1999) and 3-digit years (1900 plus the value). Zones: +hhmm or
 * -hhmm (mm below 60); UT, GMT, EST, EDT, CST, CDT, MST, MDT, PST, PDT as their offsets;
 * military letters, any other alphabetic name and a missing zone as -0000 (UTC). The day must
 * exist in its month (leap years included), years run from 1900 to 9999, second 60 (a leap
 * second) is allowed. Text after the zone is ignored (a comment, or the name some mailers add:
 * "+0100 (CET)", "+0100 CET"); a sign not followed by 4 digits is not a zone and fails. The
 * weekday is not checked against the date. Returns -1 when text (NUL-terminated) is not such
 * a date; the one valid date that is -1, 31 Dec 1969 23:59:59 UTC, cannot be told apart.
 */
time_t date_parse(const char *text);

#endif
