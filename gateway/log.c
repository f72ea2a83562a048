/*
 * log.c - one event per line to syslog, stderr or a file, as key=value text or JSON (log.h).
 *
 * Lines longer than LOG_LINE_MAX are truncated; control characters are replaced so that a
 * client's text can never forge a second log line.
 *
 * A file sink is written with one write(2) per line on an O_APPEND descriptor that every
 * process of the daemon shares, so lines of different processes never mix. Reopening (for
 * logrotate) is asked of the master (SIGUSR1): it opens the path anew, hands the file to the
 * workers' user, and bumps a counter in a page shared with the processes it forks; every
 * process compares that counter with its own before writing a line and, when it moved,
 * opens the path itself and dup2()s the new file onto its descriptor. No line is lost: until
 * a process has reopened, its lines go to the renamed file.
 */

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096
#define LOG_PATH_MAX 4096

static enum log_target log_target_current = LOG_TARGET_STDERR;
static enum log_format log_format_current = LOG_FORMAT_TEXT;
static int log_level_current = 6;
static char log_ident[32] = "porter";
static int log_facility_current = LOG_MAIL;
static char log_file_path[LOG_PATH_MAX];
static int log_file_fd = -1;
static unsigned long log_file_generation;         /* what this process opened */
static unsigned long *log_file_shared_generation; /* what the master asks for; shared page */

void log_open(const char *ident, enum log_target target, int level)
{
    snprintf(log_ident, sizeof log_ident, "%s", ident);
    log_target_current = target;
    log_level_current = level;
    if (target == LOG_TARGET_SYSLOG)
        openlog(log_ident, LOG_PID | LOG_NDELAY, log_facility_current);
}

/* log_file_open - open path for appending; the descriptor or -1 */
static int log_file_open(const char *path, bool create)
{
    return open(path, O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0640);
}

int log_configure(const char *setting, bool foreground, int facility, enum log_format format,
                  char *error, size_t error_size)
{
    enum log_target target = LOG_TARGET_SYSLOG;
    if (setting == NULL)
        target = foreground ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG;
    else if (strcmp(setting, "stderr") == 0)
        target = LOG_TARGET_STDERR;
    else if (strncmp(setting, "file:", 5) == 0)
        target = LOG_TARGET_FILE;
    if (target == LOG_TARGET_FILE) {
        const char *path = setting + 5;
        if (log_file_fd < 0 || strcmp(path, log_file_path) != 0) {
            int fd = log_file_open(path, true);
            if (fd < 0) {
                snprintf(error, error_size, "log: cannot open %s: %s", path, strerror(errno));
                return -1;
            }
            if (log_file_fd >= 0) {
                dup2(fd, log_file_fd);
                close(fd);
            } else {
                log_file_fd = fd;
            }
            snprintf(log_file_path, sizeof log_file_path, "%s", path);
        }
        if (log_file_shared_generation == NULL) {
            void *page = mmap(NULL, sizeof *log_file_shared_generation, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            if (page != MAP_FAILED)
                log_file_shared_generation = page;
        }
    }
    if (target == LOG_TARGET_SYSLOG && (log_target_current != LOG_TARGET_SYSLOG ||
                                        facility != log_facility_current))
        closelog();
    log_facility_current = facility;
    log_format_current = format;
    log_target_current = target;
    if (target == LOG_TARGET_SYSLOG)
        openlog(log_ident, LOG_PID | LOG_NDELAY, facility);
    return 0;
}

int log_reopen(const char *owner)
{
    if (log_target_current != LOG_TARGET_FILE || log_file_fd < 0)
        return 0;
    int fd = log_file_open(log_file_path, true);
    if (fd < 0)
        return -1;
    if (owner != NULL && owner[0] != '\0' && geteuid() == 0) {
        struct passwd *pw = getpwnam(owner);
        if (pw != NULL && fchown(fd, pw->pw_uid, pw->pw_gid) != 0) {
            /* the workers keep writing to the old file; the line below says why */
        }
    }
    dup2(fd, log_file_fd);
    close(fd);
    if (log_file_shared_generation != NULL) {
        log_file_generation = __atomic_add_fetch(log_file_shared_generation, 1, __ATOMIC_RELEASE);
    }
    return 0;
}

/* log_file_follow - another process reopened the file: do the same before writing */
static void log_file_follow(void)
{
    if (log_file_shared_generation == NULL)
        return;
    unsigned long wanted = __atomic_load_n(log_file_shared_generation, __ATOMIC_ACQUIRE);
    if (wanted == log_file_generation)
        return;
    log_file_generation = wanted;
    int fd = log_file_open(log_file_path, false);
    if (fd < 0)
        return; /* keep writing to the file we have */
    dup2(fd, log_file_fd);
    close(fd);
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

/* log_json_string - append text as a JSON string to out (bounded; always terminated) */
static size_t log_json_string(char *out, size_t used, size_t size, const char *text, size_t length)
{
    if (used + 1 < size)
        out[used++] = '"';
    for (size_t i = 0; i < length && used + 7 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            out[used++] = '\\';
            out[used++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            used += (size_t)snprintf(out + used, size - used, "\\u%04x", c);
        } else {
            out[used++] = (char)c;
        }
    }
    if (used + 1 < size)
        out[used++] = '"';
    out[used < size ? used : size - 1] = '\0';
    return used < size ? used : size - 1;
}

/* log_json_key_seen - whether key (length bytes) is already a key of the object */
static bool log_json_key_seen(const char *object, const char *key, size_t length)
{
    char pattern[80];
    if (length + 4 > sizeof pattern)
        return false;
    snprintf(pattern, sizeof pattern, "\"%.*s\":", (int)length, key);
    return strstr(object, pattern) != NULL;
}

size_t log_format_json(char *out, size_t size, const char *stamp, int level, const char *line)
{
    int n = snprintf(out, size, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%ld", stamp,
                     log_level_name(level), (long)getpid());
    size_t used = n > 0 && (size_t)n < size ? (size_t)n : 0;
    const char *p = line;
    size_t text_start = 0, text_length = 0; /* words that are not key=value */
    while (*p != '\0' && used + 8 < size) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        const char *key = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
            p++;
        if (p == key || *p != '=') {
            /* not key=value: the rest of the line is a message */
            text_start = (size_t)(key - line);
            text_length = strlen(key);
            break;
        }
        size_t key_length = (size_t)(p - key);
        p++; /* '=' */
        const char *value = p;
        size_t value_length;
        char unescaped[LOG_LINE_MAX];
        if (*p == '"') {
            /* log_value's quoting: \" \\ \n \t; the value ends at a quote before a blank
             * or the end (a bare quote inside an older-style value is kept) */
            size_t kept = 0;
            for (p++; *p != '\0' && !(*p == '"' && (p[1] == ' ' || p[1] == '\0')); p++) {
                char c = *p;
                if (c == '\\' && p[1] != '\0' && strchr("\"\\nt", p[1]) != NULL) {
                    p++; /* an escape of log_value; any other backslash is the text's own */
                    c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
                }
                if (kept + 1 < sizeof unescaped)
                    unescaped[kept++] = c;
            }
            if (*p == '"')
                p++;
            value = unescaped;
            value_length = kept;
        } else {
            while (*p != '\0' && *p != ' ')
                p++;
            value_length = (size_t)(p - value);
        }
        out[used++] = ',';
        out[used] = '\0';
        char key_text[72];
        if (log_json_key_seen(out, key, key_length))
            snprintf(key_text, sizeof key_text, "%.*s_2", (int)(key_length < 60 ? key_length : 60), key);
        else
            snprintf(key_text, sizeof key_text, "%.*s", (int)(key_length < 60 ? key_length : 60), key);
        used = log_json_string(out, used, size, key_text, strlen(key_text));
        if (used + 1 < size)
            out[used++] = ':';
        used = log_json_string(out, used, size, value, value_length);
    }
    if (text_length > 0 && used + 12 < size) {
        memcpy(out + used, ",\"message\":", 11);
        used = log_json_string(out, used + 11, size, line + text_start, text_length);
    }
    if (used + 1 < size)
        out[used++] = '}';
    out[used] = '\0';
    return used;
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
    struct timeval now;
    gettimeofday(&now, NULL);
    struct tm tm;
    localtime_r(&now.tv_sec, &tm);
    char stamp[48], zone[8];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof zone, "%z", &tm);
    n = (int)strlen(stamp);
    snprintf(stamp + n, sizeof stamp - (size_t)n, ".%03ld%s", (long)(now.tv_usec / 1000),
             log_format_current == LOG_FORMAT_JSON ? zone : "");
    char json[LOG_LINE_MAX * 2];
    if (log_format_current == LOG_FORMAT_JSON)
        log_format_json(json, sizeof json, stamp, level, line);
    if (log_target_current == LOG_TARGET_SYSLOG) {
        syslog(level, "%s", log_format_current == LOG_FORMAT_JSON ? json : line);
        return;
    }
    char out[LOG_LINE_MAX * 2 + 128];
    if (log_format_current == LOG_FORMAT_JSON)
        n = snprintf(out, sizeof out, "%s\n", json);
    else
        n = snprintf(out, sizeof out, "%s %s[%ld]: %s: %s\n", stamp, log_ident, (long)getpid(),
                     log_level_name(level), line);
    size_t length = n < 0 ? 0 : (size_t)n < sizeof out ? (size_t)n : sizeof out - 1;
    if (length > 0 && out[length - 1] != '\n')
        out[length - 1] = '\n';
    int fd = STDERR_FILENO;
    if (log_target_current == LOG_TARGET_FILE && log_file_fd >= 0) {
        log_file_follow();
        fd = log_file_fd;
    }
    ssize_t ignored = write(fd, out, length); /* one write: lines of processes never mix */
    (void)ignored;
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
