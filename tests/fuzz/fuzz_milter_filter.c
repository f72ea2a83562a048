/*
 * fuzz_milter_filter.c - libFuzzer target for the filter side of the milter protocol (what
 * gateway/milter_listener.c does with an MTA's bytes, minus the event loop).
 *
 * Interface: LLVMFuzzerTestOneInput. The input is the byte stream an MTA sends: the first byte
 * chooses which hooks the chain uses; the rest is split with milter_frame_next (64 KiB limit,
 * as the listener) and each frame is copied to a heap block of its exact size and decoded as a
 * command. OPTNEG is answered with milter_filter_negotiate (the answer must be a subset of what
 * was offered), MACRO goes into a macro table (and is read back), HEADER builds the header list
 * the MTA sent. At the end a second list is made from it (some headers dropped, changed, added,
 * chosen by the input) and milter_filter_header_edits must produce frames that decode as valid
 * replies and, applied as Postfix applies them, give exactly that second list.
 * Fatal: a mismatch aborts (libFuzzer reports a crash). Memory: everything is freed.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

#include "memory.h"
#include "milter_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* apply_edits - the reply frames applied to list (Postfix's rules); false if one is bad */
static bool apply_edits(struct header_list *list, const struct milter_buffer *edits)
{
    size_t offset = 0;
    while (offset < edits->length) {
        struct milter_frame frame;
        size_t consumed = 0;
        if (milter_frame_next(edits->data + offset, edits->length - offset, MILTER_MAX_FRAME,
                              &frame, &consumed) != 1)
            return false;
        struct milter_reply reply;
        if (milter_reply_decode(&frame, &reply, NULL) != 0)
            return false;
        if (reply.type == MILTER_REPLY_CHGHEADER) {
            if (reply.header.index == 0 || reply.header.value[0] != '\0' ||
                headers_change(list, reply.header.name, reply.header.index - 1, NULL) != 0)
                return false;
        } else if (reply.type == MILTER_REPLY_INSHEADER) {
            headers_insert(list, reply.header.index, reply.header.name, reply.header.value);
        } else if (reply.type == MILTER_REPLY_ADDHEADER) {
            headers_add(list, reply.header.name, reply.header.value);
        } else {
            return false;
        }
        offset += consumed;
    }
    return true;
}

static bool same(const struct header_list *a, const struct header_list *b)
{
    size_t la, lb;
    char *ra = headers_render(a, &la), *rb = headers_render(b, &lb);
    bool equal = la == lb && memcmp(ra, rb, la) == 0;
    free(ra);
    free(rb);
    return equal;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool used[PORTER_HOOK_COUNT];
    for (size_t h = 0; h < PORTER_HOOK_COUNT; h++)
        used[h] = (data[0] >> (h % 8)) & 1;
    struct milter_filter_needs needs;
    milter_filter_needs_from_hooks(used, PORTER_HOOK_COUNT, &needs);
    struct milter_macros macros = {0};
    struct header_list before;
    headers_init(&before);
    size_t offset = 1;
    while (offset < size && before.count < 200) {
        struct milter_frame frame;
        size_t consumed = 0;
        if (milter_frame_next(data + offset, size - offset, MILTER_MAX_FRAME, &frame, &consumed) != 1)
            break;
        unsigned char *copy = xmalloc(frame.length + 1);
        memcpy(copy, frame.data, frame.length);
        frame.data = copy;
        struct milter_command command;
        if (milter_command_decode(&frame, &command, NULL) == 0) {
            if (command.type == MILTER_COMMAND_OPTNEG) {
                uint32_t version, actions, protocol;
                if (milter_filter_negotiate(&needs, command.optneg.version, command.optneg.actions,
                                            command.optneg.protocol, &version, &actions, &protocol,
                                            NULL) == 0 &&
                    ((actions & ~command.optneg.actions) != 0 ||
                     (protocol & ~command.optneg.protocol) != 0 || version > 6))
                    abort();
            } else if (command.type == MILTER_COMMAND_MACRO) {
                milter_macros_set(&macros, &command.macro.pairs);
                for (size_t i = 0; i < macros.count; i++)
                    if (milter_macros_get(&macros, macros.names[i]) == NULL &&
                        macros.values[i][0] != '\0')
                        abort();
            } else if (command.type == MILTER_COMMAND_HEADER &&
                       headers_name_valid(command.header.name)) {
                headers_add(&before, command.header.name, command.header.value);
            }
        }
        free(copy);
        offset += consumed;
    }
    /* the plugins' version of the list, chosen by the input's bytes */
    struct header_list after;
    headers_init(&after);
    for (size_t i = 0; i < before.count; i++) {
        uint8_t choice = data[(i * 7 + 3) % size];
        if (choice % 5 == 0)
            continue; /* dropped */
        if (choice % 5 == 1)
            headers_add(&after, before.items[i].name, " changed");
        else
            headers_add(&after, before.items[i].name, before.items[i].value);
        if (choice % 7 == 0)
            headers_insert(&after, choice % (after.count + 1), "X-Added", " new");
    }
    struct milter_buffer edits = {0};
    int frames = milter_filter_header_edits(&edits, &before, &after, true);
    if (frames >= 0) {
        if (!apply_edits(&before, &edits) || !same(&before, &after))
            abort();
    }
    milter_buffer_free(&edits);
    headers_clear(&before);
    headers_clear(&after);
    milter_macros_clear(&macros);
    return 0;
}
