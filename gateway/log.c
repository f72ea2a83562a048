/*
 * log.c - one event per line to stderr (foreground) or syslog facility mail (see log.h).
 *
 * Lines longer than LOG_LINE_MAX are truncated; control characters are replaced so that a
 * client's text can never forge a second log line.
 */

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096

static enum log_target log_target_current = LOG_TARGET_STDERR;
static int log_level_current = 6;
static char log_ident[32] = "porter";

void log_open(const char *ident, enum log_target target, int level)
{
    snprintf(log_ident, sizeof log_ident, "%s", ident);
    log_target_current = target;
    log_level_current = level;
    if (target == LOG_TARGET_SYSLOG)
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(int level)
{
    log_level_current = level;
}

int log_level(void)
{
    return log_level_current;
}

bool log_enabled(int level)
{
    return level <= log_level_current;
}

const char *log_level_name(int level)
{
    static const char *const names[] = {"emerg", "alert", "crit", "err",
                                        "warning", "notice", "info", "debug"};
    return level >= 0 && level <= 7 ? names[level] : "unknown";
}

/* log_sanitize - replace control characters so that one event stays one line */
static void log_sanitize(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

void log_vmessage(int level, const char *session_id, const char *prefix, const char *format,
                  va_list ap)
{
    if (!log_enabled(level))
        return;
    char line[LOG_LINE_MAX];
    size_t used = 0;
    int n;
    if (session_id != NULL) {
        n = snprintf(line, sizeof line, "session=%s ", session_id);
        used = n > 0 ? (size_t)n : 0;
    }
    if (prefix != NULL && used < sizeof line) {
        n = snprintf(line + used, sizeof line - used, "plugin=%s ", prefix);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < sizeof line)
        vsnprintf(line + used, sizeof line - used, format, ap);
    log_sanitize(line);
    if (log_target_current == LOG_TARGET_SYSLOG) {
        syslog(level, "%s", line);
        return;
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    struct tm tm;
    localtime_r(&now.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ld %s[%ld]: %s: %s\n", stamp, (long)(now.tv_usec / 1000), log_ident,
            (long)getpid(), log_level_name(level), line);
}

char *log_value(char *buffer, size_t size, const char *value)
{
    if (size == 0)
        return buffer;
    if (value == NULL)
        value = "-";
    bool plain = value[0] != '\0';
    for (const unsigned char *p = (const unsigned char *)value; *p && plain; p++)
        plain = !(*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f);
    if (plain) {
        snprintf(buffer, size, "%s", value);
        return buffer;
    }
    if (size < 3) {
        buffer[0] = '\0';
        return buffer;
    }
    size_t used = 0;
    buffer[used++] = '"';
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        char escaped[2] = {0, 0};
        size_t length = 1;
        if (*p == '"' || *p == '\\') {
            escaped[0] = '\\';
            escaped[1] = (char)*p;
            length = 2;
        } else if (*p == '\n' || *p == '\t') {
            escaped[0] = '\\';
            escaped[1] = *p == '\n' ? 'n' : 't';
            length = 2;
        } else {
            escaped[0] = *p < 0x20 || *p == 0x7f ? '?' : (char)*p;
        }
        if (used + length + 2 > size) /* room for the closing quote and the NUL */
            break;
        memcpy(buffer + used, escaped, length);
        used += length;
    }
    buffer[used++] = '"';
    buffer[used] = '\0';
    return buffer;
}

void log_message(int level, const char *session_id, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    log_vmessage(level, session_id, NULL, format, ap);
    va_end(ap);
}
