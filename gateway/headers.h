/*
 * headers.h - an ordered list of message headers, parsed from and rendered to a raw header block.
 *
 * Interface: headers_init/headers_clear, headers_parse (raw block -> list), headers_render
 * (list -> raw block), and the accessors and edits the plugin API exposes (count, get, add,
 * insert, change, remove), plus headers_name_valid for callers that check names first.
 *
 * A header block is a run of lines that each end in CRLF, without the empty separator line.
 * A header line is "Name:value" where Name is one or more printable ASCII characters (33..126)
 * other than ':' (no space before the colon); a line that starts with SP or HTAB continues the
 * header before it (folding).
 *
 * Values are the raw text after "Name:" - the leading space is kept, folded lines are kept
 * exactly including their CRLF and leading whitespace - without the final CRLF. So
 * headers_render(headers_parse(block)) reproduces block byte for byte, and
 * headers_parse(headers_render(list)) gives list back.
 *
 * Values passed to headers_add/insert/change are stored as given (pass " value" for the usual
 * space after the colon) after this normalisation, which keeps the rendered block parseable and
 * closes header injection: any line break (CRLF, bare LF or bare CR) becomes CRLF; a line break
 * not followed by SP or HTAB gets a single SP inserted after it (so it stays a fold, never a new
 * header or an empty line); line breaks at the very end of the value are dropped.
 *
 * Memory: the list owns its items, names and values (copies); strings returned by headers_get
 * are owned by the list and valid until the next edit or headers_clear. headers_render returns
 * a buffer the caller frees. Nothing here does I/O or touches globals; only out of memory is
 * fatal (memory.h).
 */
#ifndef PORTER_HEADERS_H
#define PORTER_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

struct header {
    char *name;   /* as received (case kept) */
    char *value;  /* raw text after "Name:", folding kept, without the final CRLF */
};

struct header_list {
    struct header *items;
    size_t count, capacity;
};

/* headers_init - an empty list (no allocation) */
void headers_init(struct header_list *list);
/* headers_clear - free every header; the list is empty and reusable */
void headers_clear(struct header_list *list);

/*
 * headers_parse - append the headers of a raw block (length bytes, lines ending in CRLF, no
 * empty line) to list. Returns 0, or -1 with *error set to a static string and list left as it
 * was before the call, when: a line is neither a header nor a continuation, the block starts
 * with a continuation line, a line does not end in CRLF, the block holds a bare CR, a bare LF or
 * a NUL byte, or list would hold more than max_count headers.
 */
int headers_parse(struct header_list *list, const char *block, size_t length, size_t max_count,
                  const char **error);

/* headers_name_valid - name is one or more characters 33..126 other than ':' */
bool headers_name_valid(const char *name);

/* headers_count - how many headers are called name (ASCII case-insensitive) */
size_t headers_count(const struct header_list *list, const char *name);
/* headers_get - the value of the index-th (from 0, in list order) header called name; NULL if absent */
const char *headers_get(const struct header_list *list, const char *name, size_t index);

/* headers_add - append a header (copies, value normalised); -1 if name is not valid, else 0 */
int headers_add(struct header_list *list, const char *name, const char *value);
/*
 * headers_insert - insert a header before position (0 = first; position >= count appends);
 * -1 if name is not valid, else 0.
 */
int headers_insert(struct header_list *list, size_t position, const char *name, const char *value);
/*
 * headers_change - set the value of the index-th header called name (value normalised), or
 * delete that header when value is NULL; -1 if there is no such header, else 0.
 */
int headers_change(struct header_list *list, const char *name, size_t index, const char *value);
/* headers_remove - delete every header called name; returns how many were deleted */
int headers_remove(struct header_list *list, const char *name);

/*
 * headers_render - the block as bytes: "Name:value\r\n" for each header, in order. Returns a
 * buffer the caller frees (NUL-terminated for convenience; the NUL is not counted) and sets
 * *length. An empty list gives an empty buffer.
 */
char *headers_render(const struct header_list *list, size_t *length);

#endif
