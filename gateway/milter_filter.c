/*
 * milter_filter.c - the pure parts of Porter as a milter: macros, negotiation, header edits.
 *
 * Interface: milter_filter.h. Fatal: out of memory only.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

#include "memory.h"
#include "milter_filter.h"

/* ---------------------------------------------------------------- macros */

/* macro_name_equal - "{x}" and "x" name the same macro */
static bool macro_name_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la >= 2 && a[0] == '{' && a[la - 1] == '}') {
        a++;
        la -= 2;
    }
    if (lb >= 2 && b[0] == '{' && b[lb - 1] == '}') {
        b++;
        lb -= 2;
    }
    return la == lb && memcmp(a, b, la) == 0;
}

size_t milter_macros_set(struct milter_macros *macros, const struct milter_string_list *pairs)
{
    size_t dropped = 0;
    const char *name = milter_string_list_next(pairs, NULL);
    while (name != NULL) {
        const char *value = milter_string_list_next(pairs, name);
        if (value == NULL)
            break;
        size_t i;
        for (i = 0; i < macros->count; i++)
            if (macro_name_equal(macros->names[i], name))
                break;
        if (i == macros->count) {
            if (macros->count == MILTER_MACROS_MAX || name[0] == '\0') {
                dropped++;
                name = milter_string_list_next(pairs, value);
                continue;
            }
            macros->names[i] = xstrndup(name, strnlen(name, MILTER_MACRO_VALUE_MAX));
            macros->values[i] = NULL;
            macros->count++;
        }
        free(macros->values[i]);
        macros->values[i] = xstrndup(value, strnlen(value, MILTER_MACRO_VALUE_MAX));
        name = milter_string_list_next(pairs, value);
    }
    return dropped;
}

const char *milter_macros_get(const struct milter_macros *macros, const char *name)
{
    for (size_t i = 0; i < macros->count; i++)
        if (macro_name_equal(macros->names[i], name))
            return macros->values[i][0] != '\0' ? macros->values[i] : NULL;
    return NULL;
}

void milter_macros_clear(struct milter_macros *macros)
{
    for (size_t i = 0; i < macros->count; i++) {
        free(macros->names[i]);
        free(macros->values[i]);
    }
    macros->count = 0;
}

/* ---------------------------------------------------------------- negotiation */

/* The stage each hook reads facts of (-1: no milter stage, never needed). */
static int hook_stage(size_t hook)
{
    switch (hook) {
    case PORTER_HOOK_CONNECT:
    case PORTER_HOOK_DISCONNECT:
    case PORTER_HOOK_QUIT:
    case PORTER_HOOK_DENY:
        return MILTER_FILTER_CONNECT;
    case PORTER_HOOK_HELO:
    case PORTER_HOOK_EHLO:
        return MILTER_FILTER_HELO;
    case PORTER_HOOK_MAIL:
    case PORTER_HOOK_RESET_TRANSACTION:
        return MILTER_FILTER_MAIL;
    case PORTER_HOOK_RCPT:
        return MILTER_FILTER_RCPT;
    case PORTER_HOOK_DATA:
        return MILTER_FILTER_DATA;
    case PORTER_HOOK_DATA_POST:
        return MILTER_FILTER_CONTENT;
    default:
        return -1; /* auth, queue, vrfy, noop, help, tls, unrecognized: no milter event */
    }
}

/* hook_answers - a hook whose verdict the MTA must wait for (not a notification) */
static bool hook_answers(size_t hook)
{
    return hook == PORTER_HOOK_CONNECT || hook == PORTER_HOOK_HELO || hook == PORTER_HOOK_EHLO ||
           hook == PORTER_HOOK_MAIL || hook == PORTER_HOOK_RCPT || hook == PORTER_HOOK_DATA ||
           hook == PORTER_HOOK_DATA_POST;
}

void milter_filter_needs_from_hooks(const bool *used, size_t hook_count,
                                    struct milter_filter_needs *needs)
{
    int last = -1;
    memset(needs, 0, sizeof *needs);
    for (size_t h = 0; h < hook_count; h++) {
        int stage = hook_stage(h);
        if (!used[h] || stage < 0)
            continue;
        if (stage > last)
            last = stage;
        if (hook_answers(h))
            needs->answer[stage] = true;
    }
    for (int stage = 0; stage <= last; stage++)
        needs->receive[stage] = true;
    /* DATA carries no facts: it is sent only when its own hook runs there. */
    needs->receive[MILTER_FILTER_DATA] = needs->answer[MILTER_FILTER_DATA];
}

int milter_filter_negotiate(const struct milter_filter_needs *needs, uint32_t mta_version,
                            uint32_t mta_actions, uint32_t mta_protocol, uint32_t *version,
                            uint32_t *actions, uint32_t *protocol, const char **error)
{
    static const struct {
        enum milter_filter_stage stage;
        uint32_t not_sent, no_reply;
    } stages[] = {
        {MILTER_FILTER_CONNECT, MILTER_SMFIP_NOCONNECT, MILTER_SMFIP_NR_CONN},
        {MILTER_FILTER_HELO, MILTER_SMFIP_NOHELO, MILTER_SMFIP_NR_HELO},
        {MILTER_FILTER_MAIL, MILTER_SMFIP_NOMAIL, MILTER_SMFIP_NR_MAIL},
        {MILTER_FILTER_RCPT, MILTER_SMFIP_NORCPT, MILTER_SMFIP_NR_RCPT},
        {MILTER_FILTER_DATA, MILTER_SMFIP_NODATA, MILTER_SMFIP_NR_DATA},
        {MILTER_FILTER_CONTENT, MILTER_SMFIP_NOHDRS | MILTER_SMFIP_NOBODY, 0},
    };
    if (mta_version < MILTER_PROTOCOL_VERSION_MIN) {
        if (error != NULL)
            *error = "the MTA's milter protocol version is below 2";
        return -1;
    }
    uint32_t want = MILTER_SMFIP_NOUNKNOWN | MILTER_SMFIP_NR_UNKN | MILTER_SMFIP_NOEOH |
                    MILTER_SMFIP_NR_EOH | MILTER_SMFIP_NR_HDR | MILTER_SMFIP_NR_BODY;
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        if (!needs->receive[stages[i].stage])
            want |= stages[i].not_sent;
        if (!needs->answer[stages[i].stage])
            want |= stages[i].no_reply;
    }
    if (needs->receive[MILTER_FILTER_CONTENT])
        want |= MILTER_SMFIP_HDR_LEADSPC;
    uint32_t edits = 0;
    if (needs->receive[MILTER_FILTER_MAIL])
        edits |= MILTER_SMFIF_CHGFROM | MILTER_SMFIF_ADDRCPT | MILTER_SMFIF_ADDRCPT_PAR |
                 MILTER_SMFIF_DELRCPT;
    if (needs->receive[MILTER_FILTER_CONTENT])
        edits |= MILTER_SMFIF_ADDHDRS | MILTER_SMFIF_CHGHDRS | MILTER_SMFIF_CHGBODY |
                 MILTER_SMFIF_QUARANTINE;
    *version = mta_version < MILTER_PROTOCOL_VERSION ? mta_version : MILTER_PROTOCOL_VERSION;
    *protocol = want & mta_protocol;
    *actions = edits & mta_actions;
    return 0;
}

/* ---------------------------------------------------------------- header edits */

/* The largest before x after table the minimal diff computes; past it every header of
 * before is deleted and every header of after added (correct, only longer). */
#define HEADER_DIFF_CELLS (4u * 1024 * 1024)

static bool header_equal(const struct header *a, const struct header *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->value, b->value) == 0; /* exact: a new spelling is an edit */
}

/* header_match - kept[i] / placed[j]: which headers of before and after stay (a longest common
 * subsequence; both arrays zeroed by the caller) */
static void header_match(const struct header_list *before, const struct header_list *after,
                         bool *kept, bool *placed)
{
    size_t n = before->count, m = after->count;
    if (n == 0 || m == 0 || (n + 1) * (m + 1) > HEADER_DIFF_CELLS)
        return;
    uint32_t *table = xcalloc((n + 1) * (m + 1), sizeof *table);
#define CELL(i, j) table[(i) * (m + 1) + (j)]
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            CELL(i, j) = header_equal(&before->items[i], &after->items[j])
                             ? CELL(i + 1, j + 1) + 1
                             : (CELL(i + 1, j) > CELL(i, j + 1) ? CELL(i + 1, j) : CELL(i, j + 1));
    size_t i = 0, j = 0;
    while (i < n && j < m) {
        if (header_equal(&before->items[i], &after->items[j]) &&
            CELL(i, j) == CELL(i + 1, j + 1) + 1) {
            kept[i++] = true;
            placed[j++] = true;
        } else if (CELL(i + 1, j) >= CELL(i, j + 1)) {
            i++;
        } else {
            j++;
        }
    }
#undef CELL
    free(table);
}

/* header_value_sent - the value as the MTA wants it (without the leading space it adds) */
static const char *header_value_sent(const char *value, bool leading_space)
{
    if (!leading_space && value[0] == ' ')
        return value + 1;
    return value;
}

int milter_filter_header_edits(struct milter_buffer *out, const struct header_list *before,
                               const struct header_list *after, bool leading_space)
{
    bool *kept = xcalloc(before->count + 1, sizeof *kept);
    bool *placed = xcalloc(after->count + 1, sizeof *placed);
    size_t start = out->length;
    int frames = 0;
    header_match(before, after, kept, placed);
    /* Deletions, from the last header up: an occurrence index never moves under us. */
    for (size_t i = before->count; i-- > 0;) {
        if (kept[i])
            continue;
        uint32_t occurrence = 1;
        for (size_t k = 0; k < i; k++)
            occurrence += strcasecmp(before->items[k].name, before->items[i].name) == 0;
        if (milter_encode_header_edit(out, MILTER_REPLY_CHGHEADER, occurrence,
                                      before->items[i].name, "") != 0)
            goto fail;
        frames++;
    }
    /* Insertions in order: everything before position j is in place by then. */
    for (size_t j = 0; j < after->count; j++) {
        if (placed[j])
            continue;
        bool tail = true;
        for (size_t k = j + 1; k < after->count && tail; k++)
            tail = !placed[k];
        const char *value = header_value_sent(after->items[j].value, leading_space);
        int rc = tail ? milter_encode_header_edit(out, MILTER_REPLY_ADDHEADER, 0,
                                                  after->items[j].name, value)
                      : milter_encode_header_edit(out, MILTER_REPLY_INSHEADER, (uint32_t)j,
                                                  after->items[j].name, value);
        if (rc != 0)
            goto fail;
        frames++;
    }
    free(kept);
    free(placed);
    return frames;
fail:
    out->length = start;
    free(kept);
    free(placed);
    return -1;
}
