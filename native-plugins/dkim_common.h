/*
 * dkim_common.h - what dkim_verify and dkim_sign share: taking a message for a pool thread,
 * feeding it to libopendkim, domains of addresses, and domain lists from files.
 *
 * A message for a pool thread (struct dkim_message) is a copy of the header block and a
 * duplicate of the spool file's descriptor: the job never touches the transaction, which may
 * be gone (hook timeout, client left) before the job ends. The body is read from the spool
 * file with pread in DKIM_CHUNK pieces and fed to libopendkim piece by piece, never whole in
 * memory; headers are fed one field at a time, folding kept, without the final CRLF.
 *
 * Everything is static inline: each plugin is one shared object and includes this header.
 * Memory: dkim_message_release frees what dkim_message_take made; dkim_domains_free frees a
 * list. Nothing here aborts except on out of memory (callers check NULL).
 */
#ifndef PORTER_DKIM_COMMON_H
#define PORTER_DKIM_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <opendkim/dkim.h>

#include <porter/plugin.h>

#define DKIM_CHUNK 65536        /* body bytes fed at once */
#define DKIM_DOMAIN_MAX 254     /* a domain's text and its NUL */

/* A message as a job on a pool thread sees it. */
struct dkim_message {
    char *headers;              /* the header block, CRLF line ends, no empty line */
    size_t headers_length;
    int fd;                     /* a duplicate of the spool file's descriptor */
    off_t body_offset;
    off_t body_length;
};

/* dkim_message_take - copy the current message's headers and duplicate its body's descriptor;
 * 0, or -1 (nothing to release) */
static inline int dkim_message_take(porter_session *s, struct dkim_message *out)
{
    struct porter_message m;
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (porter_message(s, &m) != 0)
        return -1;
    out->headers = malloc(m.headers_length + 1);
    if (out->headers == NULL)
        return -1;
    memcpy(out->headers, m.headers, m.headers_length);
    out->headers[m.headers_length] = '\0';
    out->headers_length = m.headers_length;
    out->fd = fcntl(m.body_fd, F_DUPFD_CLOEXEC, 0);
    if (out->fd < 0) {
        free(out->headers);
        out->headers = NULL;
        return -1;
    }
    out->body_offset = m.body_offset;
    out->body_length = m.body_length;
    return 0;
}

static inline void dkim_message_release(struct dkim_message *m)
{
    free(m->headers);
    m->headers = NULL;
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

/*
 * dkim_message_feed - every header field, end of headers, then the body in chunks, to each of
 * count handles (several signatures are made in one pass); the first status that is not
 * DKIM_STAT_OK (dkim_eoh's DKIM_STAT_NOSIG when nothing is signed), or DKIM_STAT_OK. The
 * caller then calls dkim_eom on each.
 */
static inline DKIM_STAT dkim_message_feed(DKIM *const *handles, size_t count,
                                          const struct dkim_message *m)
{
    const char *block = m->headers, *end = m->headers + m->headers_length;
    while (block < end) {
        /* one field: up to a CRLF that is not followed by folding white space */
        const char *p = block, *field_end = end;
        while (p < end) {
            const char *cr = memchr(p, '\r', (size_t)(end - p));
            if (cr == NULL)
                break;
            if (cr + 1 < end && cr[1] == '\n') {
                if (cr + 2 < end && (cr[2] == ' ' || cr[2] == '\t')) {
                    p = cr + 2;
                    continue;
                }
                field_end = cr;
                break;
            }
            p = cr + 1;
        }
        for (size_t i = 0; i < count; i++) {
            DKIM_STAT status =
                dkim_header(handles[i], (u_char *)block, (size_t)(field_end - block));
            if (status != DKIM_STAT_OK)
                return status;
        }
        block = field_end < end ? field_end + 2 : end;
    }
    DKIM_STAT status = DKIM_STAT_OK;
    for (size_t i = 0; i < count && status == DKIM_STAT_OK; i++)
        status = dkim_eoh(handles[i]);
    if (status != DKIM_STAT_OK)
        return status;
    unsigned char *buffer = malloc(DKIM_CHUNK);
    if (buffer == NULL)
        return DKIM_STAT_NORESOURCE;
    off_t offset = m->body_offset, stop = m->body_offset + m->body_length;
    while (offset < stop && status == DKIM_STAT_OK) {
        size_t want = (size_t)(stop - offset) < DKIM_CHUNK ? (size_t)(stop - offset) : DKIM_CHUNK;
        ssize_t got = pread(m->fd, buffer, want, offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            status = DKIM_STAT_INTERNAL;
            break;
        }
        for (size_t i = 0; i < count && status == DKIM_STAT_OK; i++)
            status = dkim_body(handles[i], buffer, (size_t)got);
        offset += got;
    }
    free(buffer);
    return status;
}

/* dkim_domain_valid - letters, digits, '-', '_' and '.', not empty, at most 253 */
static inline bool dkim_domain_valid(const char *domain)
{
    size_t length = strlen(domain);
    if (length == 0 || length >= DKIM_DOMAIN_MAX)
        return false;
    for (const char *p = domain; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

/* dkim_lower - ASCII lower case in place */
static inline void dkim_lower(char *text)
{
    for (; *text; text++)
        if (*text >= 'A' && *text <= 'Z')
            *text = (char)(*text + 32);
}

/*
 * dkim_address_domain - the domain of the (first) address in a From-like header value
 * ("Name <user@Example.ORG>", "user@example.org (Name)"), lower case; false when there is
 * none or it is not a plain domain
 */
static inline bool dkim_address_domain(const char *value, char out[DKIM_DOMAIN_MAX])
{
    if (value == NULL)
        return false;
    const char *start = strchr(value, '<');
    const char *stop;
    if (start != NULL) {
        start++;
        stop = strchr(start, '>');
    } else {
        start = value;
        stop = start + strcspn(start, ",;(");
    }
    if (stop == NULL)
        return false;
    const char *at = NULL;
    for (const char *p = start; p < stop; p++)
        if (*p == '@')
            at = p;
    if (at == NULL)
        return false;
    const char *domain = at + 1;
    while (domain < stop && (*domain == ' ' || *domain == '\t'))
        domain++;
    size_t length = 0;
    while (domain + length < stop && domain[length] != ' ' && domain[length] != '\t' &&
           domain[length] != '\r' && domain[length] != '\n')
        length++;
    if (length == 0 || length >= DKIM_DOMAIN_MAX)
        return false;
    memcpy(out, domain, length);
    out[length] = '\0';
    if (out[length - 1] == '.')
        out[length - 1] = '\0';
    dkim_lower(out);
    return dkim_domain_valid(out);
}

/* dkim_domain_under - is domain equal to parent, or a subdomain of it? */
static inline bool dkim_domain_under(const char *domain, const char *parent)
{
    size_t length = strlen(domain), parent_length = strlen(parent);
    if (length == parent_length)
        return strcasecmp(domain, parent) == 0;
    return length > parent_length && domain[length - parent_length - 1] == '.' &&
           strcasecmp(domain + length - parent_length, parent) == 0;
}

/* A list of domains from a file: "example.org" (that domain), ".example.org" (its subdomains
 * too), one per line, '#' comments. */
struct dkim_domains {
    char **items;
    size_t count;
};

/* dkim_domains_load - read path into list; 0, or -1 with errno (or EINVAL for a bad line,
 * its number in *bad_line) */
static inline int dkim_domains_load(const char *path, struct dkim_domains *list, int *bad_line)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return -1;
    char line[1024];
    int number = 0;
    while (fgets(line, sizeof line, file) != NULL) {
        number++;
        line[strcspn(line, "#\r\n")] = '\0';
        char *word = line + strspn(line, " \t");
        word[strcspn(word, " \t")] = '\0';
        if (*word == '\0')
            continue;
        if (!dkim_domain_valid(word[0] == '.' ? word + 1 : word)) {
            *bad_line = number;
            fclose(file);
            errno = EINVAL;
            return -1;
        }
        char **items = realloc(list->items, (list->count + 1) * sizeof *items);
        if (items == NULL)
            abort();
        list->items = items;
        list->items[list->count] = strdup(word);
        if (list->items[list->count] == NULL)
            abort();
        dkim_lower(list->items[list->count++]);
    }
    fclose(file);
    return 0;
}

/* dkim_domains_match - the entry that covers domain ("example.org" exactly, ".example.org"
 * for it and its subdomains), or NULL */
static inline const char *dkim_domains_match(const struct dkim_domains *list, const char *domain)
{
    for (size_t i = 0; i < list->count; i++) {
        const char *entry = list->items[i];
        if (entry[0] == '.' ? dkim_domain_under(domain, entry + 1) : strcasecmp(entry, domain) == 0)
            return entry;
    }
    return NULL;
}

static inline void dkim_domains_free(struct dkim_domains *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

#endif
