/*
 * spool.c - queue files (see spool.h for the format and the durability rules).
 *
 * The envelope is line records "key value" with %XX escapes, written once and parsed with
 * strict limits; only the status record and the recipients' state letters change afterwards,
 * in place, at offsets the parser reports. Writers use tmp/ + fsync + link + fsync(folder).
 *
 * Interface: spool.h. Fatal: out of memory. The parser is pure and never trusts the file.
 * Memory: envelopes own their strings; spool_path and spool_envelope_format results belong to
 * the caller.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory.h"
#include "spool.h"

#define SPOOL_STATUS_FORMAT "status %010u %020lld %c\n"
#define SPOOL_STATUS_LENGTH 41 /* strlen of one formatted status record */

static const char *const queue_names[SPOOL_QUEUE_COUNT] = {"active", "hold"};
static const char *const state_names[SPOOL_RCPT_COUNT] = {"pending", "delivered", "failed"};
static const char state_letters[SPOOL_RCPT_COUNT] = {'P', 'D', 'F'};

const char *spool_queue_name(int queue)
{
    return queue >= 0 && queue < SPOOL_QUEUE_COUNT ? queue_names[queue] : "invalid";
}

const char *spool_rcpt_state_name(int state)
{
    return state >= 0 && state < SPOOL_RCPT_COUNT ? state_names[state] : "invalid";
}

bool spool_id_valid(const char *id)
{
    if (id == NULL)
        return false;
    size_t length = strlen(id);
    if (length == 0 || length > SPOOL_ID_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

char *spool_path(const char *queue_dir, int queue, const char *id)
{
    return xasprintf("%s/%s/%s", queue_dir, spool_queue_name(queue), id);
}

int spool_count(const char *queue_dir, int queue, size_t limit, long *count, time_t *oldest)
{
    char *folder = xasprintf("%s/%s", queue_dir, spool_queue_name(queue));
    DIR *dir = opendir(folder);
    free(folder);
    *count = 0;
    *oldest = 0;
    if (dir == NULL)
        return -1;
    struct dirent *item;
    for (size_t seen = 0; seen < limit && (item = readdir(dir)) != NULL; seen++) {
        if (!spool_id_valid(item->d_name))
            continue;
        /* the created record is near the start: magic, id (at most 64 bytes), created */
        int fd = openat(dirfd(dir), item->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        char head[SPOOL_ID_MAX + 96];
        ssize_t got = pread(fd, head, sizeof head - 1, 0);
        close(fd);
        (*count)++;
        head[got > 0 ? got : 0] = '\0';
        const char *created = strstr(head, "\ncreated ");
        time_t when = created != NULL ? (time_t)strtoll(created + 9, NULL, 10) : 0;
        if (when > 0 && (*oldest == 0 || when < *oldest))
            *oldest = when;
    }
    closedir(dir);
    return 0;
}

int spool_prepare(const char *queue_dir)
{
    char *path = xstrdup(queue_dir);
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                free(path);
                return -1;
            }
            *p = '/';
        }
    }
    free(path);
    if (mkdir(queue_dir, 0700) != 0 && errno != EEXIST)
        return -1;
    static const char *const folders[] = {"tmp", "active", "hold"};
    for (size_t i = 0; i < 3; i++) {
        char *folder = xasprintf("%s/%s", queue_dir, folders[i]);
        int rc = mkdir(folder, 0700);
        int saved = errno;
        free(folder);
        if (rc != 0 && saved != EEXIST) {
            errno = saved;
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- formatting */

struct spool_text {
    char *data;
    size_t length, capacity;
};

static void text_add(struct spool_text *t, const char *bytes, size_t length)
{
    if (t->length + length + 1 > t->capacity) {
        while (t->length + length + 1 > t->capacity)
            t->capacity = t->capacity ? t->capacity * 2 : 1024;
        t->data = xrealloc(t->data, t->capacity);
    }
    memcpy(t->data + t->length, bytes, length);
    t->length += length;
    t->data[t->length] = '\0';
}

static void text_printf(struct spool_text *t, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void text_printf(struct spool_text *t, const char *format, ...)
{
    char buffer[256];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(buffer, sizeof buffer, format, ap);
    va_end(ap);
    if (n > 0)
        text_add(t, buffer, (size_t)n < sizeof buffer ? (size_t)n : sizeof buffer - 1);
}

/* text_escaped - value with bytes <= 0x20, >= 0x7f and '%' as %XX */
static void text_escaped(struct spool_text *t, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)(value ? value : ""); *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '%') {
            char escape[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            text_add(t, escape, 3);
        } else {
            text_add(t, (const char *)p, 1);
        }
    }
}

/* text_record - "key value\n" (nothing when value is NULL) */
static void text_record(struct spool_text *t, const char *key, const char *value)
{
    if (value == NULL)
        return;
    text_add(t, key, strlen(key));
    text_add(t, " ", 1);
    text_escaped(t, value);
    text_add(t, "\n", 1);
}

void spool_envelope_format(struct spool_envelope *e, char **text, size_t *length)
{
    struct spool_text t = {0};
    text_add(&t, SPOOL_MAGIC "\n", strlen(SPOOL_MAGIC) + 1);
    text_record(&t, "id", e->queue_id);
    text_printf(&t, "created %lld\n", e->created);
    text_record(&t, "from", e->mail_from ? e->mail_from : "");
    if (e->mail_params != NULL && *e->mail_params)
        text_record(&t, "mail-params", e->mail_params);
    text_record(&t, "client-ip", e->client_ip);
    if (e->client_port > 0)
        text_printf(&t, "client-port %d\n", e->client_port);
    text_record(&t, "client-name", e->client_name);
    text_record(&t, "helo", e->helo);
    text_record(&t, "protocol", e->protocol);
    text_record(&t, "auth-user", e->auth_user);
    text_record(&t, "quarantine", e->quarantine);
    for (size_t i = 0; i < e->note_count; i++) {
        text_add(&t, "note ", 5);
        text_escaped(&t, e->notes[i].key);
        text_add(&t, " ", 1);
        text_escaped(&t, e->notes[i].value);
        text_add(&t, "\n", 1);
    }
    e->status_offset = (off_t)t.length;
    text_printf(&t, SPOOL_STATUS_FORMAT, e->attempts, e->next_attempt, e->delay_warned ? 'Y' : 'N');
    for (size_t i = 0; i < e->recipient_count; i++) {
        struct spool_recipient *r = &e->recipients[i];
        text_add(&t, "rcpt ", 5);
        r->state_offset = (off_t)t.length;
        char letter = r->state >= 0 && r->state < SPOOL_RCPT_COUNT ? state_letters[r->state] : 'P';
        text_add(&t, &letter, 1);
        text_add(&t, " ", 1);
        text_escaped(&t, r->address);
        text_add(&t, " ", 1);
        text_escaped(&t, r->params ? r->params : "");
        text_add(&t, "\n", 1);
    }
    text_add(&t, "message\n", 8);
    e->message_offset = (off_t)t.length;
    *text = t.data;
    *length = t.length;
}

/* ---------------------------------------------------------------- parsing */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* unescape - a %XX-escaped word into a new string; NULL if malformed */
static char *unescape(const char *word, size_t length)
{
    char *out = xmalloc(length + 1);
    size_t used = 0;
    for (size_t i = 0; i < length; i++) {
        unsigned char byte = (unsigned char)word[i];
        if (byte <= 0x20 || byte >= 0x7f) {
            free(out);
            return NULL;
        }
        if (byte == '%') {
            if (i + 2 >= length) {
                free(out);
                return NULL;
            }
            int high = hex_value(word[i + 1]), low = hex_value(word[i + 2]);
            if (high < 0 || low < 0) {
                free(out);
                return NULL;
            }
            byte = (unsigned char)(high * 16 + low);
            if (byte == 0) {
                free(out);
                return NULL;
            }
            i += 2;
        }
        out[used++] = (char)byte;
    }
    out[used] = '\0';
    return out;
}

/* parse_number - digits only, into *value; -1 if not */
static int parse_number(const char *text, size_t length, long long *value)
{
    if (length == 0 || length > 20)
        return -1;
    long long number = 0;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        if (number > (9223372036854775807LL - (text[i] - '0')) / 10)
            return -1;
        number = number * 10 + (text[i] - '0');
    }
    *value = number;
    return 0;
}

static int parse_fail(char *error, size_t size, int line, const char *reason)
{
    snprintf(error, size, "line %d: %s", line, reason);
    return -1;
}

/* parse_set - store a unique string field */
static int parse_set(char **field, const char *value, size_t length)
{
    if (*field != NULL)
        return -1;
    *field = unescape(value, length);
    return *field ? 0 : -1;
}

int spool_envelope_parse(const char *text, size_t length, struct spool_envelope *out, char *error,
                         size_t error_size)
{
    memset(out, 0, sizeof *out);
    size_t position = 0;
    int line_number = 0;
    bool have_status = false, have_created = false;
    const size_t magic_length = strlen(SPOOL_MAGIC);
    while (position < length) {
        line_number++;
        const char *line = text + position;
        const char *newline = memchr(line, '\n', length - position);
        if (newline == NULL) {
            spool_envelope_clear(out);
            return parse_fail(error, error_size, line_number, "no \"message\" line");
        }
        size_t line_length = (size_t)(newline - line);
        off_t line_offset = (off_t)position;
        position += line_length + 1;
        if (line_number == 1) {
            if (line_length != magic_length || memcmp(line, SPOOL_MAGIC, magic_length) != 0) {
                spool_envelope_clear(out);
                return parse_fail(error, error_size, 1, "not a Porter queue file");
            }
            continue;
        }
        if (line_length == 7 && memcmp(line, "message", 7) == 0) {
            out->message_offset = (off_t)position;
            if (out->queue_id == NULL || !have_status || !have_created || out->mail_from == NULL ||
                out->recipient_count == 0) {
                spool_envelope_clear(out);
                return parse_fail(error, error_size, line_number,
                                  "envelope incomplete (id, created, from, status, rcpt)");
            }
            return 0;
        }
        const char *space = memchr(line, ' ', line_length);
        if (space == NULL) {
            spool_envelope_clear(out);
            return parse_fail(error, error_size, line_number, "record without a value");
        }
        size_t key_length = (size_t)(space - line);
        const char *value = space + 1;
        size_t value_length = line_length - key_length - 1;
        int rc = 0;
#define KEY(name) (key_length == strlen(name) && memcmp(line, name, key_length) == 0)
        if (KEY("id")) {
            rc = parse_set(&out->queue_id, value, value_length);
            if (rc == 0 && !spool_id_valid(out->queue_id))
                rc = -1;
        } else if (KEY("created")) {
            rc = have_created ? -1 : parse_number(value, value_length, &out->created);
            have_created = true;
        } else if (KEY("from")) {
            if (out->mail_from != NULL)
                rc = -1;
            else
                out->mail_from = value_length == 0 ? xstrdup("") : unescape(value, value_length);
            rc = rc == 0 && out->mail_from == NULL ? -1 : rc;
        } else if (KEY("mail-params")) {
            rc = parse_set(&out->mail_params, value, value_length);
        } else if (KEY("client-ip")) {
            rc = parse_set(&out->client_ip, value, value_length);
        } else if (KEY("client-port")) {
            long long port = 0;
            rc = parse_number(value, value_length, &port);
            if (rc == 0 && (port < 0 || port > 65535))
                rc = -1;
            out->client_port = (int)port;
        } else if (KEY("client-name")) {
            rc = parse_set(&out->client_name, value, value_length);
        } else if (KEY("helo")) {
            rc = parse_set(&out->helo, value, value_length);
        } else if (KEY("protocol")) {
            rc = parse_set(&out->protocol, value, value_length);
        } else if (KEY("auth-user")) {
            rc = parse_set(&out->auth_user, value, value_length);
        } else if (KEY("quarantine")) {
            rc = parse_set(&out->quarantine, value, value_length);
        } else if (KEY("note")) {
            const char *separator = memchr(value, ' ', value_length);
            if (separator == NULL || out->note_count >= SPOOL_NOTES_MAX) {
                rc = -1;
            } else {
                char *key = unescape(value, (size_t)(separator - value));
                size_t rest = value_length - (size_t)(separator - value) - 1;
                char *note = rest == 0 ? xstrdup("") : unescape(separator + 1, rest);
                if (key == NULL || note == NULL || *key == '\0') {
                    free(key);
                    free(note);
                    rc = -1;
                } else {
                    out->notes = xrealloc(out->notes, (out->note_count + 1) * sizeof *out->notes);
                    out->notes[out->note_count].key = key;
                    out->notes[out->note_count].value = note;
                    out->note_count++;
                }
            }
        } else if (KEY("status")) {
            long long attempts = 0, next = 0;
            if (have_status || line_length + 1 != SPOOL_STATUS_LENGTH ||
                parse_number(value, 10, &attempts) != 0 || value[10] != ' ' ||
                parse_number(value + 11, 20, &next) != 0 || value[31] != ' ' ||
                (value[32] != 'Y' && value[32] != 'N') || attempts > 4000000000LL) {
                rc = -1;
            } else {
                out->attempts = (unsigned)attempts;
                out->next_attempt = next;
                out->delay_warned = value[32] == 'Y';
                out->status_offset = line_offset;
                have_status = true;
            }
        } else if (KEY("rcpt")) {
            /* "rcpt S ADDRESS PARAMS" */
            int state = -1;
            for (int s = 0; s < SPOOL_RCPT_COUNT && value_length >= 2; s++)
                if (value[0] == state_letters[s] && value[1] == ' ')
                    state = s;
            const char *address = value + 2;
            const char *separator = state >= 0 ? memchr(address, ' ', value_length - 2) : NULL;
            if (separator == NULL || separator == address) {
                rc = -1;
            } else {
                char *decoded = unescape(address, (size_t)(separator - address));
                size_t rest = value_length - 2 - (size_t)(separator - address) - 1;
                char *params = rest == 0 ? xstrdup("") : unescape(separator + 1, rest);
                if (decoded == NULL || params == NULL) {
                    free(decoded);
                    free(params);
                    rc = -1;
                } else {
                    out->recipients = xrealloc(out->recipients, (out->recipient_count + 1) *
                                                                    sizeof *out->recipients);
                    struct spool_recipient *r = &out->recipients[out->recipient_count++];
                    r->address = decoded;
                    r->params = params;
                    r->state = state;
                    r->state_offset = (off_t)(value - text);
                }
            }
        } else {
            rc = -1;
        }
#undef KEY
        if (rc != 0) {
            spool_envelope_clear(out);
            return parse_fail(error, error_size, line_number, "bad or repeated record");
        }
    }
    spool_envelope_clear(out);
    return parse_fail(error, error_size, line_number, "no \"message\" line");
}

void spool_envelope_clear(struct spool_envelope *e)
{
    if (e == NULL)
        return;
    free(e->queue_id);
    free(e->mail_from);
    free(e->mail_params);
    free(e->client_ip);
    free(e->client_name);
    free(e->helo);
    free(e->protocol);
    free(e->auth_user);
    free(e->quarantine);
    for (size_t i = 0; i < e->note_count; i++) {
        free(e->notes[i].key);
        free(e->notes[i].value);
    }
    free(e->notes);
    for (size_t i = 0; i < e->recipient_count; i++) {
        free(e->recipients[i].address);
        free(e->recipients[i].params);
    }
    free(e->recipients);
    memset(e, 0, sizeof *e);
}

size_t spool_pending_count(const struct spool_envelope *e)
{
    size_t count = 0;
    for (size_t i = 0; i < e->recipient_count; i++)
        count += e->recipients[i].state == SPOOL_RCPT_PENDING;
    return count;
}

/* ---------------------------------------------------------------- files */

/* write_all - the whole buffer or -1 */
static int write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

int spool_fsync_directory(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int spool_write(const char *queue_dir, int queue, struct spool_envelope *e,
                spool_message_writer writer, void *arg)
{
    static atomic_uint counter;
    if (!spool_id_valid(e->queue_id) || queue < 0 || queue >= SPOOL_QUEUE_COUNT) {
        errno = EINVAL;
        return -1;
    }
    char *temporary = xasprintf("%s/tmp/%s.%ld.%u", queue_dir, e->queue_id, (long)getpid(),
                                atomic_fetch_add(&counter, 1) + 1);
    char *final = spool_path(queue_dir, queue, e->queue_id);
    char *folder = xasprintf("%s/%s", queue_dir, spool_queue_name(queue));
    char *text = NULL;
    size_t length = 0;
    spool_envelope_format(e, &text, &length);
    int saved = 0;
    int fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        saved = errno;
    } else {
        if (write_all(fd, text, length) != 0 || writer(fd, arg) != 0 || fsync(fd) != 0)
            saved = errno != 0 ? errno : EIO;
        if (close(fd) != 0 && saved == 0)
            saved = errno;
        if (saved == 0 && link(temporary, final) != 0)
            saved = errno;
        unlink(temporary);
        if (saved == 0 && spool_fsync_directory(folder) != 0) {
            saved = errno;
            unlink(final);
        }
    }
    free(text);
    free(temporary);
    free(final);
    free(folder);
    if (saved != 0) {
        errno = saved;
        return -1;
    }
    return 0;
}

int spool_read(int fd, struct spool_envelope *out, char *error, size_t error_size)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(error, error_size, "fstat: %s", strerror(errno));
        return -1;
    }
    size_t capacity = 65536, length = 0;
    char *buffer = xmalloc(capacity);
    for (;;) {
        if (length == capacity) {
            if (capacity >= SPOOL_ENVELOPE_MAX) {
                free(buffer);
                snprintf(error, error_size, "envelope larger than %d bytes", SPOOL_ENVELOPE_MAX);
                return -1;
            }
            capacity *= 2;
            buffer = xrealloc(buffer, capacity);
        }
        ssize_t n = pread(fd, buffer + length, capacity - length, (off_t)length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(error, error_size, "read: %s", strerror(errno));
            free(buffer);
            return -1;
        }
        size_t scanned = length;
        length += (size_t)n;
        /* stop once "\nmessage\n" is in: the rest is the message */
        size_t from = scanned >= 8 ? scanned - 8 : 0;
        bool found = false;
        for (size_t i = from; i + 9 <= length && !found; i++)
            found = memcmp(buffer + i, "\nmessage\n", 9) == 0;
        if (found || n == 0)
            break;
    }
    int rc = spool_envelope_parse(buffer, length, out, error, error_size);
    free(buffer);
    if (rc == 0)
        out->message_length = st.st_size - out->message_offset;
    return rc;
}

/* pwrite_all - the whole buffer at offset or -1 */
static int pwrite_all(int fd, const char *data, size_t length, off_t offset)
{
    while (length > 0) {
        ssize_t n = pwrite(fd, data, length, offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        length -= (size_t)n;
        offset += n;
    }
    return 0;
}

int spool_mark_recipient(int fd, struct spool_envelope *e, size_t i, int state)
{
    if (i >= e->recipient_count || state < 0 || state >= SPOOL_RCPT_COUNT ||
        e->recipients[i].state_offset <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (pwrite_all(fd, &state_letters[state], 1, e->recipients[i].state_offset) != 0 ||
        fdatasync(fd) != 0)
        return -1;
    e->recipients[i].state = state;
    return 0;
}

int spool_mark_recipients(int fd, struct spool_envelope *e, const size_t *indexes, size_t count,
                          int state)
{
    if (state < 0 || state >= SPOOL_RCPT_COUNT) {
        errno = EINVAL;
        return -1;
    }
    for (size_t k = 0; k < count; k++) {
        size_t i = indexes[k];
        if (i >= e->recipient_count || e->recipients[i].state_offset <= 0) {
            errno = EINVAL;
            return -1;
        }
        if (pwrite_all(fd, &state_letters[state], 1, e->recipients[i].state_offset) != 0)
            return -1;
    }
    if (count > 0 && fdatasync(fd) != 0)
        return -1;
    for (size_t k = 0; k < count; k++)
        e->recipients[indexes[k]].state = state;
    return 0;
}

int spool_update_status(int fd, const struct spool_envelope *e)
{
    char record[SPOOL_STATUS_LENGTH + 1];
    int n = snprintf(record, sizeof record, SPOOL_STATUS_FORMAT, e->attempts, e->next_attempt,
                     e->delay_warned ? 'Y' : 'N');
    if (n != SPOOL_STATUS_LENGTH || e->status_offset <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (pwrite_all(fd, record, SPOOL_STATUS_LENGTH, e->status_offset) != 0 || fdatasync(fd) != 0)
        return -1;
    return 0;
}

int spool_move(const char *queue_dir, const char *id, int from, int to)
{
    if (!spool_id_valid(id) || from < 0 || from >= SPOOL_QUEUE_COUNT || to < 0 ||
        to >= SPOOL_QUEUE_COUNT || from == to) {
        errno = EINVAL;
        return -1;
    }
    char *source = spool_path(queue_dir, from, id);
    char *target = spool_path(queue_dir, to, id);
    char *folder = xasprintf("%s/%s", queue_dir, spool_queue_name(to));
    int rc = link(source, target);
    int saved = errno;
    if (rc == 0) {
        unlink(source);
        rc = spool_fsync_directory(folder);
        saved = errno;
    }
    free(source);
    free(target);
    free(folder);
    errno = saved;
    return rc;
}
