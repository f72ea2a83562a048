/*
 * milter_filter.h - the pure parts of Porter as a milter (the filter side of the Sendmail milter
 * protocol): what to negotiate for a plugin chain, the macros the MTA sent, and the reply frames
 * that turn the header list the MTA sent into the one the plugins left.
 *
 * Interface: pure functions over plain data; no I/O, no globals. gateway/milter_listener.c is
 * the one user (plus the unit test and the fuzz target).
 * Memory: struct milter_macros owns copies of every name and value (milter_macros_clear frees
 * them); milter_macros_get returns a string owned by the table, valid until the next set/clear.
 * Fatal: out of memory only.
 */
#ifndef PORTER_MILTER_FILTER_H
#define PORTER_MILTER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "headers.h"
#include "milter_codec.h"

/* Bounds on what an MTA may make us keep. */
#define MILTER_MACROS_MAX 64         /* distinct macro names kept */
#define MILTER_MACRO_VALUE_MAX 1024  /* bytes of one value (longer ones are cut) */

/* The macros the MTA defined so far, by name ("{client_addr}" and "i" as sent). */
struct milter_macros {
    char *names[MILTER_MACROS_MAX];
    char *values[MILTER_MACROS_MAX];
    size_t count;
};

/* milter_macros_set - take the name/value pairs of an SMFIC_MACRO; a known name gets its new
 * value; names past MILTER_MACROS_MAX are dropped (returns how many were dropped) */
size_t milter_macros_set(struct milter_macros *macros, const struct milter_string_list *pairs);
/* milter_macros_get - value of name, written with or without braces ("client_addr" finds
 * "{client_addr}"); NULL when not defined or empty */
const char *milter_macros_get(const struct milter_macros *macros, const char *name);
void milter_macros_clear(struct milter_macros *macros);

/*
 * The stages of a milter session, in protocol order, and what a plugin chain needs of them.
 * A stage is received when a hook at it or at a later stage is used (the later hooks read
 * its facts); it is answered only when a hook at the stage itself can refuse.
 */
enum milter_filter_stage {
    MILTER_FILTER_CONNECT = 0,
    MILTER_FILTER_HELO,
    MILTER_FILTER_MAIL,
    MILTER_FILTER_RCPT,
    MILTER_FILTER_DATA,
    MILTER_FILTER_CONTENT, /* headers, body, end of message */
    MILTER_FILTER_STAGE_COUNT
};

struct milter_filter_needs {
    bool receive[MILTER_FILTER_STAGE_COUNT]; /* the MTA must send this stage */
    bool answer[MILTER_FILTER_STAGE_COUNT];  /* a hook at this stage may refuse */
};

/* milter_filter_needs_from_hooks - needs of a chain; used[h] is true when some plugin has a
 * hook h (enum porter_hook index); hook_count is PORTER_HOOK_COUNT */
void milter_filter_needs_from_hooks(const bool *used, size_t hook_count,
                                    struct milter_filter_needs *needs);

/*
 * milter_filter_negotiate - the answer to the MTA's SMFIC_OPTNEG: *protocol asks for no event
 * and no reply the chain does not need (only bits the MTA offered), plus SMFIP_HDR_LEADSPC
 * when offered and the content is needed; *actions are the edits the chain may make (those
 * the MTA offered). Returns -1 with *error when the MTA's version is below 2.
 */
int milter_filter_negotiate(const struct milter_filter_needs *needs, uint32_t mta_version,
                            uint32_t mta_actions, uint32_t mta_protocol, uint32_t *version,
                            uint32_t *actions, uint32_t *protocol, const char **error);

/*
 * milter_filter_header_edits - append to out the SMFIR_CHGHEADER (delete), SMFIR_INSHEADER
 * and SMFIR_ADDHEADER frames that make the MTA's header list `before` into `after`: deletions
 * first, last occurrence first, then insertions in order at their final position (appends
 * as ADDHEADER). Values are raw (the text after the colon): with leading_space false (no
 * SMFIP_HDR_LEADSPC) one leading space is dropped from each value sent. Returns the number
 * of frames appended, or -1 (out unchanged) when a header cannot be encoded.
 */
int milter_filter_header_edits(struct milter_buffer *out, const struct header_list *before,
                               const struct header_list *after, bool leading_space);

#endif
