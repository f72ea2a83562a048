/*
 * memory.c - allocation wrappers that abort on out-of-memory (see memory.h).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf, when built outside the Makefile */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"

/* memory_exhausted - the one fatal path for allocation failure */
static void memory_exhausted(size_t size)
{
    fprintf(stderr, "porter: fatal: out of memory allocating %zu bytes\n", size);
    abort();
}

void *xmalloc(size_t size)
{
    void *pointer = malloc(size ? size : 1);
    if (pointer == NULL)
        memory_exhausted(size);
    return pointer;
}

void *xcalloc(size_t count, size_t size)
{
    void *pointer = calloc(count ? count : 1, size ? size : 1);
    if (pointer == NULL)
        memory_exhausted(count * size);
    return pointer;
}

void *xrealloc(void *pointer, size_t size)
{
    void *result = realloc(pointer, size ? size : 1);
    if (result == NULL)
        memory_exhausted(size);
    return result;
}

char *xstrdup(const char *string)
{
    return xstrndup(string, strlen(string));
}

char *xstrndup(const char *string, size_t length)
{
    char *copy = xmalloc(length + 1);
    memcpy(copy, string, length);
    copy[length] = '\0';
    return copy;
}

char *xasprintf(const char *format, ...)
{
    va_list ap;
    char *result = NULL;
    va_start(ap, format);
    int length = vasprintf(&result, format, ap);
    va_end(ap);
    if (length < 0)
        memory_exhausted(0);
    return result;
}

char *xjoin(char *const *items, size_t count, const char *separator)
{
    size_t separator_length = strlen(separator), length = 1;
    for (size_t i = 0; i < count; i++)
        length += strlen(items[i]) + separator_length;
    char *joined = xmalloc(length);
    char *end = joined;
    for (size_t i = 0; i < count; i++) {
        if (i > 0) {
            memcpy(end, separator, separator_length);
            end += separator_length;
        }
        size_t n = strlen(items[i]);
        memcpy(end, items[i], n);
        end += n;
    }
    *end = '\0';
    return joined;
}
