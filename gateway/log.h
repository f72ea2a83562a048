/*
 * log.h - the core's logging: one event per line, "key=value" words, session id first.
 *
 * Interface: log_open chooses stderr or syslog before the configuration is read;
 * log_configure applies the log, log_facility and log_format settings (syslog, stderr or
 * file:PATH; text or JSON); log_reopen reopens a file sink (the master, on SIGUSR1; the
 * processes it forked follow at their next line); log_message writes one line at a level
 * (syslog levels, enum porter_log_level). Nothing here is fatal; nothing is allocated for
 * the caller. Never pass AUTH secrets to these functions.
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

#include <stddef.h>

enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG, LOG_TARGET_FILE };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON, LOG_FORMAT_COUNT };

void log_open(const char *ident, enum log_target target, int level);
/* log_configure - the log setting (NULL: syslog, or stderr when foreground), facility and
 * format; 0, or -1 with a message in error (a file that cannot be opened) */
int log_configure(const char *setting, bool foreground, int facility, enum log_format format,
                  char *error, size_t error_size);
/* log_reopen - a file sink is opened anew (the old name was rotated away) and handed to the
 * user owner (when root); forked processes follow. 0, or -1 with errno */
int log_reopen(const char *owner);
/* log_format_json - one JSON object for a key=value line: time, level, pid, then every
 * key=value word in order (a repeated key gets "_2"), then "message" for any words that are
 * not key=value. Returns the length written to out (always terminated). Pure but for getpid. */
size_t log_format_json(char *out, size_t size, const char *stamp, int level, const char *line);
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
