/*
 * test_milter_filter.c - unit tests for gateway/milter_filter.c (cmocka): the pure parts of
 * Porter as a milter.
 *
 * Covers: header edits for a table of cases and for random lists (the frames are decoded with
 * the codec's own reply decoder and applied as Postfix applies them - deletions by occurrence,
 * insertions by position - and must give exactly the list the plugins left), the leading
 * space rule, macros (braces or not, replacement, the count limit, long values cut), what a
 * chain needs and the negotiation answer (only bits the MTA offered; an empty chain gets every
 * SMFIP_NO* bit and no action; a chain with only data_post receives everything and answers
 * only at the end; a version below 2 is refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "testlib.h"

#ifndef PORTER_CORE
#define PORTER_CORE
#endif
#include <porter/plugin.h>

#include "milter_filter.h"

/* list_of - "Name: value" strings into a header list (value raw after the colon) */
static void list_of(struct header_list *list, const char *const *items)
{
    headers_init(list);
    for (size_t i = 0; items[i] != NULL; i++) {
        const char *colon = strchr(items[i], ':');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(colon - items[i]), items[i]);
        headers_add(list, name, colon + 1);
    }
}

/* apply - the frames in edits applied to list the way Postfix does; returns frame count */
static int apply(struct header_list *list, const struct milter_buffer *edits, bool leading_space)
{
    size_t offset = 0;
    int frames = 0;
    while (offset < edits->length) {
        struct milter_frame frame;
        size_t consumed = 0;
        assert_int_equal(milter_frame_next(edits->data + offset, edits->length - offset,
                                           MILTER_MAX_FRAME, &frame, &consumed), 1);
        struct milter_reply reply;
        const char *error = NULL;
        if (milter_reply_decode(&frame, &reply, &error) != 0)
            fail_msg("a frame does not decode: %s", error);
        char value[4096];
        snprintf(value, sizeof value, "%s%s", leading_space ? "" : " ", reply.header.value);
        switch (reply.type) {
        case MILTER_REPLY_CHGHEADER:
            assert_true(reply.header.value[0] == '\0'); /* only deletions are produced */
            assert_int_equal(headers_change(list, reply.header.name, reply.header.index - 1, NULL), 0);
            break;
        case MILTER_REPLY_INSHEADER:
            assert_int_equal(headers_insert(list, reply.header.index, reply.header.name, value), 0);
            break;
        case MILTER_REPLY_ADDHEADER:
            assert_int_equal(headers_add(list, reply.header.name, value), 0);
            break;
        default:
            fail_msg("unexpected reply %s", milter_reply_type_name(reply.type));
        }
        offset += consumed;
        frames++;
    }
    return frames;
}

static void check_same(const char *what, const struct header_list *got,
                       const struct header_list *want)
{
    size_t got_length, want_length;
    char *a = headers_render(got, &got_length);
    char *b = headers_render(want, &want_length);
    check_bytes(what, a, got_length, b, want_length);
    free(a);
    free(b);
}

/* check_edits - before -> after through the frames; the frame count as expected (-1: any) */
static void check_edits(const char *what, const char *const *before_items,
                        const char *const *after_items, int want_frames, bool leading_space)
{
    struct header_list before, after;
    list_of(&before, before_items);
    list_of(&after, after_items);
    struct milter_buffer edits = {0};
    int frames = milter_filter_header_edits(&edits, &before, &after, leading_space);
    if (want_frames >= 0 && frames != want_frames)
        fail_msg("%s: got %d frames, want %d", what, frames, want_frames);
    assert_int_equal(apply(&before, &edits, leading_space), frames);
    check_same(what, &before, &after);
    milter_buffer_free(&edits);
    headers_clear(&before);
    headers_clear(&after);
}

static void test_header_edit_cases(void **state)
{
    const char *base[] = {"Received: one", "From: a@example.org", "Subject: hi", "To: b@example.com",
                          "Received: two", NULL};
    check_edits("no change", base, base, 0, true);
    const char *top[] = {"DKIM-Signature: v=1", "Received: one", "From: a@example.org", "Subject: hi",
                         "To: b@example.com", "Received: two", NULL};
    check_edits("insert at the top", base, top, 1, true);
    const char *tail[] = {"Received: one", "From: a@example.org", "Subject: hi", "To: b@example.com",
                          "Received: two", "X-Tail: 1", "X-Tail: 2", NULL};
    check_edits("append two", base, tail, 2, true);
    const char *changed[] = {"Received: one", "From: a@example.org", "Subject: [edited] hi",
                             "To: b@example.com", "Received: two", NULL};
    check_edits("change a value: delete and insert", base, changed, 2, true);
    const char *second_gone[] = {"Received: one", "From: a@example.org", "Subject: hi",
                                 "To: b@example.com", NULL};
    check_edits("delete the second Received", base, second_gone, 1, true);
    const char *first_gone[] = {"From: a@example.org", "Subject: hi", "To: b@example.com",
                                "Received: two", NULL};
    check_edits("delete the first Received", base, first_gone, 1, true);
    const char *none[] = {NULL};
    check_edits("delete everything", base, none, 5, true);
    check_edits("add to an empty list", none, base, 5, true);
    const char *folded[] = {"Received: one", "From: a@example.org", "Subject: hi\r\n\tthere",
                            "To: b@example.com", "Received: two", NULL};
    check_edits("a folded value", base, folded, 2, true);
    check_edits("without SMFIP_HDR_LEADSPC", base, changed, 2, false);
}

/* the same header list twice, in a different order: the matching must still be right */
static void test_header_edit_random(void **state)
{
    const char *names[] = {"Received", "From", "To", "Subject", "X-A", "DKIM-Signature"};
    srand(42);
    for (int round = 0; round < 300; round++) {
        struct header_list before, after;
        headers_init(&before);
        headers_init(&after);
        int n = rand() % 12, m = rand() % 12;
        for (int i = 0; i < n; i++) {
            char value[32];
            snprintf(value, sizeof value, " v%d", rand() % 4);
            headers_add(&before, names[rand() % 6], value);
        }
        for (int j = 0; j < m; j++) {
            char value[32];
            snprintf(value, sizeof value, " v%d", rand() % 4);
            if (n > 0 && rand() % 2)
                headers_add(&after, before.items[rand() % n].name, before.items[rand() % n].value);
            else
                headers_add(&after, names[rand() % 6], value);
        }
        struct milter_buffer edits = {0};
        int frames = milter_filter_header_edits(&edits, &before, &after, true);
        assert_true(frames >= 0);
        apply(&before, &edits, true);
        check_same("random lists", &before, &after);
        milter_buffer_free(&edits);
        headers_clear(&before);
        headers_clear(&after);
    }
}

/* pairs - a string list as an SMFIC_MACRO carries it */
static struct milter_string_list pairs(const char *bytes, size_t length, size_t count)
{
    struct milter_string_list list = {.data = bytes, .length = length, .count = count};
    return list;
}

static void test_macros(void **state)
{
    struct milter_macros macros = {0};
    static const char first[] = "{client_addr}\0" "192.0.2.1\0" "i\0" "ABC123\0" "j\0" "\0";
    struct milter_string_list list = pairs(first, sizeof first - 1, 6);
    assert_int_equal(milter_macros_set(&macros, &list), 0);
    assert_string_equal(milter_macros_get(&macros, "client_addr"), "192.0.2.1");
    assert_string_equal(milter_macros_get(&macros, "{client_addr}"), "192.0.2.1");
    assert_string_equal(milter_macros_get(&macros, "{i}"), "ABC123");
    assert_null(milter_macros_get(&macros, "j")); /* empty is absent */
    assert_null(milter_macros_get(&macros, "auth_authen"));
    static const char second[] = "client_addr\0" "192.0.2.2\0";
    list = pairs(second, sizeof second - 1, 2);
    milter_macros_set(&macros, &list);
    assert_string_equal(milter_macros_get(&macros, "{client_addr}"), "192.0.2.2");
    assert_int_equal(macros.count, 3);
    /* the count limit */
    char many[MILTER_MACROS_MAX * 16];
    size_t used = 0;
    for (int i = 0; i < MILTER_MACROS_MAX; i++) {
        used += (size_t)snprintf(many + used, sizeof many - used, "m%d", i) + 1;
        memcpy(many + used, "x", 2);
        used += 2;
    }
    list = pairs(many, used, MILTER_MACROS_MAX * 2);
    assert_int_equal(milter_macros_set(&macros, &list), 3);
    assert_int_equal(macros.count, MILTER_MACROS_MAX);
    /* a long value is cut */
    char *long_pair = calloc(1, MILTER_MACRO_VALUE_MAX * 2 + 16);
    memcpy(long_pair, "i", 2);
    memset(long_pair + 2, 'A', MILTER_MACRO_VALUE_MAX * 2);
    list = pairs(long_pair, 2 + MILTER_MACRO_VALUE_MAX * 2 + 1, 2);
    milter_macros_set(&macros, &list);
    assert_int_equal(strlen(milter_macros_get(&macros, "i")), MILTER_MACRO_VALUE_MAX);
    free(long_pair);
    milter_macros_clear(&macros);
    assert_int_equal(macros.count, 0);
}

static void needs_of(const int *hooks, struct milter_filter_needs *needs)
{
    bool used[PORTER_HOOK_COUNT] = {false};
    for (size_t i = 0; hooks[i] >= 0; i++)
        used[hooks[i]] = true;
    milter_filter_needs_from_hooks(used, PORTER_HOOK_COUNT, needs);
}

static void test_negotiation(void **state)
{
    const uint32_t offered_protocol = 0x001FFFFF, offered_actions = MILTER_SMFIF_ALL;
    uint32_t version, actions, protocol;
    struct milter_filter_needs needs;
    const char *error = NULL;

    const int empty[] = {-1};
    needs_of(empty, &needs);
    assert_int_equal(milter_filter_negotiate(&needs, 6, offered_actions, offered_protocol, &version,
                                             &actions, &protocol, &error), 0);
    uint32_t every_no = MILTER_SMFIP_NOCONNECT | MILTER_SMFIP_NOHELO | MILTER_SMFIP_NOMAIL |
                        MILTER_SMFIP_NORCPT | MILTER_SMFIP_NOBODY | MILTER_SMFIP_NOHDRS |
                        MILTER_SMFIP_NOEOH | MILTER_SMFIP_NOUNKNOWN | MILTER_SMFIP_NODATA;
    assert_int_equal(version, 6);
    assert_int_equal(actions, 0);
    assert_int_equal(protocol & every_no, every_no);
    assert_int_equal(protocol & MILTER_SMFIP_HDR_LEADSPC, 0);

    const int content[] = {PORTER_HOOK_DATA_POST, -1};
    needs_of(content, &needs);
    milter_filter_negotiate(&needs, 6, offered_actions, offered_protocol, &version, &actions,
                            &protocol, &error);
    assert_int_equal(protocol & (MILTER_SMFIP_NOCONNECT | MILTER_SMFIP_NOHELO | MILTER_SMFIP_NOMAIL |
                                 MILTER_SMFIP_NORCPT | MILTER_SMFIP_NOHDRS | MILTER_SMFIP_NOBODY), 0);
    uint32_t no_replies = MILTER_SMFIP_NR_CONN | MILTER_SMFIP_NR_HELO | MILTER_SMFIP_NR_MAIL |
                          MILTER_SMFIP_NR_RCPT | MILTER_SMFIP_NR_HDR | MILTER_SMFIP_NR_BODY;
    assert_int_equal(protocol & no_replies, no_replies);
    assert_int_equal(protocol & MILTER_SMFIP_NODATA, MILTER_SMFIP_NODATA);
    assert_int_equal(protocol & MILTER_SMFIP_HDR_LEADSPC, MILTER_SMFIP_HDR_LEADSPC);
    assert_int_equal(actions, offered_actions & ~MILTER_SMFIF_SETSYMLIST);

    const int rcpt[] = {PORTER_HOOK_RCPT, PORTER_HOOK_DISCONNECT, -1};
    needs_of(rcpt, &needs);
    milter_filter_negotiate(&needs, 6, offered_actions, offered_protocol, &version, &actions,
                            &protocol, &error);
    assert_int_equal(protocol & (MILTER_SMFIP_NORCPT | MILTER_SMFIP_NR_RCPT), 0);
    assert_int_equal(protocol & MILTER_SMFIP_NOHDRS, MILTER_SMFIP_NOHDRS);
    assert_int_equal(actions & MILTER_SMFIF_CHGBODY, 0);
    assert_int_equal(actions & MILTER_SMFIF_ADDRCPT, MILTER_SMFIF_ADDRCPT);

    /* only what the MTA offered; an old version is answered with its own */
    milter_filter_negotiate(&needs, 2, MILTER_SMFIF_ADDHDRS, MILTER_SMFIP_NOHDRS, &version,
                            &actions, &protocol, &error);
    assert_int_equal(version, 2);
    assert_int_equal(actions, 0);
    assert_int_equal(protocol, MILTER_SMFIP_NOHDRS);
    assert_int_equal(milter_filter_negotiate(&needs, 1, 0, 0, &version, &actions, &protocol,
                                             &error), -1);
    assert_non_null(error);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_edit_cases),
        cmocka_unit_test(test_header_edit_random),
        cmocka_unit_test(test_macros),
        cmocka_unit_test(test_negotiation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
