/*
 * headers.c - an ordered list of message headers (see headers.h).
 *
 * Interface: headers_parse turns a raw header block into the list, headers_render turns the
 * list back into the exact bytes; the rest reads and edits the list for the plugin API.
 *
 * Parsing keeps every value as a slice of the block (the text after the colon through the end
 * of its last continuation line), so folding survives byte for byte and each header costs one
 * allocation for its value whatever the number of continuation lines.
 *
 * Fatal: out of memory only. No I/O, no globals. The list owns every name and value.
 */
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "memory.h"

/* headers_name_char - a character allowed in a header name: printable ASCII except ':' */
static bool headers_name_char(unsigned char c)
{
    return c >= 33 && c <= 126 && c != ':';
}

/* headers_ascii_lower - tolower for ASCII only, whatever the locale */
static unsigned char headers_ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* headers_name_equal - ASCII case-insensitive comparison of two names */
static bool headers_name_equal(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = headers_ascii_lower((unsigned char)*a);
        unsigned char y = headers_ascii_lower((unsigned char)*b);
        if (x != y)
            return false;
        if (x == '\0')
            return true;
    }
}

bool headers_name_valid(const char *name)
{
    if (name == NULL || *name == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!headers_name_char((unsigned char)*p))
            return false;
    return true;
}

void headers_init(struct header_list *list)
{
    list->items = NULL;
    list->count = 0;
    list->capacity = 0;
}

void headers_clear(struct header_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].name);
        free(list->items[i].value);
    }
    free(list->items);
    headers_init(list);
}

/* headers_reserve - make room for one more item */
static void headers_reserve(struct header_list *list)
{
    if (list->count < list->capacity)
        return;
    size_t capacity = list->capacity ? list->capacity * 2 : 16;
    list->items = xrealloc(list->items, capacity * sizeof *list->items);
    list->capacity = capacity;
}

/* headers_place - insert an item that takes ownership of name and value at position */
static void headers_place(struct header_list *list, size_t position, char *name, char *value)
{
    headers_reserve(list);
    if (position > list->count)
        position = list->count;
    memmove(&list->items[position + 1], &list->items[position],
            (list->count - position) * sizeof *list->items);
    list->items[position].name = name;
    list->items[position].value = value;
    list->count++;
}

/* headers_delete_at - free and remove the item at position */
static void headers_delete_at(struct header_list *list, size_t position)
{
    free(list->items[position].name);
    free(list->items[position].value);
    memmove(&list->items[position], &list->items[position + 1],
            (list->count - position - 1) * sizeof *list->items);
    list->count--;
}

/* headers_find - the list position of the index-th header called name, or -1 */
static long headers_find(const struct header_list *list, const char *name, size_t index)
{
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < list->count; i++)
        if (headers_name_equal(list->items[i].name, name) && index-- == 0)
            return (long)i;
    return -1;
}

/*
 * headers_normalize_value - a copy of value in which every line break is CRLF followed by SP or
 * HTAB (a fold), and without line breaks at the end (see headers.h).
 */
static char *headers_normalize_value(const char *value)
{
    size_t length = strlen(value);
    while (length > 0 && (value[length - 1] == '\r' || value[length - 1] == '\n'))
        length--;
    /* worst case: every character is a line break that becomes CRLF + SP */
    char *out = xmalloc(length * 3 + 1);
    size_t used = 0;
    for (size_t i = 0; i < length; i++) {
        char c = value[i];
        if (c != '\r' && c != '\n') {
            out[used++] = c;
            continue;
        }
        if (c == '\r' && i + 1 < length && value[i + 1] == '\n')
            i++;
        out[used++] = '\r';
        out[used++] = '\n';
        /* the trailing breaks were cut above, so a character follows */
        if (value[i + 1] != ' ' && value[i + 1] != '\t')
            out[used++] = ' ';
    }
    out[used] = '\0';
    return out;
}

/* headers_line_check - the line at p (up to its LF) ends in CRLF and holds no bare CR or NUL */
static const char *headers_line_check(const char *p, const char *end, const char **line_end)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (lf == NULL)
        return "header line does not end in CRLF";
    if (lf == p || lf[-1] != '\r')
        return "bare LF in header block";
    if (memchr(p, '\r', (size_t)(lf - 1 - p)) != NULL)
        return "bare CR in header block";
    if (memchr(p, '\0', (size_t)(lf - p)) != NULL)
        return "NUL in header block";
    *line_end = lf - 1;
    return NULL;
}

int headers_parse(struct header_list *list, const char *block, size_t length, size_t max_count,
                  const char **error)
{
    size_t original = list->count;
    const char *p = block, *end = block + length;
    const char *problem = NULL;

    while (p < end) {
        const char *line_end;
        if ((problem = headers_line_check(p, end, &line_end)) != NULL)
            break;
        if (line_end == p) {
            problem = "empty line in header block";
            break;
        }
        if (*p == ' ' || *p == '\t') {
            problem = "continuation line without a header";
            break;
        }
        const char *colon = p;
        while (colon < line_end && headers_name_char((unsigned char)*colon))
            colon++;
        if (colon == p || colon == line_end || *colon != ':') {
            problem = "line is not a header";
            break;
        }
        if (list->count >= max_count) {
            problem = "too many headers";
            break;
        }
        /* extend over the continuation lines that follow */
        const char *value_end = line_end;
        const char *next = line_end + 2;
        while (next < end && (*next == ' ' || *next == '\t')) {
            const char *continuation_end;
            if ((problem = headers_line_check(next, end, &continuation_end)) != NULL)
                break;
            value_end = continuation_end;
            next = continuation_end + 2;
        }
        if (problem != NULL)
            break;
        headers_place(list, list->count, xstrndup(p, (size_t)(colon - p)),
                      xstrndup(colon + 1, (size_t)(value_end - colon - 1)));
        p = next;
    }

    if (problem == NULL)
        return 0;
    while (list->count > original)
        headers_delete_at(list, list->count - 1);
    if (error != NULL)
        *error = problem;
    return -1;
}

size_t headers_count(const struct header_list *list, const char *name)
{
    size_t count = 0;
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < list->count; i++)
        if (headers_name_equal(list->items[i].name, name))
            count++;
    return count;
}

const char *headers_get(const struct header_list *list, const char *name, size_t index)
{
    long position = headers_find(list, name, index);
    return position < 0 ? NULL : list->items[position].value;
}

int headers_add(struct header_list *list, const char *name, const char *value)
{
    return headers_insert(list, list->count, name, value);
}

int headers_insert(struct header_list *list, size_t position, const char *name, const char *value)
{
    if (!headers_name_valid(name))
        return -1;
    headers_place(list, position, xstrdup(name), headers_normalize_value(value ? value : ""));
    return 0;
}

int headers_change(struct header_list *list, const char *name, size_t index, const char *value)
{
    long position = headers_find(list, name, index);
    if (position < 0)
        return -1;
    if (value == NULL) {
        headers_delete_at(list, (size_t)position);
        return 0;
    }
    char *normalized = headers_normalize_value(value);
    free(list->items[position].value);
    list->items[position].value = normalized;
    return 0;
}

int headers_remove(struct header_list *list, const char *name)
{
    size_t kept = 0;
    int removed = 0;
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < list->count; i++) {
        if (headers_name_equal(list->items[i].name, name)) {
            free(list->items[i].name);
            free(list->items[i].value);
            removed++;
        } else {
            list->items[kept++] = list->items[i];
        }
    }
    list->count = kept;
    return removed;
}

char *headers_render(const struct header_list *list, size_t *length)
{
    size_t total = 0;
    for (size_t i = 0; i < list->count; i++)
        total += strlen(list->items[i].name) + 1 + strlen(list->items[i].value) + 2;
    char *out = xmalloc(total + 1);
    size_t used = 0;
    for (size_t i = 0; i < list->count; i++) {
        size_t name_length = strlen(list->items[i].name);
        size_t value_length = strlen(list->items[i].value);
        memcpy(out + used, list->items[i].name, name_length);
        used += name_length;
        out[used++] = ':';
        memcpy(out + used, list->items[i].value, value_length);
        used += value_length;
        out[used++] = '\r';
        out[used++] = '\n';
    }
    out[used] = '\0';
    *length = used;
    return out;
}
