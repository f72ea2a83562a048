/*
 * memory.h - allocation wrappers for the core: they succeed or abort the process.
 *
 * Interface: xmalloc, xcalloc, xrealloc, xstrdup, xstrndup, xasprintf, xjoin. Out of memory is
 * fatal (one log line to stderr, then abort). Every pointer they return is owned by the
 * caller and released with free(). Plugins do not use these.
 */
#ifndef PORTER_MEMORY_H
#define PORTER_MEMORY_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *pointer, size_t size);
char *xstrdup(const char *string);
char *xstrndup(const char *string, size_t length);
char *xasprintf(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* xjoin - the count strings one after another with separator between them ("" for none) */
char *xjoin(char *const *items, size_t count, const char *separator);

#endif
