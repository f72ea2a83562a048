/*
 * log.h - the core's logging: one event per line, "key=value" words, session id first.
 *
 * Interface: log_open chooses stderr (foreground) or syslog facility mail; log_message writes
 * one line at a level (syslog levels, enum porter_log_level). Nothing here is fatal; nothing
 * is allocated for the caller. Never pass AUTH secrets to these functions.
 */
#ifndef PORTER_LOG_H
#define PORTER_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG };

void log_open(const char *ident, enum log_target target, int level);
void log_set_level(int level);
int log_level(void);
bool log_enabled(int level);
const char *log_level_name(int level);
/*
 * log_value - value written so that "key=VALUE" stays one token a parser can read back: as it
 * is when it is not empty and holds no blank, '"', '\\' or control character; otherwise in
 * double quotes, with '"' and '\\' escaped by a backslash, newline and tab written \\n and \\t,
 * other control characters as '?'. Cut (still well formed) to fit size bytes with the NUL.
 * Returns buffer. NULL is written "-".
 *   char helo[300];
 *   log_message(LOG_INFO, id, "event=x helo=%s", log_value(helo, sizeof helo, s->helo));
 */
char *log_value(char *buffer, size_t size, const char *value);
/* log_message - one line; session_id may be NULL for process-level events */
void log_message(int level, const char *session_id, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
/* log_vmessage - same, with a prefix (a plugin's name) and a va_list */
void log_vmessage(int level, const char *session_id, const char *prefix, const char *format,
                  va_list ap);

#endif
