/*
 * transaction.c - envelope, parameters, notes and the spooled message of one mail
 * transaction (see transaction.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "memory.h"
#include "transaction.h"

struct transaction *transaction_new(const char *queue_id)
{
    struct transaction *t = xcalloc(1, sizeof *t);
    t->queue_id = xstrdup(queue_id);
    t->mail_from = xstrdup("");
    t->spool_fd = -1;
    headers_init(&t->headers);
    return t;
}

void transaction_free(struct transaction *t)
{
    if (t == NULL)
        return;
    free(t->queue_id);
    free(t->mail_from);
    param_list_clear(&t->mail_params);
    for (size_t i = 0; i < t->recipient_count; i++) {
        free(t->recipients[i].address);
        param_list_clear(&t->recipients[i].params);
    }
    free(t->recipients);
    for (size_t i = 0; i < t->refusal_count && i < TRANSACTION_REFUSALS_KEPT; i++) {
        free(t->refusals[i].address);
        free(t->refusals[i].decider);
    }
    note_list_clear(&t->notes);
    free(t->quarantine_reason);
    free(t->discard_reason);
    if (t->spool_fd >= 0)
        close(t->spool_fd);
    headers_clear(&t->headers);
    free(t->rendered_headers);
    free(t);
}

void transaction_add_refusal(struct transaction *t, const char *address, int code,
                             const char *decider)
{
    if (t->refusal_count < TRANSACTION_REFUSALS_KEPT) {
        struct recipient_refusal *r = &t->refusals[t->refusal_count];
        r->address = xstrdup(address != NULL ? address : "-");
        r->code = code;
        r->decider = xstrdup(decider != NULL ? decider : "-");
    }
    t->refusal_count++;
}

void param_list_clear(struct param_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].keyword);
        free(list->items[i].value);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

void param_list_add(struct param_list *list, const char *keyword, const char *value)
{
    list->items = xrealloc(list->items, (list->count + 1) * sizeof *list->items);
    struct transaction_param *p = &list->items[list->count++];
    p->keyword = xstrdup(keyword);
    for (char *c = p->keyword; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    p->value = value != NULL ? xstrdup(value) : NULL;
}

int param_list_parse(struct param_list *list, const char *text)
{
    param_list_clear(list);
    if (text == NULL)
        return 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, ' ');
        size_t length = end ? (size_t)(end - p) : strlen(p);
        char *word = xstrndup(p, length);
        char *equals = strchr(word, '=');
        if (equals == word) {
            free(word);
            param_list_clear(list);
            return -1;
        }
        if (equals != NULL)
            *equals = '\0';
        param_list_add(list, word, equals ? equals + 1 : NULL);
        free(word);
        p += length;
    }
    return 0;
}

const char *param_list_get(const struct param_list *list, const char *keyword)
{
    for (size_t i = 0; i < list->count; i++)
        if (strcasecmp(list->items[i].keyword, keyword) == 0)
            return list->items[i].value != NULL ? list->items[i].value : "";
    return NULL;
}

void transaction_add_recipient(struct transaction *t, const char *address,
                               const struct param_list *params)
{
    t->recipients = xrealloc(t->recipients, (t->recipient_count + 1) * sizeof *t->recipients);
    struct recipient *r = &t->recipients[t->recipient_count++];
    r->address = xstrdup(address);
    r->params.items = NULL;
    r->params.count = 0;
    if (params != NULL)
        for (size_t i = 0; i < params->count; i++)
            param_list_add(&r->params, params->items[i].keyword, params->items[i].value);
}

size_t transaction_remove_recipient(struct transaction *t, const char *address)
{
    size_t removed = 0, kept = 0;
    for (size_t i = 0; i < t->recipient_count; i++) {
        if (strcasecmp(t->recipients[i].address, address) == 0) {
            free(t->recipients[i].address);
            param_list_clear(&t->recipients[i].params);
            removed++;
        } else {
            t->recipients[kept++] = t->recipients[i];
        }
    }
    t->recipient_count = kept;
    return removed;
}

void note_list_clear(struct note_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].key);
        free(list->items[i].value);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

void note_list_set(struct note_list *list, const char *key, const char *value)
{
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->items[i].key, key) == 0) {
            free(list->items[i].value);
            list->items[i].value = xstrdup(value);
            return;
        }
    }
    list->items = xrealloc(list->items, (list->count + 1) * sizeof *list->items);
    list->items[list->count].key = xstrdup(key);
    list->items[list->count].value = xstrdup(value);
    list->count++;
}

const char *note_list_get(const struct note_list *list, const char *key)
{
    for (size_t i = 0; i < list->count; i++)
        if (strcmp(list->items[i].key, key) == 0)
            return list->items[i].value;
    return NULL;
}

/* spool_file_open - an anonymous read/write file in directory (O_TMPFILE, or mkstemp+unlink) */
static int spool_file_open(const char *directory)
{
    int fd = open(directory, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    char *path = xasprintf("%s/porter-spool-XXXXXX", directory);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    free(path);
    return fd;
}

int transaction_spool_open(struct transaction *t, const char *directory, int spare_fd)
{
    if (t->spool_fd >= 0)
        close(t->spool_fd);
    t->spool_fd = spare_fd >= 0 ? spare_fd : spool_file_open(directory);
    return t->spool_fd >= 0 ? 0 : -1;
}

int transaction_spool_take(struct transaction *t)
{
    int fd = t->spool_fd;
    t->spool_fd = -1;
    return fd;
}

void transaction_headers_changed(struct transaction *t)
{
    free(t->rendered_headers);
    t->rendered_headers = NULL;
    t->rendered_length = 0;
}

const char *transaction_render_headers(struct transaction *t, size_t *length)
{
    if (t->rendered_headers == NULL)
        t->rendered_headers = headers_render(&t->headers, &t->rendered_length);
    *length = t->rendered_length;
    return t->rendered_headers;
}

int transaction_replace_body(struct transaction *t, const char *directory, const char *body,
                             size_t length)
{
    int fd = spool_file_open(directory);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < length) {
        ssize_t n = write(fd, body + done, length - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    if (t->spool_fd >= 0)
        close(t->spool_fd);
    t->spool_fd = fd;
    t->body_offset = 0;
    t->body_length = (off_t)length;
    return 0;
}

char *queue_id_new(void)
{
    static unsigned long counter;
    static const char digits[] = "0123456789BCDFGHJKLMNPQRSTVWXYZ";
    struct timeval now;
    gettimeofday(&now, NULL);
    unsigned long long value[3] = {(unsigned long long)now.tv_sec,
                                   ((unsigned long long)now.tv_usec << 20) ^ (unsigned long long)getpid(),
                                   ++counter};
    char id[64];
    size_t used = 0;
    for (int part = 0; part < 3; part++) {
        char chunk[24];
        size_t n = 0;
        unsigned long long v = value[part];
        do {
            chunk[n++] = digits[v % 31];
            v /= 31;
        } while (v != 0 && n < sizeof chunk);
        while (n > 0 && used < sizeof id - 1)
            id[used++] = chunk[--n];
    }
    id[used] = '\0';
    return xstrdup(id);
}
